//! NR numerology µ = 0..=3 (38.211 §4.2, §5.3.1), the symbol clock and the
//! PRB tables (38.101-1 / 38.101-2 Table 5.3.2-1).
//!
//! Times are exact in units of Tc = 1/(480 kHz · 4096) s: a symbol is
//! (2048 + 144)·κ·2^−µ Tc long (κ = 64) and the first symbol of each
//! half-subframe carries 16·κ Tc of extra cyclic prefix. Nanoseconds are
//! derived by flooring `Tc · 3125 / 6144` from the start of the 0.5 ms
//! half-subframe, so no rounding error accumulates across slots or frames.
//!
//! A [`SymbolClock`] maps an absolute symbol index counted from an epoch on
//! a monotonic time base to the O-RAN/NR counters (SFN, frameId, subframe,
//! slot, symbol) and to the symbol's due time, and back from an instant; it
//! also turns the O-RAN ids of a received packet ([`SlotId`]) back into an
//! absolute slot index ([`SymbolClock::unwrap_slot`]). It is the only symbol
//! clock of the workspace: both simulators and the Ta4 accounting of
//! [`crate::timing`] take air times from it.

use crate::error::FhError;

/// Symbols per slot (normal cyclic prefix).
pub const SYMBOLS_PER_SLOT: u8 = 14;
/// Subframes per 10 ms frame.
pub const SUBFRAMES_PER_FRAME: u32 = 10;
/// SFN period (frames).
pub const SFN_PERIOD: u32 = 1024;
/// Tc per 0.5 ms half-subframe.
pub const TC_PER_HALF_SUBFRAME: u64 = 983_040;
/// Nanoseconds per half-subframe.
pub const NS_PER_HALF_SUBFRAME: u64 = 500_000;
/// Nanoseconds per 10 ms frame.
pub const NS_PER_FRAME: u64 = 10_000_000;
const KAPPA: u64 = 64;

/// A numerology µ in 0..=3 (15, 30, 60, 120 kHz subcarrier spacing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Numerology(u8);

/// Frequency range of the PRB tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrequencyRange {
    /// FR1 (410 MHz – 7.125 GHz), 38.101-1.
    Fr1,
    /// FR2 (24.25 – 52.6 GHz), 38.101-2.
    Fr2,
}

impl Numerology {
    /// µ = 0..=3.
    pub fn new(mu: u8) -> Result<Numerology, FhError> {
        if mu > 3 {
            return Err(FhError::FieldRange { field: "mu", value: u32::from(mu), max: 3 });
        }
        Ok(Numerology(mu))
    }

    /// µ.
    pub fn mu(self) -> u8 {
        self.0
    }

    /// Subcarrier spacing in kHz (15·2^µ).
    pub fn scs_khz(self) -> u32 {
        15 << self.0
    }

    /// Slots per 1 ms subframe (2^µ).
    pub fn slots_per_subframe(self) -> u32 {
        1 << self.0
    }

    /// Slots per 10 ms frame.
    pub fn slots_per_frame(self) -> u32 {
        SUBFRAMES_PER_FRAME << self.0
    }

    /// Symbols per 0.5 ms half-subframe (7·2^µ).
    pub fn symbols_per_half_subframe(self) -> u32 {
        7 << self.0
    }

    /// Slot duration in ns (1 ms / 2^µ; exact — every slot of µ ≤ 1 and every
    /// pair of slots of µ ≥ 2 sums to this on average; see [`Numerology::slot_duration_ns`]).
    pub fn slot_ns(self) -> u64 {
        1_000_000 >> self.0
    }

    /// Average symbol duration in ns (slot / 14, truncated).
    pub fn avg_symbol_ns(self) -> u64 {
        self.slot_ns() / u64::from(SYMBOLS_PER_SLOT)
    }

    /// Duration of symbol `l` of a half-subframe (0 ≤ l < 7·2^µ) in Tc.
    pub fn symbol_tc(self, l: u32) -> u64 {
        let base = ((2048 + 144) * KAPPA) >> self.0;
        base + if l == 0 { 16 * KAPPA } else { 0 }
    }

    /// Start of symbol `l` (0..=7·2^µ, the last value = end) of a
    /// half-subframe, in Tc from the half-subframe's start.
    pub fn symbol_start_tc(self, l: u32) -> u64 {
        let base = ((2048 + 144) * KAPPA) >> self.0;
        u64::from(l) * base + if l > 0 { 16 * KAPPA } else { 0 }
    }

    /// Start of the `l`-th symbol of a half-subframe in ns (floored).
    pub fn symbol_start_in_half_ns(self, l: u32) -> u64 {
        tc_to_ns(self.symbol_start_tc(l))
    }

    /// Duration of slot `slot_in_subframe` in ns: for µ ≥ 2 slots that begin
    /// a half-subframe are 16κ Tc (≈ 0.52 µs) longer than the others.
    pub fn slot_duration_ns(self, slot_in_subframe: u32) -> u64 {
        let a = self.symbol_time(u64::from(slot_in_subframe) * u64::from(SYMBOLS_PER_SLOT));
        let b = self.symbol_time((u64::from(slot_in_subframe) + 1) * u64::from(SYMBOLS_PER_SLOT));
        b.offset_ns - a.offset_ns
    }

    /// The NR counters and offset (from the epoch) of absolute symbol `index`.
    pub fn symbol_time(self, index: u64) -> SymbolTime {
        let per_half = u64::from(self.symbols_per_half_subframe());
        let half = index / per_half;
        let l = (index % per_half) as u32;
        let offset_ns = half * NS_PER_HALF_SUBFRAME + self.symbol_start_in_half_ns(l);
        let slot_index = index / u64::from(SYMBOLS_PER_SLOT);
        let spf = u64::from(self.slots_per_frame());
        let frame = slot_index / spf;
        let in_frame = slot_index % spf;
        let sfn = (frame % u64::from(SFN_PERIOD)) as u16;
        SymbolTime {
            index,
            slot_index,
            sfn,
            frame_id: sfn as u8,
            subframe: (in_frame >> self.0) as u8,
            slot: (in_frame & ((1 << self.0) - 1)) as u8,
            symbol: (index % u64::from(SYMBOLS_PER_SLOT)) as u8,
            offset_ns,
        }
    }

    /// Absolute index of the symbol in progress `since_epoch_ns` after the epoch.
    pub fn symbol_at(self, since_epoch_ns: u64) -> u64 {
        let half = since_epoch_ns / NS_PER_HALF_SUBFRAME;
        let rem = since_epoch_ns % NS_PER_HALF_SUBFRAME;
        let per_half = self.symbols_per_half_subframe();
        // Largest l with start(l) <= rem: estimate, then correct.
        let mut l = (rem * u64::from(per_half) / NS_PER_HALF_SUBFRAME) as u32;
        l = l.min(per_half - 1);
        while l + 1 < per_half && self.symbol_start_in_half_ns(l + 1) <= rem {
            l += 1;
        }
        while l > 0 && self.symbol_start_in_half_ns(l) > rem {
            l -= 1;
        }
        half * u64::from(per_half) + u64::from(l)
    }

    /// Maximum transmission bandwidth (PRBs) for a channel bandwidth in MHz,
    /// from 38.101-1 (FR1: µ 0..=2) and 38.101-2 (FR2: µ 2..=3) Table 5.3.2-1.
    pub fn prbs_for_bandwidth(self, range: FrequencyRange, bandwidth_mhz: u16) -> Result<u16, FhError> {
        let table: &[(u16, u16)] = match (range, self.0) {
            (FrequencyRange::Fr1, 0) => &FR1_15KHZ,
            (FrequencyRange::Fr1, 1) => &FR1_30KHZ,
            (FrequencyRange::Fr1, 2) => &FR1_60KHZ,
            (FrequencyRange::Fr2, 2) => &FR2_60KHZ,
            (FrequencyRange::Fr2, 3) => &FR2_120KHZ,
            _ => return Err(FhError::Config { field: "mu", reason: "this subcarrier spacing is not defined in this frequency range" }),
        };
        table
            .iter()
            .find(|&&(bw, _)| bw == bandwidth_mhz)
            .map(|&(_, n)| n)
            .ok_or(FhError::Config { field: "bandwidth", reason: "no 38.101 entry for this bandwidth and subcarrier spacing" })
    }

    /// The frequency range the tables use by default for this µ (FR1 for 0..=2, FR2 for 3).
    pub fn default_range(self) -> FrequencyRange {
        if self.0 == 3 {
            FrequencyRange::Fr2
        } else {
            FrequencyRange::Fr1
        }
    }
}

/// 38.101-1 Table 5.3.2-1, 15 kHz: (MHz, N_RB).
const FR1_15KHZ: [(u16, u16); 11] = [(3, 15), (5, 25), (10, 52), (15, 79), (20, 106), (25, 133), (30, 160), (35, 188), (40, 216), (45, 242), (50, 270)];
/// 38.101-1 Table 5.3.2-1, 30 kHz.
const FR1_30KHZ: [(u16, u16); 15] = [
    (5, 11),
    (10, 24),
    (15, 38),
    (20, 51),
    (25, 65),
    (30, 78),
    (35, 92),
    (40, 106),
    (45, 119),
    (50, 133),
    (60, 162),
    (70, 189),
    (80, 217),
    (90, 245),
    (100, 273),
];
/// 38.101-1 Table 5.3.2-1, 60 kHz.
const FR1_60KHZ: [(u16, u16); 14] = [(10, 11), (15, 18), (20, 24), (25, 31), (30, 38), (35, 44), (40, 51), (45, 58), (50, 65), (60, 79), (70, 93), (80, 107), (90, 121), (100, 135)];
/// 38.101-2 Table 5.3.2-1, 60 kHz.
const FR2_60KHZ: [(u16, u16); 3] = [(50, 66), (100, 132), (200, 264)];
/// 38.101-2 Table 5.3.2-1, 120 kHz.
const FR2_120KHZ: [(u16, u16); 4] = [(50, 32), (100, 66), (200, 132), (400, 264)];

/// Tc → ns, floored (1 Tc = 3125/6144 ns).
pub fn tc_to_ns(tc: u64) -> u64 {
    tc * 3125 / 6144
}

/// NR counters of one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolTime {
    /// Absolute symbol index since the epoch.
    pub index: u64,
    /// Absolute slot index since the epoch.
    pub slot_index: u64,
    /// System frame number 0..=1023.
    pub sfn: u16,
    /// O-RAN frameId (SFN mod 256).
    pub frame_id: u8,
    /// Subframe 0..=9.
    pub subframe: u8,
    /// Slot within the subframe, 0..2^µ.
    pub slot: u8,
    /// Symbol within the slot, 0..=13.
    pub symbol: u8,
    /// Start of the symbol relative to the epoch, ns.
    pub offset_ns: u64,
}

impl SymbolTime {
    /// The O-RAN ids (frameId, subframeId, slotId) of this symbol's slot.
    pub fn slot_id(&self) -> SlotId {
        SlotId { frame: self.frame_id, subframe: self.subframe, slot: self.slot }
    }
}

/// The symbol clock: a numerology and the epoch (time of SFN 0, subframe 0,
/// slot 0, symbol 0) on a monotonic time base in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolClock {
    /// Numerology.
    pub numerology: Numerology,
    /// Epoch in ns on the caller's time base (e.g. CLOCK_MONOTONIC).
    pub epoch_ns: u64,
}

/// O-RAN timing fields of a slot (the application header's frameId,
/// subframeId and slotId).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotId {
    /// frameId (SFN mod 256).
    pub frame: u8,
    /// subframeId 0..=9.
    pub subframe: u8,
    /// slotId 0..2^µ−1.
    pub slot: u8,
}

/// A symbol and its due time on the clock's time base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueSymbol {
    /// NR counters.
    pub time: SymbolTime,
    /// Start of the symbol on the time base, ns (`epoch + offset`).
    pub due_ns: u64,
}

impl SymbolClock {
    /// A clock for µ starting at `epoch_ns`.
    pub fn new(mu: u8, epoch_ns: u64) -> Result<SymbolClock, FhError> {
        Ok(SymbolClock { numerology: Numerology::new(mu)?, epoch_ns })
    }

    /// Counters and due time of absolute symbol `index`.
    pub fn symbol(&self, index: u64) -> DueSymbol {
        let time = self.numerology.symbol_time(index);
        DueSymbol { time, due_ns: self.epoch_ns + time.offset_ns }
    }

    /// Counters and due time of `symbol` (0..=13) of absolute slot `slot_index`.
    pub fn slot_symbol(&self, slot_index: u64, symbol: u8) -> DueSymbol {
        self.symbol(slot_index * u64::from(SYMBOLS_PER_SLOT) + u64::from(symbol.min(13)))
    }

    /// The symbol in progress at instant `now_ns` (`None` before the epoch).
    pub fn at(&self, now_ns: u64) -> Option<DueSymbol> {
        let since = now_ns.checked_sub(self.epoch_ns)?;
        Some(self.symbol(self.numerology.symbol_at(since)))
    }

    /// Slot duration in ns (1 ms / 2^µ).
    pub fn slot_ns(&self) -> u64 {
        self.numerology.slot_ns()
    }

    /// Slots per 256 frames: the period after which the O-RAN frameId wraps.
    pub fn wrap_slots(&self) -> u64 {
        256 * u64::from(self.numerology.slots_per_frame())
    }

    /// O-RAN frameId, subframeId and slotId of absolute slot `slot_index`.
    pub fn slot_id(&self, slot_index: u64) -> SlotId {
        self.numerology.symbol_time(slot_index * u64::from(SYMBOLS_PER_SLOT)).slot_id()
    }

    /// The absolute slot index with these O-RAN ids nearest to `near`
    /// (undoes the 2.56 s frameId wrap). `None` when the ids are out of
    /// range for this numerology.
    pub fn unwrap_slot(&self, id: SlotId, near: u64) -> Option<u64> {
        let n = self.numerology;
        if u32::from(id.subframe) >= SUBFRAMES_PER_FRAME || u32::from(id.slot) >= n.slots_per_subframe() {
            return None;
        }
        let wrap = self.wrap_slots();
        let in_period = (u64::from(id.frame) * u64::from(SUBFRAMES_PER_FRAME) + u64::from(id.subframe)) * u64::from(n.slots_per_subframe()) + u64::from(id.slot);
        let mut best = near - near % wrap + in_period;
        for cand in [best.checked_sub(wrap), best.checked_add(wrap)].into_iter().flatten() {
            if cand.abs_diff(near) < best.abs_diff(near) {
                best = cand;
            }
        }
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_subframe_is_exact() {
        for mu in 0..=3 {
            let n = Numerology::new(mu).unwrap();
            let per = n.symbols_per_half_subframe();
            assert_eq!(n.symbol_start_tc(per), TC_PER_HALF_SUBFRAME, "mu {mu}");
            let sum: u64 = (0..per).map(|l| n.symbol_tc(l)).sum();
            assert_eq!(sum, TC_PER_HALF_SUBFRAME);
            assert_eq!(n.symbol_time(u64::from(per) * 2).offset_ns, 1_000_000);
        }
        assert!(Numerology::new(4).is_err());
    }

    #[test]
    fn first_symbol_is_longer() {
        let n = Numerology::new(1).unwrap();
        // µ=1: 2192·32 + 1024 Tc = 71168 Tc ≈ 36.198 µs; others 70144 Tc ≈ 35.677 µs.
        assert_eq!(n.symbol_tc(0), 71_168);
        assert_eq!(n.symbol_tc(1), 70_144);
        assert_eq!(n.symbol_time(1).offset_ns, tc_to_ns(71_168));
        assert_eq!(n.slot_duration_ns(0), 500_000);
        let n3 = Numerology::new(3).unwrap();
        assert!(n3.slot_duration_ns(0) > n3.slot_duration_ns(1));
        assert_eq!(n3.slot_duration_ns(0) + n3.slot_duration_ns(1) + n3.slot_duration_ns(2) + n3.slot_duration_ns(3), 500_000);
    }

    #[test]
    fn counters() {
        let n = Numerology::new(1).unwrap();
        // slot 20·256 + 2·9 + 1 = frame 256 (frameId 0, SFN 256), subframe 9, slot 1.
        let t = n.symbol_time((20 * 256 + 19) * 14 + 13);
        assert_eq!((t.sfn, t.frame_id, t.subframe, t.slot, t.symbol), (256, 0, 9, 1, 13));
        let t = n.symbol_time(20 * 1024 * 14);
        assert_eq!((t.sfn, t.frame_id, t.subframe, t.slot, t.symbol), (0, 0, 0, 0, 0));
        assert_eq!(t.offset_ns, 1024 * NS_PER_FRAME);
    }

    #[test]
    fn symbol_at_inverts_symbol_time() {
        for mu in 0..=3 {
            let n = Numerology::new(mu).unwrap();
            for i in (0..5000u64).chain([123_456_789]) {
                let t = n.symbol_time(i).offset_ns;
                assert_eq!(n.symbol_at(t), i);
                let next = n.symbol_time(i + 1).offset_ns;
                assert_eq!(n.symbol_at(next - 1), i);
            }
        }
        let c = SymbolClock::new(1, 1_000).unwrap();
        assert_eq!(c.at(999), None);
        assert_eq!(c.at(1_000 + 500_000).unwrap().time.slot, 1);
    }

    #[test]
    fn prb_tables() {
        let p = |mu, r, bw| Numerology::new(mu).unwrap().prbs_for_bandwidth(r, bw);
        assert_eq!(p(1, FrequencyRange::Fr1, 100), Ok(273));
        assert_eq!(p(1, FrequencyRange::Fr1, 20), Ok(51));
        assert_eq!(p(0, FrequencyRange::Fr1, 20), Ok(106));
        assert_eq!(p(3, FrequencyRange::Fr2, 400), Ok(264));
        assert_eq!(p(2, FrequencyRange::Fr2, 100), Ok(132));
        assert!(p(0, FrequencyRange::Fr1, 100).is_err());
        assert!(p(3, FrequencyRange::Fr1, 100).is_err());
    }

    #[test]
    fn symbol_starts_match_38_211() {
        // 38.211 §5.3.1: symbol l of a half-subframe lasts (2048 + 144)·κ·2^−µ Tc,
        // plus 16·κ Tc for l = 0 (κ = 64, Tc = 1/(480 kHz·4096) = 3125/6144 ns).
        // µ = 0: long symbol 141 312 Tc = 71 875 ns exactly, others 140 288 Tc = 71 354.17 ns.
        let c0 = SymbolClock::new(0, 0).unwrap();
        assert_eq!(c0.slot_symbol(0, 1).due_ns, 71_875);
        assert_eq!(c0.slot_symbol(0, 2).due_ns, 143_229);
        assert_eq!(c0.slot_symbol(0, 7).due_ns, 500_000, "symbol 7 opens the second half-subframe");
        assert_eq!(c0.slot_symbol(0, 8).due_ns, 571_875);
        assert_eq!(c0.slot_symbol(1, 0).due_ns, 1_000_000);
        // µ = 1: long symbol 71 168 Tc = 36 197.9 ns (floored), others 70 144 Tc = 35 677.1 ns.
        let c1 = SymbolClock::new(1, 1_000).unwrap();
        assert_eq!(c1.slot_symbol(0, 0).due_ns, 1_000);
        assert_eq!(c1.slot_symbol(0, 1).due_ns, 1_000 + 36_197);
        assert_eq!(c1.slot_symbol(0, 2).due_ns, 1_000 + 71_875);
        assert_eq!(c1.slot_symbol(0, 13).due_ns, 1_000 + 464_322);
        assert_eq!(c1.slot_symbol(3, 0).due_ns, 1_000 + 1_500_000);
        assert_eq!(c1.slot_ns(), 500_000);
        // µ = 2: only every other slot starts a half-subframe and carries the long CP.
        let c2 = SymbolClock::new(2, 0).unwrap();
        assert_eq!(c2.slot_symbol(1, 0).due_ns, 250_260, "slot 0 is 16κ Tc = 520.8 ns longer than 250 µs");
        assert_eq!(c2.slot_symbol(2, 0).due_ns, 500_000);
        assert!(c2.numerology.slot_duration_ns(0) > c2.numerology.slot_duration_ns(1));
        // µ = 3: long symbol 18 560 Tc = 9 440.1 ns, others 17 536 Tc = 8 919.3 ns.
        let c3 = SymbolClock::new(3, 0).unwrap();
        assert_eq!(c3.slot_symbol(0, 1).due_ns, 9_440);
        assert_eq!(c3.slot_symbol(0, 2).due_ns, 18_359);
        assert_eq!(c3.slot_symbol(4, 0).due_ns, 500_000);
    }

    #[test]
    fn slot_ids() {
        let c = SymbolClock::new(1, 1_000).unwrap();
        // slot 2·10·300 + 2·7 + 1: frame 300 → frameId 44, subframe 7, slot 1.
        assert_eq!(c.slot_id(2 * 10 * 300 + 2 * 7 + 1), SlotId { frame: 44, subframe: 7, slot: 1 });
        assert_eq!(c.wrap_slots(), 5120);
        assert_eq!(c.slot_id(5120), SlotId { frame: 0, subframe: 0, slot: 0 });
        let c3 = SymbolClock::new(3, 0).unwrap();
        assert_eq!(c3.slot_id(8 * 10 * 2 + 8 * 9 + 7), SlotId { frame: 2, subframe: 9, slot: 7 });
    }

    #[test]
    fn unwrap_undoes_frame_wrap() {
        for mu in 0..=3u8 {
            let c = SymbolClock::new(mu, 0).unwrap();
            let w = c.wrap_slots();
            for n in [0u64, 5, w - 1, w, w + 1, 123_456_789] {
                let id = c.slot_id(n);
                for near in [n, n.saturating_sub(100), n + 100] {
                    assert_eq!(c.unwrap_slot(id, near), Some(n), "mu {mu} n {n} near {near}");
                }
            }
        }
        let c = SymbolClock::new(1, 0).unwrap();
        assert_eq!(c.unwrap_slot(SlotId { frame: 0, subframe: 10, slot: 0 }, 0), None);
        assert_eq!(c.unwrap_slot(SlotId { frame: 0, subframe: 0, slot: 2 }, 0), None);
    }
}
