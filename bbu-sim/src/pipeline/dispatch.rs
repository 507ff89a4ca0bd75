//! Run-time selection of the vector code path of the hot kernels.
//!
//! The kernels in [`super::kernels`] are written as plain 16-lane loops; here
//! each one is compiled a second and third time with `#[target_feature]` for
//! AVX2+FMA and AVX-512, and [`Isa::detect`] picks the best one the CPU
//! supports once, when a `SlotProcessor` is built. One binary therefore runs
//! at full speed on an AVX-512 host and still runs (on the baseline SSE2
//! path) inside a QEMU TCG guest that lacks it. Never build with
//! `-C target-cpu=native`.
//!
//! This is the only module of the pipeline with `unsafe`: calling a
//! `#[target_feature]` function is unsafe because it must only happen on a
//! CPU that has the features. Every call is guarded by [`Isa::available`].
//! No contraction into FMA happens (Rust never fuses `a * b + c` on its own),
//! so all paths compute bit-identical results.

use super::kernels::{self, ChestArgs, ChestSums, DetectArgs, WeightArgs};

/// An instruction-set level the hot kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 baseline (SSE2) or any non-x86 target: what LLVM does without extra features.
    Baseline,
    /// AVX2 + FMA + POPCNT (256-bit vectors).
    Avx2,
    /// AVX-512 F/BW/DQ/VL (512-bit vectors, 16 f32 lanes).
    Avx512,
}

impl Isa {
    /// The best level this CPU supports.
    pub fn detect() -> Isa {
        if Isa::Avx512.available() {
            Isa::Avx512
        } else if Isa::Avx2.available() {
            Isa::Avx2
        } else {
            Isa::Baseline
        }
    }

    /// Whether this CPU can run the level.
    pub fn available(self) -> bool {
        match self {
            Isa::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && Isa::Avx2.available()
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Short name for reports (`baseline`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "baseline",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{kernels, ChestArgs, ChestSums, DetectArgs, WeightArgs};

    #[target_feature(enable = "avx2,fma,popcnt")]
    pub(super) fn weights_avx2<const L: usize, const A: usize>(a: &mut WeightArgs<'_>) {
        kernels::weights::<L, A>(a)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,popcnt")]
    pub(super) fn weights_avx512<const L: usize, const A: usize>(a: &mut WeightArgs<'_>) {
        kernels::weights::<L, A>(a)
    }
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub(super) fn detect_avx2<
        const L: usize,
        const A: usize,
        const Q: usize,
        const DEMAP: bool,
        const CHECK: bool,
    >(
        a: &mut DetectArgs<'_>,
    ) -> u64 {
        kernels::detect::<L, A, Q, DEMAP, CHECK>(a)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,popcnt")]
    pub(super) fn detect_avx512<
        const L: usize,
        const A: usize,
        const Q: usize,
        const DEMAP: bool,
        const CHECK: bool,
    >(
        a: &mut DetectArgs<'_>,
    ) -> u64 {
        kernels::detect::<L, A, Q, DEMAP, CHECK>(a)
    }
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub(super) fn chest_avx2(a: &mut ChestArgs<'_>) -> ChestSums {
        kernels::chest(a)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,popcnt")]
    pub(super) fn chest_avx512(a: &mut ChestArgs<'_>) -> ChestSums {
        kernels::chest(a)
    }
    #[target_feature(enable = "avx2,fma,popcnt")]
    pub(super) fn widen_avx2(iq: &[i16], scale: f32, re: &mut [f32], im: &mut [f32]) {
        kernels::widen(iq, scale, re, im)
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,popcnt")]
    pub(super) fn widen_avx512(iq: &[i16], scale: f32, re: &mut [f32], im: &mut [f32]) {
        kernels::widen(iq, scale, re, im)
    }
}

/// Computes the equaliser weights with the code path of `isa`.
pub(super) fn weights<const L: usize, const A: usize>(isa: Isa, a: &mut WeightArgs<'_>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` comes from `Isa::detect` or was checked with
        // `Isa::available` when the processor was built, so the CPU has AVX2, FMA and POPCNT.
        Isa::Avx2 => unsafe { x86::weights_avx2::<L, A>(a) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, the CPU has AVX-512 F/BW/DQ/VL, AVX2, FMA and POPCNT.
        Isa::Avx512 => unsafe { x86::weights_avx512::<L, A>(a) },
        _ => kernels::weights::<L, A>(a),
    }
}

/// Equalises, demaps and checks with the code path of `isa`; returns bit errors.
pub(super) fn detect<const L: usize, const A: usize, const Q: usize, const DEMAP: bool, const CHECK: bool>(
    isa: Isa,
    a: &mut DetectArgs<'_>,
) -> u64 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked with `Isa::available` (see `weights`).
        Isa::Avx2 => unsafe { x86::detect_avx2::<L, A, Q, DEMAP, CHECK>(a) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked with `Isa::available` (see `weights`).
        Isa::Avx512 => unsafe { x86::detect_avx512::<L, A, Q, DEMAP, CHECK>(a) },
        _ => kernels::detect::<L, A, Q, DEMAP, CHECK>(a),
    }
}

/// Channel estimation with the code path of `isa`.
pub(super) fn chest(isa: Isa, a: &mut ChestArgs<'_>) -> ChestSums {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked with `Isa::available` (see `weights`).
        Isa::Avx2 => unsafe { x86::chest_avx2(a) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked with `Isa::available` (see `weights`).
        Isa::Avx512 => unsafe { x86::chest_avx512(a) },
        _ => kernels::chest(a),
    }
}

/// Converts interleaved 16-bit IQ to scaled split re/im floats with the code path of `isa`.
pub(super) fn widen(isa: Isa, iq: &[i16], scale: f32, re: &mut [f32], im: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked with `Isa::available` (see `weights`).
        Isa::Avx2 => unsafe { x86::widen_avx2(iq, scale, re, im) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked with `Isa::available` (see `weights`).
        Isa::Avx512 => unsafe { x86::widen_avx512(iq, scale, re, im) },
        _ => kernels::widen(iq, scale, re, im),
    }
}

/// Sign bits of 16 bytes: bit `i` is set when `v[i] < 0` (`pmovmskb`).
#[inline(always)]
pub(super) fn sign_mask16(v: &[i8; 16]) -> u16 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_movemask_epi8};
        // SAFETY: SSE2 is part of the x86_64 baseline, so both intrinsics exist
        // on every x86_64 CPU; the unaligned load reads exactly the 16 bytes of `v`.
        unsafe { _mm_movemask_epi8(_mm_loadu_si128(v.as_ptr().cast::<__m128i>())) as u16 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut m = 0u16;
        for (i, &b) in v.iter().enumerate() {
            m |= u16::from(b < 0) << i;
        }
        m
    }
}
