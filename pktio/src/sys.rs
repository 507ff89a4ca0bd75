//! Thin wrappers over the `libc` calls shared by the socket backends
//! (AF_PACKET, io_uring, AF_XDP): every `unsafe` block of those backends that
//! is not AF_XDP-specific lives here, each with a `// SAFETY:` comment.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::PktError;

/// Builds a [`PktError::Os`] from `errno` and the step that failed.
pub(crate) fn os_err(op: impl Into<String>) -> PktError {
    PktError::Os { op: op.into(), err: io::Error::last_os_error() }
}

/// Builds a [`PktError::Os`] from an explicit error.
pub(crate) fn os_err_from(op: impl Into<String>, err: io::Error) -> PktError {
    PktError::Os { op: op.into(), err }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds.
///
/// Shared by all processes of the host (and all network namespaces), so a
/// sender can stamp it into a frame and a receiver subtract it.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `socket(2)`, close-on-exec.
pub(crate) fn socket(domain: i32, ty: i32, proto: i32, what: &str) -> Result<OwnedFd, PktError> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(os_err(format!("create {what} socket")));
    }
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with a plain-old-data value.
pub(crate) fn setsockopt<T: Copy>(fd: RawFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of exactly `size_of::<T>()` bytes; the
    // kernel only reads it.
    let r = unsafe {
        libc::setsockopt(fd, level, name, (val as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `getsockopt(2)` into a plain-old-data value; returns the length written.
pub(crate) fn getsockopt<T: Copy>(fd: RawFd, level: i32, name: i32, val: &mut T) -> io::Result<usize> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is a live, writable `T` of `len` bytes; `len` is a valid
    // in/out length. `T: Copy` types used here are plain C structs/integers for
    // which any bit pattern is valid.
    let r = unsafe { libc::getsockopt(fd, level, name, (val as *mut T).cast(), &mut len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(len as usize)
    }
}

/// Interface index of `ifname` in the calling thread's network namespace.
pub(crate) fn if_index(ifname: &str) -> Result<u32, PktError> {
    let c = CString::new(ifname).map_err(|_| PktError::Unsupported(format!("interface name {ifname:?} contains a NUL byte")))?;
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(PktError::Unsupported(format!("interface name {ifname:?} is empty or longer than 15 bytes")));
    }
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(os_err(format!("look up interface {ifname}")));
    }
    Ok(idx)
}

fn ifreq_for(ifname: &str) -> libc::ifreq {
    // SAFETY: ifreq is a plain C struct/union for which all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(ifname.bytes().take(libc::IFNAMSIZ - 1)) {
        *d = s as libc::c_char;
    }
    ifr
}

/// MTU of `ifname`, asked through any socket `fd` of the right namespace.
pub(crate) fn if_mtu(fd: RawFd, ifname: &str) -> Result<u32, PktError> {
    let mut ifr = ifreq_for(ifname);
    // SAFETY: SIOCGIFMTU reads the name and writes `ifru_mtu` of a valid ifreq.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut ifr) };
    if r < 0 {
        return Err(os_err(format!("read MTU of {ifname}")));
    }
    // SAFETY: the kernel filled the `ifru_mtu` member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
}

/// Active receive queues of `ifname` (ethtool channels: rx + combined), or 1
/// when the driver does not report channels.
pub(crate) fn if_rx_queues(fd: RawFd, ifname: &str) -> u32 {
    #[repr(C)]
    #[derive(Default)]
    struct EthtoolChannels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    let mut ch = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..Default::default() };
    let mut ifr = ifreq_for(ifname);
    ifr.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GCHANNELS writes an ethtool_channels
    // into the buffer `ifru_data` points to, which is live and large enough.
    let r = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut ifr) };
    if r < 0 {
        return 1;
    }
    ch.rx_count.max(ch.combined_count).max(1)
}

/// Sets or clears `FD_CLOEXEC`.
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on an fd number only read/modify its flags.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFD);
        if fl < 0 {
            return Err(io::Error::last_os_error());
        }
        let nfl = if on { fl | libc::FD_CLOEXEC } else { fl & !libc::FD_CLOEXEC };
        if libc::fcntl(fd, libc::F_SETFD, nfl) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `poll(2)` for readability on a set of fds; returns the number ready.
pub(crate) fn poll_in(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
    // SAFETY: `fds` is a valid mutable slice of pollfd structs of the given length.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(r as usize)
}

/// `recvmmsg(2)`; `Ok(0)` when nothing is there (EAGAIN) or the wait timed out.
pub(crate) fn recvmmsg(fd: RawFd, msgs: &mut [libc::mmsghdr], flags: i32) -> io::Result<usize> {
    // SAFETY: every mmsghdr points to buffers owned by the caller that stay
    // alive and unaliased for the call (see `afpacket::RxBufs`).
    let r = unsafe { libc::recvmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, flags, std::ptr::null_mut()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
            _ => Err(e),
        };
    }
    Ok(r as usize)
}

/// `sendmmsg(2)`; returns the number of messages sent.
pub(crate) fn sendmmsg(fd: RawFd, msgs: &mut [libc::mmsghdr], flags: i32) -> io::Result<usize> {
    // SAFETY: every mmsghdr points to caller-owned buffers alive for the call.
    let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, flags) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::EINTR) => Ok(0),
            _ => Err(e),
        };
    }
    Ok(r as usize)
}

/// Binds an AF_PACKET socket to an interface and protocol.
pub(crate) fn bind_packet(fd: RawFd, ifindex: u32, proto_be: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto_be;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll and the length matches it.
    let r = unsafe {
        libc::bind(fd, (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32)
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A zeroed `sockaddr_ll` (for receive buffers).
pub(crate) fn zeroed_sockaddr_ll() -> libc::sockaddr_ll {
    // SAFETY: plain C struct; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// A zeroed `msghdr`.
pub(crate) fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: plain C struct (pointers may be null); all-zero is valid.
    unsafe { std::mem::zeroed() }
}

/// Runs `f` on a fresh thread that has joined the network namespace at
/// `netns` (a path such as `/var/run/netns/cranlab-a`, or a bare name looked up
/// there). Sockets created inside `f` stay bound to that namespace, so an
/// [`crate::afxdp::AfXdp`] or [`crate::afpacket::AfPacket`] opened there can be
/// returned and used from any thread.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> Result<T, PktError> + Send + 'static,
) -> Result<T, PktError> {
    let path = if netns.contains('/') { netns.to_string() } else { format!("/var/run/netns/{netns}") };
    let file = std::fs::File::open(&path).map_err(|e| os_err_from(format!("open network namespace {path}"), e))?;
    std::thread::Builder::new()
        .name("cranlab-netns".into())
        .spawn(move || {
            // SAFETY: setns on a valid namespace fd; only this (fresh, private)
            // thread changes namespace.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if r < 0 {
                return Err(os_err(format!("enter network namespace {path}")));
            }
            f()
        })
        .map_err(|e| os_err_from("spawn network namespace thread", e))?
        .join()
        .map_err(|_| PktError::Unsupported("network namespace thread panicked".into()))?
}

/// A shared memory mapping (MAP_SHARED) that is unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory; access discipline is the owner's job
// (each owner is used from one thread at a time, `&mut self` methods).
unsafe impl Send for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `fd` at `offset`, read-write, shared, populated.
    pub(crate) fn map(fd: RawFd, len: usize, offset: i64, what: &str) -> Result<Mmap, PktError> {
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL); no existing
        // memory is affected. Failure is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os_err(format!("mmap {what}")));
        }
        Ok(Mmap { ptr: p.cast(), len })
    }
    /// Base address.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr
    }
    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly one mapping created by `map` and not
        // yet unmapped; no slice into it outlives `self` (borrowck ties them).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Creates a memfd of `len` bytes (close-on-exec).
pub(crate) fn memfd(name: &str, len: usize) -> Result<OwnedFd, PktError> {
    let c = CString::new(name).expect("static name");
    // SAFETY: `c` is a valid NUL-terminated string alive for the call.
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(os_err("create UMEM memfd"));
    }
    // SAFETY: fresh fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain syscall on a valid fd.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as i64) } < 0 {
        return Err(os_err(format!("size UMEM memfd to {len} bytes")));
    }
    Ok(fd)
}

/// Size of the file behind `fd` (fstat).
pub(crate) fn fd_size(fd: RawFd) -> io::Result<u64> {
    // SAFETY: stat is plain data; all-zero is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and writable stat buffer.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.st_size as u64)
}

/// Takes ownership of an inherited fd number (validated with F_GETFD first).
pub(crate) fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the flags of an fd number.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the fd is open (checked above) and was handed to this process
    // to own (hand-off contract: the child owns the inherited descriptors).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `sendto(fd, NULL, 0, MSG_DONTWAIT)`: kicks AF_XDP transmit.
pub(crate) fn kick_tx(fd: RawFd) -> io::Result<()> {
    // SAFETY: zero-length send with a null buffer is the documented AF_XDP
    // wake-up; no memory is read.
    let r = unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`: kicks AF_XDP receive (fill ring).
pub(crate) fn kick_rx(fd: RawFd) {
    // SAFETY: zero-length receive with a null buffer is the documented AF_XDP
    // wake-up; nothing is written.
    unsafe { libc::recvfrom(fd, std::ptr::null_mut(), 0, libc::MSG_DONTWAIT, std::ptr::null_mut(), std::ptr::null_mut()) };
}
