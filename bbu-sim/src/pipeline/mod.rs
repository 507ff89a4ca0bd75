//! The L1-high uplink pipeline of one cell: BFP decompression, least-squares
//! channel estimation on the DMRS symbols, per-subcarrier equalisation (MRC
//! for one layer, unbiased MMSE for several), max-log soft demapping up to
//! 256-QAM and a check of the hard decisions against the seeded traffic
//! model's bits.
//!
//! # Data layout
//!
//! Everything is preallocated by [`SlotProcessor::new`]. Subcarriers are
//! processed in blocks of 16 (one 512-bit vector of `f32`) with separate
//! real and imaginary arrays; the received grid is
//! `[antenna][symbol][subcarrier]`, channel estimates
//! `[antenna][layer][subcarrier]`, weights `[block][layer][antenna][lane]`
//! and LLRs `[layer][data symbol][block][bit][lane]` (`i8`, positive =
//! bit 0, [`SlotProcessor::llrs`]).
//!
//! # Stages
//!
//! 1. [`SlotProcessor::ingest_prbs`]: the section's PRBs are decoded with
//!    `fronthaul::bfp::decode_prbs` (BFP or plain, any width) and widened to
//!    `f32` into the grid; received PRBs are recorded in a bitmap.
//! 2. Channel estimation: on each DMRS symbol `z_k = y_k · conj(p_k) / |p_k|²`,
//!    averaged over the DMRS symbols; layer `l` owns the comb `k ≡ l (mod L)`
//!    and its estimate is linearly interpolated (and extrapolated at the band
//!    edges) across its comb. The noise variance comes from the spread of `z`
//!    across DMRS symbols (or, with a single DMRS symbol, from the residual of
//!    each pilot against its two comb neighbours).
//! 3. Weights per subcarrier: MRC (`hᴴ/‖h‖²`) for one layer; for several,
//!    `W = diag(1/μ)(HᴴH + N0·I)⁻¹Hᴴ` with `μ_l = 1 − N0·(G⁻¹)_ll`, and the
//!    post-equaliser SINR `μ/(1−μ)` that scales the LLRs.
//! 4. Equalisation, demapping and the bit check run fused per block of 16
//!    subcarriers (see [`kernels::detect`]).
//!
//! The hot kernels pick their vector code path at run time ([`Isa`]).

mod dispatch;
pub mod kernels;

use std::time::Instant;

use fronthaul::bfp;
use fronthaul::cell::{CellConfig, CellError};
use fronthaul::error::FhError;
use fronthaul::traffic::Reference;

pub use dispatch::Isa;
use kernels::{ChestArgs, DetectArgs, WeightArgs, LANES};

/// Scale from 16-bit IQ counts to the grid's `f32` units.
const IQ_SCALE: f32 = 1.0 / 4096.0;

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The cell configuration is invalid.
    #[error("pipeline cell: {0}")]
    Cell(CellError),
    /// The vector code path asked for is not supported by this CPU.
    #[error("pipeline: instruction set {0} is not available on this cpu")]
    IsaUnavailable(&'static str),
    /// The antenna (eAxC RU port) is not one of the cell's.
    #[error("ingest: antenna {antenna} out of range (cell has {antennas})")]
    Antenna {
        /// Antenna index given.
        antenna: u8,
        /// Antennas of the cell.
        antennas: u8,
    },
    /// The symbol is not 0..=13.
    #[error("ingest: symbol {0} out of range 0..=13")]
    Symbol(u8),
    /// The PRB range runs past the carrier.
    #[error("ingest: prbs {start}..{end} run past the carrier ({prbs} prbs)")]
    PrbRange {
        /// First PRB.
        start: u16,
        /// One past the last PRB.
        end: u32,
        /// PRBs of the carrier.
        prbs: u16,
    },
    /// The payload is shorter than `num_prb` PRBs.
    #[error("ingest: payload of {have} bytes is short of {need} bytes for {prbs} prbs")]
    ShortPayload {
        /// PRBs announced.
        prbs: u16,
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The codec refused the payload.
    #[error("ingest: decode prbs: {0}")]
    Codec(FhError),
}

// Plain `From` impls, not `#[from]`: `#[from]` would also make the cause a
// `source`, and the Display above already prints it.
impl From<CellError> for PipelineError {
    fn from(e: CellError) -> Self {
        PipelineError::Cell(e)
    }
}

impl From<FhError> for PipelineError {
    fn from(e: FhError) -> Self {
        PipelineError::Codec(e)
    }
}

/// What [`SlotProcessor::process`] found in one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotOutcome {
    /// Payload bits compared with the traffic model.
    pub bits_checked: u64,
    /// Hard-decision bits that differ from the transmitted ones.
    pub bit_errors: u64,
    /// (antenna, symbol, PRB) triples that never arrived (zero-filled before processing).
    pub missing_prbs: u32,
    /// Channel estimation time.
    pub chest_ns: u64,
    /// Equaliser weight computation time.
    pub weights_ns: u64,
    /// Equalisation + demapping + bit check time.
    pub detect_ns: u64,
    /// Whole `process` call.
    pub total_ns: u64,
}

/// Which part of the fused detection kernel to run ([`SlotProcessor::detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectStages {
    /// Equalisation only.
    Equalise,
    /// Equalisation and demapping (LLRs written).
    EqualiseDemap,
    /// Equalisation, demapping and the bit check.
    All,
}

/// The preallocated L1-high pipeline of one cell.
pub struct SlotProcessor {
    cell: CellConfig,
    isa: Isa,
    reference: Reference,
    an: usize,
    ln: usize,
    q: usize,
    nsc: usize,
    nblk: usize,
    nscp: usize,
    prb_words: usize,
    prb_bytes: usize,
    data_syms: Vec<u8>,
    dmrs_syms: Vec<u8>,
    iq_tmp: Vec<i16>,
    y_re: Vec<f32>,
    y_im: Vec<f32>,
    seen: Vec<u64>,
    zd_re: Vec<f32>,
    zd_im: Vec<f32>,
    pil_re: Vec<f32>,
    pil_im: Vec<f32>,
    interp_k0: Vec<u32>,
    interp_frac: Vec<f32>,
    h_re: Vec<f32>,
    h_im: Vec<f32>,
    w_re: Vec<f32>,
    w_im: Vec<f32>,
    c: Vec<f32>,
    llr: Vec<i8>,
    expected: Vec<u16>,
    sink: Vec<f32>,
    n0: f32,
}

impl SlotProcessor {
    /// Builds the processor for `cell` with the best code path of this CPU;
    /// allocates everything the slots need.
    pub fn new(cell: &CellConfig) -> Result<SlotProcessor, PipelineError> {
        SlotProcessor::with_isa(cell, Isa::detect())
    }

    /// As [`SlotProcessor::new`] with a chosen code path (fails if the CPU lacks it).
    pub fn with_isa(cell: &CellConfig, isa: Isa) -> Result<SlotProcessor, PipelineError> {
        if !isa.available() {
            return Err(PipelineError::IsaUnavailable(isa.name()));
        }
        let reference = Reference::new(cell)?;
        let an = usize::from(cell.antennas);
        let ln = usize::from(cell.layers);
        let q = cell.modulation.bits_per_symbol() as usize;
        let nsc = usize::from(cell.prbs) * 12;
        let nblk = nsc.div_ceil(LANES);
        let nscp = nblk * LANES;
        let prb_words = usize::from(cell.prbs).div_ceil(64);
        let data_syms = reference.data_symbols().to_vec();
        let dmrs_syms = reference.dmrs_symbols().to_vec();
        let nd = data_syms.len();
        let pool = reference.pool_len();
        // Expected bits per pool entry, laid out like the LLR bit planes.
        let mut expected = vec![0u16; pool * ln * nd * q * nblk];
        for e in 0..pool {
            for l in 0..ln {
                let idx = reference.qam_indices(e as u64, l as u8);
                for ds in 0..nd {
                    for b in 0..q {
                        for k in 0..nsc {
                            let bit = (idx[ds * nsc + k] >> (q - 1 - b)) & 1;
                            let cell = ((e * ln + l) * nd + ds) * nblk + k / LANES;
                            expected[cell * q + b] |= u16::from(bit) << (k % LANES);
                        }
                    }
                }
            }
        }
        // DMRS pilots per pool entry as SoA rows, divided by |p|² = layers.
        let ndm = dmrs_syms.len();
        let mut pil_re = vec![0f32; pool * ndm * nscp];
        let mut pil_im = vec![0f32; pool * ndm * nscp];
        for e in 0..pool {
            for d in 0..ndm {
                let p = reference.dmrs_pilots(e as u64, d);
                for k in 0..nsc {
                    pil_re[(e * ndm + d) * nscp + k] = p[k][0] / ln as f32;
                    pil_im[(e * ndm + d) * nscp + k] = p[k][1] / ln as f32;
                }
            }
        }
        // Linear interpolation across each layer's comb k ≡ l (mod L):
        // h[k] = z[k0] + frac·(z[k0 + L] − z[k0]), extrapolating at the edges.
        let mut interp_k0 = vec![0u32; ln * nsc];
        let mut interp_frac = vec![0f32; ln * nsc];
        for l in 0..ln {
            let npil = (nsc - l).div_ceil(ln);
            for k in 0..nsc {
                let t = if k < l { 0 } else { ((k - l) / ln).min(npil.saturating_sub(2)) };
                let k0 = l + t * ln;
                interp_k0[l * nsc + k] = k0 as u32;
                interp_frac[l * nsc + k] = (k as f32 - k0 as f32) / ln as f32;
            }
        }
        Ok(SlotProcessor {
            pil_re,
            pil_im,
            interp_k0,
            interp_frac,
            cell: cell.clone(),
            isa,
            an,
            ln,
            q,
            nsc,
            nblk,
            nscp,
            prb_words,
            prb_bytes: bfp::prb_bytes(cell.iq_width, cell.compression),
            iq_tmp: vec![0; usize::from(cell.prbs) * bfp::SAMPLES_PER_PRB],
            y_re: vec![0.0; an * 14 * nscp],
            y_im: vec![0.0; an * 14 * nscp],
            seen: vec![0; an * 14 * prb_words],
            zd_re: vec![0.0; dmrs_syms.len() * nscp],
            zd_im: vec![0.0; dmrs_syms.len() * nscp],
            h_re: vec![0.0; an * ln * nscp],
            h_im: vec![0.0; an * ln * nscp],
            w_re: vec![0.0; nblk * ln * an * LANES],
            w_im: vec![0.0; nblk * ln * an * LANES],
            c: vec![0.0; ln * nscp],
            llr: vec![0; ln * nd * q * nscp],
            expected,
            sink: vec![0.0; LANES],
            n0: 0.0,
            data_syms,
            dmrs_syms,
            reference,
        })
    }

    /// The cell this processor was built for.
    pub fn cell(&self) -> &CellConfig {
        &self.cell
    }

    /// The code path in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Clears the per-slot bookkeeping (which PRBs arrived).
    pub fn begin_slot(&mut self) {
        self.seen.iter_mut().for_each(|w| *w = 0);
    }

    /// Takes the PRB payload of one section exactly as on the wire for the
    /// cell's compression and `iq_width` (udCompHdr already stripped).
    /// `num_prb = 0` means all PRBs from `start_prb` to the end of the
    /// carrier (O-RAN numPrbu = 0). Extra trailing bytes are ignored.
    pub fn ingest_prbs(&mut self, antenna: u8, symbol: u8, start_prb: u16, num_prb: u16, prb_data: &[u8]) -> Result<(), PipelineError> {
        if usize::from(antenna) >= self.an {
            return Err(PipelineError::Antenna { antenna, antennas: self.cell.antennas });
        }
        if symbol > 13 {
            return Err(PipelineError::Symbol(symbol));
        }
        let prbs = self.cell.prbs;
        let num = if num_prb == 0 { prbs.saturating_sub(start_prb) } else { num_prb };
        let end = u32::from(start_prb) + u32::from(num);
        if start_prb >= prbs || end > u32::from(prbs) {
            return Err(PipelineError::PrbRange { start: start_prb, end, prbs });
        }
        let need = usize::from(num) * self.prb_bytes;
        if prb_data.len() < need {
            return Err(PipelineError::ShortPayload { prbs: num, need, have: prb_data.len() });
        }
        let iq = &mut self.iq_tmp[..usize::from(num) * bfp::SAMPLES_PER_PRB];
        bfp::decode_prbs(prb_data, self.cell.iq_width, self.cell.compression, iq)?;
        let row = (usize::from(antenna) * 14 + usize::from(symbol)) * self.nscp;
        let k0 = usize::from(start_prb) * 12;
        let n = usize::from(num) * 12;
        dispatch::widen(self.isa, iq, IQ_SCALE, &mut self.y_re[row + k0..row + k0 + n], &mut self.y_im[row + k0..row + k0 + n]);
        let seen = &mut self.seen[(usize::from(antenna) * 14 + usize::from(symbol)) * self.prb_words..][..self.prb_words];
        for p in usize::from(start_prb)..end as usize {
            seen[p / 64] |= 1 << (p % 64);
        }
        Ok(())
    }

    /// Zero-fills the PRBs that did not arrive this slot and returns how many.
    fn fill_missing(&mut self) -> u32 {
        let prbs = usize::from(self.cell.prbs);
        let mut missing = 0u32;
        for r in 0..self.an * 14 {
            let seen = &self.seen[r * self.prb_words..][..self.prb_words];
            let got: u32 = seen.iter().map(|w| w.count_ones()).sum();
            if got as usize == prbs {
                continue;
            }
            missing += prbs as u32 - got;
            for p in 0..prbs {
                if seen[p / 64] & (1 << (p % 64)) == 0 {
                    let at = r * self.nscp + p * 12;
                    self.y_re[at..at + 12].iter_mut().for_each(|v| *v = 0.0);
                    self.y_im[at..at + 12].iter_mut().for_each(|v| *v = 0.0);
                }
            }
        }
        missing
    }

    /// Runs channel estimation, equalisation, demapping and the bit check for
    /// slot `slot_index` on what was ingested since [`SlotProcessor::begin_slot`].
    pub fn process(&mut self, slot_index: u64) -> SlotOutcome {
        let t0 = Instant::now();
        let missing_prbs = self.fill_missing();
        self.estimate_channel(slot_index);
        let t1 = Instant::now();
        self.compute_weights();
        let t2 = Instant::now();
        let bit_errors = self.detect(slot_index, DetectStages::All);
        let t3 = Instant::now();
        SlotOutcome {
            bits_checked: self.reference.bits_per_slot(),
            bit_errors,
            missing_prbs,
            chest_ns: (t1 - t0).as_nanos() as u64,
            weights_ns: (t2 - t1).as_nanos() as u64,
            detect_ns: (t3 - t2).as_nanos() as u64,
            total_ns: (t3 - t0).as_nanos() as u64,
        }
    }

    /// Stage 2: least-squares channel estimate and noise variance from the
    /// DMRS symbols of slot `slot_index` (public for benches).
    pub fn estimate_channel(&mut self, slot_index: u64) {
        let nd = self.dmrs_syms.len();
        let e = self.reference.entry(slot_index);
        let per = nd * self.nscp;
        let mut args = ChestArgs {
            antennas: self.an,
            layers: self.ln,
            nsc: self.nsc,
            nscp: self.nscp,
            dmrs_syms: &self.dmrs_syms,
            y_re: &self.y_re,
            y_im: &self.y_im,
            pil_re: &self.pil_re[e * per..(e + 1) * per],
            pil_im: &self.pil_im[e * per..(e + 1) * per],
            zd_re: &mut self.zd_re,
            zd_im: &mut self.zd_im,
            k0: &self.interp_k0,
            frac: &self.interp_frac,
            h_re: &mut self.h_re,
            h_im: &mut self.h_im,
        };
        let r = dispatch::chest(self.isa, &mut args);
        let n0 = if r.noise_count > 0 { (r.noise_sum / r.noise_count as f64) as f32 * self.ln as f32 } else { 0.0 };
        let mean_power = (r.power_sum / (self.an * self.nsc) as f64) as f32;
        // Floor: a noiseless input must not divide by zero.
        self.n0 = n0.max(mean_power * 1e-7).max(1e-30);
    }

    /// The noise variance per resource element estimated by the last
    /// [`SlotProcessor::estimate_channel`], in grid units.
    pub fn noise_variance(&self) -> f32 {
        self.n0
    }

    /// Stage 3: equaliser weights and LLR scales from the channel estimate (public for benches).
    pub fn compute_weights(&mut self) {
        let norm = match self.q {
            2 => 2f32,
            4 => 10.0,
            6 => 42.0,
            _ => 170.0,
        }
        .sqrt();
        let mut args = WeightArgs {
            antennas: self.an,
            nblk: self.nblk,
            nscp: self.nscp,
            n0: self.n0,
            norm,
            h_re: &self.h_re,
            h_im: &self.h_im,
            w_re: &mut self.w_re,
            w_im: &mut self.w_im,
            c: &mut self.c,
        };
        // 4 antennas (the common O-RU) gets a compile-time antenna count.
        match (self.ln, self.an) {
            (1, 4) => dispatch::weights::<1, 4>(self.isa, &mut args),
            (2, 4) => dispatch::weights::<2, 4>(self.isa, &mut args),
            (3, 4) => dispatch::weights::<3, 4>(self.isa, &mut args),
            (4, 4) => dispatch::weights::<4, 4>(self.isa, &mut args),
            (1, _) => dispatch::weights::<1, 0>(self.isa, &mut args),
            (2, _) => dispatch::weights::<2, 0>(self.isa, &mut args),
            (3, _) => dispatch::weights::<3, 0>(self.isa, &mut args),
            _ => dispatch::weights::<4, 0>(self.isa, &mut args),
        }
    }

    /// Stage 4: equalisation, demapping and the bit check of slot
    /// `slot_index` (or a prefix of them, for benches); returns the bit errors
    /// (0 unless `stages` is [`DetectStages::All`]).
    pub fn detect(&mut self, slot_index: u64, stages: DetectStages) -> u64 {
        let nd = self.data_syms.len();
        let per_entry = self.ln * nd * self.q * self.nblk;
        let e = self.reference.entry(slot_index);
        let mut args = DetectArgs {
            antennas: self.an,
            nblk: self.nblk,
            nscp: self.nscp,
            nsc: self.nsc,
            y_re: &self.y_re,
            y_im: &self.y_im,
            data_syms: &self.data_syms,
            w_re: &self.w_re,
            w_im: &self.w_im,
            c: &self.c,
            llr: &mut self.llr,
            expected: &self.expected[e * per_entry..(e + 1) * per_entry],
            sink: &mut self.sink,
        };
        let isa = self.isa;
        let ant4 = self.an == 4;
        macro_rules! go {
            ($l:literal, $q:literal) => {
                // 4 antennas gets a compile-time antenna count (accumulators in registers).
                match (stages, ant4) {
                    (DetectStages::Equalise, true) => dispatch::detect::<$l, 4, $q, false, false>(isa, &mut args),
                    (DetectStages::EqualiseDemap, true) => dispatch::detect::<$l, 4, $q, true, false>(isa, &mut args),
                    (DetectStages::All, true) => dispatch::detect::<$l, 4, $q, true, true>(isa, &mut args),
                    (DetectStages::Equalise, false) => dispatch::detect::<$l, 0, $q, false, false>(isa, &mut args),
                    (DetectStages::EqualiseDemap, false) => dispatch::detect::<$l, 0, $q, true, false>(isa, &mut args),
                    (DetectStages::All, false) => dispatch::detect::<$l, 0, $q, true, true>(isa, &mut args),
                }
            };
        }
        macro_rules! by_q {
            ($l:literal) => {
                match self.q {
                    2 => go!($l, 2),
                    4 => go!($l, 4),
                    6 => go!($l, 6),
                    _ => go!($l, 8),
                }
            };
        }
        match self.ln {
            1 => by_q!(1),
            2 => by_q!(2),
            3 => by_q!(3),
            _ => by_q!(4),
        }
    }

    /// LLRs of the last processed slot (`i8`, positive means bit 0), laid
    /// out `[layer][data symbol][block of 16 subcarriers][bit][lane]`; see
    /// [`SlotProcessor::llr_index`]. Lanes past `prbs · 12` are padding.
    pub fn llrs(&self) -> &[i8] {
        &self.llr
    }

    /// Position in [`SlotProcessor::llrs`] of bit `bit` (38.211 order b(i))
    /// of the QAM point of `layer` on `subcarrier` of the `data_symbol`-th
    /// data symbol.
    pub fn llr_index(&self, layer: usize, data_symbol: usize, subcarrier: usize, bit: usize) -> usize {
        let cell = (layer * self.data_syms.len() + data_symbol) * self.nblk + subcarrier / LANES;
        (cell * self.q + bit) * LANES + subcarrier % LANES
    }
}
