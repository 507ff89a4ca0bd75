//! Splitting a symbol's PRBs of one eAxC into MTU-sized U-plane packets,
//! written in place.
//!
//! A [`SymbolPlan`] is computed once per cell (it allocates a small vector at
//! set-up) and then reused for every symbol: packet `k` carries one section
//! with PRBs `start_prb .. start_prb + num_prb`. The MTU bounds the Ethernet
//! payload (eCPRI headers, O-RAN headers, PRBs and the optional trailer);
//! numPrbu is 8 bits, so a section carries at most 255 PRBs unless it carries
//! the whole carrier in one packet (numPrbu = 0, jumbo frames).

use crate::bfp::{prb_bytes, SAMPLES_PER_PRB};
use crate::cell::{CellConfig, Compression};
use crate::ecpri::{EthHeader, RtcHeader, COMMON_HEADER_LEN, RTC_HEADER_LEN};
use crate::error::FhError;
use crate::frame::FrameBuilder;
use crate::oran::{AppHeader, USectionHeader, APP_HEADER_LEN, UD_COMP_HDR_LEN, USECTION_HEADER_LEN};

/// What a plan depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanConfig {
    /// PRBs of the carrier (one symbol of one eAxC).
    pub prbs: u16,
    /// IQ width 1..=16.
    pub iq_width: u8,
    /// PRB compression.
    pub compression: Compression,
    /// Whether sections carry udCompHdr.
    pub ud_comp_hdr: bool,
    /// Ethernet payload limit (1500 standard, up to 9000 jumbo).
    pub mtu: u16,
    /// Whether frames carry an 802.1Q tag (affects only frame lengths).
    pub vlan: bool,
    /// Bytes appended after the eCPRI payload (e.g. 8 for a tx timestamp).
    pub trailer_len: usize,
}

impl PlanConfig {
    /// The plan configuration of a cell (no VLAN, no trailer).
    pub fn from_cell(c: &CellConfig) -> PlanConfig {
        PlanConfig { prbs: c.prbs, iq_width: c.iq_width, compression: c.compression, ud_comp_hdr: c.ud_comp_hdr, mtu: c.mtu, vlan: false, trailer_len: 0 }
    }

    /// Bytes of the Ethernet payload before the first PRB.
    pub fn overhead(&self) -> usize {
        COMMON_HEADER_LEN + RTC_HEADER_LEN + APP_HEADER_LEN + USECTION_HEADER_LEN + if self.ud_comp_hdr { UD_COMP_HDR_LEN } else { 0 }
    }
}

/// One packet of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSpan {
    /// First PRB (startPrbu).
    pub start_prb: u16,
    /// PRBs in the packet.
    pub num_prb: u16,
    /// Length of the whole Ethernet frame (without FCS), trailer included.
    pub frame_len: usize,
}

/// The per-symbol packet split of one eAxC, computed once and reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolPlan {
    cfg: PlanConfig,
    packets: Vec<PacketSpan>,
}

/// Header fields of one U-plane packet that change per symbol/packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UPlaneFields {
    /// Ethernet addresses and VLAN tag.
    pub eth: EthHeader,
    /// PC_ID (eAxC, packed) and SEQ_ID.
    pub rtc: RtcHeader,
    /// Direction, frame/subframe/slot/symbol ids.
    pub app: AppHeader,
    /// Numerology (range checks of the app header).
    pub mu: u8,
    /// sectionId (matches the C-plane section).
    pub section_id: u16,
}

impl SymbolPlan {
    /// Plans the split; fails if the MTU cannot hold a single PRB or the
    /// width/PRB count is invalid.
    pub fn new(cfg: PlanConfig) -> Result<SymbolPlan, FhError> {
        if !(1..=16).contains(&cfg.iq_width) {
            return Err(FhError::BadWidth(cfg.iq_width));
        }
        if cfg.prbs == 0 || cfg.prbs > 1023 {
            return Err(FhError::FieldRange { field: "prbs", value: u32::from(cfg.prbs), max: 1023 });
        }
        if cfg.vlan && cfg.trailer_len > 0 && cfg.mtu == 0 {
            return Err(FhError::Config { field: "mtu", reason: "must be positive" });
        }
        let pb = prb_bytes(cfg.iq_width, cfg.compression);
        let budget = usize::from(cfg.mtu).saturating_sub(cfg.overhead() + cfg.trailer_len);
        let fit = budget / pb;
        if fit == 0 {
            return Err(FhError::Config { field: "mtu", reason: "too small for one prb after the headers" });
        }
        let eth = if cfg.vlan { 18 } else { 14 };
        let frame_len = |n: u16| eth + cfg.overhead() + usize::from(n) * pb + cfg.trailer_len;
        let total = cfg.prbs;
        let per = if fit >= usize::from(total) { total } else { fit.min(255) as u16 };
        let mut packets = Vec::with_capacity(usize::from(total.div_ceil(per)));
        let mut start = 0u16;
        while start < total {
            let n = per.min(total - start);
            packets.push(PacketSpan { start_prb: start, num_prb: n, frame_len: frame_len(n) });
            start += n;
        }
        Ok(SymbolPlan { cfg, packets })
    }

    /// The plan of a cell (no VLAN, no trailer).
    pub fn from_cell(c: &CellConfig) -> Result<SymbolPlan, FhError> {
        SymbolPlan::new(PlanConfig::from_cell(c))
    }

    /// The configuration the plan was made for.
    pub fn config(&self) -> &PlanConfig {
        &self.cfg
    }

    /// The packets of one symbol, in order.
    pub fn packets(&self) -> &[PacketSpan] {
        &self.packets
    }

    /// Packets per symbol.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Always false: a plan has at least one packet.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Length of the largest frame of the plan (size buffers with it).
    pub fn max_frame_len(&self) -> usize {
        self.packets.iter().map(|p| p.frame_len).max().unwrap_or(0)
    }

    /// The section header packet `k` carries.
    pub fn section_header(&self, k: usize, section_id: u16) -> Option<USectionHeader> {
        let p = self.packets.get(k)?;
        Some(USectionHeader {
            section_id,
            rb: false,
            sym_inc: false,
            start_prb: p.start_prb,
            num_prb: p.num_prb,
            ud_comp_hdr: self.cfg.ud_comp_hdr,
            iq_width: self.cfg.iq_width,
            compression: self.cfg.compression,
        })
    }

    /// Writes packet `k` of the symbol whose 16-bit IQ is `symbol_iq`
    /// (`prbs · 24` values, interleaved I, Q) into `out`, appending `trailer`
    /// (at most the planned `trailer_len` bytes); returns the frame length.
    pub fn write_packet(&self, k: usize, f: &UPlaneFields, symbol_iq: &[i16], trailer: &[u8], out: &mut [u8]) -> Result<usize, FhError> {
        let need = usize::from(self.cfg.prbs) * SAMPLES_PER_PRB;
        if symbol_iq.len() != need {
            return Err(FhError::IqLength { need, have: symbol_iq.len() });
        }
        if trailer.len() > self.cfg.trailer_len {
            return Err(FhError::Config { field: "trailer", reason: "longer than the plan's trailer_len" });
        }
        if f.eth.vlan_tci.is_some() != self.cfg.vlan {
            return Err(FhError::Config { field: "vlan", reason: "vlan tag presence differs from the plan" });
        }
        let h = self.section_header(k, f.section_id).ok_or(FhError::FieldRange { field: "packet index", value: k as u32, max: self.packets.len() as u32 - 1 })?;
        let s = usize::from(h.start_prb) * SAMPLES_PER_PRB;
        let e = s + usize::from(h.num_prb) * SAMPLES_PER_PRB;
        let mut b = FrameBuilder::uplane(out, &f.eth, &f.rtc, &f.app, f.mu)?;
        b.push_usection(&h, &symbol_iq[s..e])?;
        b.finish(trailer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_split_273_prbs_bfp9_mtu1500() {
        let c = CellConfig { prbs: 273, ..CellConfig::default() };
        let p = SymbolPlan::from_cell(&c).unwrap();
        assert_eq!(p.len(), 6);
        assert_eq!(p.packets()[0].num_prb, 52);
        assert_eq!(p.packets()[5], PacketSpan { start_prb: 260, num_prb: 13, frame_len: 14 + 18 + 13 * 28 });
        assert!(p.packets().iter().all(|q| q.frame_len - 14 <= 1500));
        assert_eq!(p.packets().iter().map(|q| q.num_prb).sum::<u16>(), 273);
    }

    #[test]
    fn jumbo_whole_carrier_in_one_packet() {
        let c = CellConfig { prbs: 273, mtu: 9000, ..CellConfig::default() };
        let p = SymbolPlan::from_cell(&c).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p.packets()[0].num_prb, 273);
    }

    #[test]
    fn tiny_mtu_is_an_error() {
        let cfg = PlanConfig { mtu: 30, ..PlanConfig::from_cell(&CellConfig::default()) };
        assert!(matches!(SymbolPlan::new(cfg), Err(FhError::Config { field: "mtu", .. })));
    }
}
