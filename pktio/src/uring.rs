//! AF_PACKET driven by io_uring.
//!
//! The same bound raw socket as [`crate::afpacket`]. Receive is one
//! multishot `IORING_OP_RECVMSG` fed from a provided-buffer ring of 256
//! preallocated buffers: every frame is one completion naming the buffer it
//! landed in; the buffer goes back to the ring as soon as the frame has been
//! lent to the caller, and the request is re-armed if the kernel ended it.
//! A blocking wait is one `io_uring_enter` with a timeout. Transmit queues
//! one `IORING_OP_SEND` per frame on a second ring and submits them with one
//! `io_uring_enter`, waiting for their completions (so the buffers can be
//! reused). Compared with blocking AF_PACKET in docs/transport.md.
//!
//! The `unsafe` here is the io_uring contract (buffers and the buffer ring
//! outlive the requests that use them), fenced in this module with
//! `// SAFETY:` comments.

use std::alloc::Layout;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{cqueue, opcode, types, IoUring};

use crate::afpacket::{kernel_drops, open_socket, AfPacketConfig};
use crate::sys::{self, os_err_from};
use crate::{IoStats, PacketIo, PktError, Wait};

/// Buffers in the provided-buffer ring.
const NBUF: u16 = 256;
/// Buffer group id.
const BGID: u16 = 0xc1;
/// user_data of the multishot receive.
const RECV_TAG: u64 = 1;
/// user_data of the cancel request.
const CANCEL_TAG: u64 = u64::MAX;

/// The provided-buffer ring and the buffers it hands out.
struct BufRing {
    ring: *mut types::BufRingEntry,
    layout: Layout,
    bufs: Box<[u8]>,
    buf_len: usize,
    tail: u16,
}

impl BufRing {
    fn new(buf_len: usize) -> BufRing {
        let layout = Layout::from_size_align(NBUF as usize * std::mem::size_of::<types::BufRingEntry>(), 4096).expect("layout");
        // SAFETY: non-zero size; the memory is zeroed, a valid state for the
        // plain-data ring entries; freed in Drop with the same layout.
        let ring = unsafe { std::alloc::alloc_zeroed(layout) } as *mut types::BufRingEntry;
        if ring.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        let mut r = BufRing { ring, layout, bufs: vec![0u8; NBUF as usize * buf_len].into_boxed_slice(), buf_len, tail: 0 };
        for bid in 0..NBUF {
            r.push(bid);
        }
        r.publish();
        r
    }

    /// Puts buffer `bid` at the ring's tail (published by [`BufRing::publish`]).
    fn push(&mut self, bid: u16) {
        let idx = (self.tail & (NBUF - 1)) as usize;
        let addr = self.bufs[bid as usize * self.buf_len..].as_ptr() as u64;
        // SAFETY: idx < NBUF, inside the allocation; the kernel reads only
        // entries between its head and our published tail, and this one is
        // past the published tail.
        let e = unsafe { &mut *self.ring.add(idx) };
        e.set_addr(addr);
        e.set_len(self.buf_len as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail is the u16 `resv` field of entry 0, inside the
        // allocation and 2-byte aligned; the kernel reads it concurrently, so
        // it is written atomically with release ordering (entries first).
        let tail = unsafe { &*(types::BufRingEntry::tail(self.ring) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }

    fn buf(&self, bid: u16) -> &[u8] {
        &self.bufs[bid as usize * self.buf_len..(bid as usize + 1) * self.buf_len]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout. The io_uring that used
        // it is dropped first (field order) and the kernel pins its own
        // reference to the pages while registered.
        unsafe { std::alloc::dealloc(self.ring as *mut u8, self.layout) };
    }
}

/// AF_PACKET socket whose receive and transmit go through io_uring.
pub struct AfPacketUring {
    // Field order: rings first, so they are torn down before the buffers
    // their requests point to (Drop also cancels and drains the receive).
    rx_ring: IoUring,
    tx_ring: IoUring,
    bufring: BufRing,
    msghdr: Box<libc::msghdr>,
    armed: bool,
    tx_bufs: Box<[u8]>,
    batch: usize,
    fd: OwnedFd,
    ifname: String,
    mtu: u32,
    max_frame: usize,
    qdisc_bypass: bool,
    ethertype: Option<u16>,
    stats: IoStats,
    enters: u64,
    rearms: u64,
    kernel_drops: std::cell::Cell<u64>,
}

// SAFETY: the raw pointers (buffer ring, msghdr) point only into this
// struct's own allocations; the rings are owned; nothing is shared with
// another thread.
unsafe impl Send for AfPacketUring {}

impl std::fmt::Debug for AfPacketUring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketUring").field("ifname", &self.ifname).finish()
    }
}

fn uring_err(op: String, e: std::io::Error) -> PktError {
    if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EINVAL)) {
        PktError::Unsupported(format!("{op}: io_uring feature unavailable ({e})"))
    } else {
        os_err_from(op, e)
    }
}

impl AfPacketUring {
    /// Opens the socket on `ifname` (calling thread's namespace), registers
    /// the buffer ring and arms the multishot receive.
    pub fn open(ifname: &str, cfg: &AfPacketConfig) -> Result<AfPacketUring, PktError> {
        let s = open_socket(ifname, cfg)?;
        let n = cfg.batch;
        let entries = (n as u32).next_power_of_two().max(8);
        let rx_ring = IoUring::new(64).map_err(|e| uring_err(format!("create io_uring for {ifname}"), e))?;
        let tx_ring = IoUring::new(entries).map_err(|e| uring_err(format!("create io_uring for {ifname}"), e))?;
        let name_len = std::mem::size_of::<libc::sockaddr_ll>();
        // recvmsg_out header + name + payload, rounded up.
        let buf_len = (16 + name_len + s.max_frame).div_ceil(64) * 64;
        let bufring = BufRing::new(buf_len);
        // SAFETY: the ring memory is page aligned, holds NBUF entries and
        // stays allocated (and unmoved: it is a raw allocation) while the
        // io_uring lives; the buffers it names live in `bufring.bufs`.
        unsafe { rx_ring.submitter().register_buf_ring_with_flags(bufring.ring as u64, NBUF, BGID, 0) }
            .map_err(|e| uring_err(format!("register io_uring buffer ring for {ifname}"), e))?;
        let mut msghdr = Box::new(sys::zeroed_msghdr());
        msghdr.msg_namelen = name_len as u32;
        let mut me = AfPacketUring {
            rx_ring,
            tx_ring,
            bufring,
            msghdr,
            armed: false,
            tx_bufs: vec![0u8; n * s.max_frame].into_boxed_slice(),
            batch: n,
            fd: s.fd,
            ifname: ifname.to_string(),
            mtu: s.mtu,
            max_frame: s.max_frame,
            qdisc_bypass: s.qdisc_bypass,
            ethertype: cfg.ethertype,
            stats: IoStats::default(),
            enters: 0,
            rearms: 0,
            kernel_drops: std::cell::Cell::new(0),
        };
        me.arm()?;
        me.rx_ring.submit().map_err(|e| uring_err(format!("submit io_uring receive for {ifname}"), e))?;
        Ok(me)
    }

    /// Queues the multishot RECVMSG.
    fn arm(&mut self) -> Result<(), PktError> {
        let e = opcode::RecvMsgMulti::new(types::Fd(self.fd.as_raw_fd()), &*self.msghdr, BGID).build().user_data(RECV_TAG);
        // SAFETY: the msghdr is boxed in `self` and outlives the request
        // (Drop cancels and drains it); its buffers come from the registered
        // buffer ring, also owned by `self`.
        unsafe { self.rx_ring.submission().push(&e) }
            .map_err(|_| PktError::Unsupported("io_uring submission queue full".into()))?;
        self.armed = true;
        self.rearms += 1;
        Ok(())
    }

    fn reap(&mut self, max: usize, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, PktError> {
        let mut delivered = 0;
        let mut err = None;
        let mut recycled = false;
        for cqe in self.rx_ring.completion().take(max) {
            if cqe.user_data() != RECV_TAG {
                continue;
            }
            let flags = cqe.flags();
            if !cqueue::more(flags) {
                self.armed = false;
            }
            let r = cqe.result();
            if r < 0 {
                if r != -libc::ENOBUFS && r != -libc::ECANCELED {
                    err = Some(std::io::Error::from_raw_os_error(-r));
                }
                continue;
            }
            let Some(bid) = cqueue::buffer_select(flags) else { continue };
            let buf = self.bufring.buf(bid);
            if let Ok(out) = types::RecvMsgOut::parse(buf, &self.msghdr) {
                let name = out.name_data();
                let outgoing = name.len() > 10 && name[10] == libc::PACKET_OUTGOING;
                if out.is_payload_truncated() {
                    self.stats.rx_dropped += 1;
                } else if !outgoing {
                    let p = out.payload_data();
                    on_frame(p);
                    delivered += 1;
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += p.len() as u64;
                }
            }
            self.bufring.push(bid);
            recycled = true;
        }
        if recycled {
            self.bufring.publish();
        }
        if let Some(e) = err {
            return Err(os_err_from(format!("io_uring receive on AF_PACKET socket of {}", self.ifname), e));
        }
        if !self.armed {
            self.arm()?;
            self.rx_ring.submit().map_err(|e| os_err_from("submit io_uring receive", e))?;
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
        self.reap(max, on_frame)
    }

    fn send_batch(&mut self, count: usize, fill: &mut dyn FnMut(usize, &mut [u8]) -> usize) -> Result<usize, PktError> {
        let per = self.batch;
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
            "io": "io_uring multishot recvmsg (provided-buffer ring) / send",
            "buffers": NBUF,
            "receive_rearms": self.rearms,
            "qdisc_bypass": self.qdisc_bypass,
            "enters": self.enters,
        })
    }
}

impl Drop for AfPacketUring {
    fn drop(&mut self) {
        // Cancel the multishot receive and wait until the kernel has ended it
        // before the msghdr and the buffers are freed.
        if !self.armed {
            return;
        }
        let e = opcode::AsyncCancel::new(RECV_TAG).build().user_data(CANCEL_TAG);
        // SAFETY: a cancel request carries no buffer.
        if unsafe { self.rx_ring.submission().push(&e) }.is_ok() {
            let _ = self.rx_ring.submit();
            for _ in 0..100 {
                for cqe in self.rx_ring.completion() {
                    if cqe.user_data() == RECV_TAG && !cqueue::more(cqe.flags()) {
                        self.armed = false;
                    }
                }
                if !self.armed {
                    break;
                }
                let ts = types::Timespec::new().nsec(10_000_000);
                let args = types::SubmitArgs::new().timespec(&ts);
                let _ = self.rx_ring.submitter().submit_with_args(1, &args);
            }
        }
        if self.armed {
            // The kernel may still own them: leak rather than free.
            std::mem::forget(std::mem::take(&mut self.bufring.bufs));
            std::mem::forget(std::mem::replace(&mut self.msghdr, Box::new(sys::zeroed_msghdr())));
        }
    }
}
