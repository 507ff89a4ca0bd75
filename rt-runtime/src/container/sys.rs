//! The fenced module holding every `unsafe` system call of the container
//! runtime, behind the [`Syscall`] trait so that the set-up sequence in
//! [`super::init`] can be driven against a fake in unit tests.
//!
//! The [`RealSys`] methods are called in the freshly cloned child of a
//! possibly multi-threaded parent, so they never allocate: every path and
//! string is prepared as a `CStr` before the clone, and errors are plain
//! `errno` values.

use std::ffi::CStr;
use std::os::fd::RawFd;

/// An `errno` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current `errno`.
    pub fn last() -> Errno {
        Errno(nix::errno::Errno::last_raw())
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", nix::errno::Errno::from_raw(self.0).desc())
    }
}

/// Result of one system call.
pub type SysResult<T = ()> = Result<T, Errno>;

fn check(rc: libc::c_long) -> SysResult<libc::c_long> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc)
    }
}

/// `struct sched_attr` of `sched_setattr(2)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    /// Size of this structure.
    pub size: u32,
    /// Policy (`SCHED_*`).
    pub policy: u32,
    /// `SCHED_FLAG_*`.
    pub flags: u64,
    /// Nice value (SCHED_OTHER, SCHED_BATCH).
    pub nice: i32,
    /// Static priority (SCHED_FIFO, SCHED_RR).
    pub priority: u32,
    /// SCHED_DEADLINE runtime, ns.
    pub runtime: u64,
    /// SCHED_DEADLINE deadline, ns.
    pub deadline: u64,
    /// SCHED_DEADLINE period, ns.
    pub period: u64,
}

/// `SCHED_DEADLINE`.
pub const SCHED_DEADLINE: u32 = 6;

/// The system calls the container set-up makes, in the child, after clone.
pub trait Syscall {
    /// `unshare(2)`.
    fn unshare(&self, flags: i32) -> SysResult;
    /// Opens `path` and `setns(2)` into it.
    fn setns(&self, path: &CStr, nstype: i32) -> SysResult;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &CStr) -> SysResult;
    /// `setdomainname(2)`.
    fn setdomainname(&self, name: &CStr) -> SysResult;
    /// `mount(2)`.
    fn mount(&self, src: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: u64, data: Option<&CStr>) -> SysResult;
    /// `umount2(2)`.
    fn umount2(&self, target: &CStr, flags: i32) -> SysResult;
    /// `mkdir(2)`; an existing directory is fine.
    fn mkdir(&self, path: &CStr, mode: u32) -> SysResult;
    /// Creates an empty file to mount over; an existing one is fine.
    fn touch(&self, path: &CStr) -> SysResult;
    /// `symlink(2)`; an existing link is fine.
    fn symlink(&self, target: &CStr, link: &CStr) -> SysResult;
    /// `mknod(2)` then `chown(2)`.
    fn mknod(&self, path: &CStr, mode: u32, dev: u64, uid: u32, gid: u32) -> SysResult;
    /// Whether `path` is a directory; `Ok(None)` when it does not exist.
    fn is_dir(&self, path: &CStr) -> SysResult<Option<bool>>;
    /// `chdir(2)`.
    fn chdir(&self, path: &CStr) -> SysResult;
    /// `pivot_root(2)`.
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult;
    /// `setrlimit(2)`.
    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> SysResult;
    /// `sched_setattr(2)` on the calling thread.
    fn sched_setattr(&self, attr: &SchedAttr) -> SysResult;
    /// `ioprio_set(2)` on the calling process.
    fn ioprio_set(&self, class: u32, level: u32) -> SysResult;
    /// `sched_setaffinity(2)` on the calling thread.
    fn set_affinity(&self, set: &libc::cpu_set_t) -> SysResult;
    /// Writes `data` to an existing file (sysctl, oom_score_adj).
    fn write_file(&self, path: &CStr, data: &[u8]) -> SysResult;
    /// `setgroups(2)`.
    fn setgroups(&self, gids: &[u32]) -> SysResult;
    /// `setresgid(2)` with all three ids equal.
    fn setgid(&self, gid: u32) -> SysResult;
    /// `setresuid(2)` with all three ids equal.
    fn setuid(&self, uid: u32) -> SysResult;
    /// `umask(2)`.
    fn umask(&self, mask: u32);
    /// `prctl(2)` with up to three arguments.
    fn prctl(&self, option: i32, a2: u64, a3: u64, a4: u64) -> SysResult;
    /// `capset(2)` (version 3) for the calling thread.
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> SysResult;
    /// Installs a classic-BPF seccomp filter with `seccomp(2)`.
    fn seccomp(&self, prog: &[seccompiler::sock_filter], flags: u32) -> SysResult;
    /// Sends one rtnetlink request on a fresh NETLINK_ROUTE socket of the
    /// current network namespace and waits for its acknowledgement.
    fn netlink(&self, msg: &[u8]) -> SysResult;
    /// `close(2)`, errors ignored.
    fn close(&self, fd: RawFd);
    /// `dup2(2)`.
    fn dup2(&self, from: RawFd, to: RawFd) -> SysResult;
    /// Marks every descriptor from `first` upwards close-on-exec, except
    /// `keep`, whose close-on-exec flag is cleared.
    fn cloexec_from(&self, first: RawFd, keep: &[RawFd]) -> SysResult;
    /// Unblocks all signals and resets every ignored signal to its default.
    fn reset_signals(&self) -> SysResult;
    /// Reads one byte from `fd` (the parent's go-ahead).
    fn read_byte(&self, fd: RawFd) -> SysResult<Option<u8>>;
    /// `execve(2)`; returns only on failure.
    fn execve(&self, path: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> Errno;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSys;

fn opt_ptr(s: Option<&CStr>) -> *const libc::c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

fn rc(r: libc::c_int) -> SysResult {
    check(libc::c_long::from(r)).map(|_| ())
}

impl Syscall for RealSys {
    fn unshare(&self, flags: i32) -> SysResult {
        // SAFETY: unshare takes only a flag word.
        rc(unsafe { libc::unshare(flags) })
    }

    fn setns(&self, path: &CStr, nstype: i32) -> SysResult {
        // SAFETY: `path` is a valid NUL-terminated string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `fd` is a descriptor we just opened.
        let r = rc(unsafe { libc::setns(fd, nstype) });
        // SAFETY: `fd` is ours and closed once.
        unsafe { libc::close(fd) };
        r
    }

    fn sethostname(&self, name: &CStr) -> SysResult {
        // SAFETY: pointer and length describe `name`'s bytes.
        rc(unsafe { libc::sethostname(name.as_ptr(), name.to_bytes().len()) })
    }

    fn setdomainname(&self, name: &CStr) -> SysResult {
        // SAFETY: pointer and length describe `name`'s bytes.
        rc(unsafe { libc::setdomainname(name.as_ptr(), name.to_bytes().len()) })
    }

    fn mount(&self, src: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: u64, data: Option<&CStr>) -> SysResult {
        // SAFETY: every pointer is NULL or a valid NUL-terminated string.
        rc(unsafe {
            libc::mount(opt_ptr(src), target.as_ptr(), opt_ptr(fstype), flags as libc::c_ulong, opt_ptr(data).cast())
        })
    }

    fn umount2(&self, target: &CStr, flags: i32) -> SysResult {
        // SAFETY: `target` is a valid NUL-terminated string.
        rc(unsafe { libc::umount2(target.as_ptr(), flags) })
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> SysResult {
        // SAFETY: `path` is a valid NUL-terminated string.
        match rc(unsafe { libc::mkdir(path.as_ptr(), mode) }) {
            Err(Errno(libc::EEXIST)) => Ok(()),
            r => r,
        }
    }

    fn touch(&self, path: &CStr) -> SysResult {
        // SAFETY: `path` is a valid NUL-terminated string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) };
        if fd < 0 {
            let e = Errno::last();
            // EISDIR / EEXIST-like outcomes: something is there already.
            return if e.0 == libc::EISDIR { Ok(()) } else { Err(e) };
        }
        // SAFETY: `fd` was just opened by us.
        unsafe { libc::close(fd) };
        Ok(())
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> SysResult {
        // SAFETY: both are valid NUL-terminated strings.
        match rc(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }) {
            Err(Errno(libc::EEXIST)) => Ok(()),
            r => r,
        }
    }

    fn mknod(&self, path: &CStr, mode: u32, dev: u64, uid: u32, gid: u32) -> SysResult {
        // SAFETY: `path` is a valid NUL-terminated string.
        match rc(unsafe { libc::mknod(path.as_ptr(), mode, dev) }) {
            Err(Errno(libc::EEXIST)) | Ok(()) => {}
            Err(e) => return Err(e),
        }
        // SAFETY: `path` is a valid NUL-terminated string.
        rc(unsafe { libc::chown(path.as_ptr(), uid, gid) })
    }

    fn is_dir(&self, path: &CStr) -> SysResult<Option<bool>> {
        // SAFETY: an all-zero `stat` is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is valid, `st` is a writable stat buffer.
        match rc(unsafe { libc::stat(path.as_ptr(), &mut st) }) {
            Ok(()) => Ok(Some(st.st_mode & libc::S_IFMT == libc::S_IFDIR)),
            Err(Errno(libc::ENOENT)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn chdir(&self, path: &CStr) -> SysResult {
        // SAFETY: `path` is a valid NUL-terminated string.
        rc(unsafe { libc::chdir(path.as_ptr()) })
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult {
        // SAFETY: pivot_root takes two valid NUL-terminated paths.
        check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) }).map(|_| ())
    }

    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> SysResult {
        let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
        // SAFETY: `lim` is a valid rlimit for the duration of the call.
        rc(unsafe { libc::setrlimit(resource as _, &lim) })
    }

    fn sched_setattr(&self, attr: &SchedAttr) -> SysResult {
        // SAFETY: `attr` is a valid sched_attr whose `size` field says how much the kernel may read.
        check(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) }).map(|_| ())
    }

    fn ioprio_set(&self, class: u32, level: u32) -> SysResult {
        const IOPRIO_WHO_PROCESS: libc::c_int = 1;
        let prio = (class << 13) | level;
        // SAFETY: ioprio_set takes three integers.
        check(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio as libc::c_int) }).map(|_| ())
    }

    fn set_affinity(&self, set: &libc::cpu_set_t) -> SysResult {
        // SAFETY: `set` is a valid cpu_set_t of the size given.
        rc(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) })
    }

    fn write_file(&self, path: &CStr, data: &[u8]) -> SysResult {
        // SAFETY: `path` is a valid NUL-terminated string.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: pointer and length describe `data`; `fd` is ours.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        let r = if n < 0 {
            Err(Errno::last())
        } else if n as usize != data.len() {
            Err(Errno(libc::EIO))
        } else {
            Ok(())
        };
        // SAFETY: `fd` is ours and closed once.
        unsafe { libc::close(fd) };
        r
    }

    fn setgroups(&self, gids: &[u32]) -> SysResult {
        // SAFETY: pointer and length describe `gids`.
        rc(unsafe { libc::setgroups(gids.len(), gids.as_ptr()) })
    }

    fn setgid(&self, gid: u32) -> SysResult {
        // SAFETY: plain integer arguments.
        rc(unsafe { libc::setresgid(gid, gid, gid) })
    }

    fn setuid(&self, uid: u32) -> SysResult {
        // SAFETY: plain integer arguments.
        rc(unsafe { libc::setresuid(uid, uid, uid) })
    }

    fn umask(&self, mask: u32) {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(mask) };
    }

    fn prctl(&self, option: i32, a2: u64, a3: u64, a4: u64) -> SysResult {
        // SAFETY: the options used by the runtime take integer arguments only.
        rc(unsafe { libc::prctl(option, a2 as libc::c_ulong, a3 as libc::c_ulong, a4 as libc::c_ulong, 0 as libc::c_ulong) })
    }

    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> SysResult {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let mut hdr = Header { version: 0x2008_0522, pid: 0 };
        let data = [
            Data { effective: effective as u32, permitted: permitted as u32, inheritable: inheritable as u32 },
            Data {
                effective: (effective >> 32) as u32,
                permitted: (permitted >> 32) as u32,
                inheritable: (inheritable >> 32) as u32,
            },
        ];
        // SAFETY: header and two data words as capset(2) version 3 expects.
        check(unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) }).map(|_| ())
    }

    fn seccomp(&self, prog: &[seccompiler::sock_filter], flags: u32) -> SysResult {
        let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
        // SAFETY: `fprog` points at `prog`, which lives through the call; seccompiler's
        // sock_filter has the kernel's layout.
        check(unsafe {
            libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog)
        })
        .map(|_| ())
    }

    fn netlink(&self, msg: &[u8]) -> SysResult {
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(Errno::last());
        }
        let r = netlink_roundtrip(fd, msg);
        // SAFETY: `fd` is ours and closed once.
        unsafe { libc::close(fd) };
        r
    }

    fn close(&self, fd: RawFd) {
        // SAFETY: closing a descriptor number; the caller owns it in this process.
        unsafe { libc::close(fd) };
    }

    fn dup2(&self, from: RawFd, to: RawFd) -> SysResult {
        // SAFETY: dup2 on integer descriptors.
        rc(unsafe { libc::dup2(from, to) })
    }

    fn cloexec_from(&self, first: RawFd, keep: &[RawFd]) -> SysResult {
        // Mark ranges between kept descriptors close-on-exec.
        let mut lo = first as u32;
        let mut sorted = [0i32; 16];
        let n = keep.len().min(16);
        sorted[..n].copy_from_slice(&keep[..n]);
        sorted[..n].sort_unstable();
        for &k in &sorted[..n] {
            // SAFETY: fcntl on an integer descriptor the parent passed in.
            if unsafe { libc::fcntl(k, libc::F_SETFD, 0) } < 0 {
                return Err(Errno::last());
            }
            if (k as u32) >= lo {
                if (k as u32) > lo {
                    close_range_cloexec(lo, k as u32 - 1)?;
                }
                lo = k as u32 + 1;
            }
        }
        close_range_cloexec(lo, u32::MAX)
    }

    fn reset_signals(&self) -> SysResult {
        for sig in 1..libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // SAFETY: querying the current disposition with a NULL new action.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: `old` is a writable sigaction.
            if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } == 0 && old.sa_sigaction == libc::SIG_IGN {
                // SAFETY: an all-zero sigaction with SIG_DFL is valid.
                let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
                dfl.sa_sigaction = libc::SIG_DFL;
                // SAFETY: valid action pointer, NULL old pointer.
                unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
            }
        }
        // SAFETY: an empty sigset built by sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is writable.
        unsafe { libc::sigemptyset(&mut set) };
        // SAFETY: valid set pointer, NULL old pointer.
        rc(unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) })
    }

    fn read_byte(&self, fd: RawFd) -> SysResult<Option<u8>> {
        let mut b = 0u8;
        loop {
            // SAFETY: reading one byte into `b`.
            let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
            if n < 0 {
                let e = Errno::last();
                if e.0 == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            return Ok(if n == 0 { None } else { Some(b) });
        }
    }

    fn execve(&self, path: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> Errno {
        // SAFETY: argv and envp are NULL-terminated arrays of pointers to strings that
        // outlive the call (prepared by the parent before clone).
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        Errno::last()
    }
}

fn close_range_cloexec(lo: u32, hi: u32) -> SysResult {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only takes integers.
    check(unsafe { libc::syscall(libc::SYS_close_range, lo, hi, CLOSE_RANGE_CLOEXEC) }).map(|_| ())
}

fn netlink_roundtrip(fd: RawFd, msg: &[u8]) -> SysResult {
    // SAFETY: pointer and length describe `msg`.
    let n = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(Errno::last());
    }
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = Errno::last();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        return super::netlink::parse_ack(&buf[..n as usize]);
    }
}

/// Host-side (parent) helpers: these may allocate; they never run in the child.
pub mod host {
    use super::{check, Errno, SysResult};
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};

    /// `clone(2)` with fork semantics (no new stack, `SIGCHLD` on exit).
    /// Returns the child's pid in the parent and `0` in the child.
    ///
    /// # Safety
    /// The child of a multi-threaded process may only call async-signal-safe
    /// functions (no allocation, no locks) until it execs or exits.
    pub unsafe fn clone_fork(flags: i32) -> SysResult<i32> {
        let f = (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong;
        // SAFETY: with a NULL stack clone behaves like fork; the caller upholds the
        // async-signal-safety contract for the child.
        let r = check(unsafe { libc::syscall(libc::SYS_clone, f, 0usize, 0usize, 0usize, 0usize) })?;
        Ok(r as i32)
    }

    /// Ends the calling (child) process at once.
    pub fn exit_now(code: i32) -> ! {
        // SAFETY: _exit never returns and runs no atexit handlers.
        unsafe { libc::_exit(code) }
    }

    /// Writes all of `data` to `fd` (no allocation; usable in the child).
    pub fn write_all(fd: RawFd, data: &[u8]) -> SysResult {
        let mut off = 0;
        while off < data.len() {
            // SAFETY: pointer and length stay within `data`.
            let n = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
            if n < 0 {
                let e = Errno::last();
                if e.0 == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            off += n as usize;
        }
        Ok(())
    }

    /// A close-on-exec pipe: (read end, write end).
    pub fn pipe() -> SysResult<(OwnedFd, OwnedFd)> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for two descriptors.
        check(libc::c_long::from(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }))?;
        // SAFETY: pipe2 returned two fresh descriptors that we now own.
        Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
    }

    /// Sends `sig` to `pid`.
    pub fn kill(pid: i32, sig: i32) -> SysResult {
        // SAFETY: kill takes integers.
        check(libc::c_long::from(unsafe { libc::kill(pid, sig) })).map(|_| ())
    }

    /// How a waited-for child ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Exit {
        /// Exited with a status.
        Code(i32),
        /// Killed by a signal.
        Signal(i32),
    }

    /// `waitpid(pid, WNOHANG or 0)`; `Ok(None)` while it runs.
    pub fn waitpid(pid: i32, block: bool) -> SysResult<Option<Exit>> {
        let mut status = 0;
        loop {
            // SAFETY: `status` is writable.
            let r = unsafe { libc::waitpid(pid, &mut status, if block { 0 } else { libc::WNOHANG }) };
            if r < 0 {
                let e = Errno::last();
                if e.0 == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Ok(None);
            }
            if libc::WIFEXITED(status) {
                return Ok(Some(Exit::Code(libc::WEXITSTATUS(status))));
            }
            if libc::WIFSIGNALED(status) {
                return Ok(Some(Exit::Signal(libc::WTERMSIG(status))));
            }
        }
    }

    /// The signals a foreground `run` handles: they are blocked before the
    /// container is cloned and taken with `sigtimedwait`, so none is lost.
    pub const FORWARDED: [i32; 8] = [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
        libc::SIGCONT,
    ];

    fn handled_set() -> libc::sigset_t {
        // SAFETY: a zeroed sigset is then initialised by sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is writable.
        unsafe { libc::sigemptyset(&mut set) };
        for s in FORWARDED.iter().chain(std::iter::once(&libc::SIGCHLD)) {
            // SAFETY: `set` is initialised; `s` is a valid signal.
            unsafe { libc::sigaddset(&mut set, *s) };
        }
        set
    }

    /// Blocks SIGCHLD and the forwarded signals in the calling thread (call
    /// before any other thread starts, so all threads inherit the mask).
    pub fn block_signals() -> SysResult {
        let set = handled_set();
        // SAFETY: valid set, NULL old set.
        check(libc::c_long::from(unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })).map(|_| ())
    }

    /// Waits up to `timeout_ms` for one of the blocked signals; `Ok(None)` on timeout.
    pub fn wait_signal(timeout_ms: u64) -> SysResult<Option<i32>> {
        let set = handled_set();
        let ts = libc::timespec { tv_sec: (timeout_ms / 1000) as _, tv_nsec: ((timeout_ms % 1000) * 1_000_000) as _ };
        // SAFETY: a zeroed siginfo is a valid output buffer.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set, info and timeout pointers.
        let r = unsafe { libc::sigtimedwait(&set, &mut info, &ts) };
        if r < 0 {
            let e = Errno::last();
            if e.0 == libc::EAGAIN || e.0 == libc::EINTR {
                return Ok(None);
            }
            return Err(e);
        }
        Ok(Some(r))
    }

    /// `if_nametoindex(3)`; `None` when there is no such interface.
    pub fn if_index(name: &std::ffi::CStr) -> Option<u32> {
        // SAFETY: `name` is a valid NUL-terminated string.
        let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
        (i != 0).then_some(i)
    }

    /// Runs `f` on a short-lived thread that first joins the network
    /// namespace at `ns` (so sockets it creates live there).
    pub fn in_netns<T: Send>(ns: &std::path::Path, f: impl FnOnce() -> SysResult<T> + Send) -> SysResult<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(ns).map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
                use std::os::fd::AsRawFd;
                // SAFETY: joining a network namespace on this thread only.
                check(libc::c_long::from(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }))?;
                f()
            })
            .join()
            .unwrap_or(Err(Errno(libc::EIO)))
        })
    }

    /// Policy and priority of `pid` as the kernel reports them (`SCHED_FIFO:80`).
    pub fn read_sched(pid: i32) -> String {
        // SAFETY: sched_getscheduler takes a pid.
        let pol = unsafe { libc::sched_getscheduler(pid) };
        let mut p = libc::sched_param { sched_priority: 0 };
        // SAFETY: `p` is writable.
        unsafe { libc::sched_getparam(pid, &mut p) };
        match pol {
            libc::SCHED_FIFO => format!("SCHED_FIFO:{}", p.sched_priority),
            libc::SCHED_RR => format!("SCHED_RR:{}", p.sched_priority),
            libc::SCHED_OTHER => "SCHED_OTHER".into(),
            libc::SCHED_BATCH => "SCHED_BATCH".into(),
            libc::SCHED_IDLE => "SCHED_IDLE".into(),
            6 => "SCHED_DEADLINE".into(),
            -1 => format!("unknown ({})", std::io::Error::last_os_error()),
            x => format!("policy {x}"),
        }
    }

    /// CPU affinity of `pid`.
    pub fn read_affinity(pid: i32) -> Vec<usize> {
        // SAFETY: a zeroed cpu_set_t is valid (empty).
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is writable for its size.
        if unsafe { libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
            return Vec::new();
        }
        // SAFETY: CPU_ISSET reads the initialised set.
        (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
    }

    /// Builds a `cpu_set_t` from CPU numbers.
    pub fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
        // SAFETY: a zeroed cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in cpus {
            if c < libc::CPU_SETSIZE as usize {
                // SAFETY: `c` is in range for the set.
                unsafe { libc::CPU_SET(c, &mut set) };
            }
        }
        set
    }

    /// Wraps an owned raw descriptor.
    pub fn owned(fd: RawFd) -> OwnedFd {
        // SAFETY: the caller passes a descriptor it owns and does not close.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }
}
