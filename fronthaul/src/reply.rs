//! Control messages between the rrh-sim and the worker, carried as eCPRI
//! vendor-specific messages (EtherType 0xAEFE, message types 64..=255) so
//! they pass the same EtherType filter as the fronthaul traffic, plus the
//! transmit-timestamp trailer the rrh-sim appends to every U/C-plane frame.
//!
//! Messages (all fields big-endian, after the 14-byte Ethernet header and
//! the 4-byte eCPRI common header `0x10, type, payload size`):
//!
//! | type | name | direction | payload |
//! |---|---|---|---|
//! | 64 | [`SlotDone`] | worker → rrh-sim | the slot-done reply with the worker's timings |
//! | 65 | [`StartOfRun`] | rrh-sim → worker | run id, symbol-clock epoch, config hash |
//! | 66 | [`EndOfRun`] | rrh-sim → worker | run id, what was sent; the worker ends |
//!
//! Every payload starts with the magic `CRLB` and a version byte, so a
//! foreign vendor-specific message of the same type is rejected, not misread.
//! Encoding writes in place into a caller buffer; decoding borrows the frame.

/// eCPRI EtherType.
pub const ETHERTYPE_ECPRI: u16 = 0xAEFE;
/// 802.1Q tag EtherType (decoding skips one tag).
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// eCPRI message type of [`SlotDone`].
pub const MSG_SLOT_DONE: u8 = 64;
/// eCPRI message type of [`StartOfRun`].
pub const MSG_START: u8 = 65;
/// eCPRI message type of [`EndOfRun`].
pub const MSG_END: u8 = 66;
/// Magic at the start of every payload.
pub const MAGIC: [u8; 4] = *b"CRLB";
/// Payload version.
pub const VERSION: u8 = 1;
/// Ethernet header length written by the encoders (no VLAN tag).
pub const ETH_LEN: usize = 14;
/// eCPRI common header length.
pub const ECPRI_LEN: usize = 4;
/// Bytes of magic + version + 3 reserved bytes.
const PREAMBLE: usize = 8;

/// Errors from encoding or decoding a control message or trailer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The buffer is too small to encode into.
    #[error("control message: buffer of {have} bytes is too small, {need} needed")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The frame ends before the message does.
    #[error("control message: frame of {have} bytes is truncated, {need} needed")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The frame is not eCPRI.
    #[error("control message: ethertype {0:#06x} is not ecpri")]
    NotEcpri(u16),
    /// The eCPRI revision is not 1 or the concatenation bit is set.
    #[error("control message: ecpri first byte {0:#04x} is not revision 1 without concatenation")]
    BadRevision(u8),
    /// The eCPRI message type is not one of ours.
    #[error("control message: ecpri message type {0} is not a cranlab control message")]
    UnknownType(u8),
    /// The declared eCPRI payload size disagrees with the message type.
    #[error("control message: ecpri payload size {declared} does not match type {msg_type} (expects {expected})")]
    PayloadSize {
        /// eCPRI message type.
        msg_type: u8,
        /// Size in the header.
        declared: usize,
        /// Size the type has.
        expected: usize,
    },
    /// The payload does not start with `CRLB`.
    #[error("control message: bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// The payload version is not [`VERSION`].
    #[error("control message: version {0} is not supported (expected {VERSION})")]
    BadVersion(u8),
}

/// The worker's slot-done reply for one UL slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotDone {
    /// Run id from the [`StartOfRun`] (0 when none was seen).
    pub run_id: u32,
    /// Reply sequence number, counting from 0 per run.
    pub seq: u32,
    /// Absolute slot index (slot 0 = the first slot at the epoch).
    pub slot_index: u64,
    /// Worker processing time: arrival of the slot's last symbol → end of processing, ns.
    pub processing_ns: u64,
    /// Largest wake-up lateness the worker saw while assembling this slot, ns.
    pub wakeup_max_ns: u64,
    /// Worker CLOCK_MONOTONIC at the arrival of the packet that completed the slot, ns.
    pub last_arrival_ns: u64,
    /// Bits checked against the known transmitted data.
    pub bits_checked: u64,
    /// Bit errors found.
    pub bit_errors: u64,
    /// U-plane packets received for this slot.
    pub packets_rx: u32,
    /// Of those, packets that arrived after their symbol's Ta4 window.
    pub packets_late: u32,
    /// PRBs (per antenna and symbol) that were missing when the slot was processed.
    pub missing_prbs: u32,
    /// Bit 0: processed before all symbols had arrived (incomplete slot).
    pub flags: u32,
}

/// [`SlotDone::flags`] bit: the slot was processed incomplete.
pub const FLAG_INCOMPLETE: u32 = 1;

/// Sent by the rrh-sim (several times) before the first slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartOfRun {
    /// Run id, echoed in every reply.
    pub run_id: u32,
    /// CLOCK_MONOTONIC of the rrh-sim at the air time of slot 0, symbol 0, ns.
    pub epoch_ns: u64,
    /// [`config_hash`] of the cell and timing spec strings the rrh-sim uses.
    pub config_hash: u64,
}

/// Sent by the rrh-sim (several times) after the last slot: the worker ends,
/// prints its summary and exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndOfRun {
    /// Run id.
    pub run_id: u32,
    /// Slots transmitted.
    pub slots_sent: u64,
    /// U-plane frames transmitted.
    pub uplane_sent: u64,
    /// C-plane frames transmitted.
    pub cplane_sent: u64,
}

/// A decoded control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Type 64.
    SlotDone(SlotDone),
    /// Type 65.
    Start(StartOfRun),
    /// Type 66.
    End(EndOfRun),
}

const SLOT_DONE_BODY: usize = 4 + 4 + 8 * 7 + 4 * 4;
const START_BODY: usize = 4 + 8 + 8;
const END_BODY: usize = 4 + 8 * 3;

fn body_len(msg_type: u8) -> Option<usize> {
    match msg_type {
        MSG_SLOT_DONE => Some(SLOT_DONE_BODY),
        MSG_START => Some(START_BODY),
        MSG_END => Some(END_BODY),
        _ => None,
    }
}

/// FNV-1a hash of the cell and timing spec strings, carried in
/// [`StartOfRun::config_hash`] so a worker can tell it was started with a
/// different configuration than the generator.
pub fn config_hash(cell_spec: &str, timing_spec: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cell_spec.bytes().chain(std::iter::once(b'|')).chain(timing_spec.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct W<'a> {
    b: &'a mut [u8],
    at: usize,
}
impl W<'_> {
    fn u32(&mut self, v: u32) {
        self.b[self.at..self.at + 4].copy_from_slice(&v.to_be_bytes());
        self.at += 4;
    }
    fn u64(&mut self, v: u64) {
        self.b[self.at..self.at + 8].copy_from_slice(&v.to_be_bytes());
        self.at += 8;
    }
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}
impl R<'_> {
    fn u32(&mut self) -> u32 {
        let v = u32::from_be_bytes([self.b[self.at], self.b[self.at + 1], self.b[self.at + 2], self.b[self.at + 3]]);
        self.at += 4;
        v
    }
    fn u64(&mut self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b[self.at..self.at + 8]);
        self.at += 8;
        u64::from_be_bytes(a)
    }
}

impl Message {
    /// eCPRI message type of this message.
    pub fn msg_type(&self) -> u8 {
        match self {
            Message::SlotDone(_) => MSG_SLOT_DONE,
            Message::Start(_) => MSG_START,
            Message::End(_) => MSG_END,
        }
    }

    /// Length of the whole Ethernet frame [`Message::encode`] writes.
    pub fn frame_len(&self) -> usize {
        ETH_LEN + ECPRI_LEN + PREAMBLE + body_len(self.msg_type()).unwrap_or(0)
    }

    /// Writes the whole Ethernet frame (`dst`, `src`, EtherType 0xAEFE, eCPRI
    /// header, payload) into `buf` and returns its length.
    pub fn encode(&self, dst: [u8; 6], src: [u8; 6], buf: &mut [u8]) -> Result<usize, ReplyError> {
        let len = self.frame_len();
        if buf.len() < len {
            return Err(ReplyError::BufferTooSmall { need: len, have: buf.len() });
        }
        let t = self.msg_type();
        let payload = PREAMBLE + body_len(t).unwrap_or(0);
        buf[0..6].copy_from_slice(&dst);
        buf[6..12].copy_from_slice(&src);
        buf[12..14].copy_from_slice(&ETHERTYPE_ECPRI.to_be_bytes());
        buf[14] = 0x10;
        buf[15] = t;
        buf[16..18].copy_from_slice(&(payload as u16).to_be_bytes());
        buf[18..22].copy_from_slice(&MAGIC);
        buf[22] = VERSION;
        buf[23..26].fill(0);
        let mut w = W { b: &mut buf[..len], at: ETH_LEN + ECPRI_LEN + PREAMBLE };
        match self {
            Message::SlotDone(r) => {
                w.u32(r.run_id);
                w.u32(r.seq);
                w.u64(r.slot_index);
                w.u64(r.processing_ns);
                w.u64(r.wakeup_max_ns);
                w.u64(r.last_arrival_ns);
                w.u64(r.bits_checked);
                w.u64(r.bit_errors);
                w.u64(0); // reserved
                w.u32(r.packets_rx);
                w.u32(r.packets_late);
                w.u32(r.missing_prbs);
                w.u32(r.flags);
            }
            Message::Start(s) => {
                w.u32(s.run_id);
                w.u64(s.epoch_ns);
                w.u64(s.config_hash);
            }
            Message::End(e) => {
                w.u32(e.run_id);
                w.u64(e.slots_sent);
                w.u64(e.uplane_sent);
                w.u64(e.cplane_sent);
            }
        }
        debug_assert_eq!(w.at, len);
        Ok(len)
    }

    /// Decodes a whole Ethernet frame (one 802.1Q tag allowed). Bytes after
    /// the eCPRI payload (Ethernet padding) are ignored.
    pub fn decode(frame: &[u8]) -> Result<Message, ReplyError> {
        let (ecpri_at, _) = ecpri_offset(frame)?;
        let need = ecpri_at + ECPRI_LEN;
        if frame.len() < need {
            return Err(ReplyError::Truncated { need, have: frame.len() });
        }
        let first = frame[ecpri_at];
        if first != 0x10 {
            return Err(ReplyError::BadRevision(first));
        }
        let t = frame[ecpri_at + 1];
        let body = body_len(t).ok_or(ReplyError::UnknownType(t))?;
        let declared = usize::from(u16::from_be_bytes([frame[ecpri_at + 2], frame[ecpri_at + 3]]));
        if declared != PREAMBLE + body {
            return Err(ReplyError::PayloadSize { msg_type: t, declared, expected: PREAMBLE + body });
        }
        let p = ecpri_at + ECPRI_LEN;
        let need = p + PREAMBLE + body;
        if frame.len() < need {
            return Err(ReplyError::Truncated { need, have: frame.len() });
        }
        let magic = [frame[p], frame[p + 1], frame[p + 2], frame[p + 3]];
        if magic != MAGIC {
            return Err(ReplyError::BadMagic(magic));
        }
        if frame[p + 4] != VERSION {
            return Err(ReplyError::BadVersion(frame[p + 4]));
        }
        let mut r = R { b: &frame[..need], at: p + PREAMBLE };
        Ok(match t {
            MSG_SLOT_DONE => {
                let run_id = r.u32();
                let seq = r.u32();
                let slot_index = r.u64();
                let processing_ns = r.u64();
                let wakeup_max_ns = r.u64();
                let last_arrival_ns = r.u64();
                let bits_checked = r.u64();
                let bit_errors = r.u64();
                let _reserved = r.u64();
                Message::SlotDone(SlotDone {
                    run_id,
                    seq,
                    slot_index,
                    processing_ns,
                    wakeup_max_ns,
                    last_arrival_ns,
                    bits_checked,
                    bit_errors,
                    packets_rx: r.u32(),
                    packets_late: r.u32(),
                    missing_prbs: r.u32(),
                    flags: r.u32(),
                })
            }
            MSG_START => Message::Start(StartOfRun { run_id: r.u32(), epoch_ns: r.u64(), config_hash: r.u64() }),
            _ => Message::End(EndOfRun { run_id: r.u32(), slots_sent: r.u64(), uplane_sent: r.u64(), cplane_sent: r.u64() }),
        })
    }
}

/// Offset of the eCPRI common header in an Ethernet frame and the VLAN id
/// if tagged; errors when the frame is not eCPRI.
pub fn ecpri_offset(frame: &[u8]) -> Result<(usize, Option<u16>), ReplyError> {
    if frame.len() < ETH_LEN {
        return Err(ReplyError::Truncated { need: ETH_LEN, have: frame.len() });
    }
    let et = u16::from_be_bytes([frame[12], frame[13]]);
    if et == ETHERTYPE_VLAN {
        if frame.len() < ETH_LEN + 4 {
            return Err(ReplyError::Truncated { need: ETH_LEN + 4, have: frame.len() });
        }
        let vid = u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff;
        let inner = u16::from_be_bytes([frame[16], frame[17]]);
        if inner != ETHERTYPE_ECPRI {
            return Err(ReplyError::NotEcpri(inner));
        }
        return Ok((ETH_LEN + 4, Some(vid)));
    }
    if et != ETHERTYPE_ECPRI {
        return Err(ReplyError::NotEcpri(et));
    }
    Ok((ETH_LEN, None))
}

/// The eCPRI message type of a frame, if it is an eCPRI frame at all.
pub fn ecpri_type(frame: &[u8]) -> Option<u8> {
    let (at, _) = ecpri_offset(frame).ok()?;
    frame.get(at + 1).copied()
}

/// The transmit-timestamp trailer the rrh-sim appends after the eCPRI
/// payload of every U-plane and C-plane frame (outside the eCPRI payload
/// size, so protocol analysers treat it as Ethernet trailer):
/// `magic "CRTS" (4) | tx CLOCK_MONOTONIC ns (8)`, big-endian.
pub mod trailer {
    use super::ReplyError;

    /// Trailer length in bytes.
    pub const LEN: usize = 12;
    /// Trailer magic.
    pub const MAGIC: [u8; 4] = *b"CRTS";

    /// Writes a trailer carrying `tx_ns` into the first [`LEN`] bytes of `buf`.
    pub fn write(buf: &mut [u8], tx_ns: u64) -> Result<(), ReplyError> {
        if buf.len() < LEN {
            return Err(ReplyError::BufferTooSmall { need: LEN, have: buf.len() });
        }
        buf[..4].copy_from_slice(&MAGIC);
        buf[4..12].copy_from_slice(&tx_ns.to_be_bytes());
        Ok(())
    }

    /// Reads the transmit time from trailer bytes (the bytes after the eCPRI
    /// payload); `None` when they are absent or not a cranlab trailer
    /// (e.g. zero Ethernet padding).
    pub fn read(bytes: &[u8]) -> Option<u64> {
        if bytes.len() < LEN || bytes[..4] != MAGIC {
            return None;
        }
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[4..12]);
        Some(u64::from_be_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const S: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn sample() -> [Message; 3] {
        [
            Message::SlotDone(SlotDone {
                run_id: 7,
                seq: 42,
                slot_index: 1 << 40,
                processing_ns: 12_345,
                wakeup_max_ns: 678,
                last_arrival_ns: u64::MAX - 1,
                bits_checked: 1_000_000,
                bit_errors: 3,
                packets_rx: 28,
                packets_late: 1,
                missing_prbs: 51,
                flags: FLAG_INCOMPLETE,
            }),
            Message::Start(StartOfRun { run_id: 7, epoch_ns: 123_456_789, config_hash: config_hash("mu=1", "ta3=1") }),
            Message::End(EndOfRun { run_id: 7, slots_sent: 2000, uplane_sent: 56_000, cplane_sent: 4000 }),
        ]
    }

    #[test]
    fn round_trip_every_message() {
        for m in sample() {
            let mut buf = [0xAAu8; 128];
            let n = m.encode(D, S, &mut buf).unwrap();
            assert_eq!(n, m.frame_len());
            assert_eq!(&buf[12..14], &[0xAE, 0xFE]);
            assert!(buf[15] >= 64, "vendor-specific type");
            assert_eq!(Message::decode(&buf[..n]).unwrap(), m);
            // Ethernet padding after the payload is ignored.
            assert_eq!(Message::decode(&buf[..n.max(60)]).unwrap(), m);
            assert_eq!(ecpri_type(&buf[..n]), Some(m.msg_type()));
        }
    }

    #[test]
    fn vlan_tagged_frame_decodes() {
        let m = sample()[2];
        let mut buf = [0u8; 128];
        let n = m.encode(D, S, &mut buf).unwrap();
        let mut tagged = Vec::new();
        tagged.extend_from_slice(&buf[..12]);
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&buf[12..n]);
        assert_eq!(Message::decode(&tagged).unwrap(), m);
        assert_eq!(ecpri_offset(&tagged).unwrap(), (18, Some(5)));
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        let m = sample()[0];
        let mut buf = [0u8; 128];
        let n = m.encode(D, S, &mut buf).unwrap();
        for cut in [0, 5, 13, 17, 20, n - 1] {
            assert!(matches!(Message::decode(&buf[..cut]), Err(ReplyError::Truncated { .. })), "cut {cut}");
        }
        let mut f = buf;
        f[12] = 0x08;
        f[13] = 0x00;
        assert_eq!(Message::decode(&f[..n]), Err(ReplyError::NotEcpri(0x0800)));
        let mut f = buf;
        f[14] = 0x11;
        assert_eq!(Message::decode(&f[..n]), Err(ReplyError::BadRevision(0x11)));
        let mut f = buf;
        f[15] = 0;
        assert_eq!(Message::decode(&f[..n]), Err(ReplyError::UnknownType(0)));
        let mut f = buf;
        f[17] ^= 1;
        assert!(matches!(Message::decode(&f[..n]), Err(ReplyError::PayloadSize { .. })));
        let mut f = buf;
        f[18] = b'X';
        assert!(matches!(Message::decode(&f[..n]), Err(ReplyError::BadMagic(_))));
        let mut f = buf;
        f[22] = 9;
        assert_eq!(Message::decode(&f[..n]), Err(ReplyError::BadVersion(9)));
        let mut small = [0u8; 20];
        assert!(matches!(m.encode(D, S, &mut small), Err(ReplyError::BufferTooSmall { .. })));
    }

    #[test]
    fn trailer_round_trip_and_rejects_padding() {
        let mut b = [0u8; 16];
        trailer::write(&mut b, 987_654_321).unwrap();
        assert_eq!(trailer::read(&b), Some(987_654_321));
        assert_eq!(trailer::read(&[0u8; 16]), None);
        assert_eq!(trailer::read(&b[..11]), None);
        assert!(trailer::write(&mut [0u8; 4], 1).is_err());
    }

    #[test]
    fn config_hash_depends_on_both_specs() {
        assert_ne!(config_hash("a", "b"), config_hash("a", "c"));
        assert_ne!(config_hash("ab", ""), config_hash("a", "b"));
        assert_eq!(config_hash("x", "y"), config_hash("x", "y"));
    }
}
