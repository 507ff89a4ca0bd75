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
//! antenna, on the symbol clock both ends share
//! ([`crate::numerology::SymbolClock`], exact 38.211 symbol timing). This is the O-RAN WG4
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
