//! AF_PACKET driven by io_uring.
//!
//! The same bound raw socket as [`crate::afpacket`], but receive keeps
//! `batch` `IORING_OP_RECVMSG` requests in flight (one per preallocated
//! buffer), re-arming each as soon as its frame has been lent to the caller;
//! blocking waits are one `io_uring_enter` with a timeout. Transmit queues one
//! `IORING_OP_SEND` per frame on a second ring and submits them with one
//! `io_uring_enter`, waiting for their completions (so the buffers can be
//! reused). Compared with blocking AF_PACKET in docs/transport.md.
//!
//! The `unsafe` here is the io_uring contract (buffers outlive their
//! requests), fenced in this module with `// SAFETY:` comments.

use std::os::fd::{AsRawFd, OwnedFd};
use io_uring::{opcode, types, IoUring};

use crate::afpacket::{kernel_drops, open_socket, AfPacketConfig};
use crate::sys::{self, os_err_from};
use crate::{IoStats, PacketIo, PktError, Wait};

/// Receive slot storage: buffers and headers at stable heap addresses.
struct RxSlots {
    bufs: Box<[u8]>,
    iovs: Box<[libc::iovec]>,
    addrs: Box<[libc::sockaddr_ll]>,
    hdrs: Box<[libc::msghdr]>,
    frame: usize,
}

/// AF_PACKET socket whose receive and transmit go through io_uring.
pub struct AfPacketUring {
    // Field order: rings first, so they are torn down before the buffers
    // their requests point to (Drop also cancels and drains them).
    rx_ring: IoUring,
    tx_ring: IoUring,
    rx: RxSlots,
    tx_bufs: Box<[u8]>,
    inflight: usize,
    fd: OwnedFd,
    ifname: String,
    mtu: u32,
    max_frame: usize,
    qdisc_bypass: bool,
    ethertype: Option<u16>,
    stats: IoStats,
    enters: u64,
    kernel_drops: std::cell::Cell<u64>,
}

// SAFETY: the raw pointers inside `rx` point only into this struct's own heap
// buffers; the rings are owned; nothing is shared with another thread.
unsafe impl Send for AfPacketUring {}

impl std::fmt::Debug for AfPacketUring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketUring").field("ifname", &self.ifname).finish()
    }
}

fn uring_err(op: String, e: std::io::Error) -> PktError {
    if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) {
        PktError::Unsupported(format!("{op}: io_uring unavailable ({e})"))
    } else {
        os_err_from(op, e)
    }
}

impl AfPacketUring {
    /// Opens the socket on `ifname` (calling thread's namespace) and arms
    /// `cfg.batch` receive requests.
    pub fn open(ifname: &str, cfg: &AfPacketConfig) -> Result<AfPacketUring, PktError> {
        let s = open_socket(ifname, cfg)?;
        let n = cfg.batch;
        let entries = (n as u32).next_power_of_two().max(8);
        let rx_ring = IoUring::new(entries * 2).map_err(|e| uring_err(format!("create io_uring for {ifname}"), e))?;
        let tx_ring = IoUring::new(entries).map_err(|e| uring_err(format!("create io_uring for {ifname}"), e))?;
        let frame = s.max_frame;
        let mut bufs = vec![0u8; n * frame].into_boxed_slice();
        let mut addrs: Box<[libc::sockaddr_ll]> = (0..n).map(|_| sys::zeroed_sockaddr_ll()).collect();
        let iovs: Box<[libc::iovec]> =
            (0..n).map(|i| libc::iovec { iov_base: bufs[i * frame..].as_mut_ptr().cast(), iov_len: frame }).collect();
        let hdrs: Box<[libc::msghdr]> = (0..n)
            .map(|i| {
                let mut h = sys::zeroed_msghdr();
                h.msg_iov = (&iovs[i] as *const libc::iovec).cast_mut();
                h.msg_iovlen = 1;
                h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_ll).cast();
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                h
            })
            .collect();
        let mut me = AfPacketUring {
            rx_ring,
            tx_ring,
            rx: RxSlots { bufs, iovs, addrs, hdrs, frame },
            tx_bufs: vec![0u8; n * frame].into_boxed_slice(),
            inflight: 0,
            fd: s.fd,
            ifname: ifname.to_string(),
            mtu: s.mtu,
            max_frame: frame,
            qdisc_bypass: s.qdisc_bypass,
            ethertype: cfg.ethertype,
            stats: IoStats::default(),
            enters: 0,
            kernel_drops: std::cell::Cell::new(0),
        };
        for i in 0..n {
            me.arm(i)?;
        }
        me.rx_ring.submit().map_err(|e| uring_err(format!("submit io_uring receives for {ifname}"), e))?;
        Ok(me)
    }

    /// Queues a RECVMSG for slot `i`.
    fn arm(&mut self, i: usize) -> Result<(), PktError> {
        self.rx.hdrs[i].msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        self.rx.hdrs[i].msg_flags = 0;
        let e = opcode::RecvMsg::new(types::Fd(self.fd.as_raw_fd()), &mut self.rx.hdrs[i]).build().user_data(i as u64);
        // SAFETY: the msghdr, iovec, sockaddr and buffer of slot `i` live in
        // boxed slices owned by `self`, are not touched by us until the
        // request completes, and outlive it (Drop cancels and drains requests
        // before the slices are freed).
        unsafe { self.rx_ring.submission().push(&e) }
            .map_err(|_| PktError::Unsupported("io_uring submission queue full".into()))?;
        self.inflight += 1;
        Ok(())
    }

    fn reap(&mut self, max: usize, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, PktError> {
        let mut delivered = 0;
        let mut rearm = [0usize; 64];
        loop {
            let mut k = 0;
            for cqe in self.rx_ring.completion().take(max.min(64)) {
                rearm[k] = cqe.user_data() as usize;
                k += 1;
                let i = cqe.user_data() as usize;
                let r = cqe.result();
                self.inflight -= 1;
                if r < 0 {
                    if r == -libc::ECANCELED {
                        continue;
                    }
                    return Err(os_err_from(
                        format!("io_uring receive on AF_PACKET socket of {}", self.ifname),
                        std::io::Error::from_raw_os_error(-r),
                    ));
                }
                if self.rx.addrs[i].sll_pkttype == libc::PACKET_OUTGOING || self.rx.hdrs[i].msg_flags & libc::MSG_TRUNC != 0 {
                    if self.rx.hdrs[i].msg_flags & libc::MSG_TRUNC != 0 {
                        self.stats.rx_dropped += 1;
                    }
                    continue;
                }
                let len = r as usize;
                let f = self.rx.frame;
                on_frame(&self.rx.bufs[i * f..i * f + len]);
                delivered += 1;
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += len as u64;
            }
            for &i in &rearm[..k] {
                self.arm(i)?;
            }
            if k == 0 || delivered >= max {
                break;
            }
        }
        Ok(delivered)
    }
}

impl PacketIo for AfPacketUring {
    fn name(&self) -> &'static str {
        "af_packet_uring"
    }

    fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn recv_batch(&mut self, max: usize, wait: Wait, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, PktError> {
        if max == 0 {
            return Ok(0);
        }
        let n = self.reap(max, on_frame)?;
        if n > 0 {
            self.rx_ring.submit().map_err(|e| os_err_from("submit io_uring receives", e))?;
            return Ok(n);
        }
        self.enters += 1;
        match wait {
            Wait::Poll => {
                self.rx_ring.submit().map_err(|e| os_err_from("enter io_uring", e))?;
            }
            Wait::Block(d) => {
                let ts = types::Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos());
                let args = types::SubmitArgs::new().timespec(&ts);
                match self.rx_ring.submitter().submit_with_args(1, &args) {
                    Ok(_) => {}
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)) => {}
                    Err(e) => return Err(os_err_from(format!("wait on io_uring of {}", self.ifname), e)),
                }
            }
        }
        let n = self.reap(max, on_frame)?;
        if n > 0 {
            self.rx_ring.submit().map_err(|e| os_err_from("submit io_uring receives", e))?;
        }
        Ok(n)
    }

    fn send_batch(&mut self, count: usize, fill: &mut dyn FnMut(usize, &mut [u8]) -> usize) -> Result<usize, PktError> {
        let per = self.rx.hdrs.len();
        let f = self.max_frame;
        let mut sent = 0;
        let mut i = 0;
        while i < count {
            let mut k = 0;
            while i < count && k < per {
                let buf = &mut self.tx_bufs[k * f..(k + 1) * f];
                let len = fill(i, buf).min(f);
                i += 1;
                if len == 0 {
                    continue;
                }
                let e = opcode::Send::new(types::Fd(self.fd.as_raw_fd()), buf.as_ptr(), len as u32).build().user_data(k as u64);
                // SAFETY: the buffer lives in `self.tx_bufs` and is neither
                // written nor freed until this request has completed: we wait
                // for all `k` completions below before returning.
                unsafe { self.tx_ring.submission().push(&e) }
                    .map_err(|_| PktError::Unsupported("io_uring submission queue full".into()))?;
                k += 1;
            }
            if k == 0 {
                continue;
            }
            self.tx_ring.submit_and_wait(k).map_err(|e| os_err_from(format!("submit io_uring sends on {}", self.ifname), e))?;
            let mut done = 0;
            while done < k {
                for cqe in self.tx_ring.completion() {
                    done += 1;
                    let r = cqe.result();
                    if r >= 0 {
                        sent += 1;
                        self.stats.tx_frames += 1;
                        self.stats.tx_bytes += r as u64;
                    } else {
                        self.stats.tx_dropped += 1;
                    }
                }
                if done < k {
                    self.tx_ring.submit_and_wait(k - done).map_err(|e| os_err_from("wait for io_uring sends", e))?;
                }
            }
        }
        Ok(sent)
    }

    fn stats(&self) -> IoStats {
        self.kernel_drops.set(self.kernel_drops.get() + kernel_drops(self.fd.as_raw_fd()));
        IoStats { rx_dropped: self.stats.rx_dropped + self.kernel_drops.get(), ..self.stats }
    }

    fn detail(&self) -> serde_json::Value {
        let _ = self.stats();
        serde_json::json!({
            "kernel_rx_drops": self.kernel_drops.get(),
            "interface": self.ifname,
            "mtu": self.mtu,
            "ethertype": self.ethertype.map(|e| format!("0x{e:04x}")).unwrap_or_else(|| "all".into()),
            "io": "io_uring recvmsg/send",
            "receives_in_flight": self.inflight,
            "qdisc_bypass": self.qdisc_bypass,
            "enters": self.enters,
        })
    }
}

impl Drop for AfPacketUring {
    fn drop(&mut self) {
        // Cancel the armed receives and wait until the kernel has let go of
        // every buffer before the slices are freed.
        let e = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(u64::MAX);
        // SAFETY: a cancel request carries no buffer.
        if unsafe { self.rx_ring.submission().push(&e) }.is_err() {
            return;
        }
        let _ = self.rx_ring.submit();
        for _ in 0..100 {
            for cqe in self.rx_ring.completion() {
                if cqe.user_data() != u64::MAX {
                    self.inflight = self.inflight.saturating_sub(1);
                }
            }
            if self.inflight == 0 {
                break;
            }
            let ts = types::Timespec::new().nsec(10_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.rx_ring.submitter().submit_with_args(1, &args);
        }
        if self.inflight > 0 {
            // The kernel may still own them: leak rather than free.
            std::mem::forget(std::mem::take(&mut self.rx.bufs));
            std::mem::forget(std::mem::take(&mut self.rx.iovs));
            std::mem::forget(std::mem::take(&mut self.rx.addrs));
            std::mem::forget(std::mem::take(&mut self.rx.hdrs));
        }
    }
}
