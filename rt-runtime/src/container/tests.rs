//! Unit tests: config.json → [`Plan`] → the child's system calls, against a
//! fake [`Syscall`] that records every call.

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::fd::RawFd;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::init::{self, ChildIo, Step};
use super::oci::{self, Bundle, HostInfo, PlanOptions};
use super::sys::{Errno, SchedAttr, SysResult, Syscall};

/// Records calls; fails the call whose text starts with `fail_on`.
#[derive(Default)]
struct FakeSys {
    calls: RefCell<Vec<String>>,
    fail_on: Option<String>,
}

impl FakeSys {
    fn rec(&self, s: String) -> SysResult {
        let fail = self.fail_on.as_ref().is_some_and(|f| s.starts_with(f.as_str()));
        self.calls.borrow_mut().push(s);
        if fail {
            Err(Errno(libc::EPERM))
        } else {
            Ok(())
        }
    }
    fn has(&self, s: &str) -> bool {
        self.calls.borrow().iter().any(|c| c == s)
    }
    fn pos(&self, prefix: &str) -> usize {
        self.calls.borrow().iter().position(|c| c.starts_with(prefix)).unwrap_or_else(|| panic!("no call {prefix}: {:#?}", self.calls.borrow()))
    }
}

fn s(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

impl Syscall for FakeSys {
    fn unshare(&self, flags: i32) -> SysResult {
        self.rec(format!("unshare {flags:#x}"))
    }
    fn setns(&self, path: &CStr, nstype: i32) -> SysResult {
        self.rec(format!("setns {} {nstype:#x}", s(path)))
    }
    fn sethostname(&self, name: &CStr) -> SysResult {
        self.rec(format!("sethostname {}", s(name)))
    }
    fn setdomainname(&self, name: &CStr) -> SysResult {
        self.rec(format!("setdomainname {}", s(name)))
    }
    fn mount(&self, src: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: u64, data: Option<&CStr>) -> SysResult {
        self.rec(format!(
            "mount {} {} {} {flags:#x} {}",
            src.map(s).unwrap_or_default(),
            s(target),
            fstype.map(s).unwrap_or_default(),
            data.map(s).unwrap_or_default()
        ))
    }
    fn umount2(&self, target: &CStr, flags: i32) -> SysResult {
        self.rec(format!("umount2 {} {flags}", s(target)))
    }
    fn mkdir(&self, path: &CStr, _mode: u32) -> SysResult {
        self.rec(format!("mkdir {}", s(path)))
    }
    fn touch(&self, path: &CStr) -> SysResult {
        self.rec(format!("touch {}", s(path)))
    }
    fn symlink(&self, target: &CStr, link: &CStr) -> SysResult {
        self.rec(format!("symlink {} {}", s(target), s(link)))
    }
    fn mknod(&self, path: &CStr, mode: u32, dev: u64, uid: u32, gid: u32) -> SysResult {
        self.rec(format!("mknod {} {mode:o} {dev} {uid} {gid}", s(path)))
    }
    fn is_dir(&self, path: &CStr) -> SysResult<Option<bool>> {
        self.rec(format!("stat {}", s(path)))?;
        Ok(Some(s(path) == "/proc/acpi"))
    }
    fn chdir(&self, path: &CStr) -> SysResult {
        self.rec(format!("chdir {}", s(path)))
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult {
        self.rec(format!("pivot_root {} {}", s(new_root), s(put_old)))
    }
    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> SysResult {
        self.rec(format!("setrlimit {resource} {soft} {hard}"))
    }
    fn sched_setattr(&self, a: &SchedAttr) -> SysResult {
        self.rec(format!("sched_setattr policy={} prio={} nice={} flags={:#x} size={}", a.policy, a.priority, a.nice, a.flags, a.size))
    }
    fn ioprio_set(&self, class: u32, level: u32) -> SysResult {
        self.rec(format!("ioprio_set {class} {level}"))
    }
    fn set_affinity(&self, set: &libc::cpu_set_t) -> SysResult {
        // SAFETY: CPU_ISSET reads an initialised set.
        let cpus: Vec<String> = (0..8).filter(|&c| unsafe { libc::CPU_ISSET(c, set) }).map(|c| c.to_string()).collect();
        self.rec(format!("set_affinity {}", cpus.join(",")))
    }
    fn write_file(&self, path: &CStr, data: &[u8]) -> SysResult {
        self.rec(format!("write {} {}", s(path), String::from_utf8_lossy(data)))
    }
    fn setgroups(&self, gids: &[u32]) -> SysResult {
        self.rec(format!("setgroups {gids:?}"))
    }
    fn setgid(&self, gid: u32) -> SysResult {
        self.rec(format!("setgid {gid}"))
    }
    fn setuid(&self, uid: u32) -> SysResult {
        self.rec(format!("setuid {uid}"))
    }
    fn umask(&self, mask: u32) {
        let _ = self.rec(format!("umask {mask:o}"));
    }
    fn prctl(&self, option: i32, a2: u64, a3: u64, _a4: u64) -> SysResult {
        self.rec(format!("prctl {option} {a2} {a3}"))
    }
    fn capset(&self, e: u64, p: u64, i: u64) -> SysResult {
        self.rec(format!("capset eff={e:#x} prm={p:#x} inh={i:#x}"))
    }
    fn seccomp(&self, prog: &[seccompiler::sock_filter], flags: u32) -> SysResult {
        self.rec(format!("seccomp len={} flags={flags}", prog.len()))
    }
    fn netlink(&self, msg: &[u8]) -> SysResult {
        self.rec(format!("netlink {}", msg.len()))
    }
    fn close(&self, fd: RawFd) {
        let _ = self.rec(format!("close {fd}"));
    }
    fn dup2(&self, from: RawFd, to: RawFd) -> SysResult {
        self.rec(format!("dup2 {from} {to}"))
    }
    fn cloexec_from(&self, first: RawFd, keep: &[RawFd]) -> SysResult {
        self.rec(format!("cloexec_from {first} {keep:?}"))
    }
    fn reset_signals(&self) -> SysResult {
        self.rec("reset_signals".into())
    }
    fn read_byte(&self, fd: RawFd) -> SysResult<Option<u8>> {
        self.rec(format!("read {fd}"))?;
        Ok(Some(b'g'))
    }
    fn execve(&self, path: &CStr, argv: &[*const libc::c_char], _envp: &[*const libc::c_char]) -> Errno {
        let _ = self.rec(format!("execve {} argc={}", s(path), argv.len() - 1));
        Errno(0)
    }
}

fn temp_bundle(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cranlab-ctr-unit-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("rootfs/bin")).unwrap();
    std::fs::write(d.join("rootfs/bin/worker"), b"").unwrap();
    d
}

fn base_config() -> Value {
    json!({
        "ociVersion": "1.2.0",
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "cranlab-w0",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"] }
        ],
        "process": {
            "user": { "uid": 0, "gid": 0 },
            "args": ["/bin/worker", "--x"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": { "bounding": ["CAP_NET_RAW"], "effective": ["CAP_NET_RAW"], "permitted": ["CAP_NET_RAW"] },
            "rlimits": [{ "type": "RLIMIT_RTPRIO", "hard": 80, "soft": 80 }, { "type": "RLIMIT_MEMLOCK", "hard": 1048576, "soft": 1048576 }],
            "noNewPrivileges": true,
            "scheduler": { "policy": "SCHED_FIFO", "priority": 80 },
            "ioPriority": { "class": "IOPRIO_CLASS_RT", "priority": 2 },
            "execCPUAffinity": { "final": "1" }
        },
        "linux": {
            "namespaces": [{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }],
            "resources": { "cpu": { "cpus": "1", "mems": "0", "realtimeRuntime": 100000, "realtimePeriod": 1000000 }, "memory": { "limit": 67108864 }, "pids": { "limit": 32 } },
            "maskedPaths": ["/proc/acpi", "/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "seccomp": { "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{ "names": ["mount", "reboot"], "action": "SCMP_ACT_ERRNO" }] }
        }
    })
}

fn host() -> HostInfo {
    HostInfo {
        cap_last_cap: 40,
        cgroup_mounts: vec![("cpuset".into(), "cgroup".into(), "cpuset".into()), ("unified".into(), "cgroup2".into(), String::new())],
        host_devices: vec!["null".into(), "zero".into()],
    }
}

fn plan_of(tag: &str, cfg: &Value) -> Result<oci::Plan, oci::ConfigError> {
    let dir = temp_bundle(tag);
    let b = Bundle::from_json(&dir, &cfg.to_string());
    let r = b.and_then(|b| oci::plan(&b, "cranlab-unit", &host(), &PlanOptions::default()));
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run_fake(p: &oci::Plan, fail_on: Option<&str>) -> (FakeSys, init::Failure) {
    let sys = FakeSys { fail_on: fail_on.map(str::to_string), ..FakeSys::default() };
    let argv: Vec<*const libc::c_char> = p.argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> = vec![std::ptr::null()];
    let fin = p.affinity_final.as_deref().map(super::sys::host::cpu_set);
    let io = ChildIo {
        go_fd: 10,
        go_parent_fd: 11,
        log_fd: Some(12),
        stdin_fd: None,
        keep_fds: &[],
        argv: &argv,
        envp: &envp,
        affinity_initial: None,
        affinity_final: fin.as_ref(),
    };
    let f = init::run(p, &io, &sys);
    (sys, f)
}

#[test]
fn realtime_fields_map_to_kernel_calls() {
    let p = plan_of("rt", &base_config()).unwrap();
    assert_eq!(p.limits.cpus.as_deref(), Some("1"));
    assert_eq!(p.limits.memory_max, Some(64 << 20));
    assert_eq!(p.limits.pids_max, Some(32));
    assert_eq!(p.limits.rt_runtime_us, Some(100_000));
    assert!(p.limits.realtime);
    assert_eq!(p.cgroup_name, "cranlab/cranlab-unit");
    let (sys, f) = run_fake(&p, None);
    assert_eq!(f.step, Step::Exec, "{:#?}", sys.calls.borrow());
    assert!(sys.has("sched_setattr policy=1 prio=80 nice=0 flags=0x0 size=48"));
    assert!(sys.has(&format!("setrlimit {} 80 80", libc::RLIMIT_RTPRIO)));
    assert!(sys.has(&format!("setrlimit {} 1048576 1048576", libc::RLIMIT_MEMLOCK)));
    assert!(sys.has("ioprio_set 1 2"));
    assert!(sys.has("set_affinity 1"));
    assert!(sys.has("sethostname cranlab-w0"));
    assert!(sys.has(&format!("unshare {:#x}", libc::CLONE_NEWCGROUP)));
    assert!(sys.has("capset eff=0x2000 prm=0x2000 inh=0x0"));
    // Every capability but CAP_NET_RAW (13) leaves the bounding set.
    let drops = sys.calls.borrow().iter().filter(|c| c.starts_with(&format!("prctl {} ", libc::PR_CAPBSET_DROP))).count();
    assert_eq!(drops, 40);
    assert!(!sys.has(&format!("prctl {} 13 0", libc::PR_CAPBSET_DROP)));
    assert!(sys.has(&format!("prctl {} 1 0", libc::PR_SET_NO_NEW_PRIVS)));
    assert!(sys.has("execve /bin/worker argc=2"));
    // Order: scheduler before capabilities are dropped; seccomp after no_new_privs; exec last.
    assert!(sys.pos("sched_setattr") < sys.pos(&format!("prctl {} ", libc::PR_CAPBSET_DROP)));
    assert!(sys.pos(&format!("prctl {} 1", libc::PR_SET_NO_NEW_PRIVS)) < sys.pos("seccomp"));
    assert!(sys.pos("pivot_root") < sys.pos("mount tmpfs /proc/acpi"));
    assert!(sys.pos("seccomp") < sys.pos("execve"));
}

#[test]
fn mounts_masks_and_readonly_root() {
    let p = plan_of("mnt", &base_config()).unwrap();
    let root = p.rootfs.to_string_lossy().into_owned();
    let (sys, _) = run_fake(&p, None);
    assert!(sys.has(&format!("mount proc {root}/proc proc 0x0 ")));
    assert!(sys.has(&format!("mount tmpfs {root}/dev tmpfs {:#x} mode=755", libc::MS_NOSUID)));
    assert!(sys.has(&format!("mount /dev/null {root}/dev/null  {:#x} ", libc::MS_BIND)));
    assert!(sys.has("pivot_root . ."));
    assert!(sys.has(&format!("mount tmpfs /proc/acpi tmpfs {:#x} ", libc::MS_RDONLY)));
    assert!(sys.has(&format!("mount /dev/null /proc/kcore  {:#x} ", libc::MS_BIND)));
    assert!(sys.has(&format!("mount  /  {:#x} ", libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY)));
}

#[test]
fn failing_step_is_named() {
    let p = plan_of("fail", &base_config()).unwrap();
    let (_, f) = run_fake(&p, Some("sched_setattr"));
    assert_eq!(f.step, Step::Scheduler);
    let d = f.step.describe(&p, f.index);
    assert!(d.contains("process.scheduler") && d.contains("priority 80"), "{d}");
    let f2 = init::Failure::decode(&f.encode()).unwrap();
    assert_eq!(f2, f);
    let (_, f) = run_fake(&p, Some(&format!("setrlimit {}", libc::RLIMIT_MEMLOCK)));
    assert_eq!(f.step.describe(&p, f.index), "setrlimit RLIMIT_MEMLOCK (process.rlimits)");
}

fn refused(tag: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = base_config();
    edit(&mut c);
    plan_of(tag, &c).unwrap_err().to_string()
}

#[test]
fn unsupported_fields_are_refused_by_name() {
    let e = refused("u1", |c| c["process"]["scheduler"]["flags"] = json!(["SCHED_FLAG_UTIL_CLAMP_MIN"]));
    assert!(e.starts_with("process.scheduler.flags:"), "{e}");
    let e = refused("u2", |c| c["linux"]["resources"]["cpu"]["quota"] = json!(50000));
    assert!(e.starts_with("linux.resources.cpu.quota:"), "{e}");
    let e = refused("u3", |c| c["process"]["scheduler"]["latencyNice"] = json!(5));
    assert!(e.starts_with("process.scheduler.latencyNice: unknown field"), "{e}");
    let e = refused("u4", |c| c["process"]["scheduler"]["priority"] = json!(0));
    assert!(e.starts_with("process.scheduler.priority:"), "{e}");
    let e = refused("u5", |c| c["process"]["scheduler"] = json!({ "policy": "SCHED_FIFO" }));
    assert!(e.starts_with("process.scheduler.priority:"), "{e}");
    let e = refused("u6", |c| c["process"]["execCPUAffinity"]["final"] = json!("0"));
    assert!(e.starts_with("process.execCPUAffinity.final:"), "{e}");
    let e = refused("u7", |c| c["linux"]["resources"]["memory"]["swap"] = json!(1));
    assert!(e.starts_with("linux.resources.memory.swap:"), "{e}");
    let e = refused("u8", |c| c["process"]["capabilities"]["effective"] = json!([]));
    assert!(e.starts_with("process.capabilities.effective:"), "{e}");
    let e = refused("u9", |c| c["process"]["terminal"] = json!(true));
    assert!(e.starts_with("process.terminal:"), "{e}");
    let e = refused("u10", |c| c["linux"]["cgroupsPath"] = json!("/system.slice/x"));
    assert!(e.starts_with("linux.cgroupsPath:"), "{e}");
    let e = refused("u11", |c| c["linux"]["intelRdt"] = json!({ "closID": "x" }));
    assert!(e.starts_with("linux.intelRdt:"), "{e}");
}

#[test]
fn other_policies_and_flags() {
    let mut c = base_config();
    c["process"]["scheduler"] = json!({ "policy": "SCHED_RR", "priority": 5, "flags": ["SCHED_RESET_ON_FORK"] });
    let p = plan_of("rr", &c).unwrap();
    let (sys, _) = run_fake(&p, None);
    assert!(sys.has("sched_setattr policy=2 prio=5 nice=0 flags=0x1 size=48"));
    c["process"]["scheduler"] = json!({ "policy": "SCHED_OTHER", "nice": -5 });
    let p = plan_of("other", &c).unwrap();
    assert!(!p.limits.realtime);
    let (sys, _) = run_fake(&p, None);
    assert!(sys.has("sched_setattr policy=0 prio=0 nice=-5 flags=0x0 size=48"));
}

#[test]
fn cgroup_mount_expands_per_hierarchy() {
    let mut c = base_config();
    c["mounts"].as_array_mut().unwrap().push(json!({ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"] }));
    let p = plan_of("cg", &c).unwrap();
    let root = p.rootfs.to_string_lossy().into_owned();
    let (sys, _) = run_fake(&p, None);
    let base = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    assert!(sys.has(&format!("mount cgroup {root}/sys/fs/cgroup/cpuset cgroup {base:#x} cpuset")));
    assert!(sys.has(&format!("mount cgroup2 {root}/sys/fs/cgroup/unified cgroup2 {base:#x} ")));
}

#[test]
fn net_devices_are_brought_up_inside() {
    let mut c = base_config();
    c["linux"]["netDevices"] = json!({ "cranlab0w": { "name": "fh0" } });
    let p = plan_of("net", &c).unwrap();
    assert_eq!(p.net_devices.len(), 1);
    assert_eq!(p.net_devices[0].inner_name, "fh0");
    let (sys, _) = run_fake(&p, None);
    // lo and fh0
    assert_eq!(sys.calls.borrow().iter().filter(|c| c.starts_with("netlink")).count(), 2);
}

#[test]
fn features_lists_what_is_applied() {
    let f = super::features();
    assert_eq!(f["linux"]["seccomp"]["enabled"], json!(true));
    assert!(f["annotations"]["org.cranlab.rt-runtime.process.scheduler"].as_str().unwrap().contains("SCHED_FIFO"));
}
