//! `rrh-sim`: the radio-head simulator.
//!
//! Capture mode: `rrh-sim --pcap FILE --slots N [--scenario FILE.toml]
//! [--mu --prbs --antennas --layers --modulation --iq-width --mtu --seed]`
//! writes N slots of the cell's traffic as a pcap (see `rrh_sim::capture`).
//! Flags override the scenario's `[cell]` table.
//!
//! Live mode: `rrh-sim --live IFACE --seconds S [--transport afxdp|af_packet]
//! [--cpu N] [--fifo P] [--dst-mac MAC] [--timing SPEC] [--hlog FILE]` sends
//! the cell's traffic paced to the symbol clock over IFACE, records the
//! worker's replies and prints the figures (see `rrh_sim::live`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use fronthaul::cell::{CellConfig, Modulation};
use rrh_sim::capture::{self, CellOverrides};

/// Radio-head simulator: writes a cell's eCPRI/O-RAN 7.2x traffic as a pcap.
#[derive(Debug, Parser)]
#[command(name = "rrh-sim", version)]
struct Args {
    /// Write a capture to FILE (raw Ethernet frames, ns timestamps).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Number of slots to write.
    #[arg(long, value_name = "N")]
    slots: Option<u64>,
    /// Scenario file (TOML: [cell], [timing], [run]); flags override [cell].
    #[arg(long, value_name = "FILE.toml")]
    scenario: Option<PathBuf>,
    /// Numerology µ (0..=3).
    #[arg(long)]
    mu: Option<u8>,
    /// PRBs of the carrier (1..=275).
    #[arg(long)]
    prbs: Option<u16>,
    /// Receive antennas, one eAxC each.
    #[arg(long)]
    antennas: Option<u8>,
    /// Spatial layers (1..=4, at most the antennas).
    #[arg(long)]
    layers: Option<u8>,
    /// Modulation: qpsk, qam16, qam64, qam256.
    #[arg(long)]
    modulation: Option<String>,
    /// IQ (BFP mantissa) width in bits, 1..=16.
    #[arg(long = "iq-width")]
    iq_width: Option<u8>,
    /// Ethernet MTU (576..=9000).
    #[arg(long)]
    mtu: Option<u16>,
    /// Seed of the traffic model.
    #[arg(long)]
    seed: Option<u64>,
    /// Live mode: send paced traffic over this interface and record replies.
    #[arg(long, value_name = "IFACE", conflicts_with = "pcap")]
    live: Option<String>,
    /// Live mode: transport (afxdp, af_packet, af_packet_uring).
    #[arg(long, default_value = "afxdp")]
    transport: String,
    /// Live mode: seconds to send.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Live mode: pin to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Live mode: SCHED_FIFO priority.
    #[arg(long)]
    fifo: Option<i32>,
    /// Live mode: destination MAC (aa:bb:cc:dd:ee:ff); broadcast by default.
    #[arg(long, value_name = "MAC")]
    dst_mac: Option<String>,
    /// Live mode: timing windows as a spec string (see fronthaul::timing).
    #[arg(long, value_name = "SPEC")]
    timing: Option<String>,
    /// Live mode: write the HdrHistogram interval log here.
    #[arg(long, value_name = "FILE")]
    hlog: Option<PathBuf>,
}

fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in m.iter_mut() {
        let p = parts.next().with_context(|| format!("--dst-mac {s:?}: six hex bytes separated by ':' expected"))?;
        *b = u8::from_str_radix(p, 16).with_context(|| format!("--dst-mac {s:?}: bad byte {p:?}"))?;
    }
    if parts.next().is_some() {
        bail!("--dst-mac {s:?}: more than six bytes");
    }
    Ok(m)
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.pcap.is_none() && args.live.is_none() {
        bail!("no mode given: pass --pcap FILE --slots N to write a capture, or --live IFACE to run against a worker");
    }
    let base = match &args.scenario {
        Some(p) => capture::load_scenario(p)?,
        None => CellConfig::default(),
    };
    let modulation = match &args.modulation {
        Some(m) => Some(m.parse::<Modulation>().context("--modulation")?),
        None => None,
    };
    let ov = CellOverrides {
        mu: args.mu,
        prbs: args.prbs,
        antennas: args.antennas,
        layers: args.layers,
        modulation,
        iq_width: args.iq_width,
        mtu: args.mtu,
        seed: args.seed,
    };
    let cell = ov.apply(base)?;
    if let Some(iface) = args.live {
        let timing = match &args.timing {
            Some(t) => t.parse().map_err(|e| anyhow::anyhow!("--timing: {e}"))?,
            None => fronthaul::timing::TimingConfig::default(),
        };
        let opts = rrh_sim::live::standalone::StandaloneOpts {
            transport: args.transport,
            iface,
            cell,
            timing,
            seconds: args.seconds,
            cpu: args.cpu,
            fifo: args.fifo,
            dst_mac: args.dst_mac.as_deref().map(parse_mac).transpose()?,
            hlog: args.hlog,
        };
        rrh_sim::live::standalone::run_standalone(&opts, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    let path = args.pcap.context("--pcap: required without --live")?;
    let Some(slots) = args.slots else {
        bail!("--slots: required with --pcap");
    };
    let st = capture::capture_to_file(&path, &cell, slots)?;
    println!(
        "wrote {}: {} slots, {} c-plane + {} u-plane frames ({} per symbol per eAxC), {} bytes; cell {}",
        path.display(),
        st.slots,
        st.cplane_frames,
        st.uplane_frames,
        st.packets_per_symbol,
        st.bytes,
        cell.to_spec()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rrh-sim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
