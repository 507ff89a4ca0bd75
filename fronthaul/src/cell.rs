//! The cell a run simulates: numerology, bandwidth, antennas, layers,
//! modulation, IQ format and the seed of the traffic model.
//!
//! Both ends build their view of the traffic from one [`CellConfig`]; it
//! travels to workers as a compact spec string ([`CellConfig::to_spec`],
//! parsed by [`str::parse`]) so it fits on a command line or a kernel command
//! line without spaces.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// QAM order of the data symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modulation {
    /// 2 bits per symbol.
    Qpsk,
    /// 4 bits per symbol.
    Qam16,
    /// 6 bits per symbol.
    Qam64,
    /// 8 bits per symbol.
    Qam256,
}

impl Modulation {
    /// Bits carried by one constellation point.
    pub fn bits_per_symbol(self) -> u32 {
        match self {
            Modulation::Qpsk => 2,
            Modulation::Qam16 => 4,
            Modulation::Qam64 => 6,
            Modulation::Qam256 => 8,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Modulation::Qpsk => "qpsk",
            Modulation::Qam16 => "qam16",
            Modulation::Qam64 => "qam64",
            Modulation::Qam256 => "qam256",
        }
    }
}

impl FromStr for Modulation {
    type Err = CellError;
    fn from_str(s: &str) -> Result<Self, CellError> {
        match s.to_ascii_lowercase().as_str() {
            "qpsk" => Ok(Modulation::Qpsk),
            "qam16" | "16qam" => Ok(Modulation::Qam16),
            "qam64" | "64qam" => Ok(Modulation::Qam64),
            "qam256" | "256qam" => Ok(Modulation::Qam256),
            _ => Err(CellError::Invalid { field: "modulation", reason: format!("unknown modulation {s:?} (qpsk, qam16, qam64, qam256)") }),
        }
    }
}

/// How PRB payloads are compressed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain signed IQ samples of `iq_width` bits (16 for the usual case).
    None,
    /// Block floating point: a 4-bit exponent per PRB and `iq_width`-bit mantissas.
    Bfp,
}

/// Data direction of the U-plane traffic the simulator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Radio to BBU (dataDirection = 0).
    Uplink,
    /// BBU to radio (dataDirection = 1).
    Downlink,
}

/// Bit split of the 16-bit eAxC identifier (PC_ID/RTC_ID):
/// DU port | band sector | component carrier | RU port, most significant first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EaxcSplit {
    /// Bits of the DU port id.
    pub du_port: u8,
    /// Bits of the band sector id.
    pub band_sector: u8,
    /// Bits of the component carrier id.
    pub cc: u8,
    /// Bits of the RU port id.
    pub ru_port: u8,
}

impl Default for EaxcSplit {
    fn default() -> Self {
        EaxcSplit { du_port: 2, band_sector: 6, cc: 4, ru_port: 4 }
    }
}

/// Errors from building or parsing a [`CellConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CellError {
    /// A field has a value the cell cannot have.
    #[error("cell field {field}: {reason}")]
    Invalid {
        /// The field's name as written in scenario files and spec strings.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A spec string names a field that does not exist.
    #[error("cell spec: unknown field {0:?}")]
    UnknownField(String),
}

/// Everything both ends must agree on to produce and check a cell's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CellConfig {
    /// NR numerology µ (0..=3): subcarrier spacing 15·2^µ kHz.
    pub mu: u8,
    /// Number of PRBs in the carrier (1..=275).
    pub prbs: u16,
    /// Receive antennas, one eAxC each (1..=16).
    pub antennas: u8,
    /// Spatial layers (1..=4, not more than `antennas`).
    pub layers: u8,
    /// Modulation of the data symbols.
    pub modulation: Modulation,
    /// IQ sample / mantissa width in bits (1..=16).
    pub iq_width: u8,
    /// PRB payload compression.
    pub compression: Compression,
    /// Whether U-plane sections carry the udCompHdr byte pair.
    pub ud_comp_hdr: bool,
    /// Ethernet MTU used to split a symbol into packets (IP-style MTU: the
    /// Ethernet payload, 1500 default, up to 9000 for jumbo frames).
    pub mtu: u16,
    /// Symbols (0..=13) of each UL slot that carry DMRS pilots.
    pub dmrs_symbols: Vec<u8>,
    /// Signal to noise ratio of the simulated channel in dB.
    pub snr_db: f32,
    /// Seed of the traffic model.
    pub seed: u64,
    /// Direction of the U-plane traffic.
    pub direction: Direction,
    /// eAxC bit split.
    pub eaxc_split: EaxcSplit,
    /// Number of distinct slots the traffic model precomputes (1..=1000);
    /// slot `n` carries pool entry `n % distinct_slots`.
    pub distinct_slots: u16,
}

impl Default for CellConfig {
    fn default() -> Self {
        CellConfig {
            mu: 1,
            prbs: 51,
            antennas: 2,
            layers: 1,
            modulation: Modulation::Qam256,
            iq_width: 9,
            compression: Compression::Bfp,
            ud_comp_hdr: true,
            mtu: 1500,
            dmrs_symbols: vec![2, 11],
            snr_db: 40.0,
            seed: 1,
            direction: Direction::Uplink,
            eaxc_split: EaxcSplit::default(),
            distinct_slots: 20,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CellError {
    CellError::Invalid { field, reason: reason.into() }
}

impl CellConfig {
    /// Checks every field and the relations between them.
    pub fn validate(&self) -> Result<(), CellError> {
        if self.mu > 3 {
            return Err(invalid("mu", format!("{} is out of range 0..=3", self.mu)));
        }
        if self.prbs == 0 || self.prbs > 275 {
            return Err(invalid("prbs", format!("{} is out of range 1..=275", self.prbs)));
        }
        if self.antennas == 0 || self.antennas > 16 {
            return Err(invalid("antennas", format!("{} is out of range 1..=16", self.antennas)));
        }
        if self.layers == 0 || self.layers > 4 {
            return Err(invalid("layers", format!("{} is out of range 1..=4", self.layers)));
        }
        if self.layers > self.antennas {
            return Err(invalid("layers", format!("{} layers need at least as many antennas, have {}", self.layers, self.antennas)));
        }
        if self.iq_width == 0 || self.iq_width > 16 {
            return Err(invalid("iq_width", format!("{} is out of range 1..=16", self.iq_width)));
        }
        if self.compression == Compression::None && self.iq_width != 16 {
            return Err(invalid("iq_width", "uncompressed IQ is sent as 16-bit samples; set iq_width = 16 or compression = bfp"));
        }
        if !(576..=9000).contains(&self.mtu) {
            return Err(invalid("mtu", format!("{} is out of range 576..=9000", self.mtu)));
        }
        if self.dmrs_symbols.is_empty() {
            return Err(invalid("dmrs_symbols", "at least one DMRS symbol is needed for channel estimation"));
        }
        let mut seen = 0u16;
        for &s in &self.dmrs_symbols {
            if s > 13 {
                return Err(invalid("dmrs_symbols", format!("symbol {s} is out of range 0..=13")));
            }
            if seen & (1 << s) != 0 {
                return Err(invalid("dmrs_symbols", format!("symbol {s} is listed twice")));
            }
            seen |= 1 << s;
        }
        if self.dmrs_symbols.len() >= 14 {
            return Err(invalid("dmrs_symbols", "no symbol is left for data"));
        }
        if !self.snr_db.is_finite() || !(-10.0..=100.0).contains(&self.snr_db) {
            return Err(invalid("snr_db", format!("{} is out of range -10..=100", self.snr_db)));
        }
        if self.distinct_slots == 0 || self.distinct_slots > 1000 {
            return Err(invalid("distinct_slots", format!("{} is out of range 1..=1000", self.distinct_slots)));
        }
        let s = self.eaxc_split;
        if u32::from(s.du_port) + u32::from(s.band_sector) + u32::from(s.cc) + u32::from(s.ru_port) != 16 {
            return Err(invalid("eaxc_split", "the four widths must add up to 16 bits"));
        }
        if u32::from(self.antennas) > (1u32 << s.ru_port) {
            return Err(invalid("eaxc_split", format!("{} antennas do not fit in {} RU-port bits", self.antennas, s.ru_port)));
        }
        Ok(())
    }

    /// Bitmask of the DMRS symbols (bit n set = symbol n carries DMRS).
    pub fn dmrs_mask(&self) -> u16 {
        self.dmrs_symbols.iter().fold(0u16, |m, &s| m | (1u16 << (s & 15)))
    }

    /// Compact, space-free form: `mu=1,prbs=51,ant=2,layers=1,mod=qam256,...`.
    /// Parsing it back gives an equal config.
    pub fn to_spec(&self) -> String {
        let dmrs: Vec<String> = self.dmrs_symbols.iter().map(|s| s.to_string()).collect();
        let s = self.eaxc_split;
        format!(
            "mu={},prbs={},ant={},layers={},mod={},iqw={},comp={},udcomphdr={},mtu={},dmrs={},snr={},seed={},dir={},eaxc={}.{}.{}.{},pool={}",
            self.mu,
            self.prbs,
            self.antennas,
            self.layers,
            self.modulation.name(),
            self.iq_width,
            match self.compression {
                Compression::None => "none",
                Compression::Bfp => "bfp",
            },
            u8::from(self.ud_comp_hdr),
            self.mtu,
            dmrs.join(":"),
            self.snr_db,
            self.seed,
            match self.direction {
                Direction::Uplink => "ul",
                Direction::Downlink => "dl",
            },
            s.du_port,
            s.band_sector,
            s.cc,
            s.ru_port,
            self.distinct_slots
        )
    }
}

impl fmt::Display for CellConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_spec())
    }
}

fn num<T: FromStr>(field: &'static str, v: &str) -> Result<T, CellError> {
    v.parse().map_err(|_| invalid(field, format!("{v:?} is not a valid number")))
}

impl FromStr for CellConfig {
    type Err = CellError;

    /// Parses the form written by [`CellConfig::to_spec`]; missing fields keep
    /// their defaults. The result is validated.
    fn from_str(spec: &str) -> Result<Self, CellError> {
        let mut c = CellConfig::default();
        for item in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| CellError::UnknownField(item.to_string()))?;
            match k {
                "mu" => c.mu = num("mu", v)?,
                "prbs" => c.prbs = num("prbs", v)?,
                "ant" => c.antennas = num("antennas", v)?,
                "layers" => c.layers = num("layers", v)?,
                "mod" => c.modulation = v.parse()?,
                "iqw" => c.iq_width = num("iq_width", v)?,
                "comp" => {
                    c.compression = match v {
                        "none" => Compression::None,
                        "bfp" => Compression::Bfp,
                        _ => return Err(invalid("compression", format!("unknown compression {v:?} (none, bfp)"))),
                    }
                }
                "udcomphdr" => c.ud_comp_hdr = num::<u8>("ud_comp_hdr", v)? != 0,
                "mtu" => c.mtu = num("mtu", v)?,
                "dmrs" => {
                    c.dmrs_symbols = v.split(':').map(|s| num("dmrs_symbols", s)).collect::<Result<_, _>>()?;
                }
                "snr" => c.snr_db = num("snr_db", v)?,
                "seed" => c.seed = num("seed", v)?,
                "dir" => {
                    c.direction = match v {
                        "ul" => Direction::Uplink,
                        "dl" => Direction::Downlink,
                        _ => return Err(invalid("direction", format!("unknown direction {v:?} (ul, dl)"))),
                    }
                }
                "eaxc" => {
                    let p: Vec<u8> = v.split('.').map(|s| num("eaxc_split", s)).collect::<Result<_, _>>()?;
                    if p.len() != 4 {
                        return Err(invalid("eaxc_split", "four widths are needed, e.g. 2.6.4.4"));
                    }
                    c.eaxc_split = EaxcSplit { du_port: p[0], band_sector: p[1], cc: p[2], ru_port: p[3] };
                }
                "pool" => c.distinct_slots = num("distinct_slots", v)?,
                other => return Err(CellError::UnknownField(other.to_string())),
            }
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips() {
        let c = CellConfig { mu: 0, prbs: 273, antennas: 4, layers: 4, snr_db: 27.5, seed: 99, distinct_slots: 7, ..CellConfig::default() };
        let back: CellConfig = c.to_spec().parse().unwrap();
        assert_eq!(back, c);
        assert!(!c.to_spec().contains(' '));
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = "mu=4".parse::<CellConfig>().unwrap_err();
        assert!(e.to_string().contains("mu"), "{e}");
        let e = "ant=1,layers=2".parse::<CellConfig>().unwrap_err();
        assert!(e.to_string().contains("layers"), "{e}");
        let e = "bogus=1".parse::<CellConfig>().unwrap_err();
        assert_eq!(e, CellError::UnknownField("bogus".into()));
        let e = "dmrs=2:2".parse::<CellConfig>().unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
