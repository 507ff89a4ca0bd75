//! The worker loop: receive U-plane/C-plane packets, assemble each UL slot
//! per eAxC into a [`SlotSink`] (the baseband pipeline), process it when its
//! last symbol is in, send the slot-done reply, and account for timing:
//! processing time, wake-up lateness, one-way delay (shared clock only) and
//! the signed Ta4 margin of every U-plane packet. Malformed, duplicate,
//! stale and out-of-order packets are counted, never fatal. Nothing is
//! allocated or logged per packet.
//!
//! Definitions of every figure are in docs/metrics.md; in short:
//! - **processing** = end of `process()` − arrival of the slot's last packet;
//! - **wake-up lateness**, one sample per slot (the largest seen while the
//!   slot was assembled): busy-poll: the gap between two successive poll
//!   iterations minus the slot work done in between; blocking: return from
//!   the blocking receive − max(call time, scheduled transmit time of the
//!   first packet it delivered);
//! - **Ta4 margin** = `air(symbol) + ta4_max − arrival` (negative = late).
//!
//! The symbol-clock epoch: with `shared_clock` the rrh-sim's start-of-run
//! message carries it on the shared CLOCK_MONOTONIC; otherwise (a guest) it
//! is *estimated* as the earliest `arrival − (nominal air offset + ta3)`
//! over the first `warmup_slots` slots, i.e. assuming the fastest packet of
//! the warm-up had zero transport delay, and packets of the warm-up are
//! left unclassified.

pub mod rt;
pub mod summary;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fronthaul::cell::CellConfig;
use fronthaul::ecpri::Eaxc;
use fronthaul::reply::{self, config_hash, trailer, Message as Ctl, SlotDone};
use fronthaul::numerology::{SlotId, SymbolClock, SYMBOLS_PER_SLOT};
use fronthaul::timing::{TimingConfig, WindowPosition};
use fronthaul::{parse_frame, Message, ParseConfig};
use hdrhistogram::Histogram;
use pktio::{PacketIo, PktError, Wait};

pub use summary::{SignedHistogram, SignedHistogramB64, WorkerCounters, WorkerSummary, READY_PREFIX, SUMMARY_PREFIX, SUMMARY_SCHEMA};

/// Errors that stop the worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The cell or timing configuration is unusable.
    #[error("worker config: {0}")]
    Config(String),
    /// The transport failed.
    #[error("packet i/o on {transport}: {err}")]
    Io {
        /// Transport name.
        transport: &'static str,
        /// The error (part of the message, not a separate `source`).
        err: PktError,
    },
}

/// How the worker waits for packets (the worker's `--poll` and the
/// scenario's `[run] poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Spin on the receive ring. Under RT throttling on a shared, non-isolated
    /// core a SCHED_FIFO spinner is stopped for the rest of each period.
    Busy,
    /// Block in the kernel until packets arrive.
    #[default]
    Block,
}

impl PollMode {
    /// `busy` or `block`: the name on the worker's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            PollMode::Busy => "busy",
            PollMode::Block => "block",
        }
    }
}

impl std::str::FromStr for PollMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "busy" => Ok(PollMode::Busy),
            "block" => Ok(PollMode::Block),
            _ => Err(format!("unknown poll mode {s:?} (busy, block)")),
        }
    }
}

/// What processing a slot yielded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotResult {
    /// Bits checked against the known data.
    pub bits_checked: u64,
    /// Bit errors.
    pub bit_errors: u64,
    /// PRBs (per antenna and symbol) that were missing.
    pub missing_prbs: u64,
}

/// The per-slot consumer of PRBs: the baseband pipeline
/// (`bbu_sim::pipeline::SlotProcessor`) or a test double.
pub trait SlotSink {
    /// A new slot starts; forget the previous one.
    fn begin_slot(&mut self);
    /// PRBs `start_prb .. start_prb + num_prb` of `antenna` and `symbol` as on
    /// the wire (compressed). Returns false when the payload is rejected.
    fn ingest_prbs(&mut self, antenna: u8, symbol: u8, start_prb: u16, num_prb: u16, prb_data: &[u8]) -> bool;
    /// Processes the slot assembled since [`SlotSink::begin_slot`].
    fn process(&mut self, slot_index: u64) -> SlotResult;
}

/// What the worker does.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The cell (as the rrh-sim's).
    pub cell: CellConfig,
    /// Timing windows.
    pub timing: TimingConfig,
    /// Busy-poll or blocking receive.
    pub poll: PollMode,
    /// Both ends share CLOCK_MONOTONIC (bare, container; never a guest).
    pub shared_clock: bool,
    /// Stop after this long, ns.
    pub max_ns: Option<u64>,
    /// Slots used to estimate the epoch without a shared clock.
    pub warmup_slots: u64,
    /// Frames per receive call.
    pub batch: usize,
    /// Longest single blocking wait, ns (stop and max_ns are checked between waits).
    pub block_timeout_ns: u64,
}

impl WorkerConfig {
    /// Defaults for everything but the cell and timing.
    pub fn new(cell: CellConfig, timing: TimingConfig) -> WorkerConfig {
        WorkerConfig {
            cell,
            timing,
            poll: PollMode::Busy,
            shared_clock: false,
            max_ns: None,
            warmup_slots: 20,
            batch: 64,
            block_timeout_ns: 10_000_000,
        }
    }
}

pub use rtsched::now_ns;

const PRB_WORDS: usize = 16; // 1024 PRBs max (10-bit startPrb)

struct State {
    cfg: WorkerConfig,
    pcfg: ParseConfig,
    antennas: usize,
    prbs: u16,
    my_hash: u64,
    clock0: SymbolClock,
    epoch: Option<u64>,
    epoch_source: &'static str,
    est_min: u64,
    run_id: u32,
    start_seen: bool,
    config_mismatch: bool,
    ended: bool,
    macs: Option<([u8; 6], [u8; 6])>,
    // sequence tracking per antenna × plane
    /// Per antenna and plane: expected next SEQ_ID and the position
    /// (slot · 14 + symbol) of the last packet that advanced it.
    next_seq: Vec<[Option<(u8, u64)>; 2]>,
    // assembly
    cur: Option<u64>,
    last_done: Option<u64>,
    near: u64,
    coverage: Vec<[u64; PRB_WORDS]>,
    covered: Vec<u16>,
    covered_total: u64,
    slot_pkts: u32,
    slot_late: u32,
    slot_last_arrival: u64,
    wake_max: u64,
    // wake-up (block mode)
    batch_first: bool,
    t_call: u64,
    first_arr: Option<u64>,
    t_prev_end: Option<u64>,
    // outputs
    c: WorkerCounters,
    processing: Histogram<u64>,
    wakeup: Histogram<u64>,
    one_way: Histogram<u64>,
    ta4: SignedHistogram,
    ta4_eaxc: Vec<(u16, SignedHistogram)>,
    replies: Vec<SlotDone>,
    reply_seq: u32,
}

impl State {
    fn new(cfg: WorkerConfig) -> Result<State, WorkerError> {
        cfg.cell.validate().map_err(|e| WorkerError::Config(e.to_string()))?;
        cfg.timing.validate().map_err(|e| WorkerError::Config(e.to_string()))?;
        let antennas = usize::from(cfg.cell.antennas);
        let mut ta4_eaxc = Vec::with_capacity(antennas);
        for a in 0..cfg.cell.antennas {
            let id = Eaxc { ru_port: a, ..Eaxc::default() }.to_u16(cfg.cell.eaxc_split).map_err(|e| WorkerError::Config(e.to_string()))?;
            ta4_eaxc.push((id, SignedHistogram::default()));
        }
        Ok(State {
            pcfg: ParseConfig::from_cell(&cfg.cell),
            antennas,
            prbs: cfg.cell.prbs,
            my_hash: config_hash(&cfg.cell.to_spec(), &cfg.timing.to_spec()),
            clock0: SymbolClock::new(cfg.cell.mu, 0).map_err(|e| WorkerError::Config(e.to_string()))?,
            epoch: None,
            epoch_source: "none",
            est_min: u64::MAX,
            run_id: 0,
            start_seen: false,
            config_mismatch: false,
            ended: false,
            macs: None,
            next_seq: vec![[None; 2]; antennas],
            cur: None,
            last_done: None,
            near: 0,
            coverage: vec![[0u64; PRB_WORDS]; antennas * 14],
            covered: vec![0u16; antennas * 14],
            covered_total: 0,
            slot_pkts: 0,
            slot_late: 0,
            slot_last_arrival: 0,
            wake_max: 0,
            batch_first: true,
            t_call: 0,
            first_arr: None,
            t_prev_end: None,
            c: WorkerCounters::default(),
            processing: summary::new_hist(),
            wakeup: summary::new_hist(),
            one_way: summary::new_hist(),
            ta4: SignedHistogram::default(),
            ta4_eaxc,
            replies: Vec::with_capacity(256),
            reply_seq: 0,
            cfg,
        })
    }

    fn on_frame(&mut self, f: &[u8], now: u64, sink: &mut dyn SlotSink) {
        self.c.rx_frames += 1;
        if self.first_arr.is_none() {
            self.first_arr = Some(now);
            self.busy_stall(now);
        }
        let Some(t) = reply::ecpri_type(f) else {
            self.c.foreign += 1;
            return;
        };
        if t >= 64 {
            match Ctl::decode(f) {
                Ok(Ctl::Start(s)) => {
                    self.c.start_messages += 1;
                    self.learn_macs(f);
                    if !self.start_seen {
                        self.start_seen = true;
                        self.run_id = s.run_id;
                        self.config_mismatch = s.config_hash != self.my_hash;
                        if self.cfg.shared_clock {
                            self.epoch = Some(s.epoch_ns);
                            self.epoch_source = "start_message";
                        }
                    }
                }
                Ok(Ctl::End(e)) => {
                    self.c.end_messages += 1;
                    if !self.start_seen || e.run_id == self.run_id {
                        if let Some(n) = self.cur {
                            self.finalize(n, sink);
                        }
                        let unique = self.c.uplane_rx.saturating_sub(self.c.duplicate);
                        self.c.lost = Some(e.uplane_sent.saturating_sub(unique));
                        self.ended = true;
                    }
                }
                _ => self.c.foreign += 1,
            }
            return;
        }
        let frame = match parse_frame(f, &self.pcfg) {
            Ok(fr) => fr,
            Err(_) => {
                self.c.malformed += 1;
                return;
            }
        };
        match frame.message {
            Message::UPlane(u) => {
                let id = SlotId { frame: u.header.frame_id, subframe: u.header.subframe_id, slot: u.header.slot_id };
                let Some((a, n)) = self.locate(u.rtc.eaxc, id) else {
                    self.c.malformed += 1;
                    return;
                };
                let s = u.header.symbol_id;
                if s >= SYMBOLS_PER_SLOT {
                    self.c.malformed += 1;
                    return;
                }
                self.c.uplane_rx += 1;
                self.learn_macs(f);
                let behind = self.seq_check(a, 0, u.rtc.seq_id, n * 14 + u64::from(s));
                if self.cfg.shared_clock {
                    if let Some(tx) = trailer::read(frame.trailer) {
                        self.one_way.saturating_record(now.saturating_sub(tx));
                    }
                }
                self.timing(a, n, s, now);
                // Assembly.
                match self.cur {
                    Some(c) if n > c => {
                        self.finalize(c, sink);
                        self.begin(n, sink);
                    }
                    Some(c) if n < c => {
                        self.c.stale += 1;
                        return;
                    }
                    None if self.last_done.is_some_and(|d| n <= d) => {
                        self.c.stale += 1;
                        return;
                    }
                    None => self.begin(n, sink),
                    Some(_) => {}
                }
                let k = a * 14 + usize::from(s);
                let mut dup = false;
                let mut any = false;
                for (h, payload) in u.sections() {
                    let (start, num) = (h.start_prb, h.num_prb);
                    if usize::from(start) + usize::from(num) > usize::from(self.prbs) {
                        self.c.malformed += 1;
                        continue;
                    }
                    if overlaps(&self.coverage[k], start, num) {
                        dup = true;
                        continue;
                    }
                    set_bits(&mut self.coverage[k], start, num);
                    self.covered[k] += num;
                    self.covered_total += u64::from(num);
                    any = true;
                    if !sink.ingest_prbs(a as u8, s, start, num, payload) {
                        self.c.ingest_errors += 1;
                    }
                }
                if dup && !any {
                    self.c.duplicate += 1;
                } else if behind {
                    self.c.out_of_order += 1;
                }
                self.slot_pkts += 1;
                self.slot_last_arrival = now;
                if s == SYMBOLS_PER_SLOT - 1 && (0..self.antennas).all(|a| self.covered[a * 14 + 13] >= self.prbs) {
                    self.finalize(n, sink);
                }
            }
            Message::CPlane(cp) => {
                let id = SlotId { frame: cp.header.frame_id, subframe: cp.header.subframe_id, slot: cp.header.slot_id };
                let Some((a, n)) = self.locate(cp.rtc.eaxc, id) else {
                    self.c.malformed += 1;
                    return;
                };
                self.c.cplane_rx += 1;
                if self.seq_check(a, 1, cp.rtc.seq_id, n * 14 + u64::from(cp.header.symbol_id)) {
                    self.c.out_of_order += 1;
                }
                if self.cfg.shared_clock {
                    if let Some(tx) = trailer::read(frame.trailer) {
                        self.one_way.saturating_record(now.saturating_sub(tx));
                    }
                }
            }
            _ => self.c.foreign += 1,
        }
    }

    /// Busy poll: the time from the end of the previous iteration's work to
    /// `back` (first frame's arrival stamp, or the return of an empty poll).
    fn busy_stall(&mut self, back: u64) {
        if self.cfg.poll == PollMode::Busy {
            if let Some(p) = self.t_prev_end {
                self.wake_max = self.wake_max.max(back.saturating_sub(p));
            }
        }
    }

    fn learn_macs(&mut self, f: &[u8]) {
        if self.macs.is_none() && f.len() >= 12 {
            let mut dst = [0u8; 6];
            let mut src = [0u8; 6];
            dst.copy_from_slice(&f[6..12]); // reply goes back to the sender
            src.copy_from_slice(&f[0..6]);
            self.macs = Some((dst, src));
        }
    }

    /// Checks SEQ_ID per eAxC and plane; returns true when the packet is
    /// behind: an older SEQ_ID for a position (slot · 14 + symbol) not after
    /// the last one seen (reordered or duplicated). A SEQ_ID jump on a later
    /// position is a gap (packets lost or still to come), whatever its size
    /// modulo 256.
    /// Antenna and absolute slot of a U- or C-plane packet: its eAxC must be
    /// one the rrh-sim sends (RU port < antennas, other ids 0) and its O-RAN
    /// ids a slot of this numerology. `None` = malformed.
    fn locate(&self, eaxc: u16, id: SlotId) -> Option<(usize, u64)> {
        let e = Eaxc::from_u16(eaxc, self.pcfg.eaxc_split).ok()?;
        let a = usize::from(e.ru_port);
        if a >= self.antennas || e.du_port != 0 || e.band_sector != 0 || e.cc != 0 {
            return None;
        }
        Some((a, self.clock0.unwrap_slot(id, self.near)?))
    }

    fn seq_check(&mut self, a: usize, plane: usize, seq: u8, pos: u64) -> bool {
        let st = &mut self.next_seq[a][plane];
        match *st {
            None => {
                *st = Some((seq.wrapping_add(1), pos));
                false
            }
            Some((exp, last)) => {
                let d = seq.wrapping_sub(exp);
                if d == 0 || pos > last || (pos == last && d < 128) {
                    self.c.seq_gaps += u64::from(d);
                    *st = Some((seq.wrapping_add(1), pos.max(last)));
                    false
                } else {
                    true
                }
            }
        }
    }

    /// Ta4 window, margin and (blocking mode) wake-up lateness of one U-plane packet.
    fn timing(&mut self, a: usize, n: u64, s: u8, now: u64) {
        let rel = self.clock0.slot_symbol(n, s).due_ns;
        let epoch = match self.epoch {
            Some(e) => e,
            None => {
                // Estimate: the earliest arrival had zero transport delay. With a
                // shared clock this is only a fallback for a missing start message.
                self.est_min = self.est_min.min(now.saturating_sub(rel + self.cfg.timing.ta3_ns));
                if n < self.cfg.warmup_slots {
                    self.c.unclassified += 1;
                    return;
                }
                self.epoch = Some(self.est_min);
                self.epoch_source = "estimated";
                self.est_min
            }
        };
        let air = epoch + rel;
        let m = self.cfg.timing.ta4_margin_ns(air, now);
        self.ta4.record(m);
        self.ta4_eaxc[a].1.record(m);
        match self.cfg.timing.classify(air, now) {
            WindowPosition::Early => self.c.early += 1,
            WindowPosition::OnTime => self.c.on_time += 1,
            WindowPosition::Late => {
                self.c.late += 1;
                self.slot_late += 1;
            }
        }
        if self.cfg.poll == PollMode::Block && self.batch_first {
            let expected = air + self.cfg.timing.ta3_ns;
            self.wake_max = self.wake_max.max(now.saturating_sub(self.t_call.max(expected)));
        }
        self.batch_first = false;
    }

    fn begin(&mut self, n: u64, sink: &mut dyn SlotSink) {
        sink.begin_slot();
        self.cur = Some(n);
        self.near = n;
        for c in &mut self.coverage {
            *c = [0; PRB_WORDS];
        }
        self.covered.fill(0);
        self.covered_total = 0;
        self.slot_pkts = 0;
        self.slot_late = 0;
    }

    fn finalize(&mut self, n: u64, sink: &mut dyn SlotSink) {
        let r = sink.process(n);
        let end = now_ns();
        let processing = end.saturating_sub(self.slot_last_arrival);
        let full = u64::from(self.prbs) * 14 * self.antennas as u64;
        let incomplete = self.covered_total < full;
        self.processing.saturating_record(processing);
        self.wakeup.saturating_record(self.wake_max);
        self.c.slots_processed += 1;
        self.c.slots_incomplete += u64::from(incomplete);
        self.c.bits_checked += r.bits_checked;
        self.c.bit_errors += r.bit_errors;
        self.c.missing_prbs += r.missing_prbs;
        self.replies.push(SlotDone {
            run_id: self.run_id,
            seq: self.reply_seq,
            slot_index: n,
            processing_ns: processing,
            wakeup_max_ns: self.wake_max,
            last_arrival_ns: self.slot_last_arrival,
            bits_checked: r.bits_checked,
            bit_errors: r.bit_errors,
            packets_rx: self.slot_pkts,
            packets_late: self.slot_late,
            missing_prbs: r.missing_prbs.min(u64::from(u32::MAX)) as u32,
            flags: if incomplete { reply::FLAG_INCOMPLETE } else { 0 },
        });
        self.reply_seq = self.reply_seq.wrapping_add(1);
        self.cur = None;
        self.last_done = Some(n);
        self.near = n + 1;
        self.wake_max = 0;
    }

    fn flush_replies(&mut self, io: &mut dyn PacketIo) -> Result<(), PktError> {
        if self.replies.is_empty() {
            return Ok(());
        }
        let (dst, src) = self.macs.unwrap_or(([0xff; 6], [0x02, 0, 0, 0, 0, 0]));
        let replies = &self.replies;
        let sent = io.send_batch(replies.len(), &mut |i, buf| Ctl::SlotDone(replies[i]).encode(dst, src, buf).unwrap_or(0))?;
        self.c.replies_sent += sent as u64;
        self.c.replies_failed += (replies.len() - sent.min(replies.len())) as u64;
        self.replies.clear();
        Ok(())
    }
}

fn overlaps(bits: &[u64; PRB_WORDS], start: u16, num: u16) -> bool {
    (start..start + num).any(|p| bits[usize::from(p) / 64] & (1u64 << (p % 64)) != 0)
}

fn set_bits(bits: &mut [u64; PRB_WORDS], start: u16, num: u16) {
    for p in start..start + num {
        bits[usize::from(p) / 64] |= 1u64 << (p % 64);
    }
}

/// Runs the worker on the calling thread until the end-of-run message, `stop`
/// (e.g. set by a SIGTERM handler) or `max_ns`, and returns its summary
/// (without [`WorkerSummary::granted`], which the binary fills in).
pub fn run(cfg: &WorkerConfig, io: &mut dyn PacketIo, sink: &mut dyn SlotSink, stop: &AtomicBool) -> Result<WorkerSummary, WorkerError> {
    let mut st = State::new(cfg.clone())?;
    let transport = io.name();
    let ioerr = |err| WorkerError::Io { transport, err };
    let started = now_ns();
    let wait = match cfg.poll {
        PollMode::Busy => Wait::Poll,
        PollMode::Block => Wait::Block(Duration::from_nanos(cfg.block_timeout_ns.max(1))),
    };
    let batch = cfg.batch.max(1);
    let mut end_reason = "end_message";
    loop {
        if st.ended {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            end_reason = "signal";
            break;
        }
        let t_call = now_ns();
        if let Some(max) = cfg.max_ns {
            if t_call.saturating_sub(started) >= max {
                end_reason = "max_seconds";
                break;
            }
        }
        st.t_call = t_call;
        st.batch_first = true;
        st.first_arr = None;
        let got = io.recv_batch(batch, wait, &mut |f| {
            let now = now_ns();
            st.on_frame(f, now, sink);
        });
        match got {
            Ok(_) => {}
            Err(PktError::Closed) => {
                if let Some(n) = st.cur {
                    st.finalize(n, sink);
                }
                let _ = st.flush_replies(io);
                end_reason = "peer_closed";
                break;
            }
            Err(e) => return Err(ioerr(e)),
        }
        if st.first_arr.is_none() {
            st.busy_stall(now_ns());
        }
        match st.flush_replies(io) {
            Ok(()) | Err(PktError::Closed) => {}
            Err(e) => return Err(ioerr(e)),
        }
        st.t_prev_end = Some(now_ns());
    }
    let mut s = WorkerSummary {
        schema: SUMMARY_SCHEMA.into(),
        transport: transport.into(),
        transport_detail: io.detail(),
        poll: cfg.poll.as_str().into(),
        shared_clock: cfg.shared_clock,
        epoch_source: st.epoch_source.into(),
        end_reason: end_reason.into(),
        run_id: st.run_id,
        config_mismatch: st.config_mismatch,
        cell: cfg.cell.to_spec(),
        timing: cfg.timing.to_spec(),
        granted: None,
        counters: st.c.clone(),
        ..WorkerSummary::default()
    };
    s.histograms.insert("processing_ns".into(), summary::encode_hist(&st.processing));
    s.histograms.insert("wakeup_ns".into(), summary::encode_hist(&st.wakeup));
    if cfg.shared_clock {
        s.histograms.insert("one_way_ns".into(), summary::encode_hist(&st.one_way));
    }
    s.ta4_margin_ns = st.ta4.encode();
    for (id, h) in &st.ta4_eaxc {
        s.ta4_margin_per_eaxc_ns.insert(id.to_string(), h.encode());
    }
    Ok(s)
}

impl SlotSink for crate::pipeline::SlotProcessor {
    fn begin_slot(&mut self) {
        crate::pipeline::SlotProcessor::begin_slot(self);
    }
    fn ingest_prbs(&mut self, antenna: u8, symbol: u8, start_prb: u16, num_prb: u16, prb_data: &[u8]) -> bool {
        crate::pipeline::SlotProcessor::ingest_prbs(self, antenna, symbol, start_prb, num_prb, prb_data).is_ok()
    }
    fn process(&mut self, slot_index: u64) -> SlotResult {
        let o = crate::pipeline::SlotProcessor::process(self, slot_index);
        SlotResult { bits_checked: o.bits_checked, bit_errors: o.bit_errors, missing_prbs: u64::from(o.missing_prbs) }
    }
}
