//! The child side: from the clone to `execve`, driven through
//! [`Syscall`] so the sequence can be checked against a fake.
//!
//! Order (each step reports its [`Step`] on failure):
//! go-ahead from the parent → stdio → cgroup namespace → joined namespaces →
//! hostname → links up → mounts (propagation, rootfs bind, config mounts,
//! /dev) → oom_score_adj → `pivot_root` → sysctl → masked and read-only
//! paths → read-only root → cwd → rlimits → scheduler → I/O priority →
//! affinity → umask → (seccomp here if `noNewPrivileges` is false, while
//! CAP_SYS_ADMIN is still held) → bounding set → keep-caps → groups/gid/uid
//! → capset → ambient → no_new_privs → seccomp → close descriptors →
//! signals → exec.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::oci::{FsOp, Plan};
use super::sys::{Errno, Syscall};

/// A step of the child's set-up; reported with an index and errno on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    /// Waiting for the parent's go-ahead.
    GoAhead = 1,
    /// Redirecting stdio.
    Stdio,
    /// `unshare(CLONE_NEWCGROUP)`.
    CgroupNs,
    /// `setns` into `linux.namespaces[i].path`.
    JoinNs,
    /// Becoming root in the new user namespace.
    UserNsRoot,
    /// `sethostname`.
    Hostname,
    /// `setdomainname`.
    Domainname,
    /// Setting a link up.
    LinkUp,
    /// Root propagation.
    RootPropagation,
    /// Bind-mounting the rootfs onto itself.
    RootfsBind,
    /// A filesystem op (index into `Plan::fs_ops`).
    FsOp,
    /// Writing oom_score_adj.
    OomScoreAdj,
    /// `pivot_root`.
    PivotRoot,
    /// A sysctl write.
    Sysctl,
    /// Masking a path.
    MaskPath,
    /// Making a path read-only.
    ReadonlyPath,
    /// Remounting the root read-only.
    RootReadonly,
    /// `chdir` to `process.cwd`.
    Cwd,
    /// `setrlimit`.
    Rlimit,
    /// `sched_setattr`.
    Scheduler,
    /// `ioprio_set`.
    IoPriority,
    /// Initial CPU affinity.
    AffinityInitial,
    /// Final CPU affinity.
    AffinityFinal,
    /// Dropping a capability from the bounding set.
    CapBounding,
    /// `PR_SET_KEEPCAPS`.
    KeepCaps,
    /// `setgroups`.
    Setgroups,
    /// `setresgid`.
    Setgid,
    /// `setresuid`.
    Setuid,
    /// `capset`.
    Capset,
    /// Raising an ambient capability.
    Ambient,
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
    /// Installing the seccomp filter.
    Seccomp,
    /// Marking descriptors close-on-exec.
    CloseFds,
    /// Resetting signal mask and dispositions.
    Signals,
    /// `execve`.
    Exec,
}

impl Step {
    /// All steps, for decoding.
    pub const ALL: [Step; 35] = [
        Step::GoAhead,
        Step::Stdio,
        Step::CgroupNs,
        Step::JoinNs,
        Step::UserNsRoot,
        Step::Hostname,
        Step::Domainname,
        Step::LinkUp,
        Step::RootPropagation,
        Step::RootfsBind,
        Step::FsOp,
        Step::OomScoreAdj,
        Step::PivotRoot,
        Step::Sysctl,
        Step::MaskPath,
        Step::ReadonlyPath,
        Step::RootReadonly,
        Step::Cwd,
        Step::Rlimit,
        Step::Scheduler,
        Step::IoPriority,
        Step::AffinityInitial,
        Step::AffinityFinal,
        Step::CapBounding,
        Step::KeepCaps,
        Step::Setgroups,
        Step::Setgid,
        Step::Setuid,
        Step::Capset,
        Step::Ambient,
        Step::NoNewPrivs,
        Step::Seccomp,
        Step::CloseFds,
        Step::Signals,
        Step::Exec,
    ];

    /// Decodes a step number written by the child.
    pub fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == v)
    }

    /// Human description of the step, with the plan's detail for `index`.
    pub fn describe(self, plan: &Plan, index: u32) -> String {
        let i = index as usize;
        let cs = |c: Option<&std::ffi::CString>| c.map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
        match self {
            Step::GoAhead => "wait for the runtime's go-ahead".into(),
            Step::Stdio => "redirect stdio".into(),
            Step::CgroupNs => "unshare the cgroup namespace".into(),
            Step::JoinNs => format!("join namespace {}", cs(plan.join.get(i).map(|j| &j.path))),
            Step::UserNsRoot => "become root in the user namespace".into(),
            Step::Hostname => format!("set hostname {}", cs(plan.hostname.as_ref())),
            Step::Domainname => format!("set domainname {}", cs(plan.domainname.as_ref())),
            Step::LinkUp => {
                if i == 0 && plan.link_up.len() > plan.net_devices.len() {
                    "set link lo up".into()
                } else {
                    let off = plan.link_up.len() - plan.net_devices.len();
                    format!("set link {} up", plan.net_devices.get(i - off).map(|d| d.inner_name.as_str()).unwrap_or("?"))
                }
            }
            Step::RootPropagation => "set propagation of / (linux.rootfsPropagation)".into(),
            Step::RootfsBind => format!("bind-mount rootfs {}", plan.rootfs.to_string_lossy()),
            Step::FsOp => plan.fs_ops.get(i).map(|o| o.1.clone()).unwrap_or_else(|| "mount".into()),
            Step::OomScoreAdj => "write /proc/self/oom_score_adj (process.oomScoreAdj)".into(),
            Step::PivotRoot => format!("pivot_root into {}", plan.rootfs.to_string_lossy()),
            Step::Sysctl => plan.sysctl.get(i).map(|s| s.2.clone()).unwrap_or_default(),
            Step::MaskPath => format!("mask {} (linux.maskedPaths)", cs(plan.masked.get(i))),
            Step::ReadonlyPath => format!("make {} read-only (linux.readonlyPaths)", cs(plan.readonly.get(i))),
            Step::RootReadonly => "remount / read-only (root.readonly)".into(),
            Step::Cwd => format!("chdir {} (process.cwd)", plan.cwd.to_string_lossy()),
            Step::Rlimit => format!("setrlimit {} (process.rlimits)", plan.rlimits.get(i).map(|r| r.3).unwrap_or("?")),
            Step::Scheduler => format!(
                "sched_setattr policy {} priority {} (process.scheduler)",
                plan.sched.map(|s| s.policy).unwrap_or(0),
                plan.sched.map(|s| s.priority).unwrap_or(0)
            ),
            Step::IoPriority => "ioprio_set (process.ioPriority)".into(),
            Step::AffinityInitial => "sched_setaffinity (process.execCPUAffinity.initial)".into(),
            Step::AffinityFinal => "sched_setaffinity (process.execCPUAffinity.final / linux.resources.cpu.cpus)".into(),
            Step::CapBounding => format!("drop {} from the bounding set", super::caps::NAMES.get(i).unwrap_or(&"?")),
            Step::KeepCaps => "prctl(PR_SET_KEEPCAPS)".into(),
            Step::Setgroups => "setgroups (process.user.additionalGids)".into(),
            Step::Setgid => format!("setresgid {} (process.user.gid)", plan.gid),
            Step::Setuid => format!("setresuid {} (process.user.uid)", plan.uid),
            Step::Capset => "capset (process.capabilities)".into(),
            Step::Ambient => format!("raise ambient {}", super::caps::NAMES.get(i).unwrap_or(&"?")),
            Step::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS) (process.noNewPrivileges)".into(),
            Step::Seccomp => "install seccomp filter (linux.seccomp)".into(),
            Step::CloseFds => "close inherited descriptors".into(),
            Step::Signals => "reset signal mask and dispositions".into(),
            Step::Exec => format!("execve {}", plan.exec.to_string_lossy()),
        }
    }
}

/// A failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Which step.
    pub step: Step,
    /// Index within the step's list (mount, rlimit, capability …).
    pub index: u32,
    /// The error.
    pub errno: Errno,
}

impl Failure {
    /// 12 bytes written to the error pipe.
    pub fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&(self.step as u32).to_ne_bytes());
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b[8..].copy_from_slice(&self.errno.0.to_ne_bytes());
        b
    }

    /// Reads what [`Failure::encode`] wrote.
    pub fn decode(b: &[u8]) -> Option<Failure> {
        if b.len() != 12 {
            return None;
        }
        let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(Failure { step: Step::from_u32(w(0))?, index: w(4), errno: Errno(w(8) as i32) })
    }
}

/// Descriptors and pointer arrays the child uses (prepared before clone).
#[derive(Debug)]
pub struct ChildIo<'a> {
    /// Read end of the go-ahead pipe.
    pub go_fd: RawFd,
    /// Parent's write end of the go-ahead pipe (closed first in the child).
    pub go_parent_fd: RawFd,
    /// stdout / stderr target (`None`: inherit).
    pub log_fd: Option<RawFd>,
    /// stdin source (`None`: inherit).
    pub stdin_fd: Option<RawFd>,
    /// Descriptors passed to the container (kept open across exec).
    pub keep_fds: &'a [RawFd],
    /// NULL-terminated argv.
    pub argv: &'a [*const libc::c_char],
    /// NULL-terminated envp.
    pub envp: &'a [*const libc::c_char],
    /// The CPU sets, prebuilt.
    pub affinity_initial: Option<&'a libc::cpu_set_t>,
    /// Final affinity.
    pub affinity_final: Option<&'a libc::cpu_set_t>,
}

fn at(step: Step, index: usize) -> impl Fn(Errno) -> Failure {
    move |errno| Failure { step, index: index as u32, errno }
}

const SLASH: &CStr = c"/";
const DOT: &CStr = c".";

/// Runs the whole set-up and execs; returns only on failure.
pub fn run(p: &Plan, io: &ChildIo<'_>, sys: &dyn Syscall) -> Failure {
    match setup(p, io, sys) {
        Ok(()) => Failure { step: Step::Exec, index: 0, errno: sys.execve(&p.exec, io.argv, io.envp) },
        Err(f) => f,
    }
}

fn setup(p: &Plan, io: &ChildIo<'_>, sys: &dyn Syscall) -> Result<(), Failure> {
    sys.prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64, 0, 0).map_err(at(Step::GoAhead, 0))?;
    // Our copy of the parent's write end must go, or a dead parent never gives EOF.
    sys.close(io.go_parent_fd);
    match sys.read_byte(io.go_fd).map_err(at(Step::GoAhead, 0))? {
        Some(b'g') => {}
        _ => return Err(Failure { step: Step::GoAhead, index: 0, errno: Errno(libc::ECANCELED) }),
    }
    if let Some(fd) = io.stdin_fd {
        sys.dup2(fd, 0).map_err(at(Step::Stdio, 0))?;
    }
    if let Some(fd) = io.log_fd {
        sys.dup2(fd, 1).map_err(at(Step::Stdio, 1))?;
        sys.dup2(fd, 2).map_err(at(Step::Stdio, 2))?;
    }
    if p.id_maps.is_some() {
        sys.setgid(0).map_err(at(Step::UserNsRoot, 0))?;
        sys.setuid(0).map_err(at(Step::UserNsRoot, 1))?;
    }
    if p.unshare_cgroup {
        sys.unshare(libc::CLONE_NEWCGROUP).map_err(at(Step::CgroupNs, 0))?;
    }
    for (i, j) in p.join.iter().enumerate() {
        sys.setns(&j.path, j.nstype).map_err(at(Step::JoinNs, i))?;
    }
    if let Some(h) = &p.hostname {
        sys.sethostname(h).map_err(at(Step::Hostname, 0))?;
    }
    if let Some(d) = &p.domainname {
        sys.setdomainname(d).map_err(at(Step::Domainname, 0))?;
    }
    for (i, m) in p.link_up.iter().enumerate() {
        sys.netlink(m).map_err(at(Step::LinkUp, i))?;
    }
    if let Some(set) = io.affinity_initial {
        sys.set_affinity(set).map_err(at(Step::AffinityInitial, 0))?;
    }

    // Filesystem.
    sys.mount(None, SLASH, None, p.root_propagation, None).map_err(at(Step::RootPropagation, 0))?;
    sys.mount(Some(&p.rootfs), &p.rootfs, None, libc::MS_BIND | libc::MS_REC, None).map_err(at(Step::RootfsBind, 0))?;
    for (i, (op, _)) in p.fs_ops.iter().enumerate() {
        let r = match op {
            FsOp::Mkdir(d) => sys.mkdir(d, 0o755),
            FsOp::Touch(f) => sys.touch(f),
            FsOp::Mount { src, target, fstype, flags, data } => sys.mount(src.as_deref(), target, fstype.as_deref(), *flags, data.as_deref()),
            FsOp::Symlink(t, l) => sys.symlink(t, l),
            FsOp::Mknod { path, mode, dev, uid, gid } => sys.mknod(path, *mode, *dev, *uid, *gid),
        };
        r.map_err(at(Step::FsOp, i))?;
    }
    if let Some(v) = &p.oom_score_adj {
        sys.write_file(c"/proc/self/oom_score_adj", v).map_err(at(Step::OomScoreAdj, 0))?;
    }
    sys.chdir(&p.rootfs).map_err(at(Step::PivotRoot, 0))?;
    sys.pivot_root(DOT, DOT).map_err(at(Step::PivotRoot, 1))?;
    sys.umount2(DOT, libc::MNT_DETACH).map_err(at(Step::PivotRoot, 2))?;
    sys.chdir(SLASH).map_err(at(Step::PivotRoot, 3))?;
    for (i, (path, val, _)) in p.sysctl.iter().enumerate() {
        sys.write_file(path, val).map_err(at(Step::Sysctl, i))?;
    }
    for (i, m) in p.masked.iter().enumerate() {
        match sys.is_dir(m).map_err(at(Step::MaskPath, i))? {
            None => {}
            Some(true) => sys.mount(Some(c"tmpfs"), m, Some(c"tmpfs"), libc::MS_RDONLY, None).map_err(at(Step::MaskPath, i))?,
            Some(false) => sys.mount(Some(c"/dev/null"), m, None, libc::MS_BIND, None).map_err(at(Step::MaskPath, i))?,
        }
    }
    for (i, r) in p.readonly.iter().enumerate() {
        if sys.is_dir(r).map_err(at(Step::ReadonlyPath, i))?.is_none() {
            continue;
        }
        sys.mount(Some(r), r, None, libc::MS_BIND | libc::MS_REC, None).map_err(at(Step::ReadonlyPath, i))?;
        sys.mount(None, r, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, None)
            .map_err(at(Step::ReadonlyPath, i))?;
    }
    if p.root_readonly {
        sys.mount(None, SLASH, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY, None).map_err(at(Step::RootReadonly, 0))?;
    }
    sys.chdir(&p.cwd).map_err(at(Step::Cwd, 0))?;

    // Process attributes (while still privileged).
    for (i, (res, soft, hard, _)) in p.rlimits.iter().enumerate() {
        sys.setrlimit(*res, *soft, *hard).map_err(at(Step::Rlimit, i))?;
    }
    if let Some(a) = &p.sched {
        sys.sched_setattr(a).map_err(at(Step::Scheduler, 0))?;
    }
    if let Some((class, level)) = p.ioprio {
        sys.ioprio_set(class, level).map_err(at(Step::IoPriority, 0))?;
    }
    if let Some(set) = io.affinity_final {
        sys.set_affinity(set).map_err(at(Step::AffinityFinal, 0))?;
    }
    if let Some(u) = p.umask {
        sys.umask(u);
    }
    if !p.no_new_privs {
        if let Some(s) = &p.seccomp {
            sys.seccomp(&s.program, s.flags).map_err(at(Step::Seccomp, 0))?;
        }
    }

    // Identity and capabilities.
    if let Some(c) = &p.caps {
        for cap in 0..=p.cap_last_cap.min(63) {
            if c.bounding & (1u64 << cap) == 0 {
                sys.prctl(libc::PR_CAPBSET_DROP, u64::from(cap), 0, 0).map_err(at(Step::CapBounding, cap as usize))?;
            }
        }
        if p.uid != 0 {
            sys.prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0).map_err(at(Step::KeepCaps, 0))?;
        }
    }
    if p.id_maps.is_none() || !p.additional_gids.is_empty() {
        sys.setgroups(&p.additional_gids).map_err(at(Step::Setgroups, 0))?;
    }
    sys.setgid(p.gid).map_err(at(Step::Setgid, 0))?;
    sys.setuid(p.uid).map_err(at(Step::Setuid, 0))?;
    if let Some(c) = &p.caps {
        sys.capset(c.effective, c.permitted, c.inheritable).map_err(at(Step::Capset, 0))?;
        sys.prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as u64, 0, 0).map_err(at(Step::Ambient, 64))?;
        for cap in 0..=p.cap_last_cap.min(63) {
            if c.ambient & (1u64 << cap) != 0 {
                sys.prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as u64, u64::from(cap), 0).map_err(at(Step::Ambient, cap as usize))?;
            }
        }
    }
    if p.no_new_privs {
        sys.prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0).map_err(at(Step::NoNewPrivs, 0))?;
        if let Some(s) = &p.seccomp {
            sys.seccomp(&s.program, s.flags).map_err(at(Step::Seccomp, 0))?;
        }
    }
    sys.cloexec_from(3, io.keep_fds).map_err(at(Step::CloseFds, 0))?;
    sys.reset_signals().map_err(at(Step::Signals, 0))?;
    Ok(())
}
