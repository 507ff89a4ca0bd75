//! Codec benches: BFP compress/decompress throughput (GB/s of 16-bit IQ, i.e.
//! 48 bytes per PRB on the uncompressed side) for several widths, and
//! per-packet U-plane decode (parse + PRB decode) and encode (headers + PRB
//! encode) for the reference 273-PRB, 9-bit BFP, MTU-1500 packet (52 PRBs).
//!
//! Run: `cargo bench -p fronthaul --bench codec -- --warm-up-time 1 --measurement-time 3`
//! (a filter that matches no criterion bench, e.g. `-- min-only`, prints only
//! the min-of-N per-PRB table).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use fronthaul::bfp::{self, prb_bytes, SAMPLES_PER_PRB};
use fronthaul::cell::{CellConfig, Compression, Direction};
use fronthaul::ecpri::{EthHeader, RtcHeader};
use fronthaul::oran::AppHeader;
use fronthaul::packetize::{SymbolPlan, UPlaneFields};
use fronthaul::{parse_frame, Message, ParseConfig};

const PRBS: usize = 273;

fn symbol_iq() -> Vec<i16> {
    // Deterministic pseudo-random IQ with the traffic model's typical level.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..PRBS * SAMPLES_PER_PRB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as i16) >> 3
        })
        .collect()
}

fn bfp_benches(c: &mut Criterion) {
    let iq = symbol_iq();
    let mut g = c.benchmark_group("bfp");
    g.throughput(Throughput::Bytes((PRBS * SAMPLES_PER_PRB * 2) as u64));
    for w in [8u8, 9, 12, 14, 16] {
        let mut buf = vec![0u8; PRBS * prb_bytes(w, Compression::Bfp)];
        g.bench_with_input(BenchmarkId::new("compress", w), &w, |b, &w| b.iter(|| bfp::compress_prbs(black_box(&iq), w, &mut buf).unwrap()));
        let mut out = vec![0i16; iq.len()];
        g.bench_with_input(BenchmarkId::new("decompress", w), &w, |b, &w| b.iter(|| bfp::decompress_prbs(black_box(&buf), w, &mut out).unwrap()));
    }
    let mut buf = vec![0u8; PRBS * 48];
    g.bench_function("pack16", |b| b.iter(|| bfp::pack_prbs_16(black_box(&iq), &mut buf).unwrap()));
    let mut out = vec![0i16; iq.len()];
    g.bench_function("unpack16", |b| b.iter(|| bfp::unpack_prbs_16(black_box(&buf), &mut out).unwrap()));
    g.finish();
}

fn packet_benches(c: &mut Criterion) {
    let iq = symbol_iq();
    let cell = CellConfig { prbs: PRBS as u16, ..CellConfig::default() };
    let plan = SymbolPlan::from_cell(&cell).unwrap();
    let f = UPlaneFields { eth: EthHeader::default(), rtc: RtcHeader::new(1, 0), app: AppHeader::new(Direction::Uplink, 1, 2, 1, 5), mu: 1, section_id: 1 };
    let mut frame = vec![0u8; plan.max_frame_len()];
    let n = plan.write_packet(0, &f, &iq, &[], &mut frame).unwrap();
    frame.truncate(n);
    let cfg = ParseConfig::from_cell(&cell);
    let mut g = c.benchmark_group("packet");
    g.throughput(Throughput::Elements(1));
    let mut buf = vec![0u8; plan.max_frame_len()];
    g.bench_function("encode_52prb_bfp9", |b| b.iter(|| plan.write_packet(0, black_box(&f), black_box(&iq), &[], &mut buf).unwrap()));
    g.bench_function("parse_52prb_bfp9", |b| {
        b.iter(|| match parse_frame(black_box(&frame), &cfg).unwrap().message {
            Message::UPlane(u) => u.num_sections,
            _ => 0,
        })
    });
    let mut out = vec![0i16; 255 * SAMPLES_PER_PRB];
    g.bench_function("decode_52prb_bfp9", |b| {
        b.iter(|| {
            let Message::UPlane(u) = parse_frame(black_box(&frame), &cfg).unwrap().message else { unreachable!() };
            let mut total = 0;
            for (h, p) in u.sections() {
                let k = usize::from(h.num_prb) * SAMPLES_PER_PRB;
                total += bfp::decode_prbs(p, h.iq_width, h.compression, &mut out[..k]).unwrap();
            }
            total
        })
    });
    g.finish();
}

/// Best-case cost per PRB: the minimum over many runs of one 273-PRB symbol,
/// which filters out the time slices a shared machine steals (criterion's
/// mean does not). Printed after the criterion benches.
fn min_per_prb() {
    const RUNS: usize = 3000;
    let iq = symbol_iq();
    let min_ns = |f: &mut dyn FnMut()| {
        let mut best = u128::MAX;
        for _ in 0..RUNS {
            let t = std::time::Instant::now();
            f();
            best = best.min(t.elapsed().as_nanos());
        }
        best as f64 / PRBS as f64
    };
    println!("bfp min of {RUNS} runs of a {PRBS}-PRB symbol, ns per PRB:");
    for w in [8u8, 9, 12, 14, 16] {
        let mut buf = vec![0u8; PRBS * prb_bytes(w, Compression::Bfp)];
        let c = min_ns(&mut || {
            bfp::compress_prbs(black_box(&iq), w, &mut buf).unwrap();
        });
        let mut out = vec![0i16; iq.len()];
        let d = min_ns(&mut || {
            bfp::decompress_prbs(black_box(&buf), w, &mut out).unwrap();
        });
        println!("  width {w:2}: compress {c:5.1}  decompress {d:5.1}");
    }
}

criterion_group!(benches, bfp_benches, packet_benches);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only when benchmarking (`cargo bench`), not under `cargo test --benches`.
    if std::env::args().any(|a| a == "--bench") {
        min_per_prb();
    }
}
