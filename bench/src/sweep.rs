//! Cleanup of what killed runs left, and the lock that keeps two runs from
//! sweeping each other's objects or sharing cores.
//!
//! The sweep calls each area's own sweep (see [`sweep`]).

use std::fs::File;
use std::path::Path;

use crate::run::{Console, RunError};

/// Where the run lock lives.
pub const LOCK_PATH: &str = "/run/cranlab.lock";

/// Held for the whole of a run: an exclusive `flock` on [`LOCK_PATH`].
#[derive(Debug)]
pub struct RunLock {
    _lock: nix::fcntl::Flock<File>,
}

impl RunLock {
    /// Takes the lock, waiting (and saying so) while another run holds it.
    pub fn acquire(con: &Console) -> Result<RunLock, RunError> {
        let open = || {
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(LOCK_PATH).map_err(|e| RunError::Step {
                step: format!("open run lock {LOCK_PATH}"),
                detail: e.to_string(),
            })
        };
        match nix::fcntl::Flock::lock(open()?, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(RunLock { _lock: l }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                con.say(format!("waiting for another cranlab run to finish (it holds {LOCK_PATH})"));
                let l = nix::fcntl::Flock::lock(open()?, nix::fcntl::FlockArg::LockExclusive)
                    .map_err(|(_, e)| RunError::Step { step: format!("lock {LOCK_PATH}"), detail: e.to_string() })?;
                Ok(RunLock { _lock: l })
            }
            Err((_, e)) => Err(RunError::Step { step: format!("lock {LOCK_PATH}"), detail: e.to_string() }),
        }
    }

    /// Takes the lock only if free (for `cranlab cleanup`).
    pub fn try_acquire() -> Option<RunLock> {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(LOCK_PATH).ok()?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).ok().map(|l| RunLock { _lock: l })
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone)]
pub struct SweepReport {
    /// One line per object removed.
    pub removed: Vec<String>,
    /// One line per object that could not be removed.
    pub errors: Vec<String>,
}

/// Removes what killed runs left, each area through its own owner-aware
/// sweep: QEMU guests (`rt_runtime::kvm::sweep`), core shields restored from
/// their journals (`rt_runtime::isolate::sweep`, before the cgroups they
/// live in), cgroups (`rt_runtime::cgroup::sweep`), then network namespaces
/// and links (`rt_runtime::net::sweep`). Objects of live runs are left
/// alone; `all` removes every cranlab object whatever its owner.
pub fn sweep(all: bool) -> SweepReport {
    let mut r = SweepReport::default();
    match rt_runtime::kvm::sweep(all) {
        Ok(v) => r.removed.extend(v),
        Err(e) => r.errors.push(format!("qemu guests: {e}")),
    }
    let jdir = Path::new(rt_runtime::isolate::DEFAULT_JOURNAL_DIR);
    let iso = if all { rt_runtime::isolate::sweep_all(jdir) } else { rt_runtime::isolate::sweep(jdir) };
    match iso {
        Ok(v) => r.removed.extend(v.into_iter().map(|p| format!("restored core shield from {}", p.display()))),
        Err(e) => r.errors.push(format!("core shields: {e}")),
    }
    match rt_runtime::cgroup::CgroupRoot::detect(Path::new("/sys/fs/cgroup")) {
        Ok(root) => {
            let res = if all { rt_runtime::cgroup::sweep_all(&root) } else { rt_runtime::cgroup::sweep(&root) };
            match res {
                Ok(v) => r.removed.extend(v.into_iter().map(|p| format!("removed cgroup {}", p.display()))),
                Err(e) => r.errors.push(format!("cgroups: {e}")),
            }
        }
        Err(e) => r.errors.push(format!("cgroups: {e}")),
    }
    match rt_runtime::net::sweep(all) {
        Ok(v) => r.removed.extend(v),
        Err(e) => r.errors.push(format!("network: {e}")),
    }
    r
}
