//! Real-time set-up of the calling thread, shared by the two simulators
//! (`rrh-sim` and `bbu-sim` may not depend on each other, and neither pulls in
//! `rt-runtime`): CPU affinity, SCHED_FIFO, `mlockall` and 1 ns timer slack,
//! each reported as granted or refused (with the reason) instead of failing
//! the run, the scheduling policy read back from the kernel, and a
//! SIGTERM/SIGINT stop flag.
//!
//! Requests that cannot be valid on any host (priority outside 1..=99, a CPU
//! the host does not have) are errors ([`RtError`]); what this host refuses
//! (no CAP_SYS_NICE, RT throttling, a cpuset without the CPU, RLIMIT_MEMLOCK)
//! is recorded in [`Granted::refused`] so a degraded run is labelled as such,
//! never presented as SCHED_FIFO.
//!
//! It also holds the time base both simulators pace and stamp with:
//! [`now_ns`] reads CLOCK_MONOTONIC and [`sleep_until_ns`] sleeps on it to
//! an absolute deadline (hrtimer, so the 1 ns timer slack applies).
//!
//! Every `unsafe` block of the crate lives in the private `sys` module.

use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

/// Errors for requests that cannot be valid on any host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtError {
    /// SCHED_FIFO priorities are 1..=99.
    #[error("sched_fifo priority {0} is out of range 1..=99")]
    BadPriority(i32),
    /// The CPU does not exist on this host.
    #[error("cpu {cpu} does not exist (this host has {online} online cpus)")]
    NoSuchCpu {
        /// Requested CPU.
        cpu: usize,
        /// Online CPUs.
        online: usize,
    },
}

/// A signal handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("install handler for signal {signal}: {err}")]
pub struct SignalError {
    /// The signal number.
    pub signal: i32,
    /// What `sigaction` returned (part of the message, not a separate cause).
    pub err: std::io::Error,
}

/// What the host actually granted to the calling thread.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    /// CPU the thread is pinned to, if pinning was asked and granted.
    pub cpu: Option<usize>,
    /// Scheduling policy read back after the request: `SCHED_FIFO`,
    /// `SCHED_RR` or `SCHED_OTHER`.
    pub policy: String,
    /// Real-time priority read back, if the policy is SCHED_FIFO or SCHED_RR.
    pub fifo_priority: Option<i32>,
    /// Whether mlockall(MCL_CURRENT|MCL_FUTURE) succeeded.
    pub mlocked: bool,
    /// Whether the timer slack was set to 1 ns.
    pub timer_slack_1ns: bool,
    /// One plain sentence per thing asked for and not granted.
    pub refused: Vec<String>,
}

impl Granted {
    /// True when SCHED_FIFO is in force.
    pub fn fifo(&self) -> bool {
        self.policy == "SCHED_FIFO"
    }
}

/// Pins the calling thread to `cpu` (if given), switches it to SCHED_FIFO
/// at `prio` (if given) and sets its timer slack to 1 ns. What the host
/// refuses is recorded in [`Granted::refused`], not returned as an error.
pub fn pin_and_fifo(cpu: Option<usize>, prio: Option<i32>) -> Result<Granted, RtError> {
    apply(cpu, prio, false)
}

/// Like [`pin_and_fifo`], and also locks all current and future memory when
/// `mlock` is set.
pub fn apply(cpu: Option<usize>, prio: Option<i32>, mlock: bool) -> Result<Granted, RtError> {
    if let Some(p) = prio {
        if !(1..=99).contains(&p) {
            return Err(RtError::BadPriority(p));
        }
    }
    let online = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if let Some(c) = cpu {
        if c >= online.max(sys::configured_cpus()) {
            return Err(RtError::NoSuchCpu { cpu: c, online });
        }
    }
    let mut g = Granted::default();
    if let Some(c) = cpu {
        let mut set = nix::sched::CpuSet::new();
        match set.set(c).and_then(|_| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)) {
            Ok(()) => g.cpu = Some(c),
            Err(e) => g.refused.push(format!("pin to cpu {c}: {}", e.desc().to_lowercase())),
        }
    }
    if mlock {
        use nix::sys::mman::{mlockall, MlockAllFlags};
        match mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
            Ok(()) => g.mlocked = true,
            Err(e) => g.refused.push(format!("mlockall: {}", e.desc().to_lowercase())),
        }
    }
    if let Some(p) = prio {
        if let Err(e) = sys::set_fifo(p) {
            g.refused.push(format!(
                "sched_fifo priority {p} not granted (running as SCHED_OTHER): sched_setscheduler: {}",
                e.to_string().to_lowercase()
            ));
        }
    }
    g.timer_slack_1ns = sys::set_timer_slack_1ns();
    let (policy, fp) = sys::read_policy();
    g.policy = policy.to_string();
    g.fifo_priority = fp;
    Ok(g)
}

/// Policy (`SCHED_FIFO`, `SCHED_RR` or `SCHED_OTHER`) and real-time priority
/// of the calling thread, read back from the kernel.
pub fn current_policy() -> (&'static str, Option<i32>) {
    sys::read_policy()
}

/// Installs SIGTERM and SIGINT handlers (without SA_RESTART, so blocking
/// receives return EINTR) that set the returned process-wide flag; a run
/// loop checks it between receive calls and then ends cleanly.
pub fn stop_on_signals() -> Result<&'static AtomicBool, SignalError> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        sys::install_stop_handler(signal).map_err(|err| SignalError { signal, err })?;
    }
    Ok(&sys::STOP)
}

/// CLOCK_MONOTONIC in ns (the time base of due times, arrivals and the
/// run epoch; shared by processes on one host and its containers, never
/// with a guest).
pub fn now_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock_gettime(CLOCK_MONOTONIC) cannot fail");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// Sleeps until `deadline_ns` on CLOCK_MONOTONIC (absolute `clock_nanosleep`,
/// hrtimer). Returns early on a signal (EINTR) and at once for a deadline in
/// the past: callers re-check [`now_ns`] in a loop.
pub fn sleep_until_ns(deadline_ns: u64) {
    use nix::sys::time::TimeSpec;
    use nix::time::{clock_nanosleep, ClockId, ClockNanosleepFlags};
    let ts = TimeSpec::new((deadline_ns / 1_000_000_000) as i64, (deadline_ns % 1_000_000_000) as i64);
    let _ = clock_nanosleep(ClockId::CLOCK_MONOTONIC, ClockNanosleepFlags::TIMER_ABSTIME, &ts);
}

/// The fenced `unsafe` of the crate: raw libc calls on the calling thread.
mod sys {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Set by the signal handler.
    pub(super) static STOP: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_sig: libc::c_int) {
        // Only an atomic store: async-signal-safe.
        STOP.store(true, Ordering::Relaxed);
    }

    /// sigaction(sig, on_signal) without SA_RESTART (blocking receives
    /// return EINTR and the loop sees the flag).
    pub(super) fn install_stop_handler(sig: libc::c_int) -> std::io::Result<()> {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        // SAFETY: `sa.sa_mask` is a valid sigset_t owned by `sa`.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is fully initialised and the handler only does an atomic store.
        let r = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Number of CPUs configured on the host.
    pub(super) fn configured_cpus() -> usize {
        // SAFETY: sysconf only reads a system constant.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
        if n > 0 {
            n as usize
        } else {
            1
        }
    }

    /// sched_setscheduler(0, SCHED_FIFO, prio) for the calling thread.
    pub(super) fn set_fifo(prio: i32) -> std::io::Result<()> {
        let param = libc::sched_param { sched_priority: prio };
        // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 = calling thread.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Policy and real-time priority of the calling thread, read back from the kernel.
    pub(super) fn read_policy() -> (&'static str, Option<i32>) {
        // SAFETY: plain syscall on the calling thread.
        let pol = unsafe { libc::sched_getscheduler(0) };
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is valid and writable for the duration of the call.
        let r = unsafe { libc::sched_getparam(0, &mut param) };
        match pol {
            libc::SCHED_FIFO => ("SCHED_FIFO", (r == 0).then_some(param.sched_priority)),
            libc::SCHED_RR => ("SCHED_RR", (r == 0).then_some(param.sched_priority)),
            _ => ("SCHED_OTHER", None),
        }
    }

    /// prctl(PR_SET_TIMERSLACK, 1): hrtimer sleeps end within 1 ns of the
    /// asked time instead of the default 50 µs slack of SCHED_OTHER threads.
    pub(super) fn set_timer_slack_1ns() -> bool {
        // SAFETY: PR_SET_TIMERSLACK takes an integer argument and changes only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) == 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_are_errors() {
        assert_eq!(pin_and_fifo(None, Some(0)), Err(RtError::BadPriority(0)));
        assert_eq!(pin_and_fifo(None, Some(100)), Err(RtError::BadPriority(100)));
        assert!(matches!(pin_and_fifo(Some(100_000), None), Err(RtError::NoSuchCpu { .. })));
        assert_eq!(RtError::BadPriority(0).to_string(), "sched_fifo priority 0 is out of range 1..=99");
    }

    #[test]
    fn no_request_reads_back_the_policy() {
        let g = std::thread::spawn(|| pin_and_fifo(None, None).unwrap()).join().unwrap();
        assert_eq!(g.cpu, None);
        assert!(g.refused.is_empty());
        assert!(["SCHED_FIFO", "SCHED_RR", "SCHED_OTHER"].contains(&g.policy.as_str()), "{g:?}");
        assert_eq!(g.fifo_priority.is_some(), g.policy != "SCHED_OTHER", "{g:?}");
    }

    #[test]
    fn pinning_to_cpu0_is_granted_and_fifo_is_granted_or_explained() {
        let g = std::thread::spawn(|| pin_and_fifo(Some(0), Some(1)).unwrap()).join().unwrap();
        assert_eq!(g.cpu, Some(0));
        // Either the kernel granted FIFO (and we read it back) or it said why not.
        assert!(g.fifo() && g.fifo_priority == Some(1) || g.refused.iter().any(|r| r.contains("sched_fifo")), "{g:?}");
    }

    #[test]
    fn policy_read_back_matches_granted() {
        let (g, now) = std::thread::spawn(|| (pin_and_fifo(None, Some(1)).unwrap(), current_policy())).join().unwrap();
        assert_eq!((g.policy.as_str(), g.fifo_priority), now);
    }

    #[test]
    fn granted_round_trips_through_json() {
        let g = Granted { cpu: Some(1), policy: "SCHED_FIFO".into(), fifo_priority: Some(70), mlocked: true, timer_slack_1ns: true, refused: vec!["x".into()] };
        let back: Granted = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        assert_eq!(back, g);
    }

    #[test]
    fn sigterm_sets_the_stop_flag() {
        let stop = stop_on_signals().unwrap();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(stop.load(std::sync::atomic::Ordering::Relaxed));
    }

    #[test]
    fn sleep_until_reaches_its_deadline() {
        let t0 = now_ns();
        assert!(t0 > 0);
        let deadline = t0 + 2_000_000;
        sleep_until_ns(deadline);
        // Absolute sleep: never returns before the deadline unless interrupted,
        // and no signal is sent to this thread here.
        assert!(now_ns() >= deadline);
        sleep_until_ns(t0); // a deadline in the past returns at once
        assert!(now_ns() >= deadline);
    }

    #[test]
    fn signal_error_names_the_signal_and_the_cause_once() {
        let e = SignalError { signal: 15, err: std::io::Error::from_raw_os_error(libc::EINVAL) };
        assert_eq!(e.to_string(), "install handler for signal 15: Invalid argument (os error 22)");
        assert!(std::error::Error::source(&e).is_none());
    }
}
