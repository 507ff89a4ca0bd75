//! The hot kernels, written as portable 16-lane loops over blocks of 16
//! subcarriers with separate real and imaginary arrays (SoA). LLVM turns the
//! lane loops into SSE2, AVX2 or AVX-512 code depending on the features the
//! calling function was compiled with (see [`super::dispatch`]); the small
//! matrix loops have const bounds (`L` layers) and are unrolled.
//!
//! Everything here is `#[inline(always)]` so it is compiled inside each
//! `#[target_feature]` wrapper.
//!
//! The lane and matrix loops index several arrays with one counter on
//! purpose (that is the shape LLVM vectorises), hence the clippy allowance.
#![allow(clippy::needless_range_loop)]

/// Subcarriers per block (one 512-bit vector of `f32`).
pub const LANES: usize = 16;
/// Blocks per tile in [`detect`].
const TILE: usize = 8;
/// One block of 16 lanes, 64-byte aligned so spills and reloads of the
/// small matrices never split a cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct V([f32; LANES]);

impl std::ops::Index<usize> for V {
    type Output = f32;
    #[inline(always)]
    fn index(&self, i: usize) -> &f32 {
        &self.0[i]
    }
}

impl std::ops::IndexMut<usize> for V {
    #[inline(always)]
    fn index_mut(&mut self, i: usize) -> &mut f32 {
        &mut self.0[i]
    }
}

const Z: V = V([0.0; LANES]);
/// 1.5·2²³: adding it to |v| < 2²² leaves round(v) in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
const ROUND_MAGIC_BITS: i32 = 0x4B40_0000;

/// Inputs and outputs of [`weights`].
pub struct WeightArgs<'a> {
    /// Receive antennas.
    pub antennas: usize,
    /// Blocks of 16 subcarriers.
    pub nblk: usize,
    /// Padded subcarriers per row (`nblk · 16`).
    pub nscp: usize,
    /// Noise variance per resource element (in the grid's units).
    pub n0: f32,
    /// √N: scales the equalised symbol so constellation levels sit at odd integers.
    pub norm: f32,
    /// Channel estimate `[antenna][layer][subcarrier]`, real part.
    pub h_re: &'a [f32],
    /// Channel estimate, imaginary part.
    pub h_im: &'a [f32],
    /// Weights `[block][layer][antenna][lane]`, real part.
    pub w_re: &'a mut [f32],
    /// Weights, imaginary part.
    pub w_im: &'a mut [f32],
    /// LLR scale per `[layer][subcarrier]`: 4 / post-equaliser noise variance in level units.
    pub c: &'a mut [f32],
}

/// `max` as a compare-and-select (vectorises to `maxps`; `f32::max` with its
/// NaN rules does not always).
#[inline(always)]
fn fmax(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// `min` as a compare-and-select.
#[inline(always)]
fn fmin(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// `1 / v` per lane, in a loop of its own (vectorises to one `vdivps`).
#[inline(always)]
fn recip(v: &V) -> V {
    let mut r = Z;
    for i in 0..LANES {
        r[i] = 1.0 / v[i];
    }
    r
}

#[inline(always)]
fn load(s: &[f32], at: usize) -> V {
    let mut v = Z;
    v.0.copy_from_slice(&s[at..at + LANES]);
    v
}

/// Per-subcarrier equaliser weights: MRC for one layer, unbiased MMSE
/// (`(HᴴH + N0·I)⁻¹Hᴴ`, each row divided by its gain μ) for several; also the
/// LLR scale from the post-equaliser SINR.
#[inline(always)]
pub fn weights<const L: usize, const A: usize>(a: &mut WeightArgs<'_>) {
    // A > 0: antenna count known at compile time (loops unrolled, the
    // accumulators stay in registers); A = 0: run-time `a.antennas`.
    let an = if A == 0 { a.antennas } else { A };
    let n0 = a.n0;
    let norm = a.norm;
    for blk in 0..a.nblk {
        let o = blk * LANES;
        let wb = blk * L * an * LANES;
        if L == 1 {
            let mut nrm = Z;
            for ant in 0..an {
                let hr = load(a.h_re, ant * a.nscp + o);
                let hi = load(a.h_im, ant * a.nscp + o);
                for i in 0..LANES {
                    nrm[i] += hr[i] * hr[i] + hi[i] * hi[i];
                }
            }
            let mut den = Z;
            for i in 0..LANES {
                den[i] = nrm[i] + 1e-30; // ‖h‖² ≥ 0: the offset only guards 0
            }
            let rcp = recip(&den);
            let mut inv = Z;
            for i in 0..LANES {
                inv[i] = norm * rcp[i];
            }
            for ant in 0..an {
                let hr = load(a.h_re, ant * a.nscp + o);
                let hi = load(a.h_im, ant * a.nscp + o);
                let wr = &mut a.w_re[wb + ant * LANES..][..LANES];
                let wi = &mut a.w_im[wb + ant * LANES..][..LANES];
                for i in 0..LANES {
                    wr[i] = hr[i] * inv[i];
                    wi[i] = -hi[i] * inv[i];
                }
            }
            let cs = 4.0 / (norm * norm * n0);
            let c = &mut a.c[o..o + LANES];
            for i in 0..LANES {
                c[i] = nrm[i] * cs;
            }
            continue;
        }
        // Gram matrix G = HᴴH + N0·I (Hermitian; full matrix kept for simplicity).
        let mut gr = [[Z; L]; L];
        let mut gi = [[Z; L]; L];
        for ant in 0..an {
            let mut hr = [Z; L];
            let mut hi = [Z; L];
            for l in 0..L {
                hr[l] = load(a.h_re, (ant * L + l) * a.nscp + o);
                hi[l] = load(a.h_im, (ant * L + l) * a.nscp + o);
            }
            for r in 0..L {
                for s in r..L {
                    for i in 0..LANES {
                        // conj(h_r) * h_s
                        gr[r][s][i] += hr[r][i] * hr[s][i] + hi[r][i] * hi[s][i];
                        gi[r][s][i] += hr[r][i] * hi[s][i] - hi[r][i] * hr[s][i];
                    }
                }
            }
        }
        for r in 0..L {
            for i in 0..LANES {
                gr[r][r][i] += n0;
                gi[r][r][i] = 0.0;
            }
            for s in 0..r {
                for i in 0..LANES {
                    gr[r][s][i] = gr[s][r][i];
                    gi[r][s][i] = -gi[s][r][i];
                }
            }
        }
        // Gauss-Jordan inversion (G is Hermitian positive definite: no pivoting needed).
        let mut ir = [[Z; L]; L];
        let mut ii = [[Z; L]; L];
        for r in 0..L {
            ir[r][r] = V([1.0; LANES]);
        }
        for p in 0..L {
            // pivot is real for a Hermitian PD matrix in exact arithmetic; use the complex value anyway.
            // Separate lane loops: fused with the division LLVM left them scalar.
            let mut den = Z;
            for i in 0..LANES {
                den[i] = gr[p][p][i] * gr[p][p][i] + gi[p][p][i] * gi[p][p][i];
            }
            let d = recip(&den);
            let mut pr = Z;
            let mut pi = Z;
            for i in 0..LANES {
                pr[i] = gr[p][p][i] * d[i];
                pi[i] = -gi[p][p][i] * d[i];
            }
            // Only the live columns are touched: G's columns right of the
            // pivot (the others are already 0/1 and never read again), and
            // the inverse's columns up to the pivot (the rest are still 0).
            for s in p + 1..L {
                for i in 0..LANES {
                    let (x, y) = (gr[p][s][i], gi[p][s][i]);
                    gr[p][s][i] = x * pr[i] - y * pi[i];
                    gi[p][s][i] = x * pi[i] + y * pr[i];
                }
            }
            for s in 0..=p {
                for i in 0..LANES {
                    let (x, y) = (ir[p][s][i], ii[p][s][i]);
                    ir[p][s][i] = x * pr[i] - y * pi[i];
                    ii[p][s][i] = x * pi[i] + y * pr[i];
                }
            }
            for r in 0..L {
                if r == p {
                    continue;
                }
                let fr = gr[r][p];
                let fi = gi[r][p];
                // Copies of the pivot rows: no aliasing between source and
                // destination, so the lane loops vectorise.
                let (pgr, pgi, pir, pii) = (gr[p], gi[p], ir[p], ii[p]);
                for s in p + 1..L {
                    for i in 0..LANES {
                        gr[r][s][i] -= fr[i] * pgr[s][i] - fi[i] * pgi[s][i];
                        gi[r][s][i] -= fr[i] * pgi[s][i] + fi[i] * pgr[s][i];
                    }
                }
                for s in 0..=p {
                    for i in 0..LANES {
                        ir[r][s][i] -= fr[i] * pir[s][i] - fi[i] * pii[s][i];
                        ii[r][s][i] -= fr[i] * pii[s][i] + fi[i] * pir[s][i];
                    }
                }
            }
        }
        // μ_l = 1 − N0·(G⁻¹)_ll ; row scale √N / μ_l ; LLR scale 4μ/(N(1−μ)).
        let mut rs = [Z; L];
        for l in 0..L {
            let mut mu = Z;
            let mut den = Z;
            for i in 0..LANES {
                // 0 < μ < 1 in exact arithmetic; abs + offset keep rounding
                // from producing 0 or a negative (and vectorise, unlike a max).
                mu[i] = (1.0 - n0 * ir[l][l][i]).abs() + 1e-20;
                den[i] = norm * norm * ((n0 * ir[l][l][i]).abs() + 1e-30);
            }
            let inv_mu = recip(&mu);
            let inv_den = recip(&den);
            let mut cl = Z;
            for i in 0..LANES {
                rs[l][i] = norm * inv_mu[i];
                cl[i] = 4.0 * mu[i] * inv_den[i];
            }
            a.c[l * a.nscp + o..][..LANES].copy_from_slice(&cl.0);
        }
        // W = diag(rs) · G⁻¹ · Hᴴ, stored [layer][antenna][lane].
        for ant in 0..an {
            let mut hr = [Z; L];
            let mut hi = [Z; L];
            for l in 0..L {
                hr[l] = load(a.h_re, (ant * L + l) * a.nscp + o);
                hi[l] = load(a.h_im, (ant * L + l) * a.nscp + o);
            }
            for l in 0..L {
                let mut accr = Z;
                let mut acci = Z;
                for j in 0..L {
                    for i in 0..LANES {
                        // Ginv[l][j] * conj(h[ant][j])
                        accr[i] += ir[l][j][i] * hr[j][i] + ii[l][j][i] * hi[j][i];
                        acci[i] += ii[l][j][i] * hr[j][i] - ir[l][j][i] * hi[j][i];
                    }
                }
                let at = wb + (l * an + ant) * LANES;
                let wr = &mut a.w_re[at..at + LANES];
                for i in 0..LANES {
                    wr[i] = accr[i] * rs[l][i];
                }
                let wi = &mut a.w_im[at..at + LANES];
                for i in 0..LANES {
                    wi[i] = acci[i] * rs[l][i];
                }
            }
        }
    }
}

/// Inputs and outputs of [`detect`].
pub struct DetectArgs<'a> {
    /// Receive antennas.
    pub antennas: usize,
    /// Blocks of 16 subcarriers.
    pub nblk: usize,
    /// Padded subcarriers per row.
    pub nscp: usize,
    /// Real subcarriers (`prbs · 12`).
    pub nsc: usize,
    /// Received grid `[antenna][symbol 0..14][subcarrier]`, real part.
    pub y_re: &'a [f32],
    /// Received grid, imaginary part.
    pub y_im: &'a [f32],
    /// Symbols carrying data, ascending.
    pub data_syms: &'a [u8],
    /// Weights from [`weights`], real part.
    pub w_re: &'a [f32],
    /// Weights, imaginary part.
    pub w_im: &'a [f32],
    /// LLR scale per `[layer][subcarrier]`.
    pub c: &'a [f32],
    /// Output LLRs `[layer][data symbol][block][bit][lane]` (i8, positive = bit 0).
    pub llr: &'a mut [i8],
    /// Expected bits `[layer][data symbol][block][bit]`, one `u16` (16 lanes) each.
    pub expected: &'a [u16],
    /// Accumulator that keeps the equaliser output alive when demapping is skipped (benches).
    pub sink: &'a mut [f32],
}

/// Equalises every data symbol (`x = W·y`), demaps it to max-log LLRs and
/// counts hard-decision bit errors against `expected`; returns the errors.
///
/// The demapper uses the 38.211 Gray structure per dimension: with `u` the
/// equalised value in level units (levels at odd integers), the bit metrics
/// are `u`, `2^(m-1) − |u|`, `2^(m-2) − |t|`, … — the max-log LLR between the
/// nearest points on either side of each decision boundary — scaled by
/// `4 / σ²` of that subcarrier and layer and saturated to i8.
/// `DEMAP = false` stops after equalisation, `CHECK = false` after demapping
/// (for per-stage benches).
#[inline(always)]
pub fn detect<const L: usize, const A: usize, const Q: usize, const DEMAP: bool, const CHECK: bool>(
    a: &mut DetectArgs<'_>,
) -> u64 {
    // A > 0: antenna count known at compile time; A = 0: run-time `a.antennas`.
    let an = if A == 0 { a.antennas } else { A };
    let nd = a.data_syms.len();
    let m = Q / 2;
    let mut errors = 0u64;
    // Tiles of TILE blocks: the tile's weights stay in L1 while every data
    // symbol passes, and each grid row is read in runs of TILE·64 bytes.
    for tile in (0..a.nblk).step_by(TILE) {
        for (ds, &sym) in a.data_syms.iter().enumerate() {
            for blk in tile..(tile + TILE).min(a.nblk) {
                let o = blk * LANES;
                let wb = blk * L * an * LANES;
                let valid: u16 = if o + LANES <= a.nsc {
                    u16::MAX
                } else {
                    ((1u32 << (a.nsc - o)) - 1) as u16
                };
                let mut xr = [Z; L];
                let mut xi = [Z; L];
                // One bounds check per block for the weights.
                let (wrb, wib) = (&a.w_re[wb..wb + L * an * LANES], &a.w_im[wb..wb + L * an * LANES]);
                for ant in 0..an {
                    let yo = (ant * 14 + usize::from(sym)) * a.nscp + o;
                    let yr = load(a.y_re, yo);
                    let yi = load(a.y_im, yo);
                    for l in 0..L {
                        let wo = (l * an + ant) * LANES;
                        let wr = load(wrb, wo);
                        let wi = load(wib, wo);
                        for i in 0..LANES {
                            xr[l][i] += wr[i] * yr[i] - wi[i] * yi[i];
                            xi[l][i] += wr[i] * yi[i] + wi[i] * yr[i];
                        }
                    }
                }
                if !DEMAP {
                    for l in 0..L {
                        for i in 0..LANES {
                            a.sink[i] += xr[l][i] + xi[l][i];
                        }
                    }
                    continue;
                }
                for l in 0..L {
                    let c = load(a.c, l * a.nscp + o);
                    // LLRs and expected bits of this (layer, symbol, block): contiguous.
                    let cell = (l * nd + ds) * a.nblk + blk;
                    let out = &mut a.llr[cell * Q * LANES..(cell + 1) * Q * LANES];
                    let exp = &a.expected[cell * Q..(cell + 1) * Q];
                    let mut tr = xr[l];
                    let mut ti = xi[l];
                    for j in 0..m {
                        if j > 0 {
                            let half = (1u32 << (m - j)) as f32;
                            for i in 0..LANES {
                                tr[i] = half - tr[i].abs();
                                ti[i] = half - ti[i].abs();
                            }
                        }
                        for (b, t) in [(2 * j, &tr), (2 * j + 1, &ti)] {
                            // Saturate in f32 and round to the nearest integer with the
                            // 1.5·2²³ trick (vectorises; a saturating `as i32` does not).
                            let mut q = [0i32; LANES];
                            for i in 0..LANES {
                                let v = fmin(fmax(c[i] * t[i], -127.0), 127.0);
                                q[i] = ((v + ROUND_MAGIC).to_bits() as i32)
                                    .wrapping_sub(ROUND_MAGIC_BITS);
                            }
                            let mut qb = [0i8; LANES];
                            for i in 0..LANES {
                                qb[i] = q[i] as i8;
                            }
                            out[b * LANES..(b + 1) * LANES].copy_from_slice(&qb);
                            if CHECK {
                                let mask = super::dispatch::sign_mask16(&qb);
                                errors += u64::from(((mask ^ exp[b]) & valid).count_ones());
                            }
                        }
                    }
                }
            }
        }
    }
    errors
}

/// Interleaved 16-bit IQ → scaled `f32` real and imaginary rows.
#[inline(always)]
pub fn widen(iq: &[i16], scale: f32, re: &mut [f32], im: &mut [f32]) {
    let n = re.len().min(im.len()).min(iq.len() / 2);
    for ((pair, r), m) in iq[..2 * n]
        .chunks_exact(2)
        .zip(&mut re[..n])
        .zip(&mut im[..n])
    {
        *r = f32::from(pair[0]) * scale;
        *m = f32::from(pair[1]) * scale;
    }
}

/// Inputs and outputs of [`chest`].
pub struct ChestArgs<'a> {
    /// Receive antennas.
    pub antennas: usize,
    /// Layers (comb spacing).
    pub layers: usize,
    /// Real subcarriers.
    pub nsc: usize,
    /// Padded subcarriers per row.
    pub nscp: usize,
    /// DMRS symbols, ascending.
    pub dmrs_syms: &'a [u8],
    /// Received grid, real part.
    pub y_re: &'a [f32],
    /// Received grid, imaginary part.
    pub y_im: &'a [f32],
    /// Pilots `[dmrs][subcarrier]` divided by |p|², real part.
    pub pil_re: &'a [f32],
    /// Pilots, imaginary part.
    pub pil_im: &'a [f32],
    /// Scratch `[dmrs][subcarrier]`: per-symbol LS estimates, then their mean in row 0.
    pub zd_re: &'a mut [f32],
    /// Scratch, imaginary part.
    pub zd_im: &'a mut [f32],
    /// Interpolation base pilot per `[layer][subcarrier]`.
    pub k0: &'a [u32],
    /// Interpolation fraction per `[layer][subcarrier]`.
    pub frac: &'a [f32],
    /// Output channel estimate `[antenna][layer][subcarrier]`, real part.
    pub h_re: &'a mut [f32],
    /// Output, imaginary part.
    pub h_im: &'a mut [f32],
}

/// Noise and power sums from [`chest`].
pub struct ChestSums {
    /// Sum of squared deviations of the LS estimates (variance N0/L each).
    pub noise_sum: f64,
    /// Number of degrees of freedom in `noise_sum`.
    pub noise_count: usize,
    /// Sum of |ĥ|² over antennas and subcarriers.
    pub power_sum: f64,
}

/// Least-squares channel estimation on the DMRS symbols (see the module docs of `pipeline`).
#[inline(always)]
pub fn chest(a: &mut ChestArgs<'_>) -> ChestSums {
    let (ln, nsc, nscp) = (a.layers, a.nsc, a.nscp);
    let nd = a.dmrs_syms.len();
    let mut nacc = Z;
    let mut pacc = Z;
    let mut noise_sum = 0f64;
    let mut noise_count = 0usize;
    let mut power_sum = 0f64;
    for ant in 0..a.antennas {
        // z_d = y · conj(p) / |p|² on every subcarrier of every DMRS symbol.
        for (d, &sym) in a.dmrs_syms.iter().enumerate() {
            let row = (ant * 14 + usize::from(sym)) * nscp;
            let (yr, yi) = (&a.y_re[row..row + nscp], &a.y_im[row..row + nscp]);
            let (pr, pi) = (&a.pil_re[d * nscp..(d + 1) * nscp], &a.pil_im[d * nscp..(d + 1) * nscp]);
            let (zr, zi) = (&mut a.zd_re[d * nscp..(d + 1) * nscp], &mut a.zd_im[d * nscp..(d + 1) * nscp]);
            for k in 0..nscp {
                zr[k] = yr[k] * pr[k] + yi[k] * pi[k];
                zi[k] = yi[k] * pr[k] - yr[k] * pi[k];
            }
        }
        if nd > 1 {
            // Mean over DMRS symbols into row 0; spread → noise (per-lane sums).
            let inv = 1.0 / nd as f32;
            for blk in 0..nscp / LANES {
                let o = blk * LANES;
                let mut sr = Z;
                let mut si = Z;
                for d in 0..nd {
                    let (zr, zi) = (load(a.zd_re, d * nscp + o), load(a.zd_im, d * nscp + o));
                    for i in 0..LANES {
                        sr[i] += zr[i];
                        si[i] += zi[i];
                    }
                }
                for i in 0..LANES {
                    sr[i] *= inv;
                    si[i] *= inv;
                }
                for d in 0..nd {
                    let (zr, zi) = (load(a.zd_re, d * nscp + o), load(a.zd_im, d * nscp + o));
                    for i in 0..LANES {
                        let (er, ei) = (zr[i] - sr[i], zi[i] - si[i]);
                        nacc[i] += er * er + ei * ei;
                    }
                }
                for i in 0..LANES {
                    pacc[i] += sr[i] * sr[i] + si[i] * si[i];
                }
                a.zd_re[o..o + LANES].copy_from_slice(&sr.0);
                a.zd_im[o..o + LANES].copy_from_slice(&si.0);
            }
            noise_count += nsc * (nd - 1);
        } else {
            // One DMRS symbol: residual of each pilot against its comb neighbours.
            for l in 0..ln {
                let mut k = l + ln;
                while k + ln < nsc {
                    let er = a.zd_re[k] - 0.5 * (a.zd_re[k - ln] + a.zd_re[k + ln]);
                    let ei = a.zd_im[k] - 0.5 * (a.zd_im[k - ln] + a.zd_im[k + ln]);
                    noise_sum += f64::from(er * er + ei * ei) / 1.5;
                    noise_count += 1;
                    k += ln;
                }
            }
            for k in 0..nsc {
                power_sum += f64::from(a.zd_re[k] * a.zd_re[k] + a.zd_im[k] * a.zd_im[k]);
            }
        }
        // Interpolate each layer's comb across all subcarriers.
        let (zr, zi) = (&a.zd_re[..nscp], &a.zd_im[..nscp]);
        for l in 0..ln {
            let out = (ant * ln + l) * nscp;
            let (k0s, fs) = (&a.k0[l * nsc..(l + 1) * nsc], &a.frac[l * nsc..(l + 1) * nsc]);
            let (hr, hi) = (&mut a.h_re[out..out + nsc], &mut a.h_im[out..out + nsc]);
            for k in 0..nsc {
                let k0 = k0s[k] as usize;
                let f = fs[k];
                let (r0, i0) = (zr[k0], zi[k0]);
                hr[k] = r0 + f * (zr[k0 + ln] - r0);
                hi[k] = i0 + f * (zi[k0 + ln] - i0);
            }
            // Padding lanes: repeat the last subcarrier (keeps the maths finite).
            let (lr, li) = (a.h_re[out + nsc - 1], a.h_im[out + nsc - 1]);
            a.h_re[out + nsc..out + nscp].iter_mut().for_each(|v| *v = lr);
            a.h_im[out + nsc..out + nscp].iter_mut().for_each(|v| *v = li);
        }
    }
    for i in 0..LANES {
        noise_sum += f64::from(nacc[i]);
        power_sum += f64::from(pacc[i]);
    }
    ChestSums { noise_sum, noise_count, power_sum }
}
