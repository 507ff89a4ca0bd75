//! O-RAN 7.2x U-plane and C-plane headers and sections: the application
//! common header, U-plane section headers with the optional udCompHdr, and
//! C-plane section types 1 and 3.
//!
//! These are the per-structure parsers and writers; [`crate::frame`] puts
//! them together into whole frames.

use crate::cell::{Compression, Direction};
use crate::error::{need, room, FhError};

/// Length of the O-RAN application common header.
pub const APP_HEADER_LEN: usize = 4;
/// Length of a U-plane section header without udCompHdr.
pub const USECTION_HEADER_LEN: usize = 4;
/// Length of the udCompHdr field plus its reserved byte.
pub const UD_COMP_HDR_LEN: usize = 2;
/// Length of the C-plane section type 1 common header after the app header.
pub const CPLANE1_HEADER_LEN: usize = 4;
/// Length of one C-plane type 1 section (no extensions).
pub const CSECTION1_LEN: usize = 8;
/// Length of the C-plane section type 3 common header after the app header.
pub const CPLANE3_HEADER_LEN: usize = 8;
/// Length of one C-plane type 3 section (no extensions).
pub const CSECTION3_LEN: usize = 12;
/// The O-RAN payloadVersion cranlab writes and accepts.
pub const PAYLOAD_VERSION: u8 = 1;


fn range(field: &'static str, value: u32, max: u32) -> Result<(), FhError> {
    if value > max {
        Err(FhError::FieldRange { field, value, max })
    } else {
        Ok(())
    }
}

/// The application common header shared by U- and C-plane messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppHeader {
    /// dataDirection: uplink (0) or downlink (1).
    pub direction: Direction,
    /// payloadVersion (3 bits, 1).
    pub payload_version: u8,
    /// filterIndex (4 bits).
    pub filter_index: u8,
    /// frameId: SFN mod 256.
    pub frame_id: u8,
    /// subframeId 0..=9.
    pub subframe_id: u8,
    /// slotId within the subframe, 0..2^µ.
    pub slot_id: u8,
    /// symbolId 0..=13 (start symbol in the C-plane).
    pub symbol_id: u8,
}

impl AppHeader {
    /// A header with payloadVersion 1 and filterIndex 0.
    pub fn new(direction: Direction, frame_id: u8, subframe_id: u8, slot_id: u8, symbol_id: u8) -> AppHeader {
        AppHeader { direction, payload_version: PAYLOAD_VERSION, filter_index: 0, frame_id, subframe_id, slot_id, symbol_id }
    }

    fn check(&self, mu: u8) -> Result<(), FhError> {
        range("payloadVersion", u32::from(self.payload_version), 7)?;
        if self.payload_version != PAYLOAD_VERSION {
            return Err(FhError::FieldRange { field: "payloadVersion", value: u32::from(self.payload_version), max: u32::from(PAYLOAD_VERSION) });
        }
        range("filterIndex", u32::from(self.filter_index), 15)?;
        range("subframeId", u32::from(self.subframe_id), 9)?;
        range("slotId", u32::from(self.slot_id), (1u32 << mu.min(5)) - 1)?;
        range("symbolId", u32::from(self.symbol_id), 13)
    }

    /// Parses the 4 bytes at the start of `b` and checks every field against
    /// numerology `mu` (subframeId ≤ 9, slotId < 2^µ, symbolId ≤ 13,
    /// payloadVersion = 1).
    pub fn parse(b: &[u8], mu: u8) -> Result<AppHeader, FhError> {
        need("o-ran common header", b, APP_HEADER_LEN)?;
        let h = AppHeader {
            direction: if b[0] & 0x80 != 0 { Direction::Downlink } else { Direction::Uplink },
            payload_version: (b[0] >> 4) & 7,
            filter_index: b[0] & 0x0f,
            frame_id: b[1],
            subframe_id: b[2] >> 4,
            slot_id: ((b[2] & 0x0f) << 2) | (b[3] >> 6),
            symbol_id: b[3] & 0x3f,
        };
        h.check(mu)?;
        Ok(h)
    }

    /// Writes the header to the start of `out` after the same checks as
    /// [`AppHeader::parse`].
    pub fn write(&self, out: &mut [u8], mu: u8) -> Result<usize, FhError> {
        room(out, APP_HEADER_LEN)?;
        self.check(mu)?;
        let dir = u8::from(self.direction == Direction::Downlink);
        out[0] = (dir << 7) | (self.payload_version << 4) | self.filter_index;
        out[1] = self.frame_id;
        out[2] = (self.subframe_id << 4) | (self.slot_id >> 2);
        out[3] = ((self.slot_id & 3) << 6) | self.symbol_id;
        Ok(APP_HEADER_LEN)
    }
}

/// The udCompHdr byte: IQ width and compression method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdCompHdr {
    /// udIqWidth as a width 1..=16 (the wire's 0 means 16).
    pub iq_width: u8,
    /// udCompMeth (0 none, 1 block floating point).
    pub compression: Compression,
}

impl UdCompHdr {
    /// Decodes the byte; unsupported methods are errors.
    pub fn from_byte(b: u8) -> Result<UdCompHdr, FhError> {
        let w = b >> 4;
        let compression = match b & 0x0f {
            0 => Compression::None,
            1 => Compression::Bfp,
            m => return Err(FhError::UnsupportedCompression(m)),
        };
        Ok(UdCompHdr { iq_width: if w == 0 { 16 } else { w }, compression })
    }

    /// Encodes the byte (width 16 is written as 0).
    pub fn to_byte(self) -> Result<u8, FhError> {
        if !(1..=16).contains(&self.iq_width) {
            return Err(FhError::BadWidth(self.iq_width));
        }
        let meth = match self.compression {
            Compression::None => 0,
            Compression::Bfp => 1,
        };
        Ok(((self.iq_width & 0x0f) << 4) | meth)
    }
}

/// A U-plane section header as seen by the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct USectionHeader {
    /// sectionId (12 bits).
    pub section_id: u16,
    /// rb: every other resource block used.
    pub rb: bool,
    /// symInc: symbol number increment.
    pub sym_inc: bool,
    /// startPrbu (10 bits).
    pub start_prb: u16,
    /// Number of PRBs, resolved: a wire numPrbu of 0 means all PRBs of the
    /// carrier from `start_prb` on. Writers send 0 when this exceeds 255.
    pub num_prb: u16,
    /// Whether the section carries udCompHdr on the wire.
    pub ud_comp_hdr: bool,
    /// IQ width of the PRBs (from udCompHdr or configuration).
    pub iq_width: u8,
    /// Compression of the PRBs (from udCompHdr or configuration).
    pub compression: Compression,
}

impl USectionHeader {
    /// Bytes of the header on the wire (4, or 6 with udCompHdr).
    pub fn wire_len(&self) -> usize {
        USECTION_HEADER_LEN + if self.ud_comp_hdr { UD_COMP_HDR_LEN } else { 0 }
    }

    /// Bytes of the section's PRB payload.
    pub fn payload_len(&self) -> usize {
        usize::from(self.num_prb) * crate::bfp::prb_bytes(self.iq_width, self.compression)
    }

    /// Writes the header (and udCompHdr if enabled) to the start of `out`.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FhError> {
        let n = self.wire_len();
        room(out, n)?;
        write_section_id(out, self.section_id, self.rb, self.sym_inc, self.start_prb)?;
        range("numPrbu", u32::from(self.num_prb), 1023)?;
        out[3] = if self.num_prb > 255 { 0 } else { self.num_prb as u8 };
        if self.ud_comp_hdr {
            out[4] = UdCompHdr { iq_width: self.iq_width, compression: self.compression }.to_byte()?;
            out[5] = 0;
        } else if !(1..=16).contains(&self.iq_width) {
            return Err(FhError::BadWidth(self.iq_width));
        }
        Ok(n)
    }
}

/// What the wire cannot say about U-plane sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionFormat {
    /// PRBs of the carrier (resolves numPrbu = 0, bounds startPrbu + numPrbu).
    pub carrier_prbs: u16,
    /// Whether sections carry udCompHdr.
    pub ud_comp_hdr: bool,
    /// IQ width when no udCompHdr is sent.
    pub iq_width: u8,
    /// Compression when no udCompHdr is sent.
    pub compression: Compression,
}

fn write_section_id(out: &mut [u8], section_id: u16, rb: bool, sym_inc: bool, start: u16) -> Result<(), FhError> {
    range("sectionId", u32::from(section_id), 0xfff)?;
    range("startPrb", u32::from(start), 0x3ff)?;
    out[0] = (section_id >> 4) as u8;
    out[1] = ((section_id as u8 & 0x0f) << 4) | (u8::from(rb) << 3) | (u8::from(sym_inc) << 2) | ((start >> 8) as u8 & 3);
    out[2] = start as u8;
    Ok(())
}

fn read_section_id(b: &[u8]) -> (u16, bool, bool, u16) {
    let id = (u16::from(b[0]) << 4) | u16::from(b[1] >> 4);
    let start = (u16::from(b[1] & 3) << 8) | u16::from(b[2]);
    (id, b[1] & 8 != 0, b[1] & 4 != 0, start)
}

fn resolve_prbs(field: &'static str, start: u16, wire_num: u8, carrier: u16) -> Result<u16, FhError> {
    if start >= carrier {
        return Err(FhError::FieldRange { field, value: u32::from(start), max: u32::from(carrier.saturating_sub(1)) });
    }
    let num = if wire_num == 0 { carrier - start } else { u16::from(wire_num) };
    if start + num > carrier {
        let f = if field == "startPrbu" { "numPrbu" } else { "numPrbc" };
        return Err(FhError::FieldRange { field: f, value: u32::from(num), max: u32::from(carrier - start) });
    }
    Ok(num)
}

/// Parses one U-plane section at the start of `b`: returns its header and
/// its PRB payload, and the total bytes it occupies.
pub fn parse_usection<'a>(b: &'a [u8], fmt: &SectionFormat) -> Result<(USectionHeader, &'a [u8], usize), FhError> {
    need("u-plane section header", b, USECTION_HEADER_LEN)?;
    let (section_id, rb, sym_inc, start_prb) = read_section_id(b);
    let num_prb = resolve_prbs("startPrbu", start_prb, b[3], fmt.carrier_prbs)?;
    let mut hlen = USECTION_HEADER_LEN;
    let (iq_width, compression) = if fmt.ud_comp_hdr {
        need("udCompHdr", b, USECTION_HEADER_LEN + UD_COMP_HDR_LEN)?;
        hlen += UD_COMP_HDR_LEN;
        let u = UdCompHdr::from_byte(b[4])?;
        (u.iq_width, u.compression)
    } else {
        if !(1..=16).contains(&fmt.iq_width) {
            return Err(FhError::BadWidth(fmt.iq_width));
        }
        (fmt.iq_width, fmt.compression)
    };
    let h = USectionHeader { section_id, rb, sym_inc, start_prb, num_prb, ud_comp_hdr: fmt.ud_comp_hdr, iq_width, compression };
    let plen = h.payload_len();
    let rest = &b[hlen..];
    if rest.len() < plen {
        return Err(FhError::SectionPastPacket { section_id, need: plen, have: rest.len() });
    }
    Ok((h, &rest[..plen], hlen + plen))
}

/// The C-plane header after the application common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CPlaneHeader {
    /// numberOfSections.
    pub num_sections: u8,
    /// sectionType: 1 or 3.
    pub section_type: u8,
    /// udCompHdr byte (raw): compression the U-plane of these sections uses.
    pub ud_comp_hdr: u8,
    /// Section type 3 only: timeOffset, frameStructure (FFT size | SCS), cpLength.
    pub type3: Option<Type3Fields>,
}

/// Fields of the section type 3 common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Type3Fields {
    /// timeOffset (in units of 1/30.72 MHz samples).
    pub time_offset: u16,
    /// frameStructure: FFT size (4 bits) | subcarrier spacing (4 bits).
    pub frame_structure: u8,
    /// cpLength.
    pub cp_length: u16,
}

impl CPlaneHeader {
    /// Bytes on the wire (after the app header).
    pub fn wire_len(&self) -> usize {
        if self.type3.is_some() {
            CPLANE3_HEADER_LEN
        } else {
            CPLANE1_HEADER_LEN
        }
    }

    /// Bytes of each section of this type.
    pub fn section_len(&self) -> usize {
        if self.type3.is_some() {
            CSECTION3_LEN
        } else {
            CSECTION1_LEN
        }
    }

    /// Parses the header at the start of `b` (the bytes after the app header).
    pub fn parse(b: &[u8]) -> Result<CPlaneHeader, FhError> {
        need("c-plane header", b, CPLANE1_HEADER_LEN)?;
        match b[1] {
            1 => Ok(CPlaneHeader { num_sections: b[0], section_type: 1, ud_comp_hdr: b[2], type3: None }),
            3 => {
                need("c-plane type 3 header", b, CPLANE3_HEADER_LEN)?;
                Ok(CPlaneHeader {
                    num_sections: b[0],
                    section_type: 3,
                    ud_comp_hdr: b[7],
                    type3: Some(Type3Fields {
                        time_offset: u16::from_be_bytes([b[2], b[3]]),
                        frame_structure: b[4],
                        cp_length: u16::from_be_bytes([b[5], b[6]]),
                    }),
                })
            }
            t => Err(FhError::UnsupportedSectionType(t)),
        }
    }

    /// Writes the header to the start of `out`.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FhError> {
        let n = self.wire_len();
        room(out, n)?;
        out[0] = self.num_sections;
        match self.type3 {
            None => {
                out[1] = 1;
                out[2] = self.ud_comp_hdr;
                out[3] = 0;
            }
            Some(t) => {
                out[1] = 3;
                out[2..4].copy_from_slice(&t.time_offset.to_be_bytes());
                out[4] = t.frame_structure;
                out[5..7].copy_from_slice(&t.cp_length.to_be_bytes());
                out[7] = self.ud_comp_hdr;
            }
        }
        Ok(n)
    }
}

/// A C-plane section of type 1 (or the common part of type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSection {
    /// sectionId (12 bits), matched by the U-plane sections it schedules.
    pub section_id: u16,
    /// rb: every other resource block used.
    pub rb: bool,
    /// symInc.
    pub sym_inc: bool,
    /// startPrbc (10 bits).
    pub start_prb: u16,
    /// Number of PRBs, resolved (wire numPrbc 0 = all PRBs of the carrier).
    pub num_prb: u16,
    /// reMask (12 bits): resource elements of each PRB used.
    pub re_mask: u16,
    /// numSymbol (4 bits): symbols the section spans.
    pub num_symbol: u8,
    /// beamId (15 bits).
    pub beam_id: u16,
    /// Type 3 only: frequencyOffset (signed 24 bits).
    pub frequency_offset: i32,
}

impl CSection {
    /// Writes the section (8 bytes for type 1, 12 for type 3) to `out`.
    pub fn write(&self, out: &mut [u8], type3: bool) -> Result<usize, FhError> {
        let n = if type3 { CSECTION3_LEN } else { CSECTION1_LEN };
        room(out, n)?;
        write_section_id(out, self.section_id, self.rb, self.sym_inc, self.start_prb)?;
        range("numPrbc", u32::from(self.num_prb), 1023)?;
        range("reMask", u32::from(self.re_mask), 0xfff)?;
        range("numSymbol", u32::from(self.num_symbol), 14)?;
        range("beamId", u32::from(self.beam_id), 0x7fff)?;
        out[3] = if self.num_prb > 255 { 0 } else { self.num_prb as u8 };
        out[4] = (self.re_mask >> 4) as u8;
        out[5] = ((self.re_mask as u8 & 0x0f) << 4) | (self.num_symbol & 0x0f);
        out[6..8].copy_from_slice(&self.beam_id.to_be_bytes());
        if type3 {
            if !(-(1 << 23)..(1 << 23)).contains(&self.frequency_offset) {
                return Err(FhError::FieldRange { field: "frequencyOffset", value: self.frequency_offset as u32, max: (1 << 23) - 1 });
            }
            out[8..11].copy_from_slice(&self.frequency_offset.to_be_bytes()[1..4]);
            out[11] = 0;
        }
        Ok(n)
    }

    /// Parses one section at the start of `b`.
    pub fn parse(b: &[u8], type3: bool, carrier_prbs: u16) -> Result<CSection, FhError> {
        need("c-plane section", b, if type3 { CSECTION3_LEN } else { CSECTION1_LEN })?;
        let (section_id, rb, sym_inc, start_prb) = read_section_id(b);
        let num_prb = resolve_prbs("startPrbc", start_prb, b[3], carrier_prbs)?;
        let num_symbol = b[5] & 0x0f;
        range("numSymbol", u32::from(num_symbol), 14)?;
        if b[6] & 0x80 != 0 {
            return Err(FhError::UnsupportedExtension(section_id));
        }
        let frequency_offset = if type3 { i32::from_be_bytes([b[8], b[9], b[10], 0]) >> 8 } else { 0 };
        Ok(CSection {
            section_id,
            rb,
            sym_inc,
            start_prb,
            num_prb,
            re_mask: (u16::from(b[4]) << 4) | u16::from(b[5] >> 4),
            num_symbol,
            beam_id: u16::from_be_bytes([b[6] & 0x7f, b[7]]),
            frequency_offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_header_round_trip_and_ranges() {
        let h = AppHeader::new(Direction::Uplink, 200, 9, 1, 13);
        let mut b = [0u8; 4];
        h.write(&mut b, 1).unwrap();
        assert_eq!(AppHeader::parse(&b, 1).unwrap(), h);
        assert!(matches!(AppHeader::parse(&b, 0), Err(FhError::FieldRange { field: "slotId", .. })));
        let bad = AppHeader { symbol_id: 14, ..h };
        assert!(matches!(bad.write(&mut b, 1), Err(FhError::FieldRange { field: "symbolId", .. })));
    }

    #[test]
    fn ud_comp_hdr_width_16_is_zero() {
        let u = UdCompHdr { iq_width: 16, compression: Compression::None };
        assert_eq!(u.to_byte().unwrap(), 0x00);
        assert_eq!(UdCompHdr::from_byte(0x91).unwrap(), UdCompHdr { iq_width: 9, compression: Compression::Bfp });
        assert_eq!(UdCompHdr::from_byte(0x92), Err(FhError::UnsupportedCompression(2)));
    }
}
