//! `bbu-sim`: the BBU worker. Opens the fronthaul transport, takes the
//! real-time resources it is asked for (reporting what was granted), prints
//! `READY {json}`, runs [`bbu_sim::worker::run`] with the L1 pipeline and
//! prints `SUMMARY {json}` (one line) when the rrh-sim's end-of-run message,
//! SIGTERM/SIGINT or `--max-seconds` ends it.

use std::io::Write;

use anyhow::{bail, Context, Result};
use bbu_sim::pipeline::SlotProcessor;
use bbu_sim::worker::{self, rt, PollMode, WorkerConfig};
use clap::Parser;
use fronthaul::cell::CellConfig;
use fronthaul::timing::TimingConfig;
use pktio::{PacketIo, Transport};

/// The BBU worker of cranlab.
#[derive(Debug, Parser)]
#[command(name = "bbu-sim", version, about)]
struct Args {
    /// Fronthaul interface (in the worker's network namespace).
    #[arg(long, value_name = "IF")]
    iface: Option<String>,
    /// Transport: afxdp, af_packet, af_packet_uring (mem only works in-process).
    #[arg(long, value_name = "T", default_value = "af_packet")]
    transport: Transport,
    /// Cell spec string (as `CellConfig::to_spec`), e.g. mu=1,prbs=51,ant=2.
    #[arg(long, value_name = "SPEC", default_value = "")]
    cell: CellConfig,
    /// Timing spec string (as `TimingConfig::to_spec`), e.g. ta3=20000,ta4=0:75000,budget=2,lead=5.
    #[arg(long, value_name = "SPEC", default_value = "")]
    timing: TimingConfig,
    /// Pin the worker to this CPU.
    #[arg(long, value_name = "N")]
    cpu: Option<usize>,
    /// Run with SCHED_FIFO at this priority (1..=99).
    #[arg(long, value_name = "PRIO")]
    fifo: Option<i32>,
    /// mlockall(MCL_CURRENT|MCL_FUTURE).
    #[arg(long)]
    mlock: bool,
    /// Receive by busy polling or by blocking.
    #[arg(long, value_name = "MODE", default_value = "busy")]
    poll: PollMode,
    /// The worker shares CLOCK_MONOTONIC with the rrh-sim (bare, container):
    /// take the epoch from the start message and measure one-way delay.
    #[arg(long)]
    shared_clock: bool,
    /// Stop after this many seconds even without an end-of-run message.
    #[arg(long, value_name = "S")]
    max_seconds: Option<f64>,
}

fn open(args: &Args) -> Result<Box<dyn PacketIo>> {
    if args.transport == Transport::Mem {
        bail!("transport mem connects two threads of one process; a separate worker process needs afxdp, af_packet or af_packet_uring");
    }
    if args.transport == Transport::AfXdp && std::env::var_os(pktio::afxdp::HANDOFF_ENV).is_some() {
        let x = pktio::afxdp::AfXdp::from_env().context("adopt the af_xdp socket handed over by the launcher")?;
        return Ok(Box::new(x));
    }
    let Some(iface) = args.iface.as_deref() else {
        bail!("--iface is required for transport {}", args.transport);
    };
    Ok(match args.transport {
        Transport::AfXdp => Box::new(pktio::afxdp::AfXdp::open(iface, &pktio::afxdp::XdpConfig::default()).with_context(|| format!("open af_xdp on {iface}"))?),
        Transport::AfPacket => Box::new(
            pktio::afpacket::AfPacket::open(iface, &pktio::afpacket::AfPacketConfig::default()).with_context(|| format!("open af_packet on {iface}"))?,
        ),
        Transport::AfPacketUring => Box::new(
            pktio::uring::AfPacketUring::open(iface, &pktio::afpacket::AfPacketConfig::default())
                .with_context(|| format!("open io_uring af_packet on {iface}"))?,
        ),
        Transport::Mem => unreachable!("rejected above"),
    })
}

fn main() {
    match real_main() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("bbu-sim: {e:#}");
            std::process::exit(1);
        }
    }
}

fn real_main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    if let Some(s) = args.max_seconds {
        if !(s.is_finite() && s > 0.0) {
            bail!("--max-seconds {s} must be a positive number of seconds");
        }
    }
    let stop = rt::stop_on_signals()?;
    let mut io = open(&args)?;
    let mut pipeline = SlotProcessor::new(&args.cell).context("build the l1 pipeline")?;
    let granted = rt::apply(args.cpu, args.fifo, args.mlock)?;
    for r in &granted.refused {
        tracing::warn!("{r}");
    }
    let ready = serde_json::json!({
        "pid": std::process::id(),
        "transport": io.name(),
        "iface": args.iface,
        "poll": args.poll.as_str(),
        "shared_clock": args.shared_clock,
        "granted": granted,
        "isa": pipeline.isa().name(),
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{} {ready}", worker::READY_PREFIX)?;
        out.flush()?;
    }
    let cfg = WorkerConfig {
        poll: args.poll,
        shared_clock: args.shared_clock,
        max_ns: args.max_seconds.map(|s| (s * 1e9) as u64),
        ..WorkerConfig::new(args.cell.clone(), args.timing.clone())
    };
    let mut summary = worker::run(&cfg, io.as_mut(), &mut pipeline, stop)?;
    summary.granted = Some(granted);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", summary.to_line())?;
    out.flush()?;
    Ok(())
}
