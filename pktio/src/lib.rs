//! Packet I/O for both ends of the fronthaul: the [`PacketIo`] trait and its
//! backends. This crate moves frames; it does not read them.
//!
//! Backends (each in its own module): in-memory rings between threads,
//! AF_PACKET raw sockets, io_uring-driven AF_PACKET and AF_XDP with XDP
//! program loading. Every `unsafe` block lives in a small module of its own
//! with a `// SAFETY:` comment.

use std::time::Duration;

/// Errors from packet I/O.
#[derive(Debug, thiserror::Error)]
pub enum PktError {
    /// A system call failed; `op` names what was being done.
    #[error("{op}: {err}")]
    Os {
        /// What failed, e.g. `bind AF_PACKET socket to cranlab-r0`.
        op: String,
        /// The OS error; part of the message, not a separate
        /// [`std::error::Error::source`], so a printed chain names it once.
        err: std::io::Error,
    },
    /// The backend cannot work with this configuration or host.
    #[error("{0}")]
    Unsupported(String),
    /// The peer of an in-memory link has gone.
    #[error("peer closed")]
    Closed,
}

/// Counters kept by a backend; never a log line per packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IoStats {
    /// Frames delivered to the caller.
    pub rx_frames: u64,
    /// Bytes delivered to the caller.
    pub rx_bytes: u64,
    /// Frames handed to the kernel / peer for transmission.
    pub tx_frames: u64,
    /// Bytes handed over for transmission.
    pub tx_bytes: u64,
    /// Frames that could not be sent (ring full, peer full).
    pub tx_dropped: u64,
    /// Frames the backend knows were dropped before the caller saw them.
    pub rx_dropped: u64,
}

/// How a receive call waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Look once and return at once (busy-poll callers loop on this).
    Poll,
    /// Block until at least one frame arrives or the duration passes.
    Block(Duration),
}

/// A bidirectional frame transport bound to one link.
///
/// Frames are whole Ethernet frames (no FCS). Receive lends each frame to a
/// callback for the duration of the call; send asks a callback to write each
/// frame straight into the transmit buffer. Neither allocates per frame.
pub trait PacketIo: Send {
    /// Transport name as recorded in results: `mem`, `af_packet`,
    /// `af_packet_uring`, `afxdp`.
    fn name(&self) -> &'static str;

    /// Largest frame this transport can carry (Ethernet header included).
    fn max_frame(&self) -> usize;

    /// Receives up to `max` frames, calling `on_frame` for each, and returns
    /// how many were delivered (0 on timeout or when polling finds nothing).
    fn recv_batch(&mut self, max: usize, wait: Wait, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, PktError>;

    /// Sends up to `count` frames: for frame `i` the backend lends a buffer of
    /// [`PacketIo::max_frame`] bytes, `fill(i, buf)` writes the frame and returns its
    /// length (0 skips the frame). Returns how many frames were queued; frames
    /// are on their way when this returns (implicit flush).
    fn send_batch(&mut self, count: usize, fill: &mut dyn FnMut(usize, &mut [u8]) -> usize) -> Result<usize, PktError>;

    /// Counters so far.
    fn stats(&self) -> IoStats;

    /// Transport details for results.json: mode obtained (e.g. XDP native /
    /// generic, copy / zero-copy), kernel statistics, ring sizes.
    fn detail(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// The packet transports, as named in scenarios, on the command line and in
/// results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// In-memory rings between threads ([`mem::pair`]).
    Mem,
    /// AF_PACKET raw socket with recvmmsg/sendmmsg ([`afpacket::AfPacket`]).
    AfPacket,
    /// AF_PACKET driven by io_uring ([`uring::AfPacketUring`]).
    AfPacketUring,
    /// AF_XDP socket fed by an XDP redirect program ([`afxdp::AfXdp`]).
    #[serde(rename = "afxdp")]
    AfXdp,
}

impl Transport {
    /// All transports, in the order they are usually listed.
    pub const ALL: [Transport; 4] = [Transport::AfXdp, Transport::AfPacket, Transport::AfPacketUring, Transport::Mem];

    /// Name as recorded in results and accepted by [`std::str::FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Mem => "mem",
            Transport::AfPacket => "af_packet",
            Transport::AfPacketUring => "af_packet_uring",
            Transport::AfXdp => "afxdp",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Transport {
    type Err = PktError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Transport::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| PktError::Unsupported(format!("unknown transport {s:?} (expected afxdp, af_packet, af_packet_uring or mem)")))
    }
}

pub mod afpacket;
pub mod afxdp;
pub mod mem;
mod sys;
pub mod uring;

pub use sys::{in_netns, monotonic_ns};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_prints_its_cause_once() {
        let e = PktError::Os { op: "look up interface cranlab-x".into(), err: std::io::Error::from_raw_os_error(19) };
        assert_eq!(e.to_string(), "look up interface cranlab-x: No such device (os error 19)");
        // The cause is in the message, not repeated as a source for `{:#}` chains.
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn transport_names_round_trip() {
        for t in Transport::ALL {
            assert_eq!(t.as_str().parse::<Transport>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::Value::String(t.as_str().into()));
        }
        let e = "xdp".parse::<Transport>().unwrap_err().to_string();
        assert!(e.contains("unknown transport \"xdp\""), "{e}");
    }
}
