//! Writing (and reading back) frames as a pcap with their due timestamps,
//! using the maintained `pcap-file` crate: nanosecond-resolution pcap,
//! link type Ethernet, frames stored whole (snaplen 65535).

use std::io::{Read, Write};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

/// An error writing or reading a pcap.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The pcap library (or the I/O under it) failed.
    #[error("pcap: {0}")]
    Pcap(pcap_file::PcapError),
    /// A frame is longer than the snap length.
    #[error("pcap: frame of {0} bytes exceeds the snap length 65535")]
    TooLong(usize),
    /// The capture is not of Ethernet frames.
    #[error("pcap: link type {0:?} is not ethernet")]
    NotEthernet(DataLink),
}

// A plain `From`, not `#[from]`: `#[from]` would also make the cause a
// `source`, and the Display above already prints it.
impl From<pcap_file::PcapError> for PcapError {
    fn from(e: pcap_file::PcapError) -> Self {
        PcapError::Pcap(e)
    }
}

/// Writes Ethernet frames with nanosecond timestamps.
pub struct PcapSink<W: Write> {
    w: PcapWriter<W>,
}

impl<W: Write> std::fmt::Debug for PcapSink<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapSink").finish_non_exhaustive()
    }
}

impl<W: Write> PcapSink<W> {
    /// Writes the pcap global header (nanosecond resolution, Ethernet).
    pub fn new(w: W) -> Result<PcapSink<W>, PcapError> {
        let header = PcapHeader {
            ts_resolution: TsResolution::NanoSecond,
            datalink: DataLink::ETHERNET,
            snaplen: 65535,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        Ok(PcapSink { w: PcapWriter::with_header(w, header)? })
    }

    /// Writes one frame stamped `ts_ns` nanoseconds after the pcap epoch.
    pub fn write_frame(&mut self, ts_ns: u64, frame: &[u8]) -> Result<(), PcapError> {
        if frame.len() > 65535 {
            return Err(PcapError::TooLong(frame.len()));
        }
        let p = PcapPacket::new(Duration::from_nanos(ts_ns), frame.len() as u32, frame);
        self.w.write_packet(&p)?;
        Ok(())
    }

    /// Returns the underlying writer (flush it yourself).
    pub fn into_inner(self) -> W {
        self.w.into_writer()
    }
}

/// Reads every frame of an Ethernet pcap: `(timestamp ns, frame bytes)`.
/// Meant for tests and tools, not for a hot path (it allocates per frame).
pub fn read_frames<R: Read>(r: R) -> Result<Vec<(u64, Vec<u8>)>, PcapError> {
    let mut rd = PcapReader::new(r)?;
    let dl = rd.header().datalink;
    if dl != DataLink::ETHERNET {
        return Err(PcapError::NotEthernet(dl));
    }
    let mut out = Vec::new();
    while let Some(p) = rd.next_packet() {
        let p = p?;
        out.push((p.timestamp.as_nanos() as u64, p.data.into_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_nanoseconds() {
        let mut s = PcapSink::new(Vec::new()).unwrap();
        s.write_frame(1_234_567_891, &[1, 2, 3]).unwrap();
        s.write_frame(1_234_600_000, &[4; 100]).unwrap();
        let bytes = s.into_inner();
        assert_eq!(&bytes[..4], &0xA1B2_3C4Du32.to_ne_bytes());
        let back = read_frames(&bytes[..]).unwrap();
        assert_eq!(back, vec![(1_234_567_891, vec![1, 2, 3]), (1_234_600_000, vec![4; 100])]);
        assert!(matches!(read_frames(&b"nonsense, not a pcap at all"[..]), Err(PcapError::Pcap(_))));
    }
}
