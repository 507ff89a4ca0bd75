//! Timing windows shared by both ends: the RU transmit offset (Ta3-style),
//! the BBU receive window Ta4, the slot budget and the processing lead.
//!
//! [`TimingConfig`] is the `[timing]` table of scenario files and travels to
//! workers as a compact, space-free spec string ([`TimingConfig::to_spec`],
//! parsed by [`str::parse`]), like [`crate::cell::CellConfig`].
//!
//! ## Reference point
//!
//! All offsets are measured from the **air time of the symbol**: the instant
//! the first sample of the symbol (start of its cyclic prefix) is at the RU
//! antenna, on the symbol clock both ends share. This is the O-RAN WG4
//! delay-management convention for the uplink as implemented by open stacks
//! (srsRAN's `du_rx_window_timing_parameters`: "offset from the current OTA
//! symbol" to the start / end of the UL U-plane reception window; the o-ran-sc
//! FHI library's `Ta4_min`/`Ta4_max`):
//!
//! - the rrh-sim sends all packets of symbol *s* at `air(s) + ta3_ns`
//!   (a single point inside the RU's Ta3 [min, max] transmit window);
//! - the worker's receive window for symbol *s* is
//!   `[air(s) + ta4_min_ns, air(s) + ta4_max_ns]`; a U-plane packet arriving
//!   before it is *early*, after it *late*, and its **Ta4 margin** is
//!   `air(s) + ta4_max_ns − arrival` (negative = late).
//!
//! Defaults are the µ = 1 figures of `reference/fronthaul.md`: Ta3 = 20 µs
//! (the lower edge of the typical 20–32 µs RU window), Ta4 = 0–75 µs (the
//! Intel FHI profile). They are absolute nanoseconds and are not rescaled
//! for other numerologies: set them per scenario.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors from validating or parsing a [`TimingConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// A field has a value the timing cannot have.
    #[error("timing field {field}: {reason}")]
    Invalid {
        /// The field's name as written in scenario files.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A spec string names a field that does not exist.
    #[error("timing spec: unknown field {0:?}")]
    UnknownField(String),
}

/// The `[timing]` table of a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingConfig {
    /// RU transmit offset (Ta3-style): a symbol's packets leave the rrh-sim
    /// this long after the symbol's air time, in ns. Default 20 000.
    pub ta3_ns: u64,
    /// Start of the BBU UL receive window Ta4, ns after the symbol's air
    /// time. Default 0.
    pub ta4_min_ns: u64,
    /// End of the BBU UL receive window Ta4, ns after the symbol's air time.
    /// Default 75 000.
    pub ta4_max_ns: u64,
    /// Slot budget `k`: a slot whose turnaround (scheduled transmit of its
    /// last UL symbol → reply received) exceeds `k` slot durations, or whose
    /// reply never comes, is a deadline miss. Default 2; strict is 1.
    pub budget_slots: u32,
    /// Processing lead in slots: how long after the last slot the rrh-sim
    /// keeps waiting for outstanding replies before counting them lost
    /// (open stacks use about 5 slots). Default 5.
    pub lead_slots: u32,
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig { ta3_ns: 20_000, ta4_min_ns: 0, ta4_max_ns: 75_000, budget_slots: 2, lead_slots: 5 }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> TimingError {
    TimingError::Invalid { field, reason: reason.into() }
}

/// Where a packet's arrival falls against its symbol's Ta4 window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowPosition {
    /// Before `air + ta4_min`.
    Early,
    /// Inside `[air + ta4_min, air + ta4_max]`.
    OnTime,
    /// After `air + ta4_max`.
    Late,
}

impl TimingConfig {
    /// Checks every field and the relations between them.
    pub fn validate(&self) -> Result<(), TimingError> {
        if self.ta4_min_ns > self.ta4_max_ns {
            return Err(invalid(
                "ta4_min_ns",
                format!("{} is after ta4_max_ns {}: the window would be empty", self.ta4_min_ns, self.ta4_max_ns),
            ));
        }
        if self.ta3_ns > 10_000_000 {
            return Err(invalid("ta3_ns", format!("{} is above 10 ms", self.ta3_ns)));
        }
        if self.ta4_max_ns > 100_000_000 {
            return Err(invalid("ta4_max_ns", format!("{} is above 100 ms", self.ta4_max_ns)));
        }
        if self.budget_slots == 0 || self.budget_slots > 1000 {
            return Err(invalid("budget_slots", format!("{} is out of range 1..=1000", self.budget_slots)));
        }
        if self.lead_slots == 0 || self.lead_slots > 1_000_000 {
            return Err(invalid("lead_slots", format!("{} is out of range 1..=1000000", self.lead_slots)));
        }
        Ok(())
    }

    /// The slot budget in ns for a slot of `slot_ns`.
    pub fn budget_ns(&self, slot_ns: u64) -> u64 {
        slot_ns.saturating_mul(u64::from(self.budget_slots))
    }

    /// The processing lead in ns for a slot of `slot_ns`.
    pub fn lead_ns(&self, slot_ns: u64) -> u64 {
        slot_ns.saturating_mul(u64::from(self.lead_slots))
    }

    /// Signed Ta4 margin of an arrival at `arrival_ns` for a symbol whose air
    /// time is `air_ns` (same clock): `air + ta4_max − arrival`; negative
    /// means the packet came after the window closed.
    pub fn ta4_margin_ns(&self, air_ns: u64, arrival_ns: u64) -> i64 {
        let end = i128::from(air_ns) + i128::from(self.ta4_max_ns);
        (end - i128::from(arrival_ns)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Where an arrival falls against the window of a symbol with air time `air_ns`.
    pub fn classify(&self, air_ns: u64, arrival_ns: u64) -> WindowPosition {
        let open = air_ns.saturating_add(self.ta4_min_ns);
        let close = air_ns.saturating_add(self.ta4_max_ns);
        if arrival_ns < open {
            WindowPosition::Early
        } else if arrival_ns > close {
            WindowPosition::Late
        } else {
            WindowPosition::OnTime
        }
    }

    /// Compact, space-free form: `ta3=20000,ta4=0:75000,budget=2,lead=5`.
    pub fn to_spec(&self) -> String {
        format!(
            "ta3={},ta4={}:{},budget={},lead={}",
            self.ta3_ns, self.ta4_min_ns, self.ta4_max_ns, self.budget_slots, self.lead_slots
        )
    }
}

impl fmt::Display for TimingConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_spec())
    }
}

fn num<T: FromStr>(field: &'static str, v: &str) -> Result<T, TimingError> {
    v.parse().map_err(|_| invalid(field, format!("{v:?} is not a valid non-negative integer")))
}

impl FromStr for TimingConfig {
    type Err = TimingError;

    /// Parses the form written by [`TimingConfig::to_spec`]; missing fields
    /// keep their defaults. The result is validated.
    fn from_str(spec: &str) -> Result<Self, TimingError> {
        let mut t = TimingConfig::default();
        for item in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| TimingError::UnknownField(item.to_string()))?;
            match k {
                "ta3" => t.ta3_ns = num("ta3_ns", v)?,
                "ta4" => {
                    let (lo, hi) = v.split_once(':').ok_or_else(|| invalid("ta4_min_ns", format!("{v:?} is not MIN:MAX in ns")))?;
                    t.ta4_min_ns = num("ta4_min_ns", lo)?;
                    t.ta4_max_ns = num("ta4_max_ns", hi)?;
                }
                "budget" => t.budget_slots = num("budget_slots", v)?,
                "lead" => t.lead_slots = num("lead_slots", v)?,
                other => return Err(TimingError::UnknownField(other.to_string())),
            }
        }
        t.validate()?;
        Ok(t)
    }
}

/// Symbols per slot (normal cyclic prefix).
pub const SYMBOLS_PER_SLOT: u8 = 14;

/// Slot duration in ns for numerology `mu` (1 ms / 2^µ).
pub fn slot_ns(mu: u8) -> u64 {
    1_000_000 >> mu.min(6)
}

/// Tc (1/(480 kHz·4096) s) from the start of a half-subframe to the start
/// of its symbol `l` (38.211 §5.3.1: (2048 + 144)·κ·2^−µ Tc per symbol, plus
/// 16·κ Tc for the first symbol of each half-subframe; κ = 64).
fn half_offset_tc(mu: u8, l: u64) -> u64 {
    const KAPPA: u64 = 64;
    let base = ((2048 + 144) * KAPPA) >> mu;
    l * base + if l > 0 { 16 * KAPPA } else { 0 }
}

/// Start of `symbol` (0..=14) of absolute slot `slot_index` relative to
/// the start of the half-subframe the slot begins in, ns (floored from Tc;
/// 1 Tc = 3125/6144 ns), and that half-subframe's index.
fn air_in_half(mu: u8, slot_index: u64, symbol: u8) -> (u64, u64) {
    let mu = mu.min(6);
    let per_half = 7u64 << mu;
    let first = slot_index * u64::from(SYMBOLS_PER_SLOT);
    let half = first / per_half;
    let l = first % per_half + u64::from(symbol.min(SYMBOLS_PER_SLOT));
    // l may reach per_half exactly (end of the half-subframe): still exact.
    let tc = if l >= per_half { 983_040 + half_offset_tc(mu, l - per_half) } else { half_offset_tc(mu, l) };
    (half, tc * 3125 / 6144)
}

/// Start of symbol `symbol` (0..=14; 14 = end of slot) relative to the start
/// of its slot, in ns, for the `slot_in_subframe`-th slot of a subframe.
/// For µ ≥ 2 slots differ in length: only the slot holding the first symbol
/// of a half-subframe carries the longer cyclic prefix.
pub fn symbol_offset_ns(mu: u8, slot_in_subframe: u32, symbol: u8) -> u64 {
    let (_, start) = air_in_half(mu, u64::from(slot_in_subframe), 0);
    let (_, at) = air_in_half(mu, u64::from(slot_in_subframe), symbol);
    at - start
}

/// The symbol clock: absolute slot index ↔ O-RAN frame/subframe/slot ids
/// and the air time of every symbol on a `CLOCK_MONOTONIC` timeline whose
/// slot 0, symbol 0 starts at `epoch_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolClock {
    /// Numerology µ.
    pub mu: u8,
    /// Air time of slot 0, symbol 0, ns.
    pub epoch_ns: u64,
}

/// O-RAN timing fields of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotId {
    /// frameId (SFN mod 256).
    pub frame: u8,
    /// subframeId 0..=9.
    pub subframe: u8,
    /// slotId 0..2^µ−1.
    pub slot: u8,
}

impl SymbolClock {
    /// Slot duration in ns.
    pub fn slot_ns(&self) -> u64 {
        slot_ns(self.mu)
    }

    /// Slots per 256 frames (the period after which frameId wraps).
    pub fn wrap_slots(&self) -> u64 {
        2560u64 << self.mu.min(6)
    }

    /// Air time of `symbol` of absolute slot `slot_index`, ns.
    pub fn air_ns(&self, slot_index: u64, symbol: u8) -> u64 {
        let (half, ns) = air_in_half(self.mu, slot_index, symbol);
        self.epoch_ns + half * 500_000 + ns
    }

    /// O-RAN frame/subframe/slot ids of an absolute slot.
    pub fn slot_id(&self, slot_index: u64) -> SlotId {
        let mu = self.mu.min(6);
        let subframes = slot_index >> mu;
        SlotId {
            frame: ((subframes / 10) % 256) as u8,
            subframe: (subframes % 10) as u8,
            slot: (slot_index & ((1u64 << mu) - 1)) as u8,
        }
    }

    /// The absolute slot index with these O-RAN ids nearest to `near`
    /// (undoes the 2.56 s frameId wrap). `None` when the ids are out of range.
    pub fn unwrap_slot(&self, id: SlotId, near: u64) -> Option<u64> {
        let mu = self.mu.min(6);
        if id.subframe > 9 || u64::from(id.slot) >= (1u64 << mu) {
            return None;
        }
        let wrap = self.wrap_slots();
        let in_period = ((u64::from(id.frame) * 10 + u64::from(id.subframe)) << mu) + u64::from(id.slot);
        let base = near - near % wrap;
        let mut best = base + in_period;
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
    fn spec_round_trips() {
        let t = TimingConfig { ta3_ns: 32_000, ta4_min_ns: 110_000, ta4_max_ns: 180_000, budget_slots: 1, lead_slots: 7 };
        let s = t.to_spec();
        assert!(!s.contains(' '));
        assert_eq!(s.parse::<TimingConfig>().unwrap(), t);
        assert_eq!("".parse::<TimingConfig>().unwrap(), TimingConfig::default());
    }

    #[test]
    fn bad_specs_name_the_field() {
        let e = "ta4=80000:75000".parse::<TimingConfig>().unwrap_err();
        assert!(e.to_string().contains("ta4_min_ns"), "{e}");
        let e = "budget=0".parse::<TimingConfig>().unwrap_err();
        assert!(e.to_string().contains("budget_slots"), "{e}");
        let e = "ta3=-5".parse::<TimingConfig>().unwrap_err();
        assert!(e.to_string().contains("ta3_ns"), "{e}");
        let e = "ta4=5".parse::<TimingConfig>().unwrap_err();
        assert!(e.to_string().contains("ta4"), "{e}");
        assert_eq!("wat=1".parse::<TimingConfig>().unwrap_err(), TimingError::UnknownField("wat".into()));
    }

    #[test]
    fn toml_table_has_defaults_and_rejects_unknown_fields() {
        let t: TimingConfig = serde_json::from_str(r#"{"budget_slots": 1}"#).unwrap();
        assert_eq!(t, TimingConfig { budget_slots: 1, ..TimingConfig::default() });
        assert!(serde_json::from_str::<TimingConfig>(r#"{"budget": 1}"#).is_err());
    }

    #[test]
    fn symbol_clock_matches_38_211() {
        // µ = 1: slot 500 µs, first symbol of each slot carries the long CP.
        assert_eq!(slot_ns(1), 500_000);
        assert_eq!(symbol_offset_ns(1, 0, 0), 0);
        // long symbol = (2192*32 + 1024) Tc = 71168 Tc = 36197.9 ns
        assert_eq!(symbol_offset_ns(1, 0, 1), 71_168 * 3125 / 6144);
        assert_eq!(symbol_offset_ns(1, 1, 14), 500_000);
        assert_eq!(symbol_offset_ns(0, 0, 14), 1_000_000);
        // µ = 0: symbols 0 and 7 are long, 7 symbols make exactly 0.5 ms.
        assert_eq!(symbol_offset_ns(0, 0, 7), 500_000);
        // µ = 2: the long symbol is in every other slot.
        assert!(symbol_offset_ns(2, 0, 1) > symbol_offset_ns(2, 1, 1));
        assert_eq!(symbol_offset_ns(2, 0, 14) + symbol_offset_ns(2, 1, 14), 500_000);
        let c2 = SymbolClock { mu: 2, epoch_ns: 0 };
        assert_eq!(c2.air_ns(2, 0), 500_000);
        assert_eq!(c2.air_ns(1, 14), 500_000);
        assert_eq!(c2.air_ns(0, 14), c2.air_ns(1, 0));
        let c = SymbolClock { mu: 1, epoch_ns: 1_000 };
        assert_eq!(c.air_ns(3, 0), 1_000 + 1_500_000);
        assert_eq!(c.slot_id(2 * 10 * 300 + 2 * 7 + 1), SlotId { frame: 44, subframe: 7, slot: 1 });
    }

    #[test]
    fn agrees_with_the_numerology_symbol_clock() {
        for mu in 0..=3u8 {
            let mine = SymbolClock { mu, epoch_ns: 777 };
            let theirs = crate::numerology::SymbolClock::new(mu, 777).unwrap();
            for n in (0..200u64).chain([5119, 5120, 40_959, 40_960, 1 << 30]) {
                for sym in 0..SYMBOLS_PER_SLOT {
                    let d = theirs.slot_symbol(n, sym);
                    assert_eq!(mine.air_ns(n, sym), d.due_ns, "mu {mu} slot {n} symbol {sym}");
                    let id = mine.slot_id(n);
                    assert_eq!((id.frame, id.subframe, id.slot), (d.time.frame_id, d.time.subframe, d.time.slot), "mu {mu} slot {n}");
                }
            }
        }
    }

    #[test]
    fn unwrap_undoes_frame_wrap() {
        let c = SymbolClock { mu: 1, epoch_ns: 0 };
        for n in [0u64, 5, 5119, 5120, 5121, 123_456_789] {
            let id = c.slot_id(n);
            for near in [n, n.saturating_sub(100), n + 100] {
                assert_eq!(c.unwrap_slot(id, near), Some(n), "n {n} near {near}");
            }
        }
        assert_eq!(c.unwrap_slot(SlotId { frame: 0, subframe: 10, slot: 0 }, 0), None);
        assert_eq!(c.unwrap_slot(SlotId { frame: 0, subframe: 0, slot: 2 }, 0), None);
    }

    #[test]
    fn margin_and_window() {
        let t = TimingConfig { ta4_min_ns: 10, ta4_max_ns: 100, ..TimingConfig::default() };
        assert_eq!(t.ta4_margin_ns(1000, 1050), 50);
        assert_eq!(t.ta4_margin_ns(1000, 1100), 0);
        assert_eq!(t.ta4_margin_ns(1000, 1130), -30);
        assert_eq!(t.classify(1000, 1005), WindowPosition::Early);
        assert_eq!(t.classify(1000, 1010), WindowPosition::OnTime);
        assert_eq!(t.classify(1000, 1100), WindowPosition::OnTime);
        assert_eq!(t.classify(1000, 1101), WindowPosition::Late);
        assert_eq!(t.budget_ns(500_000), 2 * 500_000);
    }
}
