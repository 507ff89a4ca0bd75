//! The typed error of the fronthaul codec ([`FhError`]).
//!
//! Every malformed input to a decoder maps to one variant; decoders never
//! panic. Messages are lowercase and name what failed.

/// What went wrong while decoding or encoding a fronthaul frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FhError {
    /// The input ends before a structure it must contain.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The Ethernet frame does not carry eCPRI (EtherType 0xAEFE).
    #[error("ethertype {0:#06x} is not ecpri (0xaefe)")]
    NotEcpri(u16),
    /// The eCPRI revision is not 1.
    #[error("ecpri revision {0} is not supported (expected 1)")]
    BadRevision(u8),
    /// The eCPRI C bit (concatenation) is set; cranlab does not concatenate.
    #[error("ecpri concatenation (c bit) is not supported")]
    Concatenated,
    /// The eCPRI message type is not one cranlab knows.
    #[error("unknown ecpri message type {0}")]
    UnknownMessageType(u8),
    /// The eCPRI payload size disagrees with the frame.
    #[error("ecpri payload size {declared} disagrees with the frame ({available} bytes after the common header)")]
    PayloadSize {
        /// Payload size declared in the eCPRI common header.
        declared: usize,
        /// Bytes present after the common header.
        available: usize,
    },
    /// A header field holds a value outside its range for this numerology/carrier.
    #[error("field {field} = {value} is out of range (max {max})")]
    FieldRange {
        /// Name of the field as in the O-RAN/eCPRI specifications.
        field: &'static str,
        /// The value found.
        value: u32,
        /// The largest allowed value.
        max: u32,
    },
    /// A section's PRBs run past the end of the packet.
    #[error("section {section_id} runs past the packet: needs {need} bytes, {have} left")]
    SectionPastPacket {
        /// sectionId of the offending section.
        section_id: u16,
        /// Bytes the section needs.
        need: usize,
        /// Bytes left in the eCPRI payload.
        have: usize,
    },
    /// A packet holds no section at all.
    #[error("packet carries no section")]
    NoSection,
    /// A compression method the codec does not implement.
    #[error("udCompMeth {0} is not supported (0 none, 1 block floating point)")]
    UnsupportedCompression(u8),
    /// An IQ width outside 1..=16.
    #[error("iq width {0} is out of range 1..=16")]
    BadWidth(u8),
    /// A C-plane section type the codec does not implement.
    #[error("c-plane section type {0} is not supported (1, 3)")]
    UnsupportedSectionType(u8),
    /// A C-plane section carries extensions (ef = 1), which are not implemented.
    #[error("c-plane section {0} carries section extensions (ef = 1), not supported")]
    UnsupportedExtension(u16),
    /// The numberOfSections field disagrees with the sections present.
    #[error("numberOfSections {declared} disagrees with the packet ({found} sections fit)")]
    SectionCount {
        /// Sections declared.
        declared: usize,
        /// Sections found.
        found: usize,
    },
    /// A caller-supplied output buffer is too small.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// An input sample slice has the wrong length.
    #[error("iq input has {have} samples, expected {need}")]
    IqLength {
        /// Samples expected.
        need: usize,
        /// Samples given.
        have: usize,
    },
    /// The eAxC bit split does not add up to 16 bits.
    #[error("eaxc split {0}.{1}.{2}.{3} does not add up to 16 bits")]
    BadEaxcSplit(u8, u8, u8, u8),
    /// A configuration value the codec cannot work with.
    #[error("invalid {field}: {reason}")]
    Config {
        /// The parameter.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// `Truncated` unless `b` holds at least `n` bytes for `what`.
pub(crate) fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), FhError> {
    if b.len() < n {
        Err(FhError::Truncated { what, need: n, have: b.len() })
    } else {
        Ok(())
    }
}

/// `BufferTooSmall` unless `out` has room for `n` bytes.
pub(crate) fn room(out: &[u8], n: usize) -> Result<(), FhError> {
    if out.len() < n {
        Err(FhError::BufferTooSmall { need: n, have: out.len() })
    } else {
        Ok(())
    }
}
