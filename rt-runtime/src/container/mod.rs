//! The container deployment and the OCI runtime behind `rt-runtime run`.
//!
//! A minimal OCI runtime written for real-time workers (not a wrapper around
//! runc or crun): [`oci`] reads `config.json` with the `oci-spec` crate and
//! refuses any field it would not apply; the parent creates the cgroup
//! ([`crate::cgroup`]), clones the child into new namespaces, puts it in the
//! cgroup, moves the fronthaul link into its network namespace and lets it
//! go; the child ([`init`]) mounts, pivots, applies rlimits, scheduler,
//! I/O priority, affinity, identity, capabilities, no_new_privs and seccomp,
//! then execs. A failed step reaches the caller naming the step
//! ([`ContainerError::Setup`]); everything created is removed on failure,
//! on exit and on drop.
//!
//! The container's process is the runtime's direct child and pid 1 of its
//! pid namespace (no intermediate init, no re-exec of the runtime), which is
//! what makes a launch cheap; see `docs/containers.md` for timings against
//! runc and crun.

pub mod bundle;
pub mod caps;
pub mod deployment;
pub mod init;
pub mod netlink;
pub mod oci;
pub mod seccomp;
pub mod sys;
#[cfg(test)]
mod tests;

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use bundle::{build_bundle, BundleError, BundleSpec};
pub use deployment::ContainerDeployment;
pub use oci::{Bundle, ConfigError, HostInfo, Plan, PlanOptions};
pub use sys::host::Exit;

use crate::cgroup::{Cgroup, CgroupRoot};

/// Directory holding one state file per running container.
pub const STATE_DIR: &str = "/run/cranlab-rt";

/// Errors from running a container; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The bundle's configuration is not acceptable.
    #[error("bundle {}: {}", bundle.display(), config_msg(err))]
    Config {
        /// The bundle directory.
        bundle: PathBuf,
        /// What is wrong.
        err: ConfigError,
    },
    /// A step inside the new container failed.
    #[error("container {id}: {step}: {errno}")]
    Setup {
        /// Container id.
        id: String,
        /// The step, with its config field.
        step: String,
        /// The kernel's answer.
        errno: sys::Errno,
    },
    /// A host-side step failed.
    #[error("container {id}: {step}: {err}")]
    Host {
        /// Container id.
        id: String,
        /// The step.
        step: String,
        /// The cause.
        err: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The container id is not usable.
    #[error("invalid container id {0:?}: use 1-64 characters from [A-Za-z0-9_.-], starting with a letter or digit")]
    BadId(String),
}

/// `config.json: FIELD: REASON`, without naming the file twice when the
/// whole file is at fault (field `config.json`).
fn config_msg(e: &ConfigError) -> String {
    if e.field == "config.json" {
        e.to_string()
    } else {
        format!("config.json: {e}")
    }
}

fn host_err(id: &str, step: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> ContainerError {
    ContainerError::Host { id: id.to_string(), step: step.into(), err: Box::new(e) }
}

fn errno_err(e: sys::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.0)
}

/// Checks a container id.
pub fn check_id(id: &str) -> Result<(), ContainerError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ContainerError::BadId(id.to_string()))
    }
}

/// Host-side options of a start that do not come from `config.json`.
#[derive(Debug, Default)]
pub struct StartOptions {
    /// Receives the container's stdout and stderr (`None`: inherit).
    pub log: Option<File>,
    /// Give the container /dev/null as stdin.
    pub stdin_null: bool,
    /// Descriptors handed to the container (kept open across exec, same numbers).
    pub keep_fds: Vec<OwnedFd>,
    /// Descriptors owned elsewhere (e.g. an AF_XDP hand-off) that the
    /// container inherits under the same numbers; they must outlive the start.
    pub keep_raw_fds: Vec<RawFd>,
    /// Links to move in, and the namespace they are in now.
    pub plan: PlanOptions,
    /// Network namespace file the links are in (`None`: the runtime's own).
    pub links_netns: Option<PathBuf>,
    /// Cgroup filesystem root (`/sys/fs/cgroup`).
    pub cgroup_root: Option<PathBuf>,
}

/// A started container. Dropping it kills the container and removes its cgroup.
#[derive(Debug)]
pub struct Container {
    id: String,
    pid: i32,
    cgroup: Option<Cgroup>,
    exit: Option<Exit>,
    notes: Vec<String>,
    exec_after: Duration,
    keep: Vec<OwnedFd>,
}

impl Container {
    /// Creates and starts container `id` from `bundle`: returns once the
    /// container's process has exec'd its program.
    pub fn start(bundle: &Bundle, id: &str, opts: StartOptions) -> Result<Container, ContainerError> {
        let t0 = Instant::now();
        check_id(id)?;
        let host = HostInfo::detect();
        let plan = oci::plan(bundle, id, &host, &opts.plan).map_err(|err| ContainerError::Config { bundle: bundle.dir.clone(), err })?;
        let root_dir = opts.cgroup_root.clone().unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        let root = CgroupRoot::detect(&root_dir).map_err(|e| host_err(id, "detect cgroup layout", e))?;
        let cgroup = Cgroup::create(&root, &plan.cgroup_name, &plan.limits).map_err(|e| host_err(id, format!("create cgroup {}", plan.cgroup_name), e))?;
        let mut notes = plan.notes.clone();
        notes.extend(cgroup.notes().iter().cloned());
        let mut c = Container { id: id.to_string(), pid: 0, cgroup: Some(cgroup), exit: None, notes, exec_after: Duration::ZERO, keep: Vec::new() };
        c.spawn(&plan, opts)?;
        c.exec_after = t0.elapsed();
        Ok(c)
    }

    fn spawn(&mut self, plan: &Plan, opts: StartOptions) -> Result<(), ContainerError> {
        let id = self.id.clone();
        let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> { v.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect() };
        let argv = ptrs(&plan.argv);
        let envp = ptrs(&plan.envp);
        let aff_i = plan.affinity_initial.as_deref().map(sys::host::cpu_set);
        let aff_f = plan.affinity_final.as_deref().map(sys::host::cpu_set);
        let devnull = if opts.stdin_null {
            Some(File::open("/dev/null").map_err(|e| host_err(&id, "open /dev/null", e))?)
        } else {
            None
        };
        let keep: Vec<RawFd> = opts.keep_fds.iter().map(|f| f.as_raw_fd()).chain(opts.keep_raw_fds.iter().copied()).collect();
        if keep.len() > 16 {
            return Err(host_err(&id, "pass descriptors to the container", std::io::Error::other("more than 16 descriptors")));
        }
        let (go_r, go_w) = sys::host::pipe().map_err(|e| host_err(&id, "create sync pipe", errno_err(e)))?;
        let (err_r, err_w) = sys::host::pipe().map_err(|e| host_err(&id, "create error pipe", errno_err(e)))?;
        let io = init::ChildIo {
            go_fd: go_r.as_raw_fd(),
            go_parent_fd: go_w.as_raw_fd(),
            log_fd: opts.log.as_ref().map(|f| f.as_raw_fd()),
            stdin_fd: devnull.as_ref().map(|f| f.as_raw_fd()),
            keep_fds: &keep,
            argv: &argv,
            envp: &envp,
            affinity_initial: aff_i.as_ref(),
            affinity_final: aff_f.as_ref(),
        };
        let err_fd = err_w.as_raw_fd();
        // SAFETY: the child only runs `init::run` (no allocation, no locks: all
        // data was prepared above) and then `_exit`s.
        let pid = unsafe { sys::host::clone_fork(plan.clone_flags) }.map_err(|e| host_err(&id, "clone into new namespaces", errno_err(e)))?;
        if pid == 0 {
            let f = init::run(plan, &io, &sys::RealSys);
            let _ = sys::host::write_all(err_fd, &f.encode());
            sys::host::exit_now(127);
        }
        self.pid = pid;
        drop(go_r);
        drop(err_w);
        drop(devnull);
        if let Err(e) = self.parent_setup(plan, &opts) {
            drop(go_w);
            return Err(e);
        }
        sys::host::write_all(go_w.as_raw_fd(), b"g").map_err(|e| host_err(&id, "signal the container to start", errno_err(e)))?;
        drop(go_w);
        let mut buf = Vec::with_capacity(12);
        let mut r = File::from(err_r);
        let _ = r.read_to_end(&mut buf);
        if !buf.is_empty() {
            let f = init::Failure::decode(&buf);
            let _ = self.reap();
            return Err(match f {
                Some(f) => ContainerError::Setup { id, step: f.step.describe(plan, f.index), errno: f.errno },
                None => host_err(&id, "read the container's set-up result", std::io::Error::other("garbled message")),
            });
        }
        self.keep = opts.keep_fds;
        Ok(())
    }

    /// Steps the parent does between clone and go-ahead.
    fn parent_setup(&mut self, plan: &Plan, opts: &StartOptions) -> Result<(), ContainerError> {
        let id = self.id.clone();
        let pid = self.pid;
        if let Some((uid_map, gid_map)) = &plan.id_maps {
            let w = |f: &str, v: &str| std::fs::write(format!("/proc/{pid}/{f}"), v).map_err(|e| host_err(&id, format!("write /proc/{pid}/{f}"), e));
            if plan.additional_gids.is_empty() {
                w("setgroups", "deny")?;
            }
            w("uid_map", uid_map)?;
            w("gid_map", gid_map)?;
        }
        if let Some(cg) = &self.cgroup {
            cg.add_pid(pid).map_err(|e| host_err(&id, format!("add pid {pid} to cgroup {}", cg.name()), e))?;
        }
        for d in &plan.net_devices {
            let step = format!("move link {} into the container's network namespace as {}", d.host_name, d.inner_name);
            let mv = || -> sys::SysResult {
                let name = CString::new(d.host_name.clone()).map_err(|_| sys::Errno(libc::EINVAL))?;
                let index = sys::host::if_index(&name).ok_or(sys::Errno(libc::ENODEV))?;
                use sys::Syscall;
                sys::RealSys.netlink(&netlink::move_to_pid_netns(index, pid, &d.inner_name))
            };
            let r = match &opts.links_netns {
                Some(ns) => sys::host::in_netns(ns, mv),
                None => mv(),
            };
            r.map_err(|e| host_err(&id, step, errno_err(e)))?;
        }
        Ok(())
    }

    fn reap(&mut self) -> Option<Exit> {
        if self.exit.is_none() && self.pid > 0 {
            let _ = sys::host::kill(self.pid, libc::SIGKILL);
            self.exit = sys::host::waitpid(self.pid, true).ok().flatten();
        }
        self.exit
    }

    /// Container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the container's process (pid 1 inside).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The container's cgroup.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// Adjustments made (default RT budget, …), one sentence each.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Time from the start call to the container's exec.
    pub fn exec_after(&self) -> Duration {
        self.exec_after
    }

    /// Non-blocking: how the container ended, or `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<Exit>, ContainerError> {
        if self.exit.is_none() {
            self.exit = sys::host::waitpid(self.pid, false).map_err(|e| host_err(&self.id, "wait for the container", errno_err(e)))?;
        }
        Ok(self.exit)
    }

    /// Sends a signal to the container's process.
    pub fn signal(&self, sig: i32) -> Result<(), ContainerError> {
        if self.exit.is_some() {
            return Ok(());
        }
        sys::host::kill(self.pid, sig).map_err(|e| host_err(&self.id, format!("send signal {sig}"), errno_err(e)))
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL; returns how it ended.
    pub fn stop(&mut self, grace: Duration) -> Result<Exit, ContainerError> {
        if let Some(e) = self.try_wait()? {
            return Ok(e);
        }
        let _ = self.signal(libc::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < grace {
            if let Some(e) = self.try_wait()? {
                return Ok(e);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(self.reap().unwrap_or(Exit::Signal(libc::SIGKILL)))
    }

    /// Kills the container if it runs and removes its cgroup.
    pub fn destroy(mut self) -> Result<Option<Exit>, ContainerError> {
        let exit = self.reap();
        self.keep.clear();
        if let Some(cg) = self.cgroup.take() {
            let name = cg.name().to_string();
            cg.remove().map_err(|e| host_err(&self.id, format!("remove cgroup {name}"), e))?;
        }
        Ok(exit)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.reap();
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.remove();
        }
    }
}

/// State of a running container on disk (for `rt-runtime delete`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Container id.
    pub id: String,
    /// Host pid.
    pub pid: i32,
    /// Process start time (field 22 of /proc/PID/stat), guards against pid reuse.
    pub starttime: u64,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Cgroup directories.
    pub cgroup: Vec<PathBuf>,
}

fn proc_starttime(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn state_path(id: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("{id}.json"))
}

/// Runs a bundle in the foreground like `crun run -b`: returns the exit
/// status to give (the container's, or 128 + signal).
///
/// Call [`sys::host::block_signals`] first, before any other thread exists:
/// SIGCHLD and the forwarded signals stay blocked and are taken with
/// `sigtimedwait`, so a container that exits before the runtime waits is
/// never missed.
pub fn run_foreground(bundle_dir: &Path, id: &str) -> Result<i32, ContainerError> {
    check_id(id)?;
    let bundle = Bundle::load(bundle_dir).map_err(|err| ContainerError::Config { bundle: bundle_dir.to_path_buf(), err })?;
    if state_path(id).exists() {
        return Err(host_err(id, "create state", std::io::Error::from(std::io::ErrorKind::AlreadyExists)));
    }
    let mut c = Container::start(&bundle, id, StartOptions::default())?;
    let state = State {
        id: id.to_string(),
        pid: c.pid(),
        starttime: proc_starttime(c.pid()).unwrap_or(0),
        bundle: bundle_dir.to_path_buf(),
        cgroup: c.cgroup().map(|g| g.paths()).unwrap_or_default(),
    };
    let _ = std::fs::create_dir_all(STATE_DIR);
    let sp = state_path(id);
    let _ = std::fs::write(&sp, serde_json::to_vec(&state).unwrap_or_default());
    let exit = loop {
        if let Some(e) = c.try_wait()? {
            break e;
        }
        match sys::host::wait_signal(1000) {
            Ok(Some(libc::SIGCHLD)) | Ok(None) => {}
            Ok(Some(sig)) => {
                let _ = c.signal(sig);
            }
            Err(e) => return Err(host_err(id, "wait for signals", errno_err(e))),
        }
    };
    let r = c.destroy();
    let _ = std::fs::remove_file(&sp);
    r?;
    Ok(match exit {
        Exit::Code(c) => c,
        Exit::Signal(s) => 128 + s,
    })
}

/// Removes what a container left (a killed `rt-runtime run`): kills its
/// process if it is still the same one, empties and removes its cgroup
/// directories and its state file.
pub fn delete(id: &str) -> Result<(), ContainerError> {
    check_id(id)?;
    let sp = state_path(id);
    let text = std::fs::read(&sp).map_err(|e| host_err(id, format!("read state {}", sp.display()), e))?;
    let st: State = serde_json::from_slice(&text).map_err(|e| host_err(id, format!("parse state {}", sp.display()), e))?;
    if st.pid > 0 && proc_starttime(st.pid) == Some(st.starttime) {
        let _ = sys::host::kill(st.pid, libc::SIGKILL);
    }
    for dir in &st.cgroup {
        for _ in 0..200 {
            let pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            for p in &pids {
                let _ = sys::host::kill(*p, libc::SIGKILL);
            }
            match std::fs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        if dir.exists() {
            return Err(host_err(id, format!("remove cgroup {}", dir.display()), std::io::Error::from_raw_os_error(libc::EBUSY)));
        }
        // Empty `cranlab*` parents go too (a parent still holding other
        // containers' cgroups stays, with the RT budget added for this one).
        let mut parent = dir.parent();
        while let Some(p) = parent {
            let named = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(crate::cgroup::PREFIX));
            if !named || std::fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
    }
    std::fs::remove_file(&sp).map_err(|e| host_err(id, format!("remove state {}", sp.display()), e))
}

/// What rt-runtime supports, in the OCI runtime `features` JSON form.
pub fn features() -> serde_json::Value {
    use serde_json::json;
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.1",
        "hooks": [],
        "mountOptions": [
            "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async", "dirsync",
            "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
            "strictatime", "nostrictatime", "bind", "rbind", "private", "rprivate", "shared", "rshared",
            "slave", "rslave", "unbindable", "runbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps::NAMES.to_vec(),
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86_64"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": false } },
            "netDevices": { "enabled": true }
        },
        "annotations": {
            "org.cranlab.rt-runtime.version": env!("CARGO_PKG_VERSION"),
            "org.cranlab.rt-runtime.process.scheduler": "SCHED_OTHER,SCHED_BATCH,SCHED_IDLE,SCHED_FIFO,SCHED_RR,SCHED_DEADLINE; flags SCHED_RESET_ON_FORK,SCHED_FLAG_RECLAIM,SCHED_FLAG_DL_OVERRUN",
            "org.cranlab.rt-runtime.process.ioPriority": "IOPRIO_CLASS_RT,IOPRIO_CLASS_BE,IOPRIO_CLASS_IDLE",
            "org.cranlab.rt-runtime.process.execCPUAffinity": "initial,final",
            "org.cranlab.rt-runtime.linux.resources": "cpu.cpus,cpu.mems,cpu.shares,cpu.realtimeRuntime,cpu.realtimePeriod,memory.limit,pids.limit",
            "org.cranlab.rt-runtime.unsupported": "refused with the field named: hooks, terminal, apparmor, selinux, intelRdt, personality, memoryPolicy, timeOffsets, resources.devices/blockIO/hugepageLimits/network/rdma/unified, cpu.quota/period/burst/idle, memory fields other than limit"
        }
    })
}
