//! AF_PACKET raw sockets bound to an interface.
//!
//! One `SOCK_RAW` packet socket per [`AfPacket`], bound to the interface and
//! to one EtherType (eCPRI 0xAEFE by default) or to `ETH_P_ALL`. Receive and
//! transmit go through `recvmmsg`/`sendmmsg` over buffers preallocated at
//! open (one syscall per batch, no allocation per frame); transmit bypasses
//! the qdisc (`PACKET_QDISC_BYPASS`) and the socket ignores the host's own
//! outgoing frames (`PACKET_IGNORE_OUTGOING`).
//!
//! The socket is bound in the network namespace of the calling thread: open
//! it from a thread that has entered the target namespace
//! ([`crate::in_netns`]).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::sys::{self, os_err_from};
use crate::{IoStats, PacketIo, PktError, Wait};

/// EtherType of eCPRI (the fronthaul).
pub const ETHERTYPE_ECPRI: u16 = 0xAEFE;

const PACKET_QDISC_BYPASS: i32 = 20;
const PACKET_IGNORE_OUTGOING: i32 = 23;
const PACKET_STATISTICS: i32 = 6;

/// Frames the kernel dropped on this socket since the last call (the
/// counter resets when read).
pub(crate) fn kernel_drops(fd: RawFd) -> u64 {
    #[derive(Clone, Copy, Default)]
    #[repr(C)]
    struct TpacketStats {
        packets: u32,
        drops: u32,
    }
    let mut st = TpacketStats::default();
    match sys::getsockopt(fd, libc::SOL_PACKET, PACKET_STATISTICS, &mut st) {
        Ok(_) => st.drops as u64,
        Err(_) => 0,
    }
}

/// Options of an AF_PACKET socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// EtherType to bind to; `None` receives every protocol (`ETH_P_ALL`).
    /// Default: eCPRI (0xAEFE), the same traffic the XDP program redirects.
    pub ethertype: Option<u16>,
    /// Bypass the qdisc on transmit (`PACKET_QDISC_BYPASS`). Default true.
    pub qdisc_bypass: bool,
    /// Frames per `recvmmsg`/`sendmmsg` call (buffers preallocated). Default 64.
    pub batch: usize,
    /// Largest frame; 0 = interface MTU + 18 (Ethernet header + one VLAN tag).
    pub max_frame: usize,
    /// `SO_RCVBUF` in bytes (root: `SO_RCVBUFFORCE`); `None` keeps the default.
    pub rcvbuf: Option<usize>,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig { ethertype: Some(ETHERTYPE_ECPRI), qdisc_bypass: true, batch: 64, max_frame: 0, rcvbuf: Some(4 << 20) }
    }
}

/// An opened, bound AF_PACKET socket plus what was learnt opening it.
pub(crate) struct OpenedSocket {
    pub fd: OwnedFd,
    pub ifindex: u32,
    pub max_frame: usize,
    pub mtu: u32,
    pub qdisc_bypass: bool,
}

/// Creates and binds the socket (shared with the io_uring backend).
pub(crate) fn open_socket(ifname: &str, cfg: &AfPacketConfig) -> Result<OpenedSocket, PktError> {
    if cfg.batch == 0 {
        return Err(PktError::Unsupported("af_packet batch must be at least 1".into()));
    }
    let ifindex = sys::if_index(ifname)?;
    let proto = cfg.ethertype.unwrap_or(libc::ETH_P_ALL as u16).to_be();
    let fd = sys::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32, "AF_PACKET")?;
    let raw = fd.as_raw_fd();
    let mtu = sys::if_mtu(raw, ifname)?;
    let max_frame = if cfg.max_frame == 0 { mtu as usize + 18 } else { cfg.max_frame };
    // Bound from the start so nothing from other interfaces is queued.
    sys::bind_packet(raw, ifindex, proto).map_err(|e| os_err_from(format!("bind AF_PACKET socket to {ifname}"), e))?;
    let qdisc_bypass = cfg.qdisc_bypass && sys::setsockopt(raw, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &1i32).is_ok();
    // Not fatal on kernels before 4.20: the frames are then filtered by type.
    let _ = sys::setsockopt(raw, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &1i32);
    if let Some(b) = cfg.rcvbuf {
        let b = b.min(i32::MAX as usize) as i32;
        if sys::setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &b).is_err() {
            let _ = sys::setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, &b);
        }
    }
    Ok(OpenedSocket { fd, ifindex, max_frame, mtu, qdisc_bypass })
}

/// Preallocated buffers and headers for one `recvmmsg`/`sendmmsg` batch.
///
/// The headers point into `bufs`, `iovs` and `addrs`, which are boxed slices
/// never resized after construction, so the pointers stay valid for the life
/// of the struct.
struct MsgBatch {
    bufs: Box<[u8]>,
    iovs: Box<[libc::iovec]>,
    addrs: Box<[libc::sockaddr_ll]>,
    hdrs: Box<[libc::mmsghdr]>,
    frame: usize,
}

// SAFETY: the raw pointers inside `iovs`/`hdrs` point only into this struct's
// own heap buffers; moving the struct to another thread moves them together.
unsafe impl Send for MsgBatch {}

impl MsgBatch {
    fn new(n: usize, frame: usize) -> MsgBatch {
        let mut bufs = vec![0u8; n * frame].into_boxed_slice();
        let mut addrs: Box<[libc::sockaddr_ll]> = (0..n).map(|_| sys::zeroed_sockaddr_ll()).collect();
        let iovs: Box<[libc::iovec]> = (0..n)
            .map(|i| libc::iovec { iov_base: bufs[i * frame..].as_mut_ptr().cast(), iov_len: frame })
            .collect();
        let hdrs: Box<[libc::mmsghdr]> = (0..n)
            .map(|i| {
                let mut h = sys::zeroed_msghdr();
                h.msg_iov = (&iovs[i] as *const libc::iovec).cast_mut();
                h.msg_iovlen = 1;
                h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_ll).cast();
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                libc::mmsghdr { msg_hdr: h, msg_len: 0 }
            })
            .collect();
        MsgBatch { bufs, iovs, addrs, hdrs, frame }
    }

    fn reset_rx(&mut self, n: usize) {
        for h in &mut self.hdrs[..n] {
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        for v in &mut self.iovs[..n] {
            v.iov_len = self.frame;
        }
    }
}

/// An AF_PACKET raw socket bound to one interface.
pub struct AfPacket {
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    mtu: u32,
    max_frame: usize,
    qdisc_bypass: bool,
    ethertype: Option<u16>,
    rx: MsgBatch,
    tx: MsgBatch,
    /// Receive timeout currently set with SO_RCVTIMEO (None = blocking forever).
    cur_timeout: Option<Duration>,
    stats: IoStats,
    rx_truncated: u64,
    /// Kernel drops accumulated (PACKET_STATISTICS resets on read).
    kernel_drops: std::cell::Cell<u64>,
}

impl std::fmt::Debug for AfPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacket").field("ifname", &self.ifname).field("fd", &self.fd.as_raw_fd()).finish()
    }
}

impl AfPacket {
    /// Opens a raw socket bound to `ifname` in the calling thread's network
    /// namespace.
    pub fn open(ifname: &str, cfg: &AfPacketConfig) -> Result<AfPacket, PktError> {
        let s = open_socket(ifname, cfg)?;
        Ok(AfPacket {
            ifname: ifname.to_string(),
            ifindex: s.ifindex,
            mtu: s.mtu,
            max_frame: s.max_frame,
            qdisc_bypass: s.qdisc_bypass,
            ethertype: cfg.ethertype,
            rx: MsgBatch::new(cfg.batch, s.max_frame),
            tx: MsgBatch::new(cfg.batch, s.max_frame),
            fd: s.fd,
            cur_timeout: Some(Duration::ZERO),
            stats: IoStats::default(),
            rx_truncated: 0,
            kernel_drops: std::cell::Cell::new(0),
        })
    }

    /// The socket's descriptor (for callers that want to poll it themselves).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn set_timeout(&mut self, d: Duration) -> Result<(), PktError> {
        if self.cur_timeout == Some(d) {
            return Ok(());
        }
        // A zero timeval means "block forever" to SO_RCVTIMEO: use 1 µs.
        let d2 = if d.is_zero() { Duration::from_micros(1) } else { d };
        let tv = libc::timeval { tv_sec: d2.as_secs() as libc::time_t, tv_usec: d2.subsec_micros() as libc::suseconds_t };
        sys::setsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
            .map_err(|e| os_err_from(format!("set receive timeout on AF_PACKET socket of {}", self.ifname), e))?;
        self.cur_timeout = Some(d);
        Ok(())
    }
}

impl PacketIo for AfPacket {
    fn name(&self) -> &'static str {
        "af_packet"
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn recv_batch(&mut self, max: usize, wait: Wait, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, PktError> {
        let n = max.min(self.rx.hdrs.len());
        if n == 0 {
            return Ok(0);
        }
        self.rx.reset_rx(n);
        let flags = match wait {
            Wait::Poll => libc::MSG_DONTWAIT,
            Wait::Block(d) => {
                self.set_timeout(d)?;
                libc::MSG_WAITFORONE
            }
        };
        let got = sys::recvmmsg(self.fd.as_raw_fd(), &mut self.rx.hdrs[..n], flags)
            .map_err(|e| os_err_from(format!("receive on AF_PACKET socket of {}", self.ifname), e))?;
        let mut delivered = 0;
        for i in 0..got {
            let h = &self.rx.hdrs[i];
            if self.rx.addrs[i].sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.rx_truncated += 1;
                self.stats.rx_dropped += 1;
                continue;
            }
            let len = h.msg_len as usize;
            on_frame(&self.rx.bufs[i * self.rx.frame..i * self.rx.frame + len]);
            delivered += 1;
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += len as u64;
        }
        Ok(delivered)
    }

    fn send_batch(&mut self, count: usize, fill: &mut dyn FnMut(usize, &mut [u8]) -> usize) -> Result<usize, PktError> {
        let mut done = 0;
        let per = self.tx.hdrs.len();
        let mut i = 0;
        while i < count {
            // Fill up to one batch of frames, then send it.
            let mut k = 0;
            while i < count && k < per {
                let frame = self.tx.frame;
                let len = fill(i, &mut self.tx.bufs[k * frame..(k + 1) * frame]).min(frame);
                i += 1;
                if len == 0 {
                    continue;
                }
                self.tx.iovs[k].iov_len = len;
                let h = &mut self.tx.hdrs[k].msg_hdr;
                h.msg_name = std::ptr::null_mut();
                h.msg_namelen = 0;
                k += 1;
            }
            let mut off = 0;
            let mut retries = 0;
            while off < k {
                let s = sys::sendmmsg(self.fd.as_raw_fd(), &mut self.tx.hdrs[off..k], 0)
                    .map_err(|e| os_err_from(format!("send on AF_PACKET socket of {}", self.ifname), e))?;
                if s == 0 {
                    retries += 1;
                    if retries > 100 {
                        break;
                    }
                    std::thread::yield_now();
                    continue;
                }
                for j in off..off + s {
                    self.stats.tx_bytes += self.tx.iovs[j].iov_len as u64;
                }
                off += s;
            }
            self.stats.tx_frames += off as u64;
            self.stats.tx_dropped += (k - off) as u64;
            done += off;
        }
        Ok(done)
    }

    fn stats(&self) -> IoStats {
        self.kernel_drops.set(self.kernel_drops.get() + kernel_drops(self.fd.as_raw_fd()));
        IoStats { rx_dropped: self.stats.rx_dropped + self.kernel_drops.get(), ..self.stats }
    }

    fn detail(&self) -> serde_json::Value {
        let _ = self.stats();
        serde_json::json!({
            "interface": self.ifname,
            "ifindex": self.ifindex,
            "kernel_rx_drops": self.kernel_drops.get(),
            "mtu": self.mtu,
            "ethertype": self.ethertype.map(|e| format!("0x{e:04x}")).unwrap_or_else(|| "all".into()),
            "io": "recvmmsg/sendmmsg",
            "batch": self.rx.hdrs.len(),
            "qdisc_bypass": self.qdisc_bypass,
            "rx_truncated": self.rx_truncated,
        })
    }
}
