//! The kvm deployment's system calls, all `unsafe` fenced here: entering the
//! link's network namespace and arming PR_SET_PDEATHSIG in QEMU's child
//! before exec, pinning and scheduling host threads by tid, signals.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child enter the network namespace `netns_fd` (if any), die
/// with SIGKILL when the thread that spawned it exits, and dump no core.
pub fn prepare_child(cmd: &mut Command, netns_fd: Option<RawFd>) {
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe system calls (prctl, setrlimit, getppid, setns) on values
    // captured by copy; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // No core dumps: a QEMU core holds the whole guest RAM.
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may already have died between fork and prctl.
            if libc::getppid() == 1 {
                return Err(io::Error::other("parent exited before exec"));
            }
            if let Some(fd) = netns_fd {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Pins thread `tid` to `cpus`.
pub fn set_affinity(tid: i32, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is its empty value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("cpu {c} out of range")));
        }
        // SAFETY: c is below CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: set is a valid cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads thread `tid`'s affinity.
pub fn get_affinity(tid: i32) -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is its empty value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET reads the initialised set within bounds.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Sets thread `tid` to SCHED_FIFO at `prio`, or SCHED_OTHER with `None`.
pub fn set_sched(tid: i32, prio: Option<i32>) -> io::Result<()> {
    let (policy, p) = match prio {
        Some(p) => (libc::SCHED_FIFO, p),
        None => (libc::SCHED_OTHER, 0),
    };
    let param = libc::sched_param { sched_priority: p };
    // SAFETY: param is a valid sched_param for the duration of the call.
    let r = unsafe { libc::sched_setscheduler(tid, policy, &param) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Thread `tid`'s policy as `SCHED_FIFO:80` / `SCHED_OTHER`, read back.
pub fn read_sched(tid: i32) -> String {
    // SAFETY: plain syscall on a tid; returns -1 on error.
    let policy = unsafe { libc::sched_getscheduler(tid) };
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: param is valid and writable.
    let r = unsafe { libc::sched_getparam(tid, &mut param) };
    match (policy, r) {
        (libc::SCHED_FIFO, 0) => format!("SCHED_FIFO:{}", param.sched_priority),
        (libc::SCHED_RR, 0) => format!("SCHED_RR:{}", param.sched_priority),
        (libc::SCHED_OTHER, _) => "SCHED_OTHER".into(),
        (libc::SCHED_BATCH, _) => "SCHED_BATCH".into(),
        (libc::SCHED_IDLE, _) => "SCHED_IDLE".into(),
        (p, _) if p < 0 => format!("unknown ({})", io::Error::last_os_error()),
        (p, _) => format!("policy {p}"),
    }
}

/// Sends `sig` to `pid`; `Ok(false)` if it no longer exists.
pub fn kill(pid: i32, sig: i32) -> io::Result<bool> {
    if pid <= 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("refusing to signal pid {pid}")));
    }
    // SAFETY: plain syscall; pid is positive so it targets one process.
    let r = unsafe { libc::kill(pid, sig) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        Ok(false)
    } else {
        Err(e)
    }
}
