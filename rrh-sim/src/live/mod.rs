//! Live mode: paced transmit on the NR symbol clock, receipt of the worker's
//! slot-done replies, latency histograms.
//!
//! [`run`] pre-encodes every frame of the traffic model's pool at start-up
//! (per slot and antenna a C-plane section-type-1 message ahead of symbol 0,
//! then per symbol and antenna the MTU-split U-plane packets), so the hot
//! loop only patches frameId/subframeId/slotId/symbolId, SEQ_ID and the
//! transmit-timestamp trailer before handing the bytes to the
//! [`PacketIo`]. Each symbol's packets are due at `air(symbol) + ta3`
//! (see [`fronthaul::timing`]); the loop sleeps with `clock_nanosleep` on
//! CLOCK_MONOTONIC in short chunks (receiving replies between chunks) until
//! `spin_ns` before the due time, then spins.
//!
//! Recorded (ns, 3 significant digits, see docs/metrics.md):
//! - **slot turnaround**: reply receipt − *scheduled* transmit time of the
//!   slot's last UL symbol (coordinated-omission free: a late generator
//!   cannot hide latency);
//! - **pacing lateness**: actual − scheduled start of each symbol's send;
//! - **worker processing** and **worker wake-up** as carried in the replies.
//!
//! Lost replies, late replies (turnaround > budget) and deadline misses
//! (late + lost) are counted; late samples stay in the histogram.

pub mod rt;
pub mod standalone;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fronthaul::cell::{CellConfig, Direction};
use fronthaul::ecpri::{Eaxc, EthHeader, RtcHeader};
use fronthaul::oran::{AppHeader, CPlaneHeader, CSection, UdCompHdr};
use fronthaul::packetize::{PlanConfig, SymbolPlan, UPlaneFields};
use fronthaul::reply::{self, config_hash, trailer, EndOfRun, Message, StartOfRun};
use fronthaul::numerology::{Numerology, SymbolClock, SYMBOLS_PER_SLOT};
use fronthaul::timing::TimingConfig;
use fronthaul::traffic::TrafficModel;
use fronthaul::FrameBuilder;
use hdrhistogram::Histogram;
use pktio::{IoStats, PacketIo, PktError, Wait};
use rtsched::{now_ns, sleep_until_ns as sleep_until};

/// Errors that stop a live run.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The cell or timing configuration is unusable.
    #[error("live config: {0}")]
    Config(String),
    /// Pre-encoding the pool's frames failed.
    #[error("pre-encode frames: {0}")]
    Encode(fronthaul::FhError),
    /// The transport failed.
    #[error("packet i/o on {transport}: {err}")]
    Io {
        /// Transport name.
        transport: &'static str,
        /// The error (part of the message, not a separate `source`).
        err: PktError,
    },
}

impl From<fronthaul::FhError> for LiveError {
    fn from(e: fronthaul::FhError) -> Self {
        LiveError::Encode(e)
    }
}

/// What a live run does.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The cell (must be uplink).
    pub cell: CellConfig,
    /// Timing windows, budget and lead.
    pub timing: TimingConfig,
    /// Slots to transmit.
    pub slots: u64,
    /// Delay from the end of start-up (pre-encoding) to the air time of
    /// slot 0, ns. The start-of-run message goes out during it.
    pub start_delay_ns: u64,
    /// Spin (instead of sleeping) for the last `spin_ns` before a due time,
    /// capped at 40 % of a symbol so that a SCHED_FIFO generator stays well
    /// below the kernel's RT throttling limit (95 % of a CPU by default) and
    /// is not stopped for 50 ms every second.
    pub spin_ns: u64,
    /// Longest single sleep while waiting, ns: replies are received between
    /// sleeps, so this bounds how late a reply's receipt can be stamped.
    pub sleep_chunk_ns: u64,
    /// Length of the per-interval histograms, ns (1 s default).
    pub interval_ns: u64,
    /// Destination MAC (the worker's interface).
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Run id carried in the start/end messages and echoed by the worker.
    pub run_id: u32,
    /// How many times the start-of-run message is sent.
    pub start_repeats: u32,
    /// How many times the end-of-run message is sent (1 ms apart).
    pub end_repeats: u32,
}

impl LiveConfig {
    /// Defaults for everything but the cell, timing and slot count.
    pub fn new(cell: CellConfig, timing: TimingConfig, slots: u64) -> LiveConfig {
        LiveConfig {
            cell,
            timing,
            slots,
            start_delay_ns: 20_000_000,
            spin_ns: 15_000,
            sleep_chunk_ns: 20_000,
            interval_ns: 1_000_000_000,
            dst_mac: [0x02, 0xc7, 0xa1, 0x00, 0x00, 0x02],
            src_mac: [0x02, 0xc7, 0xa1, 0x00, 0x00, 0x01],
            run_id: 1,
            start_repeats: 3,
            end_repeats: 5,
        }
    }

    /// Slots in `secs` seconds of this cell's numerology (a cell with an
    /// invalid µ counts 1 ms slots here and is rejected by [`run`]).
    pub fn slots_for(cell: &CellConfig, secs: f64) -> u64 {
        let slot_ns = Numerology::new(cell.mu).map_or(1_000_000, Numerology::slot_ns);
        (secs * 1e9 / slot_ns as f64).ceil().max(1.0) as u64
    }
}

/// Progress, reported once per interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// ns since the air time of slot 0.
    pub elapsed_ns: u64,
    /// Slots transmitted so far.
    pub slots_sent: u64,
    /// Slots the run will transmit.
    pub slots_total: u64,
    /// Replies received so far.
    pub replies: u64,
    /// Replies past the budget so far.
    pub late_replies: u64,
    /// Largest turnaround of the last interval, ns.
    pub interval_max_turnaround_ns: u64,
    /// Bit errors reported by the worker so far.
    pub bit_errors: u64,
}

/// The four histograms, for one interval or the whole run.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Slot turnaround, ns.
    pub turnaround: Histogram<u64>,
    /// Generator pacing lateness per symbol, ns.
    pub pacing: Histogram<u64>,
    /// Worker processing per slot (from the replies), ns.
    pub worker_processing: Histogram<u64>,
    /// Worker wake-up lateness, max per slot (from the replies), ns.
    pub worker_wakeup: Histogram<u64>,
}

/// Highest value the histograms track (60 s); larger values saturate.
pub const HIST_MAX_NS: u64 = 60_000_000_000;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("static histogram bounds are valid")
}

impl Histograms {
    fn new() -> Histograms {
        Histograms { turnaround: hist(), pacing: hist(), worker_processing: hist(), worker_wakeup: hist() }
    }
    fn reset(&mut self) {
        self.turnaround.reset();
        self.pacing.reset();
        self.worker_processing.reset();
        self.worker_wakeup.reset();
    }
    /// (tag, histogram) pairs, tags as used in the interval log.
    pub fn tagged(&self) -> [(&'static str, &Histogram<u64>); 4] {
        [
            ("slot_turnaround_ns", &self.turnaround),
            ("pacing_lateness_ns", &self.pacing),
            ("worker_processing_ns", &self.worker_processing),
            ("wakeup_ns", &self.worker_wakeup),
        ]
    }
}

/// One interval's histograms.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Start, ns after the air time of slot 0.
    pub start_ns: u64,
    /// Length, ns.
    pub duration_ns: u64,
    /// What was recorded in it.
    pub hists: Histograms,
}

/// The outcome of a live run.
#[derive(Debug, Clone)]
pub struct LiveReport {
    /// Transport name.
    pub transport: &'static str,
    /// Slots transmitted.
    pub slots_sent: u64,
    /// U-plane frames transmitted.
    pub uplane_sent: u64,
    /// C-plane frames transmitted.
    pub cplane_sent: u64,
    /// Frames the transport refused (ring or socket full).
    pub tx_refused: u64,
    /// Distinct slots a reply came for.
    pub replies: u64,
    /// Slots without a reply when the run ended (after waiting the lead).
    pub lost_replies: u64,
    /// Replies whose turnaround exceeded the budget.
    pub late_replies: u64,
    /// Late replies + lost replies.
    pub deadline_misses: u64,
    /// Second and later replies for a slot.
    pub duplicate_replies: u64,
    /// Replies for a slot never sent or of another run.
    pub foreign_replies: u64,
    /// Received frames that were not control messages of ours.
    pub other_frames: u64,
    /// Symbols whose pacing lateness exceeded one symbol duration.
    pub generator_late_symbols: u64,
    /// Bits the worker checked (sum over replies).
    pub bits_checked: u64,
    /// Bit errors the worker found (sum over replies).
    pub bit_errors: u64,
    /// Packets the worker saw after their Ta4 window (sum over replies).
    pub worker_late_packets: u64,
    /// PRBs missing when the worker processed (sum over replies).
    pub worker_missing_prbs: u64,
    /// Replies flagged as processed incomplete.
    pub incomplete_slots: u64,
    /// Slot duration, ns.
    pub slot_ns: u64,
    /// Budget, ns.
    pub budget_ns: u64,
    /// CLOCK_MONOTONIC air time of slot 0, ns.
    pub epoch_ns: u64,
    /// Whole-run histograms.
    pub hists: Histograms,
    /// Per-interval histograms, in order.
    pub intervals: Vec<Interval>,
    /// Transport counters at the end.
    pub io_stats: IoStats,
    /// Transport details.
    pub io_detail: serde_json::Value,
}

impl LiveReport {
    /// Writes the per-interval histograms as an HdrHistogram interval log
    /// (`.hlog`): one tagged line per metric and interval, timestamps in
    /// seconds after `start`, which should be the wall-clock time of the
    /// epoch (slot 0).
    pub fn write_hlog(&self, w: &mut dyn std::io::Write, start: std::time::SystemTime) -> std::io::Result<()> {
        use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
        use hdrhistogram::serialization::V2DeflateSerializer;
        let mut ser = V2DeflateSerializer::new();
        let mut w = w;
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment("cranlab rrh-sim live run: values in ns")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut w, &mut ser)?;
        for iv in &self.intervals {
            for (tag, h) in iv.hists.tagged() {
                log.write_histogram(h, Duration::from_nanos(iv.start_ns), Duration::from_nanos(iv.duration_ns), Tag::new(tag))
                    .map_err(|e| std::io::Error::other(format!("write interval log: {e:?}")))?;
            }
        }
        Ok(())
    }
}

/// A pre-encoded frame.
#[derive(Debug, Clone, Copy)]
struct Tpl {
    off: usize,
    len: usize,
    antenna: u8,
    cplane: bool,
}

/// Every frame of the pool, encoded once.
struct Templates {
    bytes: Vec<u8>,
    /// [entry * 14 + symbol] → range in `frames`.
    index: Vec<(usize, usize)>,
    frames: Vec<Tpl>,
}

/// Offsets of the patched fields in a frame without VLAN tag.
const OFF_SEQ: usize = 14 + 4 + 2;
const OFF_FRAME: usize = 14 + 4 + 4 + 1;
const OFF_SF_SLOT: usize = OFF_FRAME + 1;
const OFF_SLOT_SYM: usize = OFF_FRAME + 2;

fn encode_templates(cfg: &LiveConfig, model: &TrafficModel) -> Result<Templates, LiveError> {
    let cell = &cfg.cell;
    let plan = SymbolPlan::new(PlanConfig { trailer_len: trailer::LEN, ..PlanConfig::from_cell(cell) })?;
    let eth = EthHeader { dst: cfg.dst_mac, src: cfg.src_mac, vlan_tci: None };
    let pool = model.pool_len();
    let mut bytes = Vec::new();
    let mut frames = Vec::new();
    let mut index = Vec::with_capacity(pool * 14);
    let mut buf = vec![0u8; plan.max_frame_len().max(256)];
    let zero_trailer = [0u8; trailer::LEN];
    let ud = UdCompHdr { iq_width: cell.iq_width, compression: cell.compression }.to_byte()?;
    for e in 0..pool {
        for s in 0..SYMBOLS_PER_SLOT {
            let first = frames.len();
            for a in 0..cell.antennas {
                let eaxc = Eaxc { ru_port: a, ..Eaxc::default() }.to_u16(cell.eaxc_split)?;
                let app = AppHeader::new(Direction::Uplink, 0, 0, 0, s);
                if s == 0 {
                    let ch = CPlaneHeader { num_sections: 1, section_type: 1, ud_comp_hdr: ud, type3: None };
                    let mut b = FrameBuilder::cplane(&mut buf, &eth, &RtcHeader::new(eaxc, 0), &app, cell.mu, &ch)?;
                    b.push_csection(&CSection {
                        section_id: 1,
                        rb: false,
                        sym_inc: false,
                        start_prb: 0,
                        num_prb: cell.prbs,
                        re_mask: 0xfff,
                        num_symbol: SYMBOLS_PER_SLOT,
                        beam_id: 0,
                        frequency_offset: 0,
                    })?;
                    let n = b.finish(&zero_trailer)?;
                    frames.push(Tpl { off: bytes.len(), len: n, antenna: a, cplane: true });
                    bytes.extend_from_slice(&buf[..n]);
                }
                let iq = model.symbol_iq(e as u64, s, a);
                for k in 0..plan.len() {
                    let f = UPlaneFields { eth, rtc: RtcHeader::new(eaxc, 0), app, mu: cell.mu, section_id: 1 };
                    let n = plan.write_packet(k, &f, iq, &zero_trailer, &mut buf)?;
                    frames.push(Tpl { off: bytes.len(), len: n, antenna: a, cplane: false });
                    bytes.extend_from_slice(&buf[..n]);
                }
            }
            index.push((first, frames.len()));
        }
    }
    Ok(Templates { bytes, index, frames })
}

/// Reply bookkeeping, kept apart from the transport so the receive
/// callback can borrow it mutably.
struct Rx {
    run_id: u32,
    clock: SymbolClock,
    ta3: u64,
    budget_ns: u64,
    slots: u64,
    replied: Vec<u64>,
    sent_upto: u64,
    total: Histograms,
    cur: Histograms,
    replies: u64,
    late: u64,
    dup: u64,
    foreign: u64,
    other: u64,
    bits_checked: u64,
    bit_errors: u64,
    worker_late_packets: u64,
    worker_missing_prbs: u64,
    incomplete: u64,
}

impl Rx {
    fn sched_last(&self, slot: u64) -> u64 {
        self.clock.slot_symbol(slot, SYMBOLS_PER_SLOT - 1).due_ns + self.ta3
    }

    fn on_frame(&mut self, f: &[u8]) {
        let now = now_ns();
        let r = match Message::decode(f) {
            Ok(Message::SlotDone(r)) => r,
            _ => {
                self.other += 1;
                return;
            }
        };
        if r.run_id != self.run_id || r.slot_index >= self.sent_upto.min(self.slots) {
            self.foreign += 1;
            return;
        }
        let (w, b) = ((r.slot_index / 64) as usize, r.slot_index % 64);
        if self.replied[w] & (1 << b) != 0 {
            self.dup += 1;
            return;
        }
        self.replied[w] |= 1 << b;
        self.replies += 1;
        let t = now.saturating_sub(self.sched_last(r.slot_index));
        if t > self.budget_ns {
            self.late += 1;
        }
        for h in [&mut self.total, &mut self.cur] {
            h.turnaround.saturating_record(t);
            h.worker_processing.saturating_record(r.processing_ns);
            h.worker_wakeup.saturating_record(r.wakeup_max_ns);
        }
        self.bits_checked += r.bits_checked;
        self.bit_errors += r.bit_errors;
        self.worker_late_packets += u64::from(r.packets_late);
        self.worker_missing_prbs += u64::from(r.missing_prbs);
        if r.flags & reply::FLAG_INCOMPLETE != 0 {
            self.incomplete += 1;
        }
    }
}

/// Sends one control message `repeats` times, `gap_ns` apart.
fn send_control(io: &mut dyn PacketIo, msg: &Message, cfg: &LiveConfig, repeats: u32, gap_ns: u64) -> Result<(), LiveError> {
    for i in 0..repeats {
        io.send_batch(1, &mut |_, buf| msg.encode(cfg.dst_mac, cfg.src_mac, buf).unwrap_or(0))
            .map_err(|err| LiveError::Io { transport: io.name(), err })?;
        if i + 1 < repeats {
            sleep_until(now_ns() + gap_ns);
        }
    }
    Ok(())
}

/// Runs the generator on the calling thread until `cfg.slots` slots are
/// sent (or `stop` is set), waits the processing lead for outstanding
/// replies, sends the end-of-run message and returns what was measured.
/// `progress` is called once per interval.
pub fn run(cfg: &LiveConfig, io: &mut dyn PacketIo, stop: &AtomicBool, progress: &dyn Fn(&Progress)) -> Result<LiveReport, LiveError> {
    cfg.cell.validate().map_err(|e| LiveError::Config(e.to_string()))?;
    cfg.timing.validate().map_err(|e| LiveError::Config(e.to_string()))?;
    if cfg.cell.direction != Direction::Uplink {
        return Err(LiveError::Config("cell direction must be ul: live mode sends uplink slots and waits for replies".into()));
    }
    if cfg.slots == 0 {
        return Err(LiveError::Config("slots must be at least 1".into()));
    }
    let model = TrafficModel::new(&cfg.cell).map_err(|e| LiveError::Config(e.to_string()))?;
    let tpl = encode_templates(cfg, &model)?;
    let max_len = tpl.frames.iter().map(|f| f.len).max().unwrap_or(0);
    if max_len > io.max_frame() {
        return Err(LiveError::Config(format!("frames of {max_len} bytes do not fit the transport's {} byte frames (lower the mtu)", io.max_frame())));
    }
    let transport = io.name();
    let ioerr = |err| LiveError::Io { transport, err };
    let numerology = Numerology::new(cfg.cell.mu).map_err(|e| LiveError::Config(e.to_string()))?;
    let slot_ns = numerology.slot_ns();
    let symbol_ns = slot_ns / u64::from(SYMBOLS_PER_SLOT);
    let spin_ns = cfg.spin_ns.min(symbol_ns * 2 / 5);
    let epoch = now_ns() + cfg.start_delay_ns;
    let clock = SymbolClock { numerology, epoch_ns: epoch };
    let mut rx = Rx {
        run_id: cfg.run_id,
        clock,
        ta3: cfg.timing.ta3_ns,
        budget_ns: cfg.timing.budget_ns(slot_ns),
        slots: cfg.slots,
        replied: vec![0u64; cfg.slots.div_ceil(64) as usize],
        sent_upto: 0,
        total: Histograms::new(),
        cur: Histograms::new(),
        replies: 0,
        late: 0,
        dup: 0,
        foreign: 0,
        other: 0,
        bits_checked: 0,
        bit_errors: 0,
        worker_late_packets: 0,
        worker_missing_prbs: 0,
        incomplete: 0,
    };
    let start = Message::Start(StartOfRun {
        run_id: cfg.run_id,
        epoch_ns: epoch,
        config_hash: config_hash(&cfg.cell.to_spec(), &cfg.timing.to_spec()),
    });
    send_control(io, &start, cfg, cfg.start_repeats, 1_000_000)?;
    let mut intervals = Vec::with_capacity((cfg.slots * slot_ns / cfg.interval_ns.max(1) + 2) as usize);
    let mut interval_start = 0u64;
    let mut seq = vec![[0u8; 2]; usize::from(cfg.cell.antennas)];
    let (mut uplane_sent, mut cplane_sent, mut tx_refused, mut late_symbols) = (0u64, 0u64, 0u64, 0u64);
    let mut slots_sent = 0u64;
    let report_interval = |rx: &mut Rx, intervals: &mut Vec<Interval>, interval_start: &mut u64, now_rel: u64, sent: u64| {
        let p = Progress {
            elapsed_ns: now_rel,
            slots_sent: sent,
            slots_total: cfg.slots,
            replies: rx.replies,
            late_replies: rx.late,
            interval_max_turnaround_ns: rx.cur.turnaround.max(),
            bit_errors: rx.bit_errors,
        };
        intervals.push(Interval { start_ns: *interval_start, duration_ns: now_rel - *interval_start, hists: rx.cur.clone() });
        rx.cur.reset();
        *interval_start = now_rel;
        progress(&p);
    };

    'slots: for n in 0..cfg.slots {
        let id = clock.slot_id(n);
        let entry = (n % model.pool_len() as u64) as usize;
        for s in 0..SYMBOLS_PER_SLOT {
            if stop.load(Ordering::Relaxed) {
                break 'slots;
            }
            let due = clock.slot_symbol(n, s).due_ns + cfg.timing.ta3_ns;
            // Wait: sleep in chunks (receiving replies between them), then spin.
            loop {
                io.recv_batch(32, Wait::Poll, &mut |f| rx.on_frame(f)).map_err(ioerr)?;
                let now = now_ns();
                if now >= due {
                    break;
                }
                let left = due - now;
                if left > spin_ns {
                    sleep_until(now + (left - spin_ns).min(cfg.sleep_chunk_ns));
                } else {
                    std::hint::spin_loop();
                }
            }
            let t0 = now_ns();
            let lateness = t0 - due.min(t0);
            rx.total.pacing.saturating_record(lateness);
            rx.cur.pacing.saturating_record(lateness);
            if lateness > symbol_ns {
                late_symbols += 1;
            }
            let (a, b) = tpl.index[entry * 14 + usize::from(s)];
            let frames = &tpl.frames[a..b];
            let mut tr = [0u8; trailer::LEN];
            let _ = trailer::write(&mut tr, t0);
            let sent = io
                .send_batch(frames.len(), &mut |i, buf| {
                    let f = frames[i];
                    if buf.len() < f.len {
                        return 0;
                    }
                    let out = &mut buf[..f.len];
                    out.copy_from_slice(&tpl.bytes[f.off..f.off + f.len]);
                    let sq = &mut seq[usize::from(f.antenna)][usize::from(f.cplane)];
                    out[OFF_SEQ] = *sq;
                    *sq = sq.wrapping_add(1);
                    out[OFF_FRAME] = id.frame;
                    out[OFF_SF_SLOT] = (id.subframe << 4) | (id.slot >> 2);
                    out[OFF_SLOT_SYM] = ((id.slot & 3) << 6) | s;
                    out[f.len - trailer::LEN..].copy_from_slice(&tr);
                    f.len
                })
                .map_err(ioerr)?;
            tx_refused += (frames.len() - sent.min(frames.len())) as u64;
            let c = if s == 0 { frames.iter().take(sent).filter(|f| f.cplane).count() as u64 } else { 0 };
            cplane_sent += c;
            uplane_sent += sent as u64 - c;
        }
        slots_sent = n + 1;
        rx.sent_upto = slots_sent;
        let now_rel = now_ns().saturating_sub(epoch);
        if now_rel >= interval_start + cfg.interval_ns {
            report_interval(&mut rx, &mut intervals, &mut interval_start, now_rel, slots_sent);
        }
    }

    // Wait for outstanding replies: until every slot has one or the lead has passed.
    let last_sched = if slots_sent > 0 { rx.sched_last(slots_sent - 1) } else { now_ns() };
    let drain_until = last_sched + cfg.timing.lead_ns(slot_ns).max(cfg.timing.budget_ns(slot_ns));
    while rx.replies < slots_sent && now_ns() < drain_until {
        let left = drain_until.saturating_sub(now_ns());
        io.recv_batch(32, Wait::Block(Duration::from_nanos(left.min(200_000))), &mut |f| rx.on_frame(f)).map_err(ioerr)?;
    }
    let now_rel = now_ns().saturating_sub(epoch);
    if now_rel > interval_start || intervals.is_empty() {
        let end_rel = now_rel.max(interval_start + 1);
        report_interval(&mut rx, &mut intervals, &mut interval_start, end_rel, slots_sent);
    }
    let end = Message::End(EndOfRun { run_id: cfg.run_id, slots_sent, uplane_sent, cplane_sent });
    send_control(io, &end, cfg, cfg.end_repeats, 1_000_000)?;
    let lost = slots_sent - rx.replies;
    Ok(LiveReport {
        transport,
        slots_sent,
        uplane_sent,
        cplane_sent,
        tx_refused,
        replies: rx.replies,
        lost_replies: lost,
        late_replies: rx.late,
        deadline_misses: rx.late + lost,
        duplicate_replies: rx.dup,
        foreign_replies: rx.foreign,
        other_frames: rx.other,
        generator_late_symbols: late_symbols,
        bits_checked: rx.bits_checked,
        bit_errors: rx.bit_errors,
        worker_late_packets: rx.worker_late_packets,
        worker_missing_prbs: rx.worker_missing_prbs,
        incomplete_slots: rx.incomplete,
        slot_ns,
        budget_ns: rx.budget_ns,
        epoch_ns: epoch,
        hists: rx.total,
        intervals,
        io_stats: io.stats(),
        io_detail: io.detail(),
    })
}
