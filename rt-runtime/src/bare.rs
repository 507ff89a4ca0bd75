//! The bare deployment: a plain process, pinned, SCHED_FIFO, mlockall.
//!
//! The worker binary is started in the link's network namespace (`setns` in
//! the child before exec), pinned to its first core, given SCHED_FIFO at the
//! priority asked, and told by `PR_SET_PDEATHSIG` to die with the process
//! that started it. It does `mlockall` itself (`--mlock`). What the kernel
//! actually granted is read back once the worker prints its `READY` line.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::deploy::{
    DeployError, Deployment, DeploymentKind, GrantedFacts, LinkKind, SchedPolicy, WorkerExit, WorkerHandle, WorkerSpec,
};

/// Runs the worker as a plain host process.
#[derive(Debug, Default, Clone)]
pub struct BareDeployment;

impl BareDeployment {
    /// A bare deployment.
    pub fn new() -> Self {
        BareDeployment
    }
}

/// Replaces `{iface}` in the arguments.
pub fn expand_args(args: &[std::ffi::OsString], iface: &str) -> Vec<std::ffi::OsString> {
    args.iter()
        .map(|a| match a.to_str() {
            Some(s) if s.contains("{iface}") => s.replace("{iface}", iface).into(),
            _ => a.clone(),
        })
        .collect()
}

impl Deployment for BareDeployment {
    fn kind(&self) -> DeploymentKind {
        DeploymentKind::Bare
    }

    fn link_kind(&self) -> LinkKind {
        LinkKind::Veth
    }

    fn launch(&self, spec: &WorkerSpec) -> Result<Box<dyn WorkerHandle>, DeployError> {
        let log = File::create(&spec.log).map_err(|e| DeployError::step(format!("create worker log {}", spec.log.display()), e))?;
        let log2 = log.try_clone().map_err(|e| DeployError::step("duplicate worker log descriptor", e))?;
        let netns: Option<OwnedFd> = match &spec.link.netns {
            Some(ns) => Some(
                crate::net::open_netns(ns)
                    .map_err(|e| DeployError::step(format!("open network namespace {ns} for the worker"), e))?
                    .into(),
            ),
            None => None,
        };
        if let Some(a) = spec.link.addr {
            crate::net::add_addr(spec.link.netns.as_deref(), &spec.link.ifname, a).map_err(|e| DeployError::step("address the worker's link", e))?;
        }
        let mut cmd = Command::new(&spec.program);
        cmd.args(expand_args(&spec.args, &spec.link.ifname))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let ns_fd = netns.as_ref().map(|f| f.as_raw_fd());
        let cpu = spec.cpus.first().copied();
        let prio = match spec.sched {
            SchedPolicy::Fifo(p) => Some(i32::from(p)),
            SchedPolicy::Other => None,
        };
        sys::prepare_child(&mut cmd, ns_fd, cpu, prio);
        let started = Instant::now();
        let child = cmd.spawn().map_err(|e| DeployError::step(format!("start worker {}", spec.program.display()), e))?;
        drop(netns);
        let mut h = BareHandle {
            child,
            facts: GrantedFacts {
                deployment: "bare".into(),
                virtualization: "none".into(),
                ..GrantedFacts::default()
            },
            done: None,
        };
        wait_ready(&mut h, spec, started)?;
        h.facts.start_to_ready_ns = Some(started.elapsed().as_nanos() as u64);
        read_back(&mut h.facts, spec, h.child.id() as i32);
        Ok(Box::new(h))
    }
}

/// Waits for a line containing `READY` in the worker's log (bare and
/// container deployments); stops the worker when it does not come in time.
pub(crate) fn wait_ready(h: &mut dyn WorkerHandle, spec: &WorkerSpec, started: Instant) -> Result<(), DeployError> {
    let mut f = File::open(&spec.log).map_err(|e| DeployError::step(format!("open worker log {}", spec.log.display()), e))?;
    let mut seen = String::new();
    loop {
        let mut chunk = String::new();
        let _ = f.read_to_string(&mut chunk);
        seen.push_str(&chunk);
        if seen.lines().any(|l| l.contains("READY")) {
            return Ok(());
        }
        match h.try_wait()? {
            WorkerExit::Running => {}
            exit => {
                return Err(DeployError::NotReady {
                    name: spec.name.clone(),
                    waited: started.elapsed(),
                    detail: format!("worker ended ({exit:?}) before READY; log: {}", tail(&seen, 8)),
                });
            }
        }
        if started.elapsed() > spec.ready_timeout {
            let _ = h.stop(Duration::from_millis(200));
            return Err(DeployError::NotReady {
                name: spec.name.clone(),
                waited: started.elapsed(),
                detail: format!("no READY line; log: {}", tail(&seen, 8)),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Reads back what the host kernel granted the worker process `pid`
/// (policy, affinity, locked memory) into `facts`, with a note for each
/// difference from what `spec` asked (bare and container deployments).
pub(crate) fn read_back(facts: &mut GrantedFacts, spec: &WorkerSpec, pid: i32) {
    facts.sched = crate::container::sys::host::read_sched(pid);
    facts.cpus = crate::container::sys::host::read_affinity(pid);
    facts.mlocked = read_vmlck_kb(pid).is_some_and(|kb| kb > 0);
    if let SchedPolicy::Fifo(p) = spec.sched {
        if facts.sched != format!("SCHED_FIFO:{p}") {
            facts.notes.push(format!("SCHED_FIFO:{p} was asked for the worker but the kernel reports {}", facts.sched));
        }
    }
    if let Some(c) = spec.cpus.first() {
        if facts.cpus != [*c] {
            facts.notes.push(format!("worker pinned to cpu {c} but its affinity is {:?}", facts.cpus));
        }
    }
    if spec.mlock && !facts.mlocked {
        facts.notes.push("mlockall was asked but the worker has no locked memory (VmLck 0)".into());
    }
}

/// Last `n` lines of a text, joined with ` | `.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Locked memory of a process in kB (`VmLck` in `/proc/PID/status`).
pub fn read_vmlck_kb(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A worker started by [`BareDeployment`].
#[derive(Debug)]
pub struct BareHandle {
    child: Child,
    facts: GrantedFacts,
    done: Option<WorkerExit>,
}

/// What a finished host process's status means for the worker (the
/// qemu process of a KVM guest falls back to it too).
pub(crate) fn exit_of(st: std::process::ExitStatus) -> WorkerExit {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => WorkerExit::Exited(c),
        (None, Some(s)) => WorkerExit::Signaled(s),
        _ => WorkerExit::Exited(-1),
    }
}

impl WorkerHandle for BareHandle {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn facts(&self) -> &GrantedFacts {
        &self.facts
    }

    fn try_wait(&mut self) -> Result<WorkerExit, DeployError> {
        if let Some(d) = &self.done {
            return Ok(d.clone());
        }
        match self.child.try_wait().map_err(|e| DeployError::step("wait for worker", e))? {
            Some(st) => {
                let e = exit_of(st);
                self.done = Some(e.clone());
                Ok(e)
            }
            None => Ok(WorkerExit::Running),
        }
    }

    fn stop(&mut self, grace: Duration) -> Result<WorkerExit, DeployError> {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        if self.try_wait()? == WorkerExit::Running {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let t = Instant::now();
            while t.elapsed() < grace {
                if self.try_wait()? != WorkerExit::Running {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if self.try_wait()? == WorkerExit::Running {
            let _ = self.child.kill();
            let st = self.child.wait().map_err(|e| DeployError::step("wait for killed worker", e))?;
            self.done = Some(exit_of(st));
        }
        Ok(self.done.clone().unwrap_or(WorkerExit::Running))
    }
}

impl Drop for BareHandle {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_millis(300));
    }
}

/// The system calls of this module, each `unsafe` block justified.
mod sys {
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Sets up the child between fork and exec: die with the parent, enter
    /// the network namespace, pin, SCHED_FIFO. A refused SCHED_FIFO is not
    /// fatal here: the parent reads the policy back and reports it.
    pub(super) fn prepare_child(cmd: &mut Command, ns_fd: Option<i32>, cpu: Option<usize>, prio: Option<i32>) {
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe system calls (prctl, setns, getppid,
        // sched_setaffinity, sched_setscheduler) on plain stack data; it
        // allocates nothing and takes no locks. `ns_fd` stays open in the
        // parent until after spawn returns, so it is valid in the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() == 1 {
                    // The parent died between fork and prctl.
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                if let Some(fd) = ns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(c) = cpu {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(c, &mut set);
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(p) = prio {
                    let param = libc::sched_param { sched_priority: p };
                    let _ = libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_placeholder_is_replaced() {
        let a: Vec<std::ffi::OsString> = vec!["--iface".into(), "{iface}".into(), "x{iface}y".into(), "--cpu".into()];
        let e = expand_args(&a, "cranlab1w");
        assert_eq!(e, vec!["--iface", "cranlab1w", "xcranlab1wy", "--cpu"]);
    }

    fn spec(dir: &std::path::Path, script: &str) -> WorkerSpec {
        WorkerSpec {
            name: "cranlab-test-bare".into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            cpus: vec![0],
            sched: SchedPolicy::Fifo(10),
            mlock: false,
            link: crate::deploy::WorkerLink { netns: None, ifname: "lo".into(), inner_name: "lo".into(), mac: [0; 6], addr: None },
            memory_bytes: 0,
            log: dir.join("worker.log"),
            work_dir: dir.to_path_buf(),
            ready_timeout: Duration::from_secs(5),
        }
    }

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cranlab-bare-test-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn launch_reads_back_what_was_granted() {
        let d = tmpdir("ok");
        let mut h = BareDeployment::new().launch(&spec(&d, "echo READY {iface}; exec sleep 30")).unwrap();
        let f = h.facts().clone();
        assert_eq!(f.cpus, vec![0]);
        assert!(f.start_to_ready_ns.is_some());
        // Either FIFO was granted at the asked priority, or a note says it was not.
        assert!(f.sched == "SCHED_FIFO:10" || f.notes.iter().any(|n| n.contains("SCHED_FIFO:10")), "{f:?}");
        assert_eq!(h.try_wait().unwrap(), WorkerExit::Running);
        assert_eq!(h.stop(Duration::from_secs(2)).unwrap(), WorkerExit::Signaled(libc::SIGTERM));
        assert!(std::fs::read_to_string(d.join("worker.log")).unwrap().contains("READY lo"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn early_exit_is_not_ready_with_the_log() {
        let d = tmpdir("fail");
        let e = BareDeployment::new().launch(&spec(&d, "echo cannot open iface >&2; exit 3")).err().unwrap();
        let msg = e.to_string();
        assert!(msg.contains("Exited(3)") && msg.contains("cannot open iface"), "{msg}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn worker_link_gets_its_address_in_its_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (a network namespace and a veth pair)");
            return;
        }
        let (a, b) = (
            crate::net::Netns::create(&crate::net::owned_netns_name("bta")).unwrap(),
            crate::net::Netns::create(&crate::net::owned_netns_name("btb")).unwrap(),
        );
        let link = crate::net::veth_pair(&crate::net::short_tag(), a.name(), b.name(), 1500).unwrap();
        let w = link.worker.as_ref().unwrap().name().to_string();
        let d = tmpdir("addr");
        let mut sp = spec(&d, "ip -o -4 addr show dev {iface}; echo READY; exec sleep 30");
        sp.link.netns = Some(b.name().into());
        sp.link.ifname = w.clone();
        sp.link.inner_name = w;
        sp.link.addr = Some("10.213.0.2/30".parse().unwrap());
        let mut h = BareDeployment::new().launch(&sp).unwrap();
        h.stop(Duration::from_secs(2)).unwrap();
        // The worker, inside the namespace, saw its link addressed.
        let log = std::fs::read_to_string(d.join("worker.log")).unwrap();
        assert!(log.contains("inet 10.213.0.2/30"), "{log}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b | c");
        assert_eq!(tail("", 2), "");
    }
}
