//! The AF_XDP and bpf(2) system interface: kernel ABI structs and constants
//! (from `linux/if_xdp.h`, `linux/bpf.h`, `linux/if_link.h`), the `bpf()`
//! commands used, and the shared-memory rings. Every `unsafe` block of the
//! AF_XDP backend lives here, each with a `// SAFETY:` comment.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::Mmap;
use crate::PktError;

pub(crate) const AF_XDP: i32 = 44;
pub(crate) const SOL_XDP: i32 = 283;

pub(crate) const XDP_MMAP_OFFSETS: i32 = 1;
pub(crate) const XDP_RX_RING: i32 = 2;
pub(crate) const XDP_TX_RING: i32 = 3;
pub(crate) const XDP_UMEM_REG: i32 = 4;
pub(crate) const XDP_UMEM_FILL_RING: i32 = 5;
pub(crate) const XDP_UMEM_COMPLETION_RING: i32 = 6;
pub(crate) const XDP_STATISTICS: i32 = 7;
pub(crate) const XDP_OPTIONS: i32 = 8;
pub(crate) const XDP_OPTIONS_ZEROCOPY: u32 = 1;

pub(crate) const XDP_COPY: u16 = 1 << 1;
pub(crate) const XDP_ZEROCOPY: u16 = 1 << 2;
pub(crate) const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
pub(crate) const XDP_USE_SG: u16 = 1 << 4;
pub(crate) const XDP_RING_NEED_WAKEUP: u32 = 1;
/// Descriptor option: more fragments of this packet follow.
pub(crate) const XDP_PKT_CONTD: u32 = 1;

pub(crate) const XDP_PGOFF_RX_RING: i64 = 0;
pub(crate) const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
pub(crate) const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
pub(crate) const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// Kernel headroom in front of every received frame in a UMEM chunk.
pub(crate) const XDP_PACKET_HEADROOM: u32 = 256;

/// Socket busy-poll options (asm-generic/socket.h).
pub(crate) const SO_BUSY_POLL: i32 = 46;
pub(crate) const SO_PREFER_BUSY_POLL: i32 = 69;
pub(crate) const SO_BUSY_POLL_BUDGET: i32 = 70;

pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_PROG_LOAD: i32 = 5;
const BPF_LINK_CREATE: i32 = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
pub(crate) const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SockaddrXdp {
    pub family: u16,
    pub flags: u16,
    pub ifindex: u32,
    pub queue_id: u32,
    pub shared_umem_fd: u32,
}

/// `struct xdp_umem_reg` (with `tx_metadata_len`, zero here).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct xdp_ring_offset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MmapOffsets {
    pub rx: RingOffset,
    pub tx: RingOffset,
    pub fr: RingOffset,
    pub cr: RingOffset,
}

/// `struct xdp_desc`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// `struct xdp_statistics`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct XdpStatistics {
    /// Dropped for other reasons (e.g. frame larger than the chunk).
    pub rx_dropped: u64,
    /// Dropped because of an invalid fill descriptor.
    pub rx_invalid_descs: u64,
    /// Invalid transmit descriptors.
    pub tx_invalid_descs: u64,
    /// Dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was found empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the tx ring was found empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}

impl XdpStatistics {
    /// Element-wise sum (across queues).
    pub fn add(&mut self, o: &XdpStatistics) {
        self.rx_dropped += o.rx_dropped;
        self.rx_invalid_descs += o.rx_invalid_descs;
        self.tx_invalid_descs += o.tx_invalid_descs;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_fill_ring_empty_descs += o.rx_fill_ring_empty_descs;
        self.tx_ring_empty_descs += o.tx_ring_empty_descs;
    }
}

/// Calls bpf(2) with `attr` (a `#[repr(C)]` prefix of `union bpf_attr`).
fn bpf<T>(cmd: i32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] struct whose layout is
    // a prefix of the kernel's `union bpf_attr` for `cmd`, and the size passed
    // is exactly its size (the kernel zero-extends shorter attrs). Any
    // pointers inside it were set by the caller to live buffers.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, (attr as *mut T).cast::<u8>(), std::mem::size_of::<T>() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_from_bpf(r: i64) -> OwnedFd {
    // SAFETY: bpf() returned a fresh fd (r >= 0) owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

fn name16(s: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, b) in n.iter_mut().zip(s.bytes().take(15)) {
        *d = b;
    }
    n
}

/// Creates an XSKMAP with `entries` slots.
pub(crate) fn create_xskmap(entries: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct MapCreate {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        inner_map_fd: u32,
        numa_node: u32,
        map_name: [u8; 16],
    }
    let mut a = MapCreate {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: entries,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: name16("cranlab_xsks"),
    };
    bpf(BPF_MAP_CREATE, &mut a).map(fd_from_bpf)
}

/// Sets `map[key] = value` (u32 key and value).
pub(crate) fn map_update(map: RawFd, key: u32, value: u32) -> io::Result<()> {
    #[repr(C)]
    struct MapElem {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let mut a = MapElem {
        map_fd: map as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

/// Loads an XDP program; on failure returns the error and the verifier log.
pub(crate) fn prog_load_xdp(insns: &[u64], frags: bool) -> Result<OwnedFd, (io::Error, String)> {
    #[repr(C)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }
    let license = b"Dual MIT/GPL\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut a = ProgLoad {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: if frags { BPF_F_XDP_HAS_FRAGS } else { 0 },
        prog_name: name16("cranlab_xdp"),
        prog_ifindex: 0,
        expected_attach_type: BPF_XDP,
    };
    match bpf(BPF_PROG_LOAD, &mut a) {
        Ok(r) => Ok(fd_from_bpf(r)),
        Err(e) => {
            // Again with the verifier log, for the error message.
            a.log_level = 1;
            a.log_size = log.len() as u32;
            a.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut a);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err((e, String::from_utf8_lossy(&log[..end]).trim().to_string()))
        }
    }
}

/// Attaches `prog` to `ifindex` as an XDP link (`flags`: DRV or SKB mode).
/// The link detaches when its last fd closes (e.g. the process dies).
pub(crate) fn link_create_xdp(prog: RawFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct LinkCreate {
        prog_fd: u32,
        target_ifindex: u32,
        attach_type: u32,
        flags: u32,
        _rest: [u64; 4],
    }
    let mut a = LinkCreate { prog_fd: prog as u32, target_ifindex: ifindex, attach_type: BPF_XDP, flags, _rest: [0; 4] };
    bpf(BPF_LINK_CREATE, &mut a).map(fd_from_bpf)
}

/// `bind(2)` of an AF_XDP socket.
pub(crate) fn bind_xsk(fd: RawFd, sa: &SockaddrXdp) -> io::Result<()> {
    // SAFETY: `sa` is a valid sockaddr_xdp and the length is its size.
    let r = unsafe { libc::bind(fd, (sa as *const SockaddrXdp).cast(), std::mem::size_of::<SockaddrXdp>() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One of the four shared rings of an AF_XDP socket, mapped from the kernel.
///
/// `T` is `u64` (fill, completion: UMEM addresses) or [`XdpDesc`] (rx, tx).
/// A ring is either produced by us (fill, tx) or consumed by us (rx,
/// completion); the methods of the other role are simply not called.
pub(crate) struct Ring<T: Copy> {
    map: Mmap,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut T,
    mask: u32,
    size: u32,
    /// Our copy of the index we own; the other one cached from the kernel.
    cached_prod: u32,
    cached_cons: u32,
}

// SAFETY: the ring is a private mapping handle used through `&mut self` from
// one thread at a time; the kernel side synchronises through the atomics.
unsafe impl<T: Copy> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `size` entries at page offset `pgoff` of socket `fd`.
    pub(crate) fn map(fd: RawFd, off: &RingOffset, size: u32, pgoff: i64, what: &str) -> Result<Ring<T>, PktError> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        let map = Mmap::map(fd, len, pgoff, what)?;
        let base = map.ptr();
        // SAFETY: the kernel's offsets lie within the mapping of `len` bytes
        // (desc + size entries is its documented layout); the index words are
        // 4-byte aligned u32s the kernel updates atomically.
        let (producer, consumer, flags, desc) = unsafe {
            (
                base.add(off.producer as usize) as *const AtomicU32,
                base.add(off.consumer as usize) as *const AtomicU32,
                base.add(off.flags as usize) as *const AtomicU32,
                base.add(off.desc as usize) as *mut T,
            )
        };
        let mut r = Ring { map, producer, consumer, flags, desc, mask: size - 1, size, cached_prod: 0, cached_cons: 0 };
        r.cached_prod = r.prod().load(Ordering::Relaxed);
        r.cached_cons = r.cons().load(Ordering::Relaxed);
        Ok(r)
    }

    fn prod(&self) -> &AtomicU32 {
        // SAFETY: points into `self.map`, alive as long as `self`.
        unsafe { &*self.producer }
    }
    fn cons(&self) -> &AtomicU32 {
        // SAFETY: points into `self.map`, alive as long as `self`.
        unsafe { &*self.consumer }
    }

    /// True when the kernel asks to be woken (need-wakeup flag).
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: points into `self.map`, alive as long as `self`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    /// Producer: how many entries (up to `n`) can be written now.
    pub(crate) fn free(&mut self, n: u32) -> u32 {
        let mut free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free < n {
            self.cached_cons = self.cons().load(Ordering::Acquire);
            free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        }
        free.min(n)
    }

    /// Producer: writes entry `i` past the current producer index (i < free).
    pub(crate) fn write(&mut self, i: u32, v: T) {
        let idx = self.cached_prod.wrapping_add(i) & self.mask;
        // SAFETY: idx <= mask < size, within the mapped descriptor array; the
        // slot is ours (between producer and consumer + size).
        unsafe { self.desc.add(idx as usize).write(v) };
    }

    /// Producer: publishes `n` written entries.
    pub(crate) fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.prod().store(self.cached_prod, Ordering::Release);
    }

    /// Consumer: how many entries (up to `n`) are ready.
    pub(crate) fn ready(&mut self, n: u32) -> u32 {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail < n {
            self.cached_prod = self.prod().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        avail.min(n)
    }

    /// Consumer: reads entry `i` past the current consumer index (i < ready).
    pub(crate) fn read(&self, i: u32) -> T {
        let idx = self.cached_cons.wrapping_add(i) & self.mask;
        // SAFETY: idx < size, within the mapped array; the kernel published
        // this entry (acquire load of the producer index in `ready`).
        unsafe { self.desc.add(idx as usize).read() }
    }

    /// Consumer: frees `n` read entries back to the kernel.
    pub(crate) fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.cons().store(self.cached_cons, Ordering::Release);
    }

    /// Producer side: entries written but not yet consumed by the kernel.
    pub(crate) fn outstanding(&self) -> u32 {
        self.cached_prod.wrapping_sub(self.cons().load(Ordering::Acquire))
    }

    /// Mapping length (for details).
    pub(crate) fn mapped_len(&self) -> usize {
        self.map.len()
    }
}

/// The UMEM as mapped in this process (a MAP_SHARED view of the memfd).
pub(crate) struct UmemView {
    map: Mmap,
}

impl UmemView {
    pub(crate) fn map(memfd: RawFd, len: usize) -> Result<UmemView, PktError> {
        Ok(UmemView { map: Mmap::map(memfd, len, 0, "AF_XDP UMEM")? })
    }
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.ptr()
    }
    /// Bytes `[addr, addr+len)` of the UMEM (a frame the kernel handed us).
    pub(crate) fn slice(&self, addr: u64, len: usize) -> &[u8] {
        assert!(addr as usize + len <= self.map.len(), "UMEM descriptor out of range");
        // SAFETY: the range is inside the mapping (checked); the frame belongs
        // to us until we give it back to the fill ring, so the kernel does not
        // write it meanwhile.
        unsafe { std::slice::from_raw_parts(self.map.ptr().add(addr as usize), len) }
    }
    /// Mutable bytes `[addr, addr+len)` of a transmit frame we own.
    pub(crate) fn slice_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        assert!(addr as usize + len <= self.map.len(), "UMEM frame out of range");
        // SAFETY: in range (checked); the frame is on our free list, so neither
        // the kernel nor any other slice refers to it; `&mut self` excludes
        // other borrows of the view.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr().add(addr as usize), len) }
    }
}

/// Creates an AF_XDP socket.
pub(crate) fn xsk_socket() -> Result<OwnedFd, PktError> {
    crate::sys::socket(AF_XDP, libc::SOCK_RAW, 0, "AF_XDP")
}

/// The socket's domain (`SO_DOMAIN`), to validate an inherited fd.
pub(crate) fn socket_domain(fd: RawFd) -> io::Result<i32> {
    let mut d = 0i32;
    crate::sys::getsockopt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN, &mut d)?;
    Ok(d)
}

/// Reads XDP_STATISTICS.
pub(crate) fn xdp_statistics(fd: &OwnedFd) -> io::Result<XdpStatistics> {
    let mut s = XdpStatistics::default();
    crate::sys::getsockopt(fd.as_raw_fd(), SOL_XDP, XDP_STATISTICS, &mut s)?;
    Ok(s)
}

/// Reads XDP_OPTIONS (zero-copy flag).
pub(crate) fn xdp_zero_copy(fd: RawFd) -> io::Result<bool> {
    let mut o = 0u32;
    crate::sys::getsockopt(fd, SOL_XDP, XDP_OPTIONS, &mut o)?;
    Ok(o & XDP_OPTIONS_ZEROCOPY != 0)
}
