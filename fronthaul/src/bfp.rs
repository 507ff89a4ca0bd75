//! Block floating point compression of PRBs (any width 1..=16), and the
//! uncompressed packed formats.
//!
//! One PRB is 12 subcarriers × (I, Q) = 24 signed 16-bit values. BFP sends a
//! byte `reserved(4) exponent(4)` followed by the 24 mantissas `x >> e`, each
//! `W` bits, packed most significant bit first: `1 + 3·W` bytes. The exponent
//! is the smallest `e` for which no value saturates, so the reconstruction
//! error `x - ((x >> e) << e)` lies in `0..=2^e - 1` for every sample.
//! Uncompressed PRBs are the 24 values as `W`-bit two's complement, packed the
//! same way without the exponent byte (`3·W` bytes, 48 for 16-bit samples).
//!
//! Every width has its own monomorphised packer/unpacker (8 values of `W`
//! bits = `W` bytes handled as one 128-bit word), so the common widths 8, 9,
//! 12, 14 and 16 — and all others — run without per-sample branches. The
//! width dispatch happens once per call, so the bulk functions
//! ([`compress_prbs`], [`decompress_prbs`], [`encode_prbs`], [`decode_prbs`])
//! are the ones to use on a hot path.

use crate::cell::Compression;
use crate::error::FhError;

/// Values (I and Q of 12 subcarriers) in one PRB.
pub const SAMPLES_PER_PRB: usize = 24;

/// Bytes one PRB occupies on the wire: `1 + 3·W` with BFP, `3·W` without
/// (48 for 16-bit samples). `width` is the IQ/mantissa width 1..=16.
pub fn prb_bytes(width: u8, compression: Compression) -> usize {
    let w = 3 * usize::from(width);
    match compression {
        Compression::Bfp => 1 + w,
        Compression::None => w,
    }
}

fn check_width(width: u8) -> Result<(), FhError> {
    if (1..=16).contains(&width) {
        Ok(())
    } else {
        Err(FhError::BadWidth(width))
    }
}

/// The smallest exponent `e` (0..=15) such that every value `>> e` fits in
/// `width` signed bits.
#[inline(always)]
pub fn exponent(iq: &[i16; SAMPLES_PER_PRB], width: u8) -> u8 {
    let mut m: u16 = 0;
    for &x in iq {
        // Magnitude bits of a two's-complement value (sign bit excluded).
        m |= (x ^ (x >> 15)) as u16;
    }
    let needed = 16 - m.leading_zeros() + 1;
    needed.saturating_sub(u32::from(width)) as u8
}

/// Packs 8 values of `W` bits (already shifted/clamped) into `W` bytes.
#[inline(always)]
fn pack8<const W: usize>(v: &[i16], shift: u32, out: &mut [u8]) {
    let mask: u128 = (1u128 << W) - 1;
    let mut acc: u128 = 0;
    for &x in &v[..8] {
        acc = (acc << W) | (((x >> shift) as u16 as u128) & mask);
    }
    let bytes = (acc << (128 - 8 * W)).to_be_bytes();
    out[..W].copy_from_slice(&bytes[..W]);
}

/// Unpacks `W` bytes into 8 sign-extended values, each shifted left by `shift`.
#[inline(always)]
fn unpack8<const W: usize>(inp: &[u8], shift: u32, out: &mut [i16]) {
    let mut b = [0u8; 16];
    b[..W].copy_from_slice(&inp[..W]);
    let acc = u128::from_be_bytes(b);
    for (i, o) in out[..8].iter_mut().enumerate() {
        let m = ((acc << (i * W)) as i128 >> (128 - W)) as i16;
        *o = m.wrapping_shl(shift);
    }
}

#[inline(always)]
fn compress_one<const W: usize>(iq: &[i16; SAMPLES_PER_PRB], out: &mut [u8]) {
    if W == 16 {
        // Every i16 fits 16 bits: the exponent is always 0.
        out[0] = 0;
        for (o, &x) in out[1..49].chunks_exact_mut(2).zip(iq) {
            o.copy_from_slice(&x.to_be_bytes());
        }
        return;
    }
    let e = exponent(iq, W as u8);
    out[0] = e;
    if W == 8 {
        for (o, &x) in out[1..25].iter_mut().zip(iq) {
            *o = (x >> e) as u8;
        }
        return;
    }
    if W == 9 {
        // Byte j of an 8-value group holds the low j bits of value j − 1 in
        // its top and the top 8 − j bits of value j in its bottom; the
        // per-lane shifts are written as multiplies so they vectorise.
        const HI: [u32; 8] = [1 << 15, 1 << 14, 1 << 13, 1 << 12, 1 << 11, 1 << 10, 1 << 9, 1 << 8];
        const LO: [u16; 8] = [128, 64, 32, 16, 8, 4, 2, 1];
        let out: &mut [u8; 28] = (&mut out[..28]).try_into().expect("28 bytes");
        for g in 0..3 {
            let mut a = [0u16; 8];
            let mut b = [0u16; 9];
            for i in 0..8 {
                let v = ((iq[8 * g + i] >> e) as u16) & 0x1ff;
                a[i] = ((u32::from(v) * HI[i]) >> 16) as u16; // v >> (i + 1)
                b[i + 1] = v.wrapping_mul(LO[i]); // v << (7 - i)
            }
            let o = &mut out[1 + 9 * g..10 + 9 * g];
            for j in 0..8 {
                o[j] = (a[j] | b[j]) as u8;
            }
            o[8] = b[8] as u8;
        }
        return;
    }
    let (a, rest) = out[1..1 + 3 * W].split_at_mut(W);
    let (b, c) = rest.split_at_mut(W);
    pack8::<W>(&iq[0..8], u32::from(e), a);
    pack8::<W>(&iq[8..16], u32::from(e), b);
    pack8::<W>(&iq[16..24], u32::from(e), c);
}

/// Per-lane multipliers `2^i`: a left shift by the lane index, written as a
/// multiply so the compiler can vectorise it with baseline SSE2 (`pmullw`).
const POW2: [u16; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

#[inline(always)]
fn decompress_one<const W: usize>(input: &[u8], out: &mut [i16]) {
    let e = u32::from(input[0] & 0x0f);
    let out: &mut [i16; SAMPLES_PER_PRB] = (&mut out[..SAMPLES_PER_PRB]).try_into().expect("24 values");
    if W == 16 {
        let p = &input[1..49];
        for (o, b) in out.iter_mut().zip(p.chunks_exact(2)) {
            *o = i16::from_be_bytes([b[0], b[1]]).wrapping_shl(e);
        }
    } else if W == 8 {
        let p = &input[1..25];
        for (o, &b) in out.iter_mut().zip(p) {
            *o = i16::from(b as i8).wrapping_shl(e);
        }
    } else if W == 9 {
        // Value i of each 8-value group starts at bit 9i = byte i, bit i: the
        // big-endian word of bytes (i, i + 1), shifted left by i, holds it in
        // its top 9 bits. Both byte rows are contiguous, so this vectorises.
        let p: &[u8; 28] = input[..28].try_into().expect("28 bytes");
        for g in 0..3 {
            let hi: &[u8; 8] = p[1 + 9 * g..9 + 9 * g].try_into().expect("8 bytes");
            let lo: &[u8; 8] = p[2 + 9 * g..10 + 9 * g].try_into().expect("8 bytes");
            for i in 0..8 {
                let w = (u16::from(hi[i]) << 8) | u16::from(lo[i]);
                out[8 * g + i] = ((w.wrapping_mul(POW2[i]) as i16) >> 7).wrapping_shl(e);
            }
        }
    } else {
        unpack8::<W>(&input[1..], e, &mut out[0..8]);
        unpack8::<W>(&input[1 + W..], e, &mut out[8..16]);
        unpack8::<W>(&input[1 + 2 * W..], e, &mut out[16..24]);
    }
}

#[inline(always)]
fn pack_plain_one<const W: usize>(iq: &[i16], out: &mut [u8]) {
    if W == 16 {
        for (o, &x) in out[..48].chunks_exact_mut(2).zip(&iq[..24]) {
            o.copy_from_slice(&x.to_be_bytes());
        }
        return;
    }
    let lo = -(1i16 << (W - 1));
    let hi = (1i16 << (W - 1)) - 1;
    let mut c = [0i16; SAMPLES_PER_PRB];
    for (d, &x) in c.iter_mut().zip(&iq[..24]) {
        *d = x.clamp(lo, hi);
    }
    pack8::<W>(&c[0..8], 0, &mut out[0..W]);
    pack8::<W>(&c[8..16], 0, &mut out[W..2 * W]);
    pack8::<W>(&c[16..24], 0, &mut out[2 * W..3 * W]);
}

#[inline(always)]
fn unpack_plain_one<const W: usize>(input: &[u8], out: &mut [i16]) {
    if W == 16 {
        for (o, b) in out[..24].iter_mut().zip(input[..48].chunks_exact(2)) {
            *o = i16::from_be_bytes([b[0], b[1]]);
        }
        return;
    }
    unpack8::<W>(&input[0..], 0, &mut out[0..8]);
    unpack8::<W>(&input[W..], 0, &mut out[8..16]);
    unpack8::<W>(&input[2 * W..], 0, &mut out[16..24]);
}

fn compress_n<const W: usize>(iq: &[i16], out: &mut [u8]) -> usize {
    let pb = 1 + 3 * W;
    let mut n = 0;
    for (prb, o) in iq.chunks_exact(SAMPLES_PER_PRB).zip(out.chunks_exact_mut(pb)) {
        let prb: &[i16; SAMPLES_PER_PRB] = prb.try_into().expect("chunks_exact yields 24 values");
        compress_one::<W>(prb, o);
        n += pb;
    }
    n
}

fn decompress_n<const W: usize>(input: &[u8], out: &mut [i16]) -> usize {
    let pb = 1 + 3 * W;
    let mut n = 0;
    for (o, i) in out.chunks_exact_mut(SAMPLES_PER_PRB).zip(input.chunks_exact(pb)) {
        decompress_one::<W>(i, o);
        n += pb;
    }
    n
}

fn pack_plain_n<const W: usize>(iq: &[i16], out: &mut [u8]) -> usize {
    let pb = 3 * W;
    let mut n = 0;
    for (prb, o) in iq.chunks_exact(SAMPLES_PER_PRB).zip(out.chunks_exact_mut(pb)) {
        pack_plain_one::<W>(prb, o);
        n += pb;
    }
    n
}

fn unpack_plain_n<const W: usize>(input: &[u8], out: &mut [i16]) -> usize {
    let pb = 3 * W;
    let mut n = 0;
    for (o, i) in out.chunks_exact_mut(SAMPLES_PER_PRB).zip(input.chunks_exact(pb)) {
        unpack_plain_one::<W>(i, o);
        n += pb;
    }
    n
}

/// Calls `$f::<W>(args)` for a runtime width 1..=16 (checked by the caller).
macro_rules! by_width {
    ($w:expr, $f:ident, $($a:expr),*) => {
        match $w {
            1 => $f::<1>($($a),*),
            2 => $f::<2>($($a),*),
            3 => $f::<3>($($a),*),
            4 => $f::<4>($($a),*),
            5 => $f::<5>($($a),*),
            6 => $f::<6>($($a),*),
            7 => $f::<7>($($a),*),
            8 => $f::<8>($($a),*),
            9 => $f::<9>($($a),*),
            10 => $f::<10>($($a),*),
            11 => $f::<11>($($a),*),
            12 => $f::<12>($($a),*),
            13 => $f::<13>($($a),*),
            14 => $f::<14>($($a),*),
            15 => $f::<15>($($a),*),
            _ => $f::<16>($($a),*),
        }
    };
}

/// Compresses one PRB with BFP of `width` bits into `out`: the exponent byte,
/// then the packed mantissas. Returns the bytes written (`1 + 3·width`).
///
/// # Panics
/// If `width` is not in 1..=16 or `out` is shorter than `1 + 3·width`
/// (use [`compress_prbs`] for a checked, bulk variant).
pub fn compress_prb(iq: &[i16; SAMPLES_PER_PRB], width: u8, out: &mut [u8]) -> usize {
    assert!((1..=16).contains(&width), "bfp width {width} out of range 1..=16");
    let pb = prb_bytes(width, Compression::Bfp);
    assert!(out.len() >= pb, "bfp output needs {pb} bytes, has {}", out.len());
    by_width!(width, compress_one, iq, out);
    pb
}

/// Decompresses one BFP PRB of `width` bits from the start of `input` into
/// `out` and returns the bytes consumed (`1 + 3·width`). The reserved upper
/// nibble of the exponent byte is ignored. Values whose `mantissa << e` does
/// not fit 16 bits (only possible with a foreign exponent > 16 − width) wrap.
pub fn decompress_prb(input: &[u8], width: u8, out: &mut [i16; SAMPLES_PER_PRB]) -> Result<usize, FhError> {
    check_width(width)?;
    let pb = prb_bytes(width, Compression::Bfp);
    if input.len() < pb {
        return Err(FhError::Truncated { what: "bfp prb", need: pb, have: input.len() });
    }
    by_width!(width, decompress_one, input, &mut out[..]);
    Ok(pb)
}

fn check_bulk(iq_len: usize, bytes_len: usize, width: u8, compression: Compression, what: &'static str) -> Result<(usize, usize), FhError> {
    check_width(width)?;
    if iq_len % SAMPLES_PER_PRB != 0 {
        return Err(FhError::IqLength { need: iq_len.next_multiple_of(SAMPLES_PER_PRB), have: iq_len });
    }
    let prbs = iq_len / SAMPLES_PER_PRB;
    let need = prbs * prb_bytes(width, compression);
    if bytes_len < need {
        return Err(if what == "out" {
            FhError::BufferTooSmall { need, have: bytes_len }
        } else {
            FhError::Truncated { what, need, have: bytes_len }
        });
    }
    Ok((prbs, need))
}

/// Compresses `iq.len() / 24` PRBs (`iq.len()` must be a multiple of 24) with
/// BFP of `width` bits into `out`; returns the bytes written.
pub fn compress_prbs(iq: &[i16], width: u8, out: &mut [u8]) -> Result<usize, FhError> {
    check_bulk(iq.len(), out.len(), width, Compression::Bfp, "out")?;
    Ok(by_width!(width, compress_n, iq, out))
}

/// Decompresses `out.len() / 24` BFP PRBs of `width` bits (`out.len()` must be
/// a multiple of 24) from the start of `input`; returns the bytes consumed.
pub fn decompress_prbs(input: &[u8], width: u8, out: &mut [i16]) -> Result<usize, FhError> {
    check_bulk(out.len(), input.len(), width, Compression::Bfp, "bfp prbs")?;
    Ok(by_width!(width, decompress_n, input, out))
}

/// Writes `iq.len() / 24` PRBs uncompressed as big-endian 16-bit samples
/// (48 bytes per PRB); returns the bytes written.
pub fn pack_prbs_16(iq: &[i16], out: &mut [u8]) -> Result<usize, FhError> {
    encode_prbs(iq, 16, Compression::None, out)
}

/// Reads `out.len() / 24` uncompressed 16-bit PRBs; returns the bytes consumed.
pub fn unpack_prbs_16(input: &[u8], out: &mut [i16]) -> Result<usize, FhError> {
    decode_prbs(input, 16, Compression::None, out)
}

/// Encodes `iq.len() / 24` PRBs with the given width and compression into
/// `out`; returns the bytes written. Uncompressed widths below 16 clamp each
/// sample to the `width`-bit range.
pub fn encode_prbs(iq: &[i16], width: u8, compression: Compression, out: &mut [u8]) -> Result<usize, FhError> {
    check_bulk(iq.len(), out.len(), width, compression, "out")?;
    Ok(match compression {
        Compression::Bfp => by_width!(width, compress_n, iq, out),
        Compression::None => by_width!(width, pack_plain_n, iq, out),
    })
}

/// Decodes `out.len() / 24` PRBs of the given width and compression from the
/// start of `input`; returns the bytes consumed.
pub fn decode_prbs(input: &[u8], width: u8, compression: Compression, out: &mut [i16]) -> Result<usize, FhError> {
    check_bulk(out.len(), input.len(), width, compression, "prbs")?;
    Ok(match compression {
        Compression::Bfp => by_width!(width, decompress_n, input, out),
        Compression::None => by_width!(width, unpack_plain_n, input, out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(prb_bytes(9, Compression::Bfp), 28);
        assert_eq!(prb_bytes(16, Compression::None), 48);
        assert_eq!(prb_bytes(16, Compression::Bfp), 49);
    }

    #[test]
    fn width9_layout_is_msb_first() {
        let mut iq = [0i16; 24];
        iq[0] = 255; // needs 9 bits: e = 0
        iq[1] = -1;
        let mut out = [0u8; 28];
        assert_eq!(compress_prb(&iq, 9, &mut out), 28);
        assert_eq!(out[0], 0);
        // 255 = 0_1111_1111, -1 = 1_1111_1111 → 0111 1111 | 1111 1111 | 11...
        assert_eq!(&out[1..4], &[0x7f, 0xff, 0xc0]);
        let mut back = [0i16; 24];
        assert_eq!(decompress_prb(&out, 9, &mut back), Ok(28));
        assert_eq!(back, iq);
    }

    #[test]
    fn exponent_is_smallest_without_saturation() {
        let mut iq = [0i16; 24];
        iq[5] = 256; // 10 bits signed → e = 1 at W = 9
        assert_eq!(exponent(&iq, 9), 1);
        iq[5] = -256; // fits 9 bits
        assert_eq!(exponent(&iq, 9), 0);
        iq[5] = i16::MIN;
        assert_eq!(exponent(&iq, 9), 7);
        assert_eq!(exponent(&iq, 1), 15);
        assert_eq!(exponent(&iq, 16), 0);
    }

    #[test]
    fn every_width_round_trips_within_bound() {
        let iq: Vec<i16> = (0..24 * 5).map(|i: i32| ((i * 7919 - 30000) % 32768) as i16).collect();
        for w in 1..=16u8 {
            for comp in [Compression::Bfp, Compression::None] {
                let mut buf = vec![0u8; 5 * prb_bytes(w, comp)];
                let n = encode_prbs(&iq, w, comp, &mut buf).unwrap();
                assert_eq!(n, buf.len());
                let mut back = vec![0i16; iq.len()];
                assert_eq!(decode_prbs(&buf, w, comp, &mut back).unwrap(), n);
                if comp == Compression::Bfp {
                    for (p, (x, y)) in iq.chunks(24).zip(back.chunks(24)).enumerate() {
                        let e = buf[p * prb_bytes(w, comp)];
                        for (&a, &b) in x.iter().zip(y) {
                            let d = i32::from(a) - i32::from(b);
                            assert!((0..(1 << e)).contains(&d), "w={w} e={e} {a} -> {b}");
                        }
                    }
                } else if w == 16 {
                    assert_eq!(back, iq);
                }
            }
        }
    }

    fn generic_compress<const W: usize>(iq: &[i16; 24]) -> Vec<u8> {
        let e = exponent(iq, W as u8);
        let mut out = vec![0u8; 1 + 3 * W];
        out[0] = e;
        for g in 0..3 {
            pack8::<W>(&iq[8 * g..8 * g + 8], u32::from(e), &mut out[1 + g * W..1 + (g + 1) * W]);
        }
        out
    }

    fn check_specialised<const W: usize>(iq: &[i16; 24]) {
        let generic = generic_compress::<W>(iq);
        let mut fast = vec![0u8; 1 + 3 * W];
        compress_one::<W>(iq, &mut fast);
        assert_eq!(fast, generic, "compress w{W}");
        let mut a = [0i16; 24];
        let mut b = [0i16; 24];
        decompress_one::<W>(&generic, &mut a);
        let e = u32::from(generic[0]);
        for g in 0..3 {
            unpack8::<W>(&generic[1 + g * W..], e, &mut b[8 * g..8 * g + 8]);
        }
        assert_eq!(a, b, "decompress w{W}");
    }

    #[test]
    fn specialised_kernels_match_the_generic_packer() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for round in 0..2000 {
            let mut iq = [0i16; 24];
            for v in iq.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = (x >> 48) as i16 >> (round % 16);
            }
            check_specialised::<8>(&iq);
            check_specialised::<9>(&iq);
            check_specialised::<16>(&iq);
        }
        // Extremes.
        for v in [i16::MIN, i16::MAX, -1, 0, 255, -256] {
            check_specialised::<9>(&[v; 24]);
            check_specialised::<8>(&[v; 24]);
        }
    }

    #[test]
    fn errors_not_panics() {
        let mut out = [0i16; 24];
        assert!(matches!(decompress_prb(&[0; 27], 9, &mut out), Err(FhError::Truncated { .. })));
        assert_eq!(decompress_prb(&[0; 28], 0, &mut out), Err(FhError::BadWidth(0)));
        assert_eq!(decompress_prb(&[0; 28], 17, &mut out), Err(FhError::BadWidth(17)));
        let mut v = [0i16; 25];
        assert!(matches!(decompress_prbs(&[0; 100], 9, &mut v), Err(FhError::IqLength { .. })));
        assert!(matches!(compress_prbs(&[0; 48], 9, &mut [0u8; 55]), Err(FhError::BufferTooSmall { need: 56, have: 55 })));
    }
}
