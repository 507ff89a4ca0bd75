//! End to end over the in-memory transport: the rrh-sim live loop on one
//! thread, the bbu-sim worker (real L1 pipeline) on another.
//!
//! (A dev-dependency on bbu-sim: the two libraries never use each other,
//! only this test puts them on the two ends of one in-memory wire.)

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use bbu_sim::pipeline::SlotProcessor;
use bbu_sim::worker::{self, PollMode, WorkerConfig};
use fronthaul::cell::CellConfig;
use fronthaul::timing::TimingConfig;
use rrh_sim::live::{self, LiveConfig, Progress};

#[test]
fn every_slot_is_answered_without_bit_errors() {
    let cell = CellConfig::default();
    // A generous lead: debug builds of the pipeline may fall behind the
    // symbol clock on a shared machine; the test checks counts, not speed.
    let timing = TimingConfig { lead_slots: 240_000, ..TimingConfig::default() };
    let slots = 300u64;
    let (mut a, mut b) = pktio::mem::pair(1 << 14, 2048);
    let stop = AtomicBool::new(false);
    let wcfg = WorkerConfig { shared_clock: true, poll: PollMode::Busy, max_ns: Some(300_000_000_000), ..WorkerConfig::new(cell.clone(), timing.clone()) };
    let progress_calls = Mutex::new(Vec::<Progress>::new());
    let (report, summary) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut p = SlotProcessor::new(&wcfg.cell).unwrap();
            worker::run(&wcfg, &mut b, &mut p, &stop).unwrap()
        });
        let cfg = LiveConfig { interval_ns: 50_000_000, ..LiveConfig::new(cell.clone(), timing.clone(), slots) };
        let report = live::run(&cfg, &mut a, &stop, &|p| progress_calls.lock().unwrap().push(*p)).unwrap();
        drop(a);
        (report, w.join().unwrap())
    });

    // Generator side.
    assert_eq!(report.slots_sent, slots);
    assert_eq!(report.replies, slots, "{report:?}");
    assert_eq!(report.lost_replies, 0);
    assert_eq!(report.duplicate_replies, 0);
    assert_eq!(report.foreign_replies, 0);
    assert_eq!(report.bit_errors, 0);
    assert!(report.bits_checked > 0);
    assert_eq!(report.tx_refused, 0);
    assert_eq!(report.uplane_sent, slots * 14 * 2);
    assert_eq!(report.cplane_sent, slots * 2);
    assert_eq!(report.hists.turnaround.len(), slots);
    assert_eq!(report.hists.worker_processing.len(), slots);
    assert_eq!(report.hists.worker_wakeup.len(), slots);
    assert_eq!(report.hists.pacing.len(), slots * 14);
    assert_eq!(report.deadline_misses, report.late_replies);
    let in_intervals: u64 = report.intervals.iter().map(|i| i.hists.turnaround.len()).sum();
    assert_eq!(in_intervals, slots);
    assert_eq!(progress_calls.lock().unwrap().len(), report.intervals.len());
    let mut hlog = Vec::new();
    report.write_hlog(&mut hlog, std::time::SystemTime::now()).unwrap();
    let text = String::from_utf8(hlog).unwrap();
    assert!(text.contains("#[StartTime:"));
    assert_eq!(text.lines().filter(|l| l.starts_with("Tag=slot_turnaround_ns,")).count(), report.intervals.len());

    // Worker side.
    let c = &summary.counters;
    assert_eq!(summary.end_reason, "end_message");
    assert_eq!(summary.epoch_source, "start_message");
    assert!(!summary.config_mismatch);
    assert_eq!(c.slots_processed, slots);
    assert_eq!(c.slots_incomplete, 0);
    assert_eq!(c.replies_sent, slots);
    assert_eq!(c.uplane_rx, report.uplane_sent);
    assert_eq!(c.cplane_rx, report.cplane_sent);
    assert_eq!(c.lost, Some(0));
    assert_eq!((c.malformed, c.duplicate, c.out_of_order, c.seq_gaps, c.stale, c.foreign), (0, 0, 0, 0, 0, 0));
    assert_eq!(c.bit_errors, 0);
    assert_eq!(c.bits_checked, report.bits_checked);
    assert_eq!(c.early + c.on_time + c.late + c.unclassified, c.uplane_rx);
    let ta4 = summary.ta4_margin().unwrap();
    assert_eq!(ta4.count(), c.early + c.on_time + c.late);
    assert_eq!(summary.ta4_margin_per_eaxc_ns.len(), 2);
    assert_eq!(summary.histogram("processing_ns").unwrap().unwrap().len(), slots);
    assert_eq!(summary.histogram("one_way_ns").unwrap().unwrap().len(), c.uplane_rx + c.cplane_rx);
    // The summary survives its one-line form.
    let back = worker::WorkerSummary::from_line(&summary.to_line()).unwrap();
    assert_eq!(back.counters, summary.counters);
}

/// Not a test of behaviour: prints the figures of a longer in-memory run
/// (docs/metrics.md quotes them). Run with
/// `cargo test --release -p rrh-sim --test live_e2e -- --ignored --nocapture`
/// (`CRANLAB_FIGURE_SECS`, default 5; `CRANLAB_FIGURE_POLL` busy|block;
/// `CRANLAB_FIGURE_FIFO` = SCHED_FIFO priority for both threads, unset = SCHED_OTHER).
#[test]
#[ignore]
fn print_in_memory_figures() {
    let secs: f64 = std::env::var("CRANLAB_FIGURE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let poll: PollMode = std::env::var("CRANLAB_FIGURE_POLL").ok().and_then(|s| s.parse().ok()).unwrap_or(PollMode::Busy);
    let t_start = std::time::Instant::now();
    let fifo: Option<i32> = std::env::var("CRANLAB_FIGURE_FIFO").ok().and_then(|s| s.parse().ok());
    let cell = CellConfig::default();
    let timing = TimingConfig::default();
    let slots = LiveConfig::slots_for(&cell, secs);
    let (mut a, mut b) = pktio::mem::pair(1 << 14, 2048);
    let stop = AtomicBool::new(false);
    let wcfg = WorkerConfig { shared_clock: true, poll, ..WorkerConfig::new(cell.clone(), timing.clone()) };
    let (report, summary) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let g = rrh_sim::live::rt::pin_and_fifo(Some(1), fifo).unwrap();
            eprintln!("{:?} worker thread: {g:?}", t_start.elapsed());
            let mut p = SlotProcessor::new(&wcfg.cell).unwrap();
            eprintln!("{:?} worker ready", t_start.elapsed());
            worker::run(&wcfg, &mut b, &mut p, &stop).unwrap()
        });
        let g = rrh_sim::live::rt::pin_and_fifo(Some(0), fifo).unwrap();
        eprintln!("{:?} rrh thread: {g:?}", t_start.elapsed());
        let cfg = LiveConfig::new(cell.clone(), timing.clone(), slots);
        let report = live::run(&cfg, &mut a, &stop, &|p| eprintln!("{:?} progress {p:?}", t_start.elapsed())).unwrap();
        eprintln!("{:?} rrh done", t_start.elapsed());
        drop(a);
        (report, w.join().unwrap())
    });
    let q = |h: &hdrhistogram::Histogram<u64>| {
        format!(
            "n={} p50={} p99={} p99.9={} max={}",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        )
    };
    eprintln!("slots {} replies {} lost {} late {} misses {} gen_late_symbols {}", report.slots_sent, report.replies, report.lost_replies, report.late_replies, report.deadline_misses, report.generator_late_symbols);
    eprintln!("turnaround_ns  {}", q(&report.hists.turnaround));
    eprintln!("pacing_ns      {}", q(&report.hists.pacing));
    eprintln!("processing_ns  {}", q(&report.hists.worker_processing));
    eprintln!("wakeup_ns      {}", q(&report.hists.worker_wakeup));
    eprintln!("one_way_ns     {}", q(&summary.histogram("one_way_ns").unwrap().unwrap()));
    let t = summary.ta4_margin().unwrap();
    eprintln!("ta4_margin_ns  n={} min={} p50={} p99(of late side)={} max={} early/on/late {}/{}/{}", t.count(), t.min(), t.quantile(0.5), t.quantile(0.01), t.max(), summary.counters.early, summary.counters.on_time, summary.counters.late);
    eprintln!("bits {} errors {} incomplete slots {} tx_refused {}", summary.counters.bits_checked, summary.counters.bit_errors, summary.counters.slots_incomplete, report.tx_refused);
}
