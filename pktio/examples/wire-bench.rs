//! One-way latency and packet rate of the transports over one veth pair, in
//! one run (root only).
//!
//! ```text
//! cargo run --release -p pktio --example wire-bench -- \
//!     --runs afxdp:poll,af_packet:block,af_packet_uring:block --packets 20000 --pps 20000 --flood-secs 2
//! ```
//!
//! Creates `cranlab-wb-a`/`cranlab-wb-b` namespaces joined by a veth pair
//! (removed on exit and on Ctrl-C). For each run the sender (in A, pinned to
//! core 0) and the receiver (in B, pinned to core 1) open the same transport;
//! the sender stamps `CLOCK_MONOTONIC` into each frame and the receiver
//! records arrival minus stamp. Then the sender floods batches of 64 for
//! `--flood-secs` and the receiver counts what arrives.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use pktio::afpacket::{AfPacket, AfPacketConfig};
use pktio::afxdp::{AfXdp, XdpConfig};
use pktio::uring::AfPacketUring;
use pktio::{in_netns, monotonic_ns, PacketIo, PktError, Transport, Wait};

#[derive(Parser, Debug)]
#[command(about = "one-way latency and packet rate of pktio transports over a veth pair")]
struct Args {
    /// Runs as transport:wait, wait = poll (busy-poll) or block.
    #[arg(long, value_delimiter = ',', default_value = "afxdp:poll,af_packet:block,af_packet_uring:block,af_packet:poll")]
    runs: Vec<String>,
    /// Frames for the latency phase.
    #[arg(long, default_value_t = 20000)]
    packets: u64,
    /// Paced rate of the latency phase (frames per second).
    #[arg(long, default_value_t = 10000)]
    pps: u64,
    /// Frame length in bytes (Ethernet header included).
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// Seconds of flooding for the rate phase (0 skips it).
    #[arg(long, default_value_t = 2.0)]
    flood_secs: f64,
    /// Run sender and receiver threads SCHED_FIFO at this priority (RT
    /// throttling stays on; without it they run SCHED_OTHER).
    #[arg(long)]
    fifo: Option<i32>,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

const NS_A: &str = "cranlab-wb-a";
const NS_B: &str = "cranlab-wb-b";
const IF_A: &str = "cranlabwba";
const IF_B: &str = "cranlabwbb";

const FLOOD_SEQ: u64 = 1 << 40;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: i32) {
    STOP.store(true, Ordering::Relaxed);
}

fn sh(args: &[&str]) -> Result<()> {
    let o = std::process::Command::new("ip").args(args).output().context("run ip")?;
    if !o.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(())
}

struct Pair;

impl Pair {
    fn create() -> Result<Pair> {
        let _ = sh(&["netns", "del", NS_A]);
        let _ = sh(&["netns", "del", NS_B]);
        let p = Pair;
        sh(&["netns", "add", NS_A])?;
        sh(&["netns", "add", NS_B])?;
        sh(&["link", "add", IF_A, "type", "veth", "peer", "name", IF_B])?;
        sh(&["link", "set", IF_A, "netns", NS_A])?;
        sh(&["link", "set", IF_B, "netns", NS_B])?;
        for (ns, ifn) in [(NS_A, IF_A), (NS_B, IF_B)] {
            sh(&["-n", ns, "link", "set", "dev", ifn, "up"])?;
        }
        Ok(p)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = sh(&["netns", "del", NS_A]);
        let _ = sh(&["netns", "del", NS_B]);
        let out = std::process::Command::new("ip").args(["netns", "list"]).output();
        if let Ok(o) = out {
            if String::from_utf8_lossy(&o.stdout).contains("cranlab-wb") {
                eprintln!("warning: cranlab-wb namespaces still present");
            }
        }
    }
}

fn open(t: Transport, ns: &str, ifname: &'static str) -> Result<Box<dyn PacketIo>, PktError> {
    in_netns(ns, move || -> Result<Box<dyn PacketIo>, PktError> {
        Ok(match t {
            Transport::AfPacket => Box::new(AfPacket::open(ifname, &AfPacketConfig::default())?),
            Transport::AfPacketUring => Box::new(AfPacketUring::open(ifname, &AfPacketConfig::default())?),
            Transport::AfXdp => Box::new(AfXdp::open(ifname, &XdpConfig::default())?),
            Transport::Mem => return Err(PktError::Unsupported("mem has no wire".into())),
        })
    })
}

fn set_fifo(prio: Option<i32>) -> &'static str {
    let Some(p) = prio else { return "other" };
    let sp = libc::sched_param { sched_priority: p };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &sp) } == 0 {
        "fifo"
    } else {
        eprintln!("SCHED_FIFO {p} refused: {}; running SCHED_OTHER", std::io::Error::last_os_error());
        "other"
    }
}

/// Pins the calling thread to `core`; false when refused.
fn pin(core: usize) -> bool {
    // Not `get_core_ids()`: it lists only the cores the calling thread may
    // already use, so a thread spawned by a pinned thread could not move.
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

fn fill_frame(buf: &mut [u8], seq: u64, size: usize) -> usize {
    buf[..6].fill(0xff);
    buf[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xa]);
    buf[12..14].copy_from_slice(&0xAEFEu16.to_be_bytes());
    buf[14..22].copy_from_slice(&seq.to_le_bytes());
    buf[22..30].copy_from_slice(&monotonic_ns().to_le_bytes());
    size
}

#[derive(Debug, serde::Serialize)]
struct RunResult {
    transport: String,
    sched: String,
    tx_detail: serde_json::Value,
    wait: String,
    detail: serde_json::Value,
    sent: u64,
    received: u64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
    flood_sent: u64,
    flood_received: u64,
    flood_mpps: f64,
}

fn one_run(t: Transport, busy: bool, a: &Args) -> Result<RunResult> {
    let mut tx = open(t, NS_A, IF_A).with_context(|| format!("open {t} in {NS_A}"))?;
    let mut rx = open(t, NS_B, IF_B).with_context(|| format!("open {t} in {NS_B}"))?;
    let size = a.size.clamp(30, rx.max_frame());
    let wait = if busy { Wait::Poll } else { Wait::Block(Duration::from_millis(50)) };
    let done = Arc::new(AtomicBool::new(false));
    let flood_rx = Arc::new(AtomicU64::new(0));
    // Receiver: latency phase, then counting phase.
    let (done2, flood2) = (done.clone(), flood_rx.clone());
    let fifo = a.fifo;
    let recv = std::thread::spawn(move || -> Result<(Histogram<u64>, u64, serde_json::Value)> {
        if !pin(1) {
            bail!("cannot pin the receiver to core 1");
        }
        set_fifo(fifo);
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        let mut got = 0u64;
        // Latency frames carry seq < FLOOD_SEQ, flood frames seq >= FLOOD_SEQ.
        loop {
            let stop = done2.load(Ordering::Acquire) || STOP.load(Ordering::Relaxed);
            let mut flood = 0u64;
            rx.recv_batch(64, if stop { Wait::Poll } else { wait }, &mut |f| {
                let now = monotonic_ns();
                if f.len() < 30 {
                    return;
                }
                let seq = u64::from_le_bytes(f[14..22].try_into().expect("8"));
                if seq >= FLOOD_SEQ {
                    flood += 1;
                    return;
                }
                let stamp = u64::from_le_bytes(f[22..30].try_into().expect("8"));
                h.saturating_record(now.saturating_sub(stamp).max(1));
                got += 1;
            })?;
            flood2.fetch_add(flood, Ordering::Relaxed);
            if stop {
                // Drain for 100 ms after the sender is done.
                let end = Instant::now();
                while end.elapsed() < Duration::from_millis(100) {
                    let n = rx.recv_batch(64, Wait::Poll, &mut |_| {})?;
                    flood2.fetch_add(n as u64, Ordering::Relaxed);
                }
                break;
            }
        }
        Ok((h, got, rx.detail()))
    });
    // Sender (this thread).
    if !pin(0) {
        done.store(true, Ordering::Release);
        let _ = recv.join();
        bail!("cannot pin the sender to core 0");
    }
    let sched = set_fifo(a.fifo);
    std::thread::sleep(Duration::from_millis(200));
    let period = 1_000_000_000 / a.pps.max(1);
    let start = monotonic_ns() + 1_000_000;
    let mut sent = 0u64;
    for seq in 0..a.packets {
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        let due = start + seq * period;
        // Hybrid: sleep until 30 µs before the due time, then spin, so the
        // sender's core stays available to softirq processing.
        let now = monotonic_ns();
        if due > now + 60_000 {
            std::thread::sleep(Duration::from_nanos(due - now - 30_000));
        }
        while monotonic_ns() < due {
            std::hint::spin_loop();
        }
        sent += tx.send_batch(1, &mut |_, b| fill_frame(b, seq, size))? as u64;
    }
    eprintln!("  latency phase sent {sent}");
    std::thread::sleep(Duration::from_millis(100));
    // Flood.
    let mut flood_sent = 0u64;
    let t0 = Instant::now();
    if a.flood_secs > 0.0 {
        let dur = Duration::from_secs_f64(a.flood_secs);
        let mut seq = FLOOD_SEQ;
        while t0.elapsed() < dur && !STOP.load(Ordering::Relaxed) {
            let n = tx.send_batch(64, &mut |i, b| fill_frame(b, seq + i as u64, size))? as u64;
            seq += n;
            flood_sent += n;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    eprintln!("  flood sent {flood_sent} in {elapsed:.2} s");
    std::thread::sleep(Duration::from_millis(50));
    done.store(true, Ordering::Release);
    // Back to SCHED_OTHER for the main thread.
    let sp = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on the calling thread with a valid param.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &sp) };
    let tx_detail = tx.detail();
    let (h, got, detail) = recv.join().map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    let flood_received = flood_rx.load(Ordering::Relaxed);
    Ok(RunResult {
        transport: t.to_string(),
        sched: sched.to_string(),
        tx_detail,
        wait: if busy { "poll".into() } else { "block".into() },
        detail,
        sent,
        received: got,
        p50_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
        flood_sent,
        flood_received,
        flood_mpps: if elapsed > 0.0 { flood_received as f64 / elapsed / 1e6 } else { 0.0 },
    })
}

fn main() -> Result<()> {
    let a = Args::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("wire-bench needs root (network namespaces, veth, XDP)");
    }
    let mut runs = Vec::new();
    for r in &a.runs {
        let (t, w) = r.split_once(':').unwrap_or((r.as_str(), "block"));
        let t: Transport = t.parse()?;
        let busy = match w {
            "poll" => true,
            "block" => false,
            _ => bail!("bad wait {w:?} in run {r:?} (expected poll or block)"),
        };
        runs.push((t, busy));
    }
    if a.size < 30 {
        bail!("--size {} is below the 30 bytes the stamp needs", a.size);
    }
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
    let pair = Pair::create()?;
    let mut results = Vec::new();
    for (t, busy) in runs {
        eprintln!("run {t} {}…", if busy { "poll" } else { "block" });
        match one_run(t, busy, &a) {
            Ok(r) => results.push(r),
            Err(e) => eprintln!("{t}: skipped: {e:#}"),
        }
        if STOP.load(Ordering::Relaxed) {
            break;
        }
    }
    drop(pair);
    println!(
        "{} frames of {} B at {} pps (latency), flood {} s with batches of 64",
        a.packets, a.size, a.pps, a.flood_secs
    );
    println!(
        "{:<16} {:<5} {:<5} {:<13} {:>8} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8}",
        "transport", "wait", "sched", "mode", "recv", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "Mpps", "loss %"
    );
    for r in &results {
        let mode = r.detail.get("mode").and_then(|m| m.as_str()).unwrap_or("-");
        let loss = if r.flood_sent > 0 { 100.0 * (1.0 - r.flood_received as f64 / r.flood_sent as f64) } else { 0.0 };
        println!(
            "{:<16} {:<5} {:<5} {:<13} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>8.3} {:>8.2}",
            r.transport,
            r.wait,
            r.sched,
            mode,
            r.received,
            r.p50_ns as f64 / 1e3,
            r.p99_ns as f64 / 1e3,
            r.p999_ns as f64 / 1e3,
            r.max_ns as f64 / 1e3,
            r.flood_mpps,
            loss
        );
    }
    for r in &results {
        if let Some(x) = r.detail.get("xdp_stats") {
            println!("{} {} rx xdp_stats: {x}", r.transport, r.wait);
        }
    }
    println!("load average: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&results)?).with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}
