//! The seeded traffic model both ends regenerate: known QAM symbols per
//! layer, DMRS pilots, a known antennas × layers channel and AWGN.
//!
//! # What a slot carries
//!
//! The model precomputes a pool of [`CellConfig::distinct_slots`] slots;
//! slot `n` carries pool entry `n % distinct_slots`, so neither end draws
//! random numbers at run time.
//!
//! * **Data symbols** (every symbol not listed in `cell.dmrs_symbols`): each
//!   layer sends one QAM point per subcarrier, Gray mapped as in 3GPP TS
//!   38.211 §5.1 ([`qam_point`]), unit average power per layer. The QAM
//!   indices come from [`Reference::qam_indices`]; bit `i` of a point (38.211
//!   order b(i)) is `(index >> (Q - 1 - i)) & 1`.
//! * **DMRS symbols**: a frequency comb separates the layers: subcarrier `k`
//!   carries a pilot of layer `k % layers` only (the other layers are silent
//!   there), QPSK from the seeded generator, power-boosted by `√layers` so a
//!   DMRS symbol has the same power as a data symbol ([`Reference::dmrs_pilots`]).
//! * **Channel**: per pool entry, a Rician antennas × layers channel: a
//!   line-of-sight part with orthogonal (DFT) spatial signatures and random
//!   phases, plus three scattered taps with small delays (≤ 300 ns at µ ≤ 1,
//!   scaled by 2^-µ above) and bounded amplitudes. The result is frequency
//!   selective (tens of fades across 100 MHz) yet smooth across a DMRS comb,
//!   and always well conditioned for MMSE (the scattered part can never
//!   cancel the line of sight). Average gain per antenna and layer ≈ 1.
//! * **Noise**: complex AWGN of variance `10^(-snr_db/10)`, i.e. `snr_db` is
//!   the per-layer Es/N0 at each receive antenna.
//! * **IQ**: the received signal scaled so its RMS sits 15 dB below 16-bit
//!   full scale ([`TrafficModel::iq_scale`]), rounded and clamped to `i16`.
//!
//! # Determinism
//!
//! Everything comes from hand-written SplitMix64/xoshiro256** streams keyed
//! by (seed, pool entry, purpose). The reference data a receiver checks
//! against (QAM indices and DMRS pilots) is derived from integers only and is
//! therefore identical on every platform; the channel and noise use `f64`
//! `ln`/`cos`/`sin` and only shape the IQ the radio sends.

use crate::cell::{CellConfig, CellError, Modulation};

/// Complex RMS of the received signal relative to 16-bit full scale, in dB.
pub const BACK_OFF_DB: f32 = 15.0;

/// SplitMix64 step: used to derive independent stream seeds.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** generator: small, fast, identical on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

/// What a random stream is used for (keeps streams independent).
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Bits = 1,
    Pilots = 2,
    Channel = 3,
    Noise = 4,
}

impl Rng {
    /// A generator seeded from `seed` through SplitMix64.
    pub fn new(seed: u64) -> Rng {
        let mut st = seed;
        let s = [splitmix64(&mut st), splitmix64(&mut st), splitmix64(&mut st), splitmix64(&mut st)];
        Rng { s }
    }

    fn stream(seed: u64, entry: usize, purpose: Purpose) -> Rng {
        let mut st = seed ^ 0x6372_616E_6C61_6221;
        let a = splitmix64(&mut st);
        let mut st2 = a ^ ((entry as u64) << 8) ^ purpose as u64;
        let b = splitmix64(&mut st2);
        Rng::new(b)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard complex Gaussian sample (variance 1 in total, 1/2 per component).
    pub fn complex_gaussian(&mut self) -> (f64, f64) {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        let r = (-u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        (r * th.cos(), r * th.sin())
    }
}

/// The constellation point of QAM index `index` (bits b(0) most significant),
/// Gray mapped and normalised to unit average power as in TS 38.211 §5.1.
pub fn qam_point(modulation: Modulation, index: u8) -> (f32, f32) {
    let q = modulation.bits_per_symbol();
    let bit = |i: u32| -> f32 { 1.0 - 2.0 * f32::from((index >> (q - 1 - i)) & 1) };
    match modulation {
        Modulation::Qpsk => {
            let n = std::f32::consts::FRAC_1_SQRT_2;
            (bit(0) * n, bit(1) * n)
        }
        Modulation::Qam16 => {
            let n = 1.0 / 10f32.sqrt();
            (bit(0) * (2.0 - bit(2)) * n, bit(1) * (2.0 - bit(3)) * n)
        }
        Modulation::Qam64 => {
            let n = 1.0 / 42f32.sqrt();
            (bit(0) * (4.0 - bit(2) * (2.0 - bit(4))) * n, bit(1) * (4.0 - bit(3) * (2.0 - bit(5))) * n)
        }
        Modulation::Qam256 => {
            let n = 1.0 / 170f32.sqrt();
            (
                bit(0) * (8.0 - bit(2) * (4.0 - bit(4) * (2.0 - bit(6)))) * n,
                bit(1) * (8.0 - bit(3) * (4.0 - bit(5) * (2.0 - bit(7)))) * n,
            )
        }
    }
}

/// The reference data a receiver checks itself against: QAM indices per layer
/// and DMRS pilots. Cheap to build (integers only, no IQ); the worker builds
/// this rather than the full [`TrafficModel`].
#[derive(Debug, Clone)]
pub struct Reference {
    cell: CellConfig,
    pool: usize,
    nsc: usize,
    data_symbols: Vec<u8>,
    dmrs_symbols: Vec<u8>,
    /// [entry][layer][data symbol][subcarrier]
    indices: Vec<u8>,
    /// [entry][dmrs symbol][subcarrier] -> (re, im)
    pilots: Vec<[f32; 2]>,
}

impl Reference {
    /// Builds the reference data of `cell` (validated first).
    pub fn new(cell: &CellConfig) -> Result<Reference, CellError> {
        cell.validate()?;
        let pool = usize::from(cell.distinct_slots);
        let nsc = usize::from(cell.prbs) * 12;
        let layers = usize::from(cell.layers);
        let mask = cell.dmrs_mask();
        let data_symbols: Vec<u8> = (0..14u8).filter(|s| mask & (1 << s) == 0).collect();
        let mut dmrs_symbols: Vec<u8> = cell.dmrs_symbols.clone();
        dmrs_symbols.sort_unstable();
        let q = cell.modulation.bits_per_symbol();
        let nd = data_symbols.len();
        let mut indices = vec![0u8; pool * layers * nd * nsc];
        let mut pilots = vec![[0f32; 2]; pool * dmrs_symbols.len() * nsc];
        let boost = (layers as f32).sqrt() * std::f32::consts::FRAC_1_SQRT_2;
        for e in 0..pool {
            let mut rng = Rng::stream(cell.seed, e, Purpose::Bits);
            let chunk = &mut indices[e * layers * nd * nsc..(e + 1) * layers * nd * nsc];
            let mut word = 0u64;
            let mut left = 0u32;
            for v in chunk.iter_mut() {
                if left < q {
                    word = rng.next_u64();
                    left = 64;
                }
                *v = (word & ((1u64 << q) - 1)) as u8;
                word >>= q;
                left -= q;
            }
            let mut rng = Rng::stream(cell.seed, e, Purpose::Pilots);
            let chunk = &mut pilots[e * dmrs_symbols.len() * nsc..(e + 1) * dmrs_symbols.len() * nsc];
            let mut word = 0u64;
            let mut left = 0u32;
            for p in chunk.iter_mut() {
                if left < 2 {
                    word = rng.next_u64();
                    left = 64;
                }
                let b0 = (word & 1) as f32;
                let b1 = ((word >> 1) & 1) as f32;
                word >>= 2;
                left -= 2;
                *p = [(1.0 - 2.0 * b0) * boost, (1.0 - 2.0 * b1) * boost];
            }
        }
        Ok(Reference { cell: cell.clone(), pool, nsc, data_symbols, dmrs_symbols, indices, pilots })
    }

    /// The cell this reference was built for.
    pub fn cell(&self) -> &CellConfig {
        &self.cell
    }

    /// Number of distinct slots in the pool.
    pub fn pool_len(&self) -> usize {
        self.pool
    }

    /// Pool entry carried by slot `slot_index`.
    pub fn entry(&self, slot_index: u64) -> usize {
        (slot_index % self.pool as u64) as usize
    }

    /// Subcarriers in the carrier (`prbs · 12`).
    pub fn subcarriers(&self) -> usize {
        self.nsc
    }

    /// Symbols (ascending) that carry data.
    pub fn data_symbols(&self) -> &[u8] {
        &self.data_symbols
    }

    /// Symbols (ascending) that carry DMRS.
    pub fn dmrs_symbols(&self) -> &[u8] {
        &self.dmrs_symbols
    }

    /// Layer whose DMRS pilot sits on `subcarrier` (`subcarrier % layers`).
    pub fn dmrs_layer(&self, subcarrier: usize) -> u8 {
        (subcarrier % usize::from(self.cell.layers)) as u8
    }

    /// DMRS pilots of the `dmrs_pos`-th DMRS symbol (position in
    /// [`Reference::dmrs_symbols`]) of slot `slot_index`: one `(re, im)` per
    /// subcarrier, sent by layer [`Reference::dmrs_layer`] of that subcarrier,
    /// including the `√layers` power boost. Panics if `dmrs_pos` is out of range.
    pub fn dmrs_pilots(&self, slot_index: u64, dmrs_pos: usize) -> &[[f32; 2]] {
        let nd = self.dmrs_symbols.len();
        assert!(dmrs_pos < nd, "dmrs position {dmrs_pos} out of range 0..{nd}");
        let base = (self.entry(slot_index) * nd + dmrs_pos) * self.nsc;
        &self.pilots[base..base + self.nsc]
    }

    /// QAM indices sent by `layer` in slot `slot_index`, ordered
    /// `[data symbol][subcarrier]` (data symbols as in
    /// [`Reference::data_symbols`]). Panics if `layer` is out of range.
    pub fn qam_indices(&self, slot_index: u64, layer: u8) -> &[u8] {
        let layers = usize::from(self.cell.layers);
        assert!(usize::from(layer) < layers, "layer {layer} out of range 0..{layers}");
        let per = self.data_symbols.len() * self.nsc;
        let base = (self.entry(slot_index) * layers + usize::from(layer)) * per;
        &self.indices[base..base + per]
    }

    /// Bits per QAM point.
    pub fn bits_per_symbol(&self) -> u32 {
        self.cell.modulation.bits_per_symbol()
    }

    /// Payload bits carried per slot over all layers.
    pub fn bits_per_slot(&self) -> u64 {
        (self.data_symbols.len() * self.nsc * usize::from(self.cell.layers)) as u64 * u64::from(self.bits_per_symbol())
    }
}

/// The full model: the [`Reference`] plus the channel, the noise and the
/// received IQ per antenna and symbol that the radio head sends.
#[derive(Debug, Clone)]
pub struct TrafficModel {
    reference: Reference,
    antennas: usize,
    /// [entry][symbol][antenna][subcarrier*2]
    iq: Vec<i16>,
    /// [entry][antenna][layer][subcarrier] -> (re, im)
    channel: Vec<[f32; 2]>,
    noise_var: f32,
    scale: f32,
}

impl TrafficModel {
    /// Builds the pool of `cell.distinct_slots` slots (validates the cell first).
    pub fn new(cell: &CellConfig) -> Result<TrafficModel, CellError> {
        let reference = Reference::new(cell)?;
        let pool = reference.pool;
        let nsc = reference.nsc;
        let a_n = usize::from(cell.antennas);
        let l_n = usize::from(cell.layers);
        let noise_var = 10f32.powf(-cell.snr_db / 10.0);
        let full_rms = 32767.0 * 10f32.powf(-BACK_OFF_DB / 20.0);
        let scale = full_rms / (l_n as f32 + noise_var).sqrt();
        let noise_sd = f64::from(noise_var).sqrt();
        let scs_hz = 15_000.0 * f64::from(1u32 << cell.mu);
        let max_delay_s = 300e-9 / f64::from(1u32 << cell.mu.saturating_sub(1));

        let mut channel = vec![[0f32; 2]; pool * a_n * l_n * nsc];
        let mut iq = vec![0i16; pool * 14 * a_n * nsc * 2];
        let mut y = vec![(0f64, 0f64); a_n * nsc];
        let two_pi = 2.0 * std::f64::consts::PI;
        // Scattered taps: amplitudes sum to at most 0.3 so the scattered part
        // can never cancel the line of sight (see module docs).
        let tap_amp = [0.15f64, 0.10, 0.05];
        for e in 0..pool {
            // ---- channel
            let mut rng = Rng::stream(cell.seed, e, Purpose::Channel);
            let row_phase: Vec<f64> = (0..a_n).map(|_| two_pi * rng.next_f64()).collect();
            let col_phase: Vec<f64> = (0..l_n).map(|_| two_pi * rng.next_f64()).collect();
            let delays: Vec<f64> = (0..3).map(|_| max_delay_s * rng.next_f64()).collect();
            let scatter_power: f64 = tap_amp.iter().map(|a| a * a * 0.75).sum();
            let los = (1.0 - scatter_power).sqrt();
            for a in 0..a_n {
                for l in 0..l_n {
                    let mut taps = [(0f64, 0f64, 0f64); 3];
                    for (t, tap) in taps.iter_mut().enumerate() {
                        let amp = tap_amp[t] * (0.5 + 0.5 * rng.next_f64());
                        let ph = two_pi * rng.next_f64();
                        *tap = (amp * ph.cos(), amp * ph.sin(), delays[t]);
                    }
                    let ph0 = row_phase[a] + col_phase[l] - two_pi * (a * l) as f64 / a_n as f64;
                    let (l_re, l_im) = (los * ph0.cos(), los * ph0.sin());
                    let h = &mut channel[((e * a_n + a) * l_n + l) * nsc..][..nsc];
                    for (k, hk) in h.iter_mut().enumerate() {
                        let f = (k as f64 - nsc as f64 / 2.0) * scs_hz;
                        let (mut re, mut im) = (l_re, l_im);
                        for &(tr, ti, d) in &taps {
                            let th = -two_pi * f * d;
                            let (c, s) = (th.cos(), th.sin());
                            re += tr * c - ti * s;
                            im += tr * s + ti * c;
                        }
                        *hk = [re as f32, im as f32];
                    }
                }
            }
            // ---- received signal per symbol
            let mut noise = Rng::stream(cell.seed, e, Purpose::Noise);
            let mut data_pos = 0usize;
            let mut dmrs_pos = 0usize;
            for sym in 0..14u8 {
                y.iter_mut().for_each(|v| *v = (0.0, 0.0));
                let is_dmrs = cell.dmrs_mask() & (1 << sym) != 0;
                if is_dmrs {
                    let pil = reference.dmrs_pilots(e as u64, dmrs_pos);
                    for a in 0..a_n {
                        for k in 0..nsc {
                            let l = k % l_n;
                            let h = channel[((e * a_n + a) * l_n + l) * nsc + k];
                            let p = pil[k];
                            let (hr, hi) = (f64::from(h[0]), f64::from(h[1]));
                            let (pr, pi) = (f64::from(p[0]), f64::from(p[1]));
                            y[a * nsc + k] = (hr * pr - hi * pi, hr * pi + hi * pr);
                        }
                    }
                    dmrs_pos += 1;
                } else {
                    for l in 0..l_n {
                        let idx = &reference.qam_indices(e as u64, l as u8)[data_pos * nsc..(data_pos + 1) * nsc];
                        for a in 0..a_n {
                            let h = &channel[((e * a_n + a) * l_n + l) * nsc..][..nsc];
                            for k in 0..nsc {
                                let (xr, xi) = qam_point(cell.modulation, idx[k]);
                                let (xr, xi) = (f64::from(xr), f64::from(xi));
                                let (hr, hi) = (f64::from(h[k][0]), f64::from(h[k][1]));
                                let v = &mut y[a * nsc + k];
                                v.0 += hr * xr - hi * xi;
                                v.1 += hr * xi + hi * xr;
                            }
                        }
                    }
                    data_pos += 1;
                }
                for a in 0..a_n {
                    let out = &mut iq[((e * 14 + usize::from(sym)) * a_n + a) * nsc * 2..][..nsc * 2];
                    for k in 0..nsc {
                        let (nr, ni) = noise.complex_gaussian();
                        let v = y[a * nsc + k];
                        let re = (v.0 + nr * noise_sd) * f64::from(scale);
                        let im = (v.1 + ni * noise_sd) * f64::from(scale);
                        out[2 * k] = re.round().clamp(-32768.0, 32767.0) as i16;
                        out[2 * k + 1] = im.round().clamp(-32768.0, 32767.0) as i16;
                    }
                }
            }
        }
        Ok(TrafficModel { reference, antennas: a_n, iq, channel, noise_var, scale })
    }

    /// The cell this model was built for.
    pub fn cell(&self) -> &CellConfig {
        &self.reference.cell
    }

    /// The reference data (QAM indices, DMRS pilots).
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// Number of distinct slots in the pool.
    pub fn pool_len(&self) -> usize {
        self.reference.pool
    }

    /// What the radio sends for `antenna` and `symbol` (0..=13) of slot
    /// `slot_index`: `prbs · 12` interleaved (I, Q) pairs, 16-bit, RMS
    /// [`BACK_OFF_DB`] below full scale. Panics if `symbol` or `antenna` is out
    /// of range.
    pub fn symbol_iq(&self, slot_index: u64, symbol: u8, antenna: u8) -> &[i16] {
        assert!(symbol < 14, "symbol {symbol} out of range 0..=13");
        assert!(usize::from(antenna) < self.antennas, "antenna {antenna} out of range 0..{}", self.antennas);
        let nsc = self.reference.nsc;
        let e = self.reference.entry(slot_index);
        let base = ((e * 14 + usize::from(symbol)) * self.antennas + usize::from(antenna)) * nsc * 2;
        &self.iq[base..base + nsc * 2]
    }

    /// The true channel from `layer` to `antenna` in slot `slot_index`, one
    /// `(re, im)` per subcarrier (before the IQ scaling).
    pub fn channel(&self, slot_index: u64, antenna: u8, layer: u8) -> &[[f32; 2]] {
        let nsc = self.reference.nsc;
        let l_n = usize::from(self.reference.cell.layers);
        assert!(usize::from(antenna) < self.antennas && usize::from(layer) < l_n, "antenna/layer out of range");
        let e = self.reference.entry(slot_index);
        let base = ((e * self.antennas + usize::from(antenna)) * l_n + usize::from(layer)) * nsc;
        &self.channel[base..base + nsc]
    }

    /// Complex noise variance per resource element (unit-power layers).
    pub fn noise_variance(&self) -> f32 {
        self.noise_var
    }

    /// IQ counts per unit of model amplitude (`symbol_iq = round(scale · (H·x + n))`).
    pub fn iq_scale(&self) -> f32 {
        self.scale
    }
}
