//! A standalone live run for the `rrh-sim` binary: open a transport on an
//! interface, pin and schedule the calling thread, run [`super::run`] until
//! done or SIGINT/SIGTERM, print the figures and optionally write the
//! interval log. The binary's `main.rs` only maps its flags onto
//! [`StandaloneOpts`] and calls [`run_standalone`].

use std::io::Write;
use std::path::PathBuf;

use fronthaul::cell::CellConfig;
use fronthaul::timing::TimingConfig;
use hdrhistogram::Histogram;
use pktio::{PacketIo, Transport};

use super::{rt, LiveConfig, LiveError, LiveReport};

/// What a standalone live run does.
#[derive(Debug, Clone)]
pub struct StandaloneOpts {
    /// `afxdp`, `af_packet` or `af_packet_uring`.
    pub transport: String,
    /// Interface towards the worker.
    pub iface: String,
    /// The cell.
    pub cell: CellConfig,
    /// Timing windows.
    pub timing: TimingConfig,
    /// How long to send, seconds.
    pub seconds: f64,
    /// Pin to this CPU.
    pub cpu: Option<usize>,
    /// SCHED_FIFO priority.
    pub fifo: Option<i32>,
    /// Destination MAC; broadcast when `None`. The source MAC is the
    /// interface's own (so the worker's replies, sent back to it, are
    /// accepted by the interface and its XDP program).
    pub dst_mac: Option<[u8; 6]>,
    /// Write the interval log here.
    pub hlog: Option<PathBuf>,
}

fn open(o: &StandaloneOpts) -> Result<Box<dyn PacketIo>, LiveError> {
    let t: Transport = o.transport.parse().map_err(|e: pktio::PktError| LiveError::Config(e.to_string()))?;
    let io = |err| LiveError::Io { transport: t.as_str(), err };
    Ok(match t {
        Transport::AfXdp => Box::new(pktio::afxdp::AfXdp::open(&o.iface, &pktio::afxdp::XdpConfig::default()).map_err(io)?),
        Transport::AfPacket => Box::new(pktio::afpacket::AfPacket::open(&o.iface, &pktio::afpacket::AfPacketConfig::default()).map_err(io)?),
        Transport::AfPacketUring => Box::new(pktio::uring::AfPacketUring::open(&o.iface, &pktio::afpacket::AfPacketConfig::default()).map_err(io)?),
        Transport::Mem => return Err(LiveError::Config("transport mem only connects threads of one process; use afxdp, af_packet or af_packet_uring".into())),
    })
}

/// The MAC address of `iface` from sysfs.
fn iface_mac(iface: &str) -> Option<[u8; 6]> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).ok()?;
    let mut m = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(m)
}

fn line(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "{name:<22} n={} p50={} p99={} p99.9={} p99.99={} max={}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.value_at_quantile(0.9999),
        h.max()
    )
}

/// Runs a live session on the calling thread and prints its figures to `out`.
pub fn run_standalone(o: &StandaloneOpts, out: &mut dyn Write) -> Result<LiveReport, LiveError> {
    if !(o.seconds.is_finite() && o.seconds > 0.0) {
        return Err(LiveError::Config(format!("seconds {} must be positive", o.seconds)));
    }
    let mut io = open(o)?;
    let stop = rt::stop_on_signals().map_err(|e| LiveError::Config(e.to_string()))?;
    let granted = rt::pin_and_fifo(o.cpu, o.fifo).map_err(|e| LiveError::Config(e.to_string()))?;
    let w = |out: &mut dyn Write, s: String| {
        let _ = writeln!(out, "{s}");
    };
    w(out, format!("rrh-sim live: {} on {}, policy {} cpu {:?}", io.name(), o.iface, granted.policy, granted.cpu));
    for r in &granted.refused {
        w(out, format!("rrh-sim live: not granted: {r}"));
    }
    let mut cfg = LiveConfig::new(o.cell.clone(), o.timing.clone(), LiveConfig::slots_for(&o.cell, o.seconds));
    cfg.dst_mac = o.dst_mac.unwrap_or([0xff; 6]);
    if let Some(m) = iface_mac(&o.iface) {
        cfg.src_mac = m;
    }
    let wall = std::time::SystemTime::now() + std::time::Duration::from_nanos(cfg.start_delay_ns);
    let rep = super::run(&cfg, io.as_mut(), stop, &|p| {
        eprintln!("rrh-sim live: {}/{} slots, {} replies, {} late", p.slots_sent, p.slots_total, p.replies, p.late_replies)
    })?;
    w(
        out,
        format!(
            "slots {} replies {} lost {} late {} deadline_misses {} generator_late_symbols {} bit_errors {}/{}",
            rep.slots_sent, rep.replies, rep.lost_replies, rep.late_replies, rep.deadline_misses, rep.generator_late_symbols, rep.bit_errors, rep.bits_checked
        ),
    );
    for (name, h) in rep.hists.tagged() {
        w(out, line(name, h));
    }
    if let Some(p) = &o.hlog {
        let write = || -> std::io::Result<()> {
            let mut f = std::io::BufWriter::new(std::fs::File::create(p)?);
            rep.write_hlog(&mut f, wall)?;
            f.flush()
        };
        write().map_err(|e| LiveError::Config(format!("write interval log {}: {e}", p.display())))?;
    }
    Ok(rep)
}
