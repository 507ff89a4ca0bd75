//! Criterion benches of the L1-high pipeline, per stage and per whole slot,
//! at 20 MHz (51 PRB) / 2 antennas / 1 layer and 100 MHz (273 PRB) /
//! 4 antennas / 4 layers, 256-QAM, µ = 1, BFP 9-bit.
//!
//! `cargo bench -p bbu-sim --bench pipeline` (figures in docs/pipeline.md).
//! `CRANLAB_BENCH_ISA=baseline|avx2|avx512` forces a code path (default: the best available).
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) so
//! other processes on a shared machine do not inflate them (cache and memory
//! contention still does); `CRANLAB_BENCH_CLOCK=wall` measures wall time.

use std::hint::black_box;
use std::time::Duration;

use bbu_sim::pipeline::{DetectStages, Isa, SlotProcessor};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::Criterion;
use fronthaul::bfp;
use fronthaul::cell::{CellConfig, Modulation};
use fronthaul::traffic::TrafficModel;

/// PRBs per section: what fits a 1500-byte MTU with 9-bit BFP.
const SECTION_PRBS: u16 = 50;

struct Case {
    name: &'static str,
    cell: CellConfig,
}

struct Wire {
    /// [antenna][symbol] -> encoded PRBs of the whole symbol
    rows: Vec<Vec<u8>>,
    pb: usize,
}

fn wire(m: &TrafficModel) -> Wire {
    let c = m.cell();
    let pb = bfp::prb_bytes(c.iq_width, c.compression);
    let mut rows = Vec::new();
    for a in 0..c.antennas {
        for s in 0..14 {
            let mut out = vec![0u8; usize::from(c.prbs) * pb];
            bfp::encode_prbs(m.symbol_iq(0, s, a), c.iq_width, c.compression, &mut out).unwrap();
            rows.push(out);
        }
    }
    Wire { rows, pb }
}

fn ingest(p: &mut SlotProcessor, w: &Wire, cell: &CellConfig) {
    p.begin_slot();
    for a in 0..cell.antennas {
        for s in 0..14u8 {
            let row = &w.rows[usize::from(a) * 14 + usize::from(s)];
            let mut start = 0u16;
            while start < cell.prbs {
                let n = SECTION_PRBS.min(cell.prbs - start);
                let bytes = &row[usize::from(start) * w.pb..usize::from(start + n) * w.pb];
                p.ingest_prbs(a, s, start, n, bytes).unwrap();
                start += n;
            }
        }
    }
}

fn benches<M: Measurement>(cr: &mut Criterion<M>) {
    let isa = match std::env::var("CRANLAB_BENCH_ISA").as_deref() {
        Ok("baseline") => Isa::Baseline,
        Ok("avx2") => Isa::Avx2,
        Ok("avx512") => Isa::Avx512,
        _ => Isa::detect(),
    };
    let cases = [
        Case { name: "20mhz_2ant_1layer", cell: CellConfig { prbs: 51, antennas: 2, layers: 1, modulation: Modulation::Qam256, distinct_slots: 1, ..CellConfig::default() } },
        Case { name: "100mhz_4ant_4layer", cell: CellConfig { prbs: 273, antennas: 4, layers: 4, modulation: Modulation::Qam256, distinct_slots: 1, ..CellConfig::default() } },
    ];
    for case in &cases {
        let m = TrafficModel::new(&case.cell).unwrap();
        let w = wire(&m);
        let mut p = SlotProcessor::with_isa(&case.cell, isa).expect("code path not available on this cpu");
        ingest(&mut p, &w, &case.cell);
        let o = p.process(0);
        assert_eq!(o.bit_errors, 0, "bench input must decode cleanly");
        let mut g = cr.benchmark_group(format!("{}/{}", case.name, isa.name()));
        g.sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
        g.bench_function("1_ingest_bfp", |b| b.iter(|| ingest(&mut p, black_box(&w), &case.cell)));
        g.bench_function("2_chest", |b| b.iter(|| p.estimate_channel(black_box(0))));
        g.bench_function("3_weights", |b| b.iter(|| p.compute_weights()));
        g.bench_function("4a_equalise", |b| b.iter(|| p.detect(0, DetectStages::Equalise)));
        g.bench_function("4b_equalise_demap", |b| b.iter(|| p.detect(0, DetectStages::EqualiseDemap)));
        g.bench_function("4c_equalise_demap_check", |b| b.iter(|| black_box(p.detect(0, DetectStages::All))));
        g.bench_function("5_process", |b| b.iter(|| black_box(p.process(0))));
        g.bench_function("6_whole_slot", |b| {
            b.iter(|| {
                ingest(&mut p, &w, &case.cell);
                black_box(p.process(0))
            })
        });
        g.finish();
    }
}

/// CPU time of the calling thread.
struct ThreadCpu;

static WALL: WallTime = WallTime;

fn thread_cpu_now() -> Duration {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).expect("clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, i: Duration) -> Duration {
        thread_cpu_now().saturating_sub(i)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn main() {
    if std::env::var("CRANLAB_BENCH_CLOCK").as_deref() == Ok("wall") {
        let mut c = Criterion::default().configure_from_args();
        benches(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().with_measurement(ThreadCpu).configure_from_args();
        benches(&mut c);
        c.final_summary();
    }
}
