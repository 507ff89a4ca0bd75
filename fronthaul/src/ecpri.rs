//! The Ethernet header, the eCPRI common header and the PC_ID/RTC_ID + SEQ_ID
//! fields (the eAxC identifier with its configurable bit split).
//!
//! Layouts follow /work/shared/reference/fronthaul.md; all fields are
//! big-endian. Parsers take `&[u8]` and return typed errors, writers take
//! `&mut [u8]` and return the bytes written.

use crate::cell::EaxcSplit;
use crate::error::{need, room, FhError};

/// EtherType of eCPRI over Ethernet.
pub const ETHERTYPE_ECPRI: u16 = 0xAEFE;
/// EtherType (TPID) of an IEEE 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// Length of the eCPRI common header.
pub const COMMON_HEADER_LEN: usize = 4;
/// Length of PC_ID/RTC_ID + SEQ_ID (message types 0 and 2).
pub const RTC_HEADER_LEN: usize = 4;
/// The only eCPRI protocol revision cranlab speaks.
pub const REVISION: u8 = 1;


/// Ethernet II header, optionally with one 802.1Q tag; the EtherType is
/// always eCPRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EthHeader {
    /// Destination MAC address.
    pub dst: [u8; 6],
    /// Source MAC address.
    pub src: [u8; 6],
    /// 802.1Q tag control information (PCP, DEI, VLAN id), if tagged.
    pub vlan_tci: Option<u16>,
}

impl EthHeader {
    /// Bytes the header occupies: 14, or 18 with a VLAN tag.
    pub fn len(&self) -> usize {
        if self.vlan_tci.is_some() {
            18
        } else {
            14
        }
    }

    /// Always false: an Ethernet header is never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parses the header at the start of `frame`; returns it and its length.
    /// Fails unless the (inner) EtherType is eCPRI.
    pub fn parse(frame: &[u8]) -> Result<(EthHeader, usize), FhError> {
        need("ethernet header", frame, 14)?;
        let mut h = EthHeader::default();
        h.dst.copy_from_slice(&frame[0..6]);
        h.src.copy_from_slice(&frame[6..12]);
        let mut et = u16::from_be_bytes([frame[12], frame[13]]);
        let mut len = 14;
        if et == ETHERTYPE_VLAN {
            need("802.1q tag", frame, 18)?;
            h.vlan_tci = Some(u16::from_be_bytes([frame[14], frame[15]]));
            et = u16::from_be_bytes([frame[16], frame[17]]);
            len = 18;
        }
        if et != ETHERTYPE_ECPRI {
            return Err(FhError::NotEcpri(et));
        }
        Ok((h, len))
    }

    /// Writes the header (EtherType eCPRI) to the start of `out`.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FhError> {
        let n = self.len();
        room(out, n)?;
        out[0..6].copy_from_slice(&self.dst);
        out[6..12].copy_from_slice(&self.src);
        let mut p = 12;
        if let Some(tci) = self.vlan_tci {
            out[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            out[14..16].copy_from_slice(&tci.to_be_bytes());
            p = 16;
        }
        out[p..p + 2].copy_from_slice(&ETHERTYPE_ECPRI.to_be_bytes());
        Ok(n)
    }
}

/// eCPRI message types cranlab knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 0: IQ data — the O-RAN U-plane.
    IqData,
    /// 2: real-time control data — the O-RAN C-plane.
    RealTimeControl,
    /// 5: one-way delay measurement.
    DelayMeasurement,
    /// 64..=255: vendor specific (cranlab's slot-done reply lives here).
    Vendor(u8),
}

impl MessageType {
    /// Maps the wire value; types other than 0, 2, 5 and 64..=255 are errors.
    pub fn from_u8(v: u8) -> Result<MessageType, FhError> {
        match v {
            0 => Ok(MessageType::IqData),
            2 => Ok(MessageType::RealTimeControl),
            5 => Ok(MessageType::DelayMeasurement),
            64..=255 => Ok(MessageType::Vendor(v)),
            _ => Err(FhError::UnknownMessageType(v)),
        }
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            MessageType::IqData => 0,
            MessageType::RealTimeControl => 2,
            MessageType::DelayMeasurement => 5,
            MessageType::Vendor(v) => v,
        }
    }
}

/// The 4-byte eCPRI common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonHeader {
    /// Message type.
    pub message_type: MessageType,
    /// Bytes after the common header that belong to the message (padding excluded).
    pub payload_size: u16,
}

impl CommonHeader {
    /// Parses and checks the header at the start of `b` (revision 1, C bit clear,
    /// known message type). Does not check the payload size against `b`.
    pub fn parse(b: &[u8]) -> Result<CommonHeader, FhError> {
        need("ecpri common header", b, COMMON_HEADER_LEN)?;
        let rev = b[0] >> 4;
        if rev != REVISION {
            return Err(FhError::BadRevision(rev));
        }
        if b[0] & 1 != 0 {
            return Err(FhError::Concatenated);
        }
        Ok(CommonHeader {
            message_type: MessageType::from_u8(b[1])?,
            payload_size: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Writes the header (revision 1, C = 0) to the start of `out`.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FhError> {
        room(out, COMMON_HEADER_LEN)?;
        out[0] = REVISION << 4;
        out[1] = self.message_type.to_u8();
        out[2..4].copy_from_slice(&self.payload_size.to_be_bytes());
        Ok(COMMON_HEADER_LEN)
    }
}

/// An eAxC identifier split into its four parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Eaxc {
    /// DU port id.
    pub du_port: u8,
    /// Band sector id.
    pub band_sector: u8,
    /// Component carrier id.
    pub cc: u8,
    /// RU port id (cranlab: the antenna index).
    pub ru_port: u8,
}

fn check_split(s: EaxcSplit) -> Result<(), FhError> {
    let sum = u32::from(s.du_port) + u32::from(s.band_sector) + u32::from(s.cc) + u32::from(s.ru_port);
    if sum != 16 {
        return Err(FhError::BadEaxcSplit(s.du_port, s.band_sector, s.cc, s.ru_port));
    }
    Ok(())
}

fn mask(bits: u8) -> u16 {
    if bits >= 16 {
        u16::MAX
    } else {
        (1u16 << bits) - 1
    }
}

impl Eaxc {
    /// Packs the four parts into the 16-bit PC_ID/RTC_ID with `split`.
    /// Fails when the split does not add up to 16 or a part does not fit.
    pub fn to_u16(self, split: EaxcSplit) -> Result<u16, FhError> {
        check_split(split)?;
        let parts = [
            ("du_port", self.du_port, split.du_port),
            ("band_sector", self.band_sector, split.band_sector),
            ("cc", self.cc, split.cc),
            ("ru_port", self.ru_port, split.ru_port),
        ];
        let mut v: u32 = 0;
        for (field, val, bits) in parts {
            let m = mask(bits);
            if u16::from(val) > m {
                return Err(FhError::FieldRange { field, value: u32::from(val), max: u32::from(m) });
            }
            v = (v << bits) | u32::from(val);
        }
        Ok(v as u16)
    }

    /// Splits a 16-bit PC_ID/RTC_ID with `split`.
    pub fn from_u16(raw: u16, split: EaxcSplit) -> Result<Eaxc, FhError> {
        check_split(split)?;
        let r = u32::from(raw);
        let ru_shift = 0;
        let cc_shift = u32::from(split.ru_port);
        let bs_shift = cc_shift + u32::from(split.cc);
        let du_shift = bs_shift + u32::from(split.band_sector);
        let get = |shift: u32, bits: u8| ((r.checked_shr(shift).unwrap_or(0)) & u32::from(mask(bits))) as u8;
        Ok(Eaxc {
            du_port: get(du_shift, split.du_port),
            band_sector: get(bs_shift, split.band_sector),
            cc: get(cc_shift, split.cc),
            ru_port: get(ru_shift, split.ru_port),
        })
    }
}

/// PC_ID/RTC_ID (raw eAxC) and SEQ_ID of message types 0 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtcHeader {
    /// The 16-bit eAxC identifier as on the wire (split it with [`Eaxc::from_u16`]).
    pub eaxc: u16,
    /// SEQ_ID: counts per eAxC and per plane, wrapping at 256.
    pub seq_id: u8,
    /// E bit: true on the last (or only) fragment of a message.
    pub e_bit: bool,
    /// SubSeqId (7 bits): fragment index, 0 when unfragmented.
    pub subseq_id: u8,
}

impl RtcHeader {
    /// An unfragmented message's header (E = 1, SubSeqId = 0).
    pub fn new(eaxc: u16, seq_id: u8) -> RtcHeader {
        RtcHeader { eaxc, seq_id, e_bit: true, subseq_id: 0 }
    }

    /// Parses the 4 bytes at the start of `b`.
    pub fn parse(b: &[u8]) -> Result<RtcHeader, FhError> {
        need("pc_id/seq_id", b, RTC_HEADER_LEN)?;
        Ok(RtcHeader {
            eaxc: u16::from_be_bytes([b[0], b[1]]),
            seq_id: b[2],
            e_bit: b[3] & 0x80 != 0,
            subseq_id: b[3] & 0x7f,
        })
    }

    /// Writes the 4 bytes to the start of `out`; SubSeqId must fit 7 bits.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FhError> {
        room(out, RTC_HEADER_LEN)?;
        if self.subseq_id > 0x7f {
            return Err(FhError::FieldRange { field: "subSeqId", value: u32::from(self.subseq_id), max: 0x7f });
        }
        out[0..2].copy_from_slice(&self.eaxc.to_be_bytes());
        out[2] = self.seq_id;
        out[3] = (u8::from(self.e_bit) << 7) | self.subseq_id;
        Ok(RTC_HEADER_LEN)
    }
}

/// Payload of a one-way delay measurement message (type 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DelayMeasurement {
    /// Measurement ID.
    pub measurement_id: u8,
    /// Action type (0 request, 1 request with follow-up, 2 response, …).
    pub action_type: u8,
    /// Timestamp seconds (48 bits).
    pub seconds: u64,
    /// Timestamp nanoseconds.
    pub nanoseconds: u32,
    /// Compensation value (64 bits, ns · 2^16).
    pub compensation: i64,
}

/// Bytes of a delay measurement payload without dummy bytes.
pub const DELAY_MEASUREMENT_LEN: usize = 20;

impl DelayMeasurement {
    /// Parses the payload at the start of `b` (dummy bytes after it are ignored).
    pub fn parse(b: &[u8]) -> Result<DelayMeasurement, FhError> {
        need("delay measurement", b, DELAY_MEASUREMENT_LEN)?;
        let mut s = [0u8; 8];
        s[2..8].copy_from_slice(&b[2..8]);
        Ok(DelayMeasurement {
            measurement_id: b[0],
            action_type: b[1],
            seconds: u64::from_be_bytes(s),
            nanoseconds: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            compensation: i64::from_be_bytes([b[12], b[13], b[14], b[15], b[16], b[17], b[18], b[19]]),
        })
    }

    /// Writes the 20-byte payload to the start of `out`.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, FhError> {
        room(out, DELAY_MEASUREMENT_LEN)?;
        if self.seconds >= 1 << 48 {
            return Err(FhError::FieldRange { field: "timestamp seconds", value: u32::MAX, max: u32::MAX });
        }
        out[0] = self.measurement_id;
        out[1] = self.action_type;
        out[2..8].copy_from_slice(&self.seconds.to_be_bytes()[2..8]);
        out[8..12].copy_from_slice(&self.nanoseconds.to_be_bytes());
        out[12..20].copy_from_slice(&self.compensation.to_be_bytes());
        Ok(DELAY_MEASUREMENT_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eaxc_default_split() {
        let s = EaxcSplit::default();
        let e = Eaxc { du_port: 1, band_sector: 5, cc: 2, ru_port: 3 };
        let raw = e.to_u16(s).unwrap();
        assert_eq!(raw, (1 << 14) | (5 << 8) | (2 << 4) | 3);
        assert_eq!(Eaxc::from_u16(raw, s).unwrap(), e);
        let bad = Eaxc { ru_port: 16, ..e };
        assert!(matches!(bad.to_u16(s), Err(FhError::FieldRange { field: "ru_port", .. })));
        let zero = EaxcSplit { du_port: 0, band_sector: 0, cc: 0, ru_port: 16 };
        assert_eq!(Eaxc::from_u16(0xffff, zero).unwrap().ru_port, 0xff);
    }

    #[test]
    fn common_header_checks() {
        assert_eq!(CommonHeader::parse(&[0x20, 0, 0, 4]), Err(FhError::BadRevision(2)));
        assert_eq!(CommonHeader::parse(&[0x11, 0, 0, 4]), Err(FhError::Concatenated));
        assert_eq!(CommonHeader::parse(&[0x10, 7, 0, 4]), Err(FhError::UnknownMessageType(7)));
        assert_eq!(CommonHeader::parse(&[0x10, 200, 0, 4]).unwrap().message_type, MessageType::Vendor(200));
    }
}
