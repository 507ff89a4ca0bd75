//! The seam to the two simulators: what cranlab needs from the rrh-sim's live
//! loop and from the worker's `SUMMARY` line, in cranlab's own terms, so the
//! orchestration does not depend on their internal types.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hdrhistogram::Histogram;
use pktio::PacketIo;

use crate::histio::{new_hist, Interval, SignedHist};
use crate::scenario::Scenario;

/// What the rrh-sim measured in one segment.
#[derive(Debug, Clone)]
pub struct RrhSide {
    /// Slots scheduled.
    pub slots: u64,
    /// Slots over budget or without reply.
    pub deadline_misses: u64,
    /// Replies after the budget.
    pub late_replies: u64,
    /// Replies that never came.
    pub lost_replies: u64,
    /// Symbols the generator sent late by more than a symbol.
    pub generator_late_symbols: u64,
    /// U-plane packets sent.
    pub uplane_sent: u64,
    /// Bits checked, as summed from the replies.
    pub reply_bits_checked: u64,
    /// Bit errors, as summed from the replies.
    pub reply_bit_errors: u64,
    /// Slot turnaround (ns).
    pub turnaround: Histogram<u64>,
    /// Generator pacing lateness (ns).
    pub pacing: Histogram<u64>,
    /// Worker processing carried in the replies (ns).
    pub processing: Histogram<u64>,
    /// Worker wake-up lateness carried in the replies (ns).
    pub wakeup: Histogram<u64>,
    /// Interval histograms, start relative to the segment's start.
    pub intervals: Vec<Interval>,
    /// Whether the rrh-sim thread got SCHED_FIFO.
    pub fifo_granted: bool,
    /// What the rrh-sim thread was refused, plainly.
    pub refused: Vec<String>,
    /// Transport detail of the rrh end.
    pub io_detail: serde_json::Value,
}

impl Default for RrhSide {
    fn default() -> Self {
        RrhSide {
            slots: 0,
            deadline_misses: 0,
            late_replies: 0,
            lost_replies: 0,
            generator_late_symbols: 0,
            uplane_sent: 0,
            reply_bits_checked: 0,
            reply_bit_errors: 0,
            turnaround: new_hist(),
            pacing: new_hist(),
            processing: new_hist(),
            wakeup: new_hist(),
            intervals: Vec::new(),
            fifo_granted: false,
            refused: Vec::new(),
            io_detail: serde_json::Value::Null,
        }
    }
}

/// What the worker reported in one segment.
#[derive(Debug, Clone)]
pub struct WorkerSide {
    /// Bit errors against the known data.
    pub bit_errors: u64,
    /// Bits checked.
    pub bits_checked: u64,
    /// U-plane packets received.
    pub uplane_received: u64,
    /// Malformed packets.
    pub malformed: u64,
    /// Duplicates.
    pub duplicate: u64,
    /// Out of order.
    pub out_of_order: u64,
    /// Before the Ta4 window.
    pub early: u64,
    /// Inside the Ta4 window.
    pub on_time: u64,
    /// After the Ta4 window.
    pub late: u64,
    /// One-way delay (ns); `None` when not on a shared clock.
    pub one_way: Option<Histogram<u64>>,
    /// Ta4 margin per eAxC.
    pub ta4: BTreeMap<String, SignedHist>,
    /// Processing per slot (ns).
    pub processing: Histogram<u64>,
    /// Wake-up lateness (ns).
    pub wakeup: Histogram<u64>,
    /// Transport detail of the worker end.
    pub io_detail: serde_json::Value,
    /// Transport the worker used.
    pub transport: String,
}

impl Default for WorkerSide {
    fn default() -> Self {
        WorkerSide {
            bit_errors: 0,
            bits_checked: 0,
            uplane_received: 0,
            malformed: 0,
            duplicate: 0,
            out_of_order: 0,
            early: 0,
            on_time: 0,
            late: 0,
            one_way: None,
            ta4: BTreeMap::new(),
            processing: new_hist(),
            wakeup: new_hist(),
            io_detail: serde_json::Value::Null,
            transport: String::new(),
        }
    }
}

/// Parameters of the rrh-sim's part of a segment.
#[derive(Debug, Clone)]
pub struct RrhParams {
    /// The scenario.
    pub scenario: Scenario,
    /// How long to send.
    pub duration: Duration,
    /// Destination MAC (the worker end).
    pub dst_mac: [u8; 6],
    /// Source MAC (the rrh end).
    pub src_mac: [u8; 6],
    /// Length of one `.hlog` interval.
    pub interval: Duration,
    /// Run id carried in the start/end messages (distinct per segment).
    pub run_id: u32,
}

/// Errors from the simulators.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The simulator is not in this build.
    #[error("{0}")]
    Unavailable(String),
    /// The simulator failed.
    #[error("{0}")]
    Failed(String),
}

/// Runs the rrh-sim live loop on the calling thread (already in the right
/// namespace, pinned and scheduled). `progress(slots_sent)` is called once
/// per interval.
pub fn run_rrh(
    p: &RrhParams,
    io: &mut dyn PacketIo,
    stop: &AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RrhSide, SimError> {
    use rrh_sim::live::{self, LiveConfig};
    let slots = LiveConfig::slots_for(&p.scenario.cell, p.duration.as_secs_f64());
    let mut cfg = LiveConfig::new(p.scenario.cell.clone(), p.scenario.timing.clone(), slots);
    cfg.dst_mac = p.dst_mac;
    cfg.src_mac = p.src_mac;
    cfg.interval_ns = p.interval.as_nanos() as u64;
    cfg.run_id = p.run_id;
    let rep = live::run(&cfg, io, stop, &|pr: &live::Progress| progress(pr.slots_sent)).map_err(|e| SimError::Failed(e.to_string()))?;
    let mut intervals = Vec::new();
    for iv in &rep.intervals {
        for (tag, h) in iv.hists.tagged() {
            intervals.push(Interval {
                tag: tag.to_string(),
                start: Duration::from_nanos(iv.start_ns),
                duration: Duration::from_nanos(iv.duration_ns),
                hist: h.clone(),
            });
        }
    }
    Ok(RrhSide {
        slots: rep.slots_sent,
        deadline_misses: rep.deadline_misses,
        late_replies: rep.late_replies,
        lost_replies: rep.lost_replies,
        generator_late_symbols: rep.generator_late_symbols,
        uplane_sent: rep.uplane_sent,
        reply_bits_checked: rep.bits_checked,
        reply_bit_errors: rep.bit_errors,
        turnaround: rep.hists.turnaround,
        pacing: rep.hists.pacing,
        processing: rep.hists.worker_processing,
        wakeup: rep.hists.worker_wakeup,
        intervals,
        fifo_granted: false,
        refused: Vec::new(),
        io_detail: rep.io_detail,
    })
}

/// Parses the worker's `SUMMARY {json}` line.
pub fn parse_worker_summary(line: &str) -> Result<WorkerSide, SimError> {
    let sum = bbu_sim::worker::WorkerSummary::from_line(line).map_err(|e| SimError::Failed(e.to_string()))?;
    from_summary(&sum)
}

fn signed(h: &bbu_sim::worker::SignedHistogram) -> SignedHist {
    SignedHist { non_negative: h.on_time.clone(), negative: h.late.clone() }
}

/// Converts a worker summary into cranlab's terms.
pub fn from_summary(sum: &bbu_sim::worker::WorkerSummary) -> Result<WorkerSide, SimError> {
    let bad = |e: bbu_sim::worker::summary::SummaryError| SimError::Failed(format!("worker summary: {e}"));
    let c = &sum.counters;
    let mut ta4 = BTreeMap::new();
    for (eaxc, b) in &sum.ta4_margin_per_eaxc_ns {
        let h = bbu_sim::worker::SignedHistogram::decode(eaxc, b).map_err(bad)?;
        ta4.insert(eaxc.clone(), signed(&h));
    }
    if ta4.is_empty() && !sum.ta4_margin_ns.on_time.is_empty() {
        ta4.insert("all".into(), signed(&sum.ta4_margin().map_err(bad)?));
    }
    Ok(WorkerSide {
        bit_errors: c.bit_errors,
        bits_checked: c.bits_checked,
        uplane_received: c.uplane_rx,
        malformed: c.malformed,
        duplicate: c.duplicate,
        out_of_order: c.out_of_order,
        early: c.early,
        on_time: c.on_time,
        late: c.late,
        one_way: if sum.shared_clock { sum.histogram("one_way_ns").map_err(bad)? } else { None },
        ta4,
        processing: sum.histogram("processing_ns").map_err(bad)?.unwrap_or_else(new_hist),
        wakeup: sum.histogram("wakeup_ns").map_err(bad)?.unwrap_or_else(new_hist),
        io_detail: sum.transport_detail.clone(),
        transport: sum.transport.clone(),
    })
}

/// Runs the worker loop on the calling thread over `io` (the in-memory
/// path: both ends share the clock).
pub fn run_worker(s: &Scenario, io: &mut dyn PacketIo, stop: &AtomicBool) -> Result<WorkerSide, SimError> {
    use bbu_sim::worker::{self, WorkerConfig};
    let mut cfg = WorkerConfig::new(s.cell.clone(), s.timing.clone());
    cfg.shared_clock = true;
    cfg.poll = s.run.poll;
    let mut sink = bbu_sim::pipeline::SlotProcessor::new(&s.cell).map_err(|e| SimError::Failed(format!("worker pipeline: {e}")))?;
    let sum = worker::run(&cfg, io, &mut sink, stop).map_err(|e| SimError::Failed(format!("worker loop: {e}")))?;
    from_summary(&sum)
}

/// The worker's command-line arguments (`{iface}` is filled in by the
/// deployment). `shared_clock`: the worker shares the rrh-sim's
/// CLOCK_MONOTONIC (bare, container), so its one-way figure means something.
pub fn worker_args(s: &Scenario, transport: &str, shared_clock: bool) -> Vec<std::ffi::OsString> {
    let r = &s.run;
    let mut a: Vec<String> = vec![
        "--iface".into(),
        "{iface}".into(),
        "--transport".into(),
        transport.into(),
        "--cell".into(),
        s.cell.to_spec(),
        "--timing".into(),
        s.timing.to_spec(),
        "--cpu".into(),
        r.worker_cpu.to_string(),
        "--poll".into(),
        r.poll.as_str().into(),
    ];
    if r.rt_priority > 0 {
        a.extend(["--fifo".into(), r.rt_priority.to_string()]);
    }
    if r.mlock {
        a.push("--mlock".into());
    }
    if shared_clock {
        a.push("--shared-clock".into());
    }
    a.into_iter().map(Into::into).collect()
}

/// Opens the rrh-sim's end of the fronthaul on `ifname` (in the calling
/// thread's network namespace) with the named transport.
pub fn open_io(transport: &str, ifname: &str) -> Result<Box<dyn PacketIo>, SimError> {
    let t: pktio::Transport = transport.parse().map_err(|e: pktio::PktError| SimError::Failed(e.to_string()))?;
    let fail = |e: pktio::PktError| SimError::Failed(e.to_string());
    Ok(match t {
        pktio::Transport::AfXdp => Box::new(pktio::afxdp::AfXdp::open(ifname, &pktio::afxdp::XdpConfig::default()).map_err(fail)?),
        pktio::Transport::AfPacket => {
            Box::new(pktio::afpacket::AfPacket::open(ifname, &pktio::afpacket::AfPacketConfig::default()).map_err(fail)?)
        }
        pktio::Transport::AfPacketUring => {
            Box::new(pktio::uring::AfPacketUring::open(ifname, &pktio::afpacket::AfPacketConfig::default()).map_err(fail)?)
        }
        pktio::Transport::Mem => return Err(SimError::Failed("the mem transport has no interface to open".into())),
    })
}

/// Two ends of a link: (rrh end, worker end).
pub type IoPair = (Box<dyn PacketIo>, Box<dyn PacketIo>);

/// An in-memory link: (rrh end, worker end), frames up to the cell's MTU.
pub fn mem_pair(s: &Scenario) -> Result<IoPair, SimError> {
    let (a, b) = pktio::mem::pair(16_384, usize::from(s.cell.mtu) + 18);
    Ok((Box::new(a), Box::new(b)))
}

/// What the calling thread was granted by [`rt_setup`].
#[derive(Debug, Clone, Default)]
pub struct RtGrant {
    /// SCHED_FIFO in force.
    pub fifo: bool,
    /// Policy read back, e.g. `SCHED_FIFO:70`.
    pub sched: String,
    /// CPU pinned to.
    pub cpu: Option<usize>,
    /// What was refused, one plain sentence each.
    pub refused: Vec<String>,
}

/// Pins the calling thread and asks for SCHED_FIFO; what the host refuses is
/// reported, not fatal.
pub fn rt_setup(cpu: Option<usize>, prio: Option<i32>) -> RtGrant {
    match rrh_sim::live::rt::pin_and_fifo(cpu, prio) {
        Ok(g) => RtGrant {
            fifo: g.fifo(),
            sched: match g.fifo_priority {
                Some(p) => format!("{}:{p}", g.policy),
                None => g.policy.clone(),
            },
            cpu: g.cpu,
            refused: g.refused,
        },
        Err(e) => RtGrant { fifo: false, sched: "SCHED_OTHER".into(), cpu: None, refused: vec![e.to_string()] },
    }
}
