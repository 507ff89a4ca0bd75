//! Whole frames: the zero-copy parser ([`parse_frame`], [`parse_ecpri`]) and
//! the in-place builder ([`FrameBuilder`]).
//!
//! The parser borrows the frame, allocates nothing and never panics: it
//! checks every header and walks every section once, so the section
//! iterators it hands out ([`UPlane::sections`], [`CPlane::sections`]) are
//! infallible. Bytes after the eCPRI payload (Ethernet padding, or the 8-byte
//! transmit timestamp cranlab's live simulator appends) are returned as
//! [`Frame::trailer`].

use crate::bfp;
use crate::cell::{CellConfig, Compression, EaxcSplit};
use crate::ecpri::{CommonHeader, DelayMeasurement, EthHeader, MessageType, RtcHeader, COMMON_HEADER_LEN, RTC_HEADER_LEN};
use crate::error::FhError;
use crate::oran::{parse_usection, AppHeader, CPlaneHeader, CSection, SectionFormat, USectionHeader, APP_HEADER_LEN};

/// What the parser needs to know that the wire does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseConfig {
    /// Numerology µ (0..=3): bounds slotId.
    pub mu: u8,
    /// PRBs of the carrier: resolves numPrbu/numPrbc = 0 and bounds start + num.
    pub carrier_prbs: u16,
    /// Whether U-plane sections carry udCompHdr.
    pub ud_comp_hdr: bool,
    /// IQ width when sections carry no udCompHdr.
    pub iq_width: u8,
    /// Compression when sections carry no udCompHdr.
    pub compression: Compression,
    /// eAxC bit split (for [`crate::ecpri::Eaxc::from_u16`]).
    pub eaxc_split: EaxcSplit,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig::from_cell(&CellConfig::default())
    }
}

impl ParseConfig {
    /// The parse configuration of a cell.
    pub fn from_cell(c: &CellConfig) -> ParseConfig {
        ParseConfig {
            mu: c.mu,
            carrier_prbs: c.prbs,
            ud_comp_hdr: c.ud_comp_hdr,
            iq_width: c.iq_width,
            compression: c.compression,
            eaxc_split: c.eaxc_split,
        }
    }

    fn section_format(&self) -> SectionFormat {
        SectionFormat { carrier_prbs: self.carrier_prbs, ud_comp_hdr: self.ud_comp_hdr, iq_width: self.iq_width, compression: self.compression }
    }
}

/// A parsed frame, borrowing the bytes it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Ethernet header (absent-equivalent default when parsed with [`parse_ecpri`]).
    pub eth: EthHeader,
    /// eCPRI common header.
    pub ecpri: CommonHeader,
    /// The message.
    pub message: Message<'a>,
    /// Bytes after the eCPRI payload (padding / appended timestamp).
    pub trailer: &'a [u8],
}

/// The eCPRI message of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Type 0: O-RAN U-plane.
    UPlane(UPlane<'a>),
    /// Type 2: O-RAN C-plane.
    CPlane(CPlane<'a>),
    /// Type 5: one-way delay measurement.
    DelayMeasurement(DelayMeasurement),
    /// Types 64..=255: vendor-specific payload (the eCPRI payload bytes).
    Vendor {
        /// Message type.
        message_type: u8,
        /// Payload (after the common header, `payload_size` bytes).
        payload: &'a [u8],
    },
}

/// An O-RAN U-plane message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UPlane<'a> {
    /// PC_ID (eAxC) and SEQ_ID.
    pub rtc: RtcHeader,
    /// Application common header.
    pub header: AppHeader,
    /// Number of sections in the message (at least 1).
    pub num_sections: usize,
    body: &'a [u8],
    fmt: SectionFormat,
}

impl<'a> UPlane<'a> {
    /// The sections: `(header, PRB payload)` in wire order.
    pub fn sections(&self) -> USections<'a> {
        USections { rest: self.body, fmt: self.fmt }
    }

    /// The first section (every valid U-plane message has one).
    pub fn first_section(&self) -> Option<(USectionHeader, &'a [u8])> {
        self.sections().next()
    }
}

/// Iterator over the (already validated) sections of a U-plane message.
#[derive(Debug, Clone)]
pub struct USections<'a> {
    rest: &'a [u8],
    fmt: SectionFormat,
}

impl<'a> Iterator for USections<'a> {
    type Item = (USectionHeader, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match parse_usection(self.rest, &self.fmt) {
            Ok((h, p, n)) => {
                self.rest = &self.rest[n..];
                Some((h, p))
            }
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

/// An O-RAN C-plane message (section type 1 or 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CPlane<'a> {
    /// RTC_ID (eAxC) and SEQ_ID.
    pub rtc: RtcHeader,
    /// Application common header (symbolId is the start symbol).
    pub header: AppHeader,
    /// The section-type specific common header.
    pub cheader: CPlaneHeader,
    body: &'a [u8],
    carrier_prbs: u16,
}

impl<'a> CPlane<'a> {
    /// The sections in wire order.
    pub fn sections(&self) -> CSections<'a> {
        CSections { rest: self.body, type3: self.cheader.type3.is_some(), carrier_prbs: self.carrier_prbs }
    }
}

/// Iterator over the (already validated) sections of a C-plane message.
#[derive(Debug, Clone)]
pub struct CSections<'a> {
    rest: &'a [u8],
    type3: bool,
    carrier_prbs: u16,
}

impl Iterator for CSections<'_> {
    type Item = CSection;
    fn next(&mut self) -> Option<CSection> {
        let len = if self.type3 { crate::oran::CSECTION3_LEN } else { crate::oran::CSECTION1_LEN };
        if self.rest.len() < len {
            return None;
        }
        let s = CSection::parse(self.rest, self.type3, self.carrier_prbs).ok();
        self.rest = &self.rest[len..];
        s
    }
}

/// Parses an Ethernet frame (optionally 802.1Q-tagged) carrying eCPRI.
pub fn parse_frame<'a>(frame: &'a [u8], cfg: &ParseConfig) -> Result<Frame<'a>, FhError> {
    let (eth, n) = EthHeader::parse(frame)?;
    let mut f = parse_ecpri(&frame[n..], cfg)?;
    f.eth = eth;
    Ok(f)
}

/// Parses an eCPRI message starting at its common header (no Ethernet
/// header); [`Frame::eth`] is left at its default.
pub fn parse_ecpri<'a>(b: &'a [u8], cfg: &ParseConfig) -> Result<Frame<'a>, FhError> {
    let ecpri = CommonHeader::parse(b)?;
    let after = &b[COMMON_HEADER_LEN..];
    let size = usize::from(ecpri.payload_size);
    if size > after.len() {
        return Err(FhError::PayloadSize { declared: size, available: after.len() });
    }
    let (payload, trailer) = after.split_at(size);
    let message = match ecpri.message_type {
        MessageType::IqData | MessageType::RealTimeControl => {
            if payload.len() < RTC_HEADER_LEN + APP_HEADER_LEN {
                return Err(FhError::PayloadSize { declared: size, available: after.len() });
            }
            let rtc = RtcHeader::parse(payload)?;
            let header = AppHeader::parse(&payload[RTC_HEADER_LEN..], cfg.mu)?;
            let body = &payload[RTC_HEADER_LEN + APP_HEADER_LEN..];
            if ecpri.message_type == MessageType::IqData {
                Message::UPlane(parse_uplane(rtc, header, body, cfg)?)
            } else {
                Message::CPlane(parse_cplane(rtc, header, body, cfg)?)
            }
        }
        MessageType::DelayMeasurement => Message::DelayMeasurement(DelayMeasurement::parse(payload)?),
        MessageType::Vendor(t) => Message::Vendor { message_type: t, payload },
    };
    Ok(Frame { eth: EthHeader::default(), ecpri, message, trailer })
}

fn parse_uplane<'a>(rtc: RtcHeader, header: AppHeader, body: &'a [u8], cfg: &ParseConfig) -> Result<UPlane<'a>, FhError> {
    let fmt = cfg.section_format();
    let mut rest = body;
    let mut num_sections = 0;
    while !rest.is_empty() {
        let (_, _, n) = parse_usection(rest, &fmt)?;
        rest = &rest[n..];
        num_sections += 1;
    }
    if num_sections == 0 {
        return Err(FhError::NoSection);
    }
    Ok(UPlane { rtc, header, num_sections, body, fmt })
}

fn parse_cplane<'a>(rtc: RtcHeader, header: AppHeader, body: &'a [u8], cfg: &ParseConfig) -> Result<CPlane<'a>, FhError> {
    let cheader = CPlaneHeader::parse(body)?;
    let body = &body[cheader.wire_len()..];
    let slen = cheader.section_len();
    let declared = usize::from(cheader.num_sections);
    if body.len() != declared * slen {
        return Err(FhError::SectionCount { declared, found: body.len() / slen });
    }
    if declared == 0 {
        return Err(FhError::NoSection);
    }
    for s in body.chunks_exact(slen) {
        CSection::parse(s, cheader.type3.is_some(), cfg.carrier_prbs)?;
    }
    Ok(CPlane { rtc, header, cheader, body, carrier_prbs: cfg.carrier_prbs })
}

/// Writes a frame in place into a caller's buffer: headers first, then
/// sections one by one, then [`FrameBuilder::finish`] fills in the eCPRI
/// payload size (and numberOfSections) and appends the trailer.
#[derive(Debug)]
pub struct FrameBuilder<'b> {
    buf: &'b mut [u8],
    pos: usize,
    ecpri_at: usize,
    /// Offset of numberOfSections for C-plane messages.
    nsec_at: Option<usize>,
    type3: bool,
    uplane: bool,
    sections: usize,
}

fn room(buf: &[u8], pos: usize, n: usize) -> Result<(), FhError> {
    if buf.len() < pos + n {
        Err(FhError::BufferTooSmall { need: pos + n, have: buf.len() })
    } else {
        Ok(())
    }
}

impl<'b> FrameBuilder<'b> {
    fn start(buf: &'b mut [u8], eth: &EthHeader, t: MessageType) -> Result<FrameBuilder<'b>, FhError> {
        let n = eth.write(buf)?;
        CommonHeader { message_type: t, payload_size: 0 }.write(&mut buf[n..])?;
        Ok(FrameBuilder { buf, pos: n + COMMON_HEADER_LEN, ecpri_at: n, nsec_at: None, type3: false, uplane: t == MessageType::IqData, sections: 0 })
    }

    /// Starts a U-plane frame: Ethernet, eCPRI (type 0), PC_ID/SEQ_ID and the
    /// application header (checked against `mu`).
    pub fn uplane(buf: &'b mut [u8], eth: &EthHeader, rtc: &RtcHeader, app: &AppHeader, mu: u8) -> Result<FrameBuilder<'b>, FhError> {
        let mut b = FrameBuilder::start(buf, eth, MessageType::IqData)?;
        b.pos += rtc.write(&mut b.buf[b.pos..])?;
        b.pos += app.write(&mut b.buf[b.pos..], mu)?;
        Ok(b)
    }

    /// Starts a C-plane frame of section type 1 (`cheader.type3 == None`) or 3.
    /// numberOfSections is filled in by [`FrameBuilder::finish`].
    pub fn cplane(buf: &'b mut [u8], eth: &EthHeader, rtc: &RtcHeader, app: &AppHeader, mu: u8, cheader: &CPlaneHeader) -> Result<FrameBuilder<'b>, FhError> {
        let mut b = FrameBuilder::start(buf, eth, MessageType::RealTimeControl)?;
        b.pos += rtc.write(&mut b.buf[b.pos..])?;
        b.pos += app.write(&mut b.buf[b.pos..], mu)?;
        b.nsec_at = Some(b.pos);
        b.type3 = cheader.type3.is_some();
        b.pos += cheader.write(&mut b.buf[b.pos..])?;
        Ok(b)
    }

    /// Starts a vendor-specific message (type 64..=255) whose payload follows
    /// via [`FrameBuilder::push_bytes`].
    pub fn vendor(buf: &'b mut [u8], eth: &EthHeader, message_type: u8) -> Result<FrameBuilder<'b>, FhError> {
        if message_type < 64 {
            return Err(FhError::FieldRange { field: "vendor message type", value: u32::from(message_type), max: 255 });
        }
        FrameBuilder::start(buf, eth, MessageType::Vendor(message_type))
    }

    /// Starts a one-way delay measurement message (type 5).
    pub fn delay_measurement(buf: &'b mut [u8], eth: &EthHeader, m: &DelayMeasurement) -> Result<FrameBuilder<'b>, FhError> {
        let mut b = FrameBuilder::start(buf, eth, MessageType::DelayMeasurement)?;
        b.pos += m.write(&mut b.buf[b.pos..])?;
        Ok(b)
    }

    /// Appends a U-plane section whose PRBs are encoded from 16-bit IQ
    /// (`num_prb · 24` values, interleaved I, Q) with the header's width and
    /// compression.
    pub fn push_usection(&mut self, h: &USectionHeader, iq: &[i16]) -> Result<(), FhError> {
        self.check_uplane()?;
        let need = usize::from(h.num_prb) * bfp::SAMPLES_PER_PRB;
        if iq.len() != need {
            return Err(FhError::IqLength { need, have: iq.len() });
        }
        let total = h.wire_len() + h.payload_len();
        room(self.buf, self.pos, total)?;
        let n = h.write(&mut self.buf[self.pos..])?;
        let m = bfp::encode_prbs(iq, h.iq_width, h.compression, &mut self.buf[self.pos + n..self.pos + total])?;
        debug_assert_eq!(n + m, total);
        self.pos += total;
        self.sections += 1;
        Ok(())
    }

    /// Appends a U-plane section whose PRB payload is already encoded
    /// (`payload.len()` must equal [`USectionHeader::payload_len`]).
    pub fn push_usection_raw(&mut self, h: &USectionHeader, payload: &[u8]) -> Result<(), FhError> {
        self.check_uplane()?;
        if payload.len() != h.payload_len() {
            return Err(FhError::SectionPastPacket { section_id: h.section_id, need: h.payload_len(), have: payload.len() });
        }
        room(self.buf, self.pos, h.wire_len() + payload.len())?;
        let n = h.write(&mut self.buf[self.pos..])?;
        self.buf[self.pos + n..self.pos + n + payload.len()].copy_from_slice(payload);
        self.pos += n + payload.len();
        self.sections += 1;
        Ok(())
    }

    fn check_uplane(&self) -> Result<(), FhError> {
        if self.uplane {
            Ok(())
        } else {
            Err(FhError::Config { field: "section", reason: "u-plane section pushed to a frame that is not u-plane" })
        }
    }

    /// Appends a C-plane section (of the type the frame was started with).
    pub fn push_csection(&mut self, s: &CSection) -> Result<(), FhError> {
        if self.nsec_at.is_none() {
            return Err(FhError::Config { field: "section", reason: "c-plane section pushed to a frame that is not c-plane" });
        }
        if self.sections >= 255 {
            return Err(FhError::FieldRange { field: "numberOfSections", value: 256, max: 255 });
        }
        self.pos += s.write(&mut self.buf[self.pos..], self.type3)?;
        self.sections += 1;
        Ok(())
    }

    /// Appends raw payload bytes (vendor-specific messages).
    pub fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), FhError> {
        room(self.buf, self.pos, bytes.len())?;
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing has been written (never true after a constructor).
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Completes the frame: sets the eCPRI payload size (and the C-plane
    /// numberOfSections), appends `trailer` after the eCPRI payload, and
    /// returns the frame length.
    pub fn finish(self, trailer: &[u8]) -> Result<usize, FhError> {
        let payload = self.pos - self.ecpri_at - COMMON_HEADER_LEN;
        let size = u16::try_from(payload).map_err(|_| FhError::FieldRange { field: "ecpri payload size", value: payload as u32, max: 65535 })?;
        room(self.buf, self.pos, trailer.len())?;
        if self.uplane && self.sections == 0 {
            return Err(FhError::NoSection);
        }
        if let Some(at) = self.nsec_at {
            if self.sections == 0 {
                return Err(FhError::NoSection);
            }
            self.buf[at] = self.sections as u8;
        }
        self.buf[self.ecpri_at + 2..self.ecpri_at + 4].copy_from_slice(&size.to_be_bytes());
        self.buf[self.pos..self.pos + trailer.len()].copy_from_slice(trailer);
        Ok(self.pos + trailer.len())
    }
}
