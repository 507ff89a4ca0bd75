//! Traffic model: determinism, layout, and decodability with a genie receiver
//! (true channel, MMSE, nearest point). The pipeline tests in `bbu-sim` do the
//! same with estimated channels after BFP.
#![allow(clippy::needless_range_loop)]

use fronthaul::cell::{CellConfig, Modulation};
use fronthaul::traffic::{qam_point, Reference, TrafficModel};

fn small(antennas: u8, layers: u8, modulation: Modulation, snr_db: f32, seed: u64) -> CellConfig {
    CellConfig { prbs: 6, antennas, layers, modulation, snr_db, seed, distinct_slots: 2, ..CellConfig::default() }
}

/// Solves the layers from one subcarrier with the true channel (MMSE) and
/// returns the nearest constellation index per layer.
fn genie_decode(m: &TrafficModel, slot: u64, sym: u8, k: usize) -> Vec<u8> {
    let c = m.cell();
    let (a_n, l_n) = (usize::from(c.antennas), usize::from(c.layers));
    let s = f64::from(m.iq_scale());
    // y (a_n) and H (a_n x l_n) as f64 complex
    let y: Vec<(f64, f64)> = (0..a_n)
        .map(|a| {
            let iq = m.symbol_iq(slot, sym, a as u8);
            (f64::from(iq[2 * k]) / s, f64::from(iq[2 * k + 1]) / s)
        })
        .collect();
    let h: Vec<Vec<(f64, f64)>> = (0..a_n)
        .map(|a| (0..l_n).map(|l| { let v = m.channel(slot, a as u8, l as u8)[k]; (f64::from(v[0]), f64::from(v[1])) }).collect())
        .collect();
    // Normal equations (H^H H + n I) x = H^H y solved by Gaussian elimination.
    let n0 = f64::from(m.noise_variance());
    let mut a = vec![vec![(0f64, 0f64); l_n + 1]; l_n];
    for i in 0..l_n {
        for j in 0..l_n {
            let mut acc = (0.0, 0.0);
            for r in 0..a_n {
                let (p, q) = (h[r][i], h[r][j]);
                acc.0 += p.0 * q.0 + p.1 * q.1;
                acc.1 += p.0 * q.1 - p.1 * q.0;
            }
            if i == j {
                acc.0 += n0;
            }
            a[i][j] = acc;
        }
        let mut acc = (0.0, 0.0);
        for r in 0..a_n {
            let (p, q) = (h[r][i], y[r]);
            acc.0 += p.0 * q.0 + p.1 * q.1;
            acc.1 += p.0 * q.1 - p.1 * q.0;
        }
        a[i][l_n] = acc;
    }
    for i in 0..l_n {
        let d = a[i][i];
        let dd = d.0 * d.0 + d.1 * d.1;
        let inv = (d.0 / dd, -d.1 / dd);
        for j in i..=l_n {
            let v = a[i][j];
            a[i][j] = (v.0 * inv.0 - v.1 * inv.1, v.0 * inv.1 + v.1 * inv.0);
        }
        for r in 0..l_n {
            if r != i {
                let f = a[r][i];
                for j in i..=l_n {
                    let v = a[i][j];
                    a[r][j].0 -= f.0 * v.0 - f.1 * v.1;
                    a[r][j].1 -= f.0 * v.1 + f.1 * v.0;
                }
            }
        }
    }
    let q = c.modulation.bits_per_symbol();
    (0..l_n)
        .map(|l| {
            let x = a[l][l_n];
            (0..(1u16 << q))
                .min_by(|&i, &j| {
                    let d = |i: u16| { let p = qam_point(c.modulation, i as u8); (x.0 - f64::from(p.0)).powi(2) + (x.1 - f64::from(p.1)).powi(2) };
                    d(i).total_cmp(&d(j))
                })
                .unwrap() as u8
        })
        .collect()
}

fn symbol_errors(m: &TrafficModel) -> usize {
    let r = m.reference();
    let mut errs = 0;
    for slot in 0..r.pool_len() as u64 {
        for (pos, &sym) in r.data_symbols().iter().enumerate() {
            for k in 0..r.subcarriers() {
                let got = genie_decode(m, slot, sym, k);
                for (l, g) in got.iter().enumerate() {
                    if *g != r.qam_indices(slot, l as u8)[pos * r.subcarriers() + k] {
                        errs += 1;
                    }
                }
            }
        }
    }
    errs
}

#[test]
fn qam_mapping_matches_38_211() {
    let n = 1.0 / 170f32.sqrt();
    assert_eq!(qam_point(Modulation::Qam256, 0), (5.0 * n, 5.0 * n));
    assert_eq!(qam_point(Modulation::Qpsk, 0b11).0, -std::f32::consts::FRAC_1_SQRT_2);
    let n16 = 1.0 / 10f32.sqrt();
    assert_eq!(qam_point(Modulation::Qam16, 0b0000), (n16, n16));
    assert_eq!(qam_point(Modulation::Qam16, 0b1010), (-3.0 * n16, n16));
    for m in [Modulation::Qpsk, Modulation::Qam16, Modulation::Qam64, Modulation::Qam256] {
        let q = m.bits_per_symbol();
        let p: f32 = (0..1u16 << q).map(|i| { let (a, b) = qam_point(m, i as u8); a * a + b * b }).sum::<f32>() / (1u32 << q) as f32;
        assert!((p - 1.0).abs() < 1e-5, "{m:?} power {p}");
    }
}

#[test]
fn deterministic_for_a_seed_and_different_across_seeds() {
    let c = small(2, 2, Modulation::Qam64, 30.0, 5);
    let a = TrafficModel::new(&c).unwrap();
    let b = TrafficModel::new(&c).unwrap();
    for sym in 0..14 {
        assert_eq!(a.symbol_iq(3, sym, 1), b.symbol_iq(3, sym, 1));
    }
    assert_eq!(a.reference().qam_indices(0, 1), b.reference().qam_indices(0, 1));
    let other = TrafficModel::new(&CellConfig { seed: 6, ..c.clone() }).unwrap();
    assert_ne!(a.reference().qam_indices(0, 0), other.reference().qam_indices(0, 0));
    assert_ne!(a.symbol_iq(0, 0, 0), other.symbol_iq(0, 0, 0));
    assert_ne!(a.reference().dmrs_pilots(0, 0), other.reference().dmrs_pilots(0, 0));
    // Reference alone equals the model's reference.
    let r = Reference::new(&c).unwrap();
    assert_eq!(r.qam_indices(1, 0), a.reference().qam_indices(1, 0));
    // Slot n carries pool entry n % pool.
    assert_eq!(a.symbol_iq(0, 4, 0), a.symbol_iq(2, 4, 0));
    assert_ne!(a.symbol_iq(0, 4, 0), a.symbol_iq(1, 4, 0));
}

#[test]
fn layout_and_levels() {
    let c = CellConfig { prbs: 51, antennas: 4, layers: 4, distinct_slots: 1, ..CellConfig::default() };
    let m = TrafficModel::new(&c).unwrap();
    let r = m.reference();
    assert_eq!(r.data_symbols().len(), 12);
    assert_eq!(r.dmrs_symbols(), &[2, 11]);
    assert_eq!(m.symbol_iq(0, 0, 3).len(), 51 * 24);
    assert_eq!(r.qam_indices(0, 3).len(), 12 * 51 * 12);
    assert_eq!(r.qam_indices(0, 0).iter().max(), Some(&255));
    assert_eq!(r.qam_indices(0, 0).iter().min(), Some(&0));
    // RMS near 15 dB below full scale, nothing clipped.
    let iq = m.symbol_iq(0, 5, 0);
    let rms = (iq.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / (iq.len() / 2) as f64).sqrt();
    let target = 32767.0 * 10f64.powf(-0.75);
    assert!((rms / target - 1.0).abs() < 0.25, "rms {rms} target {target}");
    assert!(iq.iter().all(|&v| v > -32768 && v < 32767));
    // DMRS comb: subcarrier k carries layer k % layers.
    assert_eq!(r.dmrs_layer(6), 2);
}

#[test]
fn bad_cell_is_rejected() {
    let c = CellConfig { layers: 3, antennas: 2, ..CellConfig::default() };
    assert!(TrafficModel::new(&c).is_err());
    let c = CellConfig { distinct_slots: 0, ..CellConfig::default() };
    let e = TrafficModel::new(&c).unwrap_err();
    assert!(e.to_string().contains("distinct_slots"), "{e}");
}

#[test]
fn genie_receiver_decodes_256qam_at_40db_for_all_antenna_layer_combinations() {
    for antennas in 1..=16u8 {
        for layers in 1..=antennas.min(4) {
            let m = TrafficModel::new(&small(antennas, layers, Modulation::Qam256, 40.0, u64::from(antennas) * 10 + u64::from(layers))).unwrap();
            assert_eq!(symbol_errors(&m), 0, "{antennas} antennas, {layers} layers");
        }
    }
}

#[test]
fn genie_receiver_sees_errors_at_low_snr() {
    let m = TrafficModel::new(&small(2, 2, Modulation::Qam256, 5.0, 3)).unwrap();
    assert!(symbol_errors(&m) > 100);
}
