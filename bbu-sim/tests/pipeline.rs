//! The L1-high pipeline against the seeded traffic model: decoding at high
//! SNR, failure at low SNR, missing PRBs, bad ingest arguments, and identical
//! results on every code path.

use bbu_sim::pipeline::{Isa, PipelineError, SlotProcessor};
use fronthaul::bfp;
use fronthaul::cell::{CellConfig, Compression, Modulation};
use fronthaul::traffic::TrafficModel;

fn cell(prbs: u16, antennas: u8, layers: u8, modulation: Modulation, snr_db: f32) -> CellConfig {
    CellConfig { prbs, antennas, layers, modulation, snr_db, distinct_slots: 2, seed: 7 + u64::from(antennas) * 5 + u64::from(layers), ..CellConfig::default() }
}

/// Sends slot `slot` of the model to the processor in sections of at most
/// `section` PRBs, encoded as on the wire; `skip` drops (antenna, symbol, prb).
fn feed(m: &TrafficModel, p: &mut SlotProcessor, slot: u64, section: u16, skip: &dyn Fn(u8, u8, u16) -> bool) {
    let c = m.cell();
    let pb = bfp::prb_bytes(c.iq_width, c.compression);
    let mut wire = vec![0u8; usize::from(c.prbs) * pb];
    p.begin_slot();
    for ant in 0..c.antennas {
        for sym in 0..14u8 {
            let iq = m.symbol_iq(slot, sym, ant);
            bfp::encode_prbs(iq, c.iq_width, c.compression, &mut wire).unwrap();
            let mut start = 0u16;
            while start < c.prbs {
                let num = section.min(c.prbs - start);
                let mut s = start;
                // Split the section around skipped PRBs.
                while s < start + num {
                    if skip(ant, sym, s) {
                        s += 1;
                        continue;
                    }
                    let mut e = s;
                    while e < start + num && !skip(ant, sym, e) {
                        e += 1;
                    }
                    let bytes = &wire[usize::from(s) * pb..usize::from(e) * pb];
                    p.ingest_prbs(ant, sym, s, e - s, bytes).unwrap();
                    s = e;
                }
                start += num;
            }
        }
    }
}

fn run(c: &CellConfig, slots: u64) -> (u64, u64) {
    let m = TrafficModel::new(c).unwrap();
    let mut p = SlotProcessor::new(c).unwrap();
    let (mut bits, mut errs) = (0, 0);
    for slot in 0..slots {
        feed(&m, &mut p, slot, 32, &|_, _, _| false);
        let o = p.process(slot);
        assert_eq!(o.missing_prbs, 0);
        bits += o.bits_checked;
        errs += o.bit_errors;
    }
    (bits, errs)
}

#[test]
fn zero_bit_errors_at_40_db_for_every_modulation_and_layer_count() {
    for modulation in [Modulation::Qpsk, Modulation::Qam16, Modulation::Qam64, Modulation::Qam256] {
        for layers in 1..=4u8 {
            let c = cell(24, 4, layers, modulation, 40.0);
            let (bits, errs) = run(&c, 2);
            assert_eq!(bits, 2 * 12 * 24 * 12 * u64::from(layers) * u64::from(modulation.bits_per_symbol()));
            assert_eq!(errs, 0, "{modulation:?}, {layers} layers: {errs} of {bits} bits wrong");
        }
    }
}

#[test]
fn zero_bit_errors_at_40_db_256qam_for_every_antenna_layer_combination() {
    for antennas in 1..=16u8 {
        for layers in 1..=antennas.min(4) {
            let c = cell(12, antennas, layers, Modulation::Qam256, 40.0);
            let (bits, errs) = run(&c, 2);
            assert!(bits > 0);
            assert_eq!(errs, 0, "{antennas} antennas, {layers} layers: {errs} of {bits} bits wrong");
        }
    }
}

#[test]
fn full_100mhz_4x4_256qam_decodes_cleanly() {
    let c = cell(273, 4, 4, Modulation::Qam256, 40.0);
    let (bits, errs) = run(&CellConfig { distinct_slots: 1, ..c }, 1);
    assert_eq!(bits, 12 * 3276 * 4 * 8);
    assert_eq!(errs, 0);
}

#[test]
fn uncompressed_iq_and_single_dmrs_symbol_decode_cleanly() {
    let c = CellConfig { compression: Compression::None, iq_width: 16, ..cell(20, 2, 2, Modulation::Qam256, 40.0) };
    assert_eq!(run(&c, 2).1, 0);
    let c = CellConfig { dmrs_symbols: vec![3], ..cell(20, 4, 2, Modulation::Qam64, 40.0) };
    assert_eq!(run(&c, 2).1, 0);
}

#[test]
fn errors_appear_at_low_snr() {
    let c = cell(24, 2, 2, Modulation::Qam256, 5.0);
    let (bits, errs) = run(&c, 1);
    assert!(errs > bits / 20, "{errs} of {bits}");
    let c = cell(24, 1, 1, Modulation::Qpsk, -5.0);
    let (bits, errs) = run(&c, 1);
    assert!(errs > bits / 50, "{errs} of {bits}");
}

#[test]
fn a_different_seed_does_not_decode() {
    // The processor checks against the model of its own seed: feeding another
    // seed's traffic must show about half the bits wrong.
    let c = cell(24, 2, 1, Modulation::Qam16, 40.0);
    let other = TrafficModel::new(&CellConfig { seed: c.seed + 1, ..c.clone() }).unwrap();
    let mut p = SlotProcessor::new(&c).unwrap();
    feed(&other, &mut p, 0, 32, &|_, _, _| false);
    let o = p.process(0);
    assert!(o.bit_errors > o.bits_checked / 3, "{o:?}");
}

#[test]
fn missing_prbs_are_counted_and_others_still_decode() {
    let c = cell(24, 2, 1, Modulation::Qam16, 40.0);
    let m = TrafficModel::new(&c).unwrap();
    let mut p = SlotProcessor::new(&c).unwrap();
    // Drop PRB 5 of antenna 1, symbol 6 and PRBs 10..13 of antenna 0, symbol 0.
    let skip = |a: u8, s: u8, prb: u16| (a == 1 && s == 6 && prb == 5) || (a == 0 && s == 0 && (10..13).contains(&prb));
    feed(&m, &mut p, 0, 8, &skip);
    let o = p.process(0);
    assert_eq!(o.missing_prbs, 4);
    // Only one antenna of 2 lost one PRB of one data symbol: MRC still decodes most bits.
    assert!(o.bit_errors < o.bits_checked / 100, "{o:?}");
    // The next slot, complete again, counts nothing missing.
    feed(&m, &mut p, 1, 8, &|_, _, _| false);
    let o = p.process(1);
    assert_eq!((o.missing_prbs, o.bit_errors), (0, 0));
    // Nothing ingested at all.
    p.begin_slot();
    let o = p.process(2);
    assert_eq!(o.missing_prbs, 2 * 14 * 24);
}

#[test]
fn bad_ingest_arguments_are_typed_errors() {
    let c = cell(24, 2, 1, Modulation::Qam16, 40.0);
    let mut p = SlotProcessor::new(&c).unwrap();
    let pb = bfp::prb_bytes(c.iq_width, c.compression);
    let data = vec![0u8; 24 * pb];
    assert!(matches!(p.ingest_prbs(2, 0, 0, 1, &data), Err(PipelineError::Antenna { antenna: 2, antennas: 2 })));
    assert!(matches!(p.ingest_prbs(0, 14, 0, 1, &data), Err(PipelineError::Symbol(14))));
    assert!(matches!(p.ingest_prbs(0, 0, 20, 5, &data), Err(PipelineError::PrbRange { start: 20, end: 25, prbs: 24 })));
    assert!(matches!(p.ingest_prbs(0, 0, 24, 0, &data), Err(PipelineError::PrbRange { .. })));
    let e = p.ingest_prbs(0, 0, 0, 4, &data[..4 * pb - 1]).unwrap_err();
    assert!(matches!(e, PipelineError::ShortPayload { prbs: 4, .. }), "{e}");
    assert!(e.to_string().contains("short"), "{e}");
    // num_prb = 0 means all PRBs from start_prb.
    p.ingest_prbs(0, 0, 4, 0, &data).unwrap();
    // A refused ingest leaves nothing marked as received.
    p.begin_slot();
    let _ = p.ingest_prbs(0, 0, 0, 4, &data[..3]);
    assert_eq!(p.process(0).missing_prbs, 2 * 14 * 24);
    // An invalid cell is refused.
    assert!(matches!(SlotProcessor::new(&CellConfig { layers: 3, antennas: 2, ..c }), Err(PipelineError::Cell(_))));
}

#[test]
fn every_code_path_gives_identical_results() {
    for (ant, layers, modulation, snr) in [(4u8, 4u8, Modulation::Qam256, 40.0f32), (2, 1, Modulation::Qam64, 12.0), (3, 2, Modulation::Qam16, 8.0)] {
        let c = cell(30, ant, layers, modulation, snr);
        let m = TrafficModel::new(&c).unwrap();
        let mut base = SlotProcessor::with_isa(&c, Isa::Baseline).unwrap();
        feed(&m, &mut base, 1, 30, &|_, _, _| false);
        let ob = base.process(1);
        let mut tried = 0;
        for isa in [Isa::Avx2, Isa::Avx512] {
            if !isa.available() {
                println!("skipping {isa:?}: not supported by this cpu");
                continue;
            }
            tried += 1;
            let mut p = SlotProcessor::with_isa(&c, isa).unwrap();
            assert_eq!(p.isa(), isa);
            feed(&m, &mut p, 1, 30, &|_, _, _| false);
            let o = p.process(1);
            assert_eq!((o.bits_checked, o.bit_errors, o.missing_prbs), (ob.bits_checked, ob.bit_errors, ob.missing_prbs), "{isa:?}");
            assert_eq!(p.llrs(), base.llrs(), "{isa:?} llrs differ from baseline");
        }
        if tried == 0 {
            println!("only the baseline path exists on this cpu; nothing to compare");
        }
    }
}

#[test]
fn llr_signs_match_the_transmitted_bits_at_their_documented_index() {
    let c = cell(10, 4, 2, Modulation::Qam64, 40.0);
    let m = TrafficModel::new(&c).unwrap();
    let mut p = SlotProcessor::new(&c).unwrap();
    feed(&m, &mut p, 1, 32, &|_, _, _| false);
    assert_eq!(p.process(1).bit_errors, 0);
    let r = m.reference();
    let nsc = r.subcarriers();
    for layer in 0..2usize {
        let idx = r.qam_indices(1, layer as u8);
        for ds in [0usize, 5, 11] {
            for k in [0usize, 7, 16, nsc - 1] {
                for bit in 0..6usize {
                    let sent = (idx[ds * nsc + k] >> (5 - bit)) & 1;
                    let llr = p.llrs()[p.llr_index(layer, ds, k, bit)];
                    assert_ne!(llr, 0, "layer {layer} symbol {ds} subcarrier {k} bit {bit}");
                    assert_eq!(u8::from(llr < 0), sent, "layer {layer} symbol {ds} subcarrier {k} bit {bit}");
                }
            }
        }
    }
}
