//! Reading an OCI bundle (`config.json` with the `oci-spec` crate) and
//! turning it into a [`Plan`]: every path, string, mask and BPF program the
//! child needs, prepared before the clone so the child never allocates.
//!
//! **Nothing is ignored silently.** The raw JSON is walked first against
//! the list of fields rt-runtime applies ([`check_known_fields`]); any other
//! field in `process`, `linux`, `linux.resources` and their sub-objects
//! refuses the bundle with the field named. Real-time fields
//! (`process.scheduler`, `process.ioPriority`, `process.execCPUAffinity`,
//! `linux.resources.cpu.*`, RTPRIO/MEMLOCK/RTTIME rlimits) are all applied.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimitType, Spec};
use serde_json::Value;

use super::caps;
use super::seccomp;
use super::sys::SchedAttr;
use crate::cgroup::{parse_cpu_list, Limits};

/// A bundle that cannot be run as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// JSON path of the field (`process.scheduler.policy`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError { field: field.into(), reason: reason.into() }
}

const UNSUPPORTED: &str = "not supported by rt-runtime (refused rather than ignored)";

/// Fields rt-runtime applies, per JSON object path; `*` means "any key".
const KNOWN: &[(&str, &[&str])] = &[
    ("", &["ociVersion", "root", "mounts", "process", "hostname", "domainname", "linux", "annotations", "hooks"]),
    ("root", &["path", "readonly"]),
    (
        "process",
        &[
            "terminal",
            "consoleSize",
            "user",
            "args",
            "env",
            "cwd",
            "capabilities",
            "rlimits",
            "noNewPrivileges",
            "apparmorProfile",
            "oomScoreAdj",
            "selinuxLabel",
            "ioPriority",
            "scheduler",
            "execCPUAffinity",
        ],
    ),
    ("process.user", &["uid", "gid", "umask", "additionalGids"]),
    ("process.capabilities", &["bounding", "effective", "inheritable", "permitted", "ambient"]),
    ("process.scheduler", &["policy", "nice", "priority", "flags", "runtime", "deadline", "period"]),
    ("process.ioPriority", &["class", "priority"]),
    ("process.execCPUAffinity", &["initial", "final"]),
    (
        "linux",
        &[
            "namespaces",
            "uidMappings",
            "gidMappings",
            "sysctl",
            "resources",
            "cgroupsPath",
            "seccomp",
            "rootfsPropagation",
            "maskedPaths",
            "readonlyPaths",
            "devices",
            "netDevices",
            "mountLabel",
            "intelRdt",
            "personality",
            "memoryPolicy",
            "timeOffsets",
        ],
    ),
    ("linux.resources", &["cpu", "memory", "pids", "devices", "blockIO", "hugepageLimits", "network", "rdma", "unified"]),
    ("linux.resources.cpu", &["cpus", "mems", "shares", "realtimeRuntime", "realtimePeriod", "quota", "period", "burst", "idle"]),
    ("linux.resources.memory", &["limit"]),
    ("linux.resources.pids", &["limit"]),
];

/// Fields that are known but refused when present and not empty.
const REFUSED: &[&str] = &[
    "hooks",
    "linux.mountLabel",
    "linux.intelRdt",
    "linux.personality",
    "linux.memoryPolicy",
    "linux.timeOffsets",
    "linux.resources.devices",
    "linux.resources.blockIO",
    "linux.resources.hugepageLimits",
    "linux.resources.network",
    "linux.resources.rdma",
    "linux.resources.unified",
    "linux.resources.cpu.quota",
    "linux.resources.cpu.period",
    "linux.resources.cpu.burst",
    "linux.resources.cpu.idle",
    "process.apparmorProfile",
    "process.selinuxLabel",
];

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Refuses any field rt-runtime does not apply (unknown to it, or known and
/// unsupported), naming the field.
pub fn check_known_fields(raw: &Value) -> Result<(), ConfigError> {
    for (path, keys) in KNOWN {
        let mut obj = raw;
        if !path.is_empty() {
            for part in path.split('.') {
                match obj.get(part) {
                    Some(v) => obj = v,
                    None => {
                        obj = &Value::Null;
                        break;
                    }
                }
            }
        }
        let Some(map) = obj.as_object() else { continue };
        for (k, v) in map {
            let field = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            if !keys.contains(&k.as_str()) {
                return Err(bad(field, format!("unknown field, {UNSUPPORTED}")));
            }
            if REFUSED.contains(&field.as_str()) && !is_empty(v) {
                return Err(bad(field, UNSUPPORTED));
            }
        }
    }
    Ok(())
}

/// A bundle read from disk and checked.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The parsed configuration.
    pub spec: Spec,
}

impl Bundle {
    /// Reads `DIR/config.json`; refuses unknown or unsupported fields.
    pub fn load(dir: &Path) -> Result<Bundle, ConfigError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| bad("config.json", format!("read {}: {e}", path.display())))?;
        Bundle::from_json(dir, &text)
    }

    /// Parses a config given as text (the bundle directory resolves relative paths).
    pub fn from_json(dir: &Path, text: &str) -> Result<Bundle, ConfigError> {
        let raw: Value = serde_json::from_str(text).map_err(|e| bad("config.json", format!("not valid JSON: {e}")))?;
        check_known_fields(&raw)?;
        let spec: Spec = serde_json::from_value(raw).map_err(|e| bad("config.json", format!("not an OCI runtime config: {e}")))?;
        if !spec.version().starts_with("1.") {
            return Err(bad("ociVersion", format!("{:?}: only 1.x is supported", spec.version())));
        }
        Ok(Bundle { dir: dir.to_path_buf(), spec })
    }
}

/// What the planner needs to know about the host (a fake in unit tests).
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// Highest capability number the kernel knows (`/proc/sys/kernel/cap_last_cap`).
    pub cap_last_cap: u32,
    /// Cgroup filesystems to mount for a `cgroup` mount: (directory name
    /// under the mount point, filesystem type, mount data).
    pub cgroup_mounts: Vec<(String, String, String)>,
    /// Host device nodes that exist (for the default /dev entries).
    pub host_devices: Vec<String>,
}

impl HostInfo {
    /// Reads the running host.
    pub fn detect() -> HostInfo {
        let cap_last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        let mut cgroup_mounts = Vec::new();
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            for line in mi.lines() {
                let Some((pre, post)) = line.split_once(" - ") else { continue };
                let mp = pre.split_whitespace().nth(4).unwrap_or("");
                let mut post_it = post.split_whitespace();
                let fstype = post_it.next().unwrap_or("");
                let _src = post_it.next();
                let superopts = post_it.next().unwrap_or("");
                let Some(name) = mp.strip_prefix("/sys/fs/cgroup") else { continue };
                let name = name.trim_start_matches('/');
                match fstype {
                    "cgroup" => {
                        let data: Vec<&str> = superopts.split(',').filter(|o| *o != "rw" && *o != "ro").collect();
                        cgroup_mounts.push((name.to_string(), "cgroup".to_string(), data.join(",")));
                    }
                    "cgroup2" => cgroup_mounts.push((name.to_string(), "cgroup2".to_string(), String::new())),
                    _ => {}
                }
            }
        }
        let host_devices = DEFAULT_DEVICES.iter().filter(|d| Path::new("/dev").join(d).exists()).map(|d| d.to_string()).collect();
        HostInfo { cap_last_cap, cgroup_mounts, host_devices }
    }
}

/// The device nodes every container gets when its /dev is a fresh mount.
pub const DEFAULT_DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// One filesystem operation done in the child before `pivot_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsOp {
    /// `mkdir` (parents are separate ops).
    Mkdir(CString),
    /// Create an empty file to mount over.
    Touch(CString),
    /// `mount(2)`.
    Mount {
        /// Source.
        src: Option<CString>,
        /// Target.
        target: CString,
        /// Filesystem type.
        fstype: Option<CString>,
        /// `MS_*` flags.
        flags: u64,
        /// Data string.
        data: Option<CString>,
    },
    /// `symlink(target, link)`.
    Symlink(CString, CString),
    /// `mknod` + `chown`.
    Mknod {
        /// Path.
        path: CString,
        /// Mode with type bits.
        mode: u32,
        /// `makedev(major, minor)`.
        dev: u64,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
}

/// A namespace the child joins by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinNs {
    /// `/proc/PID/ns/net` or a bind-mounted namespace file.
    pub path: CString,
    /// `CLONE_NEW*` type.
    pub nstype: i32,
}

/// Capability sets to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
}

/// A link moved into the container's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    /// Name on the host (or in the source namespace).
    pub host_name: String,
    /// Name inside the container.
    pub inner_name: String,
    /// Pre-built rtnetlink "set up" request run in the child.
    pub up_msg: Vec<u8>,
}

/// Everything the child does, prepared by the parent.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `CLONE_NEW*` flags given to clone (the cgroup namespace is unshared
    /// later, after the cgroup is joined).
    pub clone_flags: i32,
    /// Unshare a cgroup namespace after the parent put us in our cgroup.
    pub unshare_cgroup: bool,
    /// Namespaces joined by path.
    pub join: Vec<JoinNs>,
    /// uid_map / gid_map written by the parent for a new user namespace.
    pub id_maps: Option<(String, String)>,
    /// Hostname.
    pub hostname: Option<CString>,
    /// Domain name.
    pub domainname: Option<CString>,
    /// rtnetlink "set up" requests: `lo` and every moved link.
    pub link_up: Vec<Vec<u8>>,
    /// Links to move in (parent side).
    pub net_devices: Vec<NetDevice>,
    /// Propagation flags applied recursively to `/` first.
    pub root_propagation: u64,
    /// Absolute rootfs path on the host.
    pub rootfs: CString,
    /// Ops before pivot_root, with a label each for errors.
    pub fs_ops: Vec<(FsOp, String)>,
    /// Masked paths (inside the container).
    pub masked: Vec<CString>,
    /// Read-only paths (inside the container).
    pub readonly: Vec<CString>,
    /// Remount the root read-only.
    pub root_readonly: bool,
    /// sysctl files and values.
    pub sysctl: Vec<(CString, Vec<u8>, String)>,
    /// oom_score_adj value.
    pub oom_score_adj: Option<Vec<u8>>,
    /// (resource, soft, hard, label).
    pub rlimits: Vec<(u32, u64, u64, &'static str)>,
    /// Scheduling attributes.
    pub sched: Option<SchedAttr>,
    /// (class, level).
    pub ioprio: Option<(u32, u32)>,
    /// Affinity set before anything else.
    pub affinity_initial: Option<Vec<usize>>,
    /// Affinity set just before exec.
    pub affinity_final: Option<Vec<usize>>,
    /// uid, gid, additional gids.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// umask.
    pub umask: Option<u32>,
    /// Capabilities; `None` leaves them as they are.
    pub caps: Option<CapSets>,
    /// Highest capability number.
    pub cap_last_cap: u32,
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// Compiled seccomp filter.
    pub seccomp: Option<seccomp::Compiled>,
    /// Working directory.
    pub cwd: CString,
    /// Program path inside the container.
    pub exec: CString,
    /// argv.
    pub argv: Vec<CString>,
    /// envp.
    pub envp: Vec<CString>,
    /// Cgroup limits (cgroups module).
    pub limits: Limits,
    /// Cgroup name (`cranlab/<id>` or from `linux.cgroupsPath`).
    pub cgroup_name: String,
    /// Plain sentences about what was adjusted.
    pub notes: Vec<String>,
}

fn cstr(field: &str, s: impl AsRef<[u8]>) -> Result<CString, ConfigError> {
    CString::new(s.as_ref().to_vec()).map_err(|_| bad(field, "contains a NUL byte"))
}

fn join_root(rootfs: &Path, dest: &Path) -> PathBuf {
    let rel = dest.strip_prefix("/").unwrap_or(dest);
    rootfs.join(rel)
}

/// Adds `mkdir` ops for `dir` and its parents below `rootfs`.
fn mkdir_p(ops: &mut Vec<(FsOp, String)>, rootfs: &Path, dir: &Path, field: &str) -> Result<(), ConfigError> {
    let rel = dir.strip_prefix(rootfs).unwrap_or(dir);
    let mut p = rootfs.to_path_buf();
    for c in rel.components() {
        p.push(c);
        let op = FsOp::Mkdir(cstr(field, p.as_os_str().as_bytes())?);
        if !ops.iter().any(|(o, _)| *o == op) {
            ops.push((op, format!("create directory {}", p.display())));
        }
    }
    Ok(())
}

/// Mount options: (flags, propagation flags, data, bind, recursive).
fn mount_options(opts: &[String]) -> (u64, u64, Vec<String>, bool, bool) {
    let mut flags = 0u64;
    let mut prop = 0u64;
    let mut data = Vec::new();
    let mut bind = false;
    let mut rec = false;
    for o in opts {
        let (set, clear): (u64, u64) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => {
                bind = true;
                (0, 0)
            }
            "rbind" => {
                bind = true;
                rec = true;
                (0, 0)
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                prop |= propagation(o).unwrap_or(0);
                (0, 0)
            }
            _ => {
                data.push(o.clone());
                (0, 0)
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, prop, data, bind, rec)
}

fn propagation(s: &str) -> Option<u64> {
    Some(match s {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

fn rlimit_resource(t: PosixRlimitType) -> (u32, &'static str) {
    match t {
        PosixRlimitType::RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        PosixRlimitType::RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        PosixRlimitType::RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        PosixRlimitType::RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        PosixRlimitType::RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        PosixRlimitType::RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        PosixRlimitType::RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        PosixRlimitType::RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        PosixRlimitType::RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        PosixRlimitType::RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        PosixRlimitType::RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        PosixRlimitType::RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        PosixRlimitType::RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        PosixRlimitType::RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        PosixRlimitType::RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        PosixRlimitType::RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

fn cap_mask(set: Option<&oci_spec::runtime::Capabilities>, field: &str) -> Result<u64, ConfigError> {
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        let name = serde_json::to_value(c).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let n = caps::number(&name).ok_or_else(|| bad(field, format!("{name}: unknown capability")))?;
        m |= 1 << n;
    }
    Ok(m)
}

fn cpu_list(field: &str, s: &str) -> Result<Vec<usize>, ConfigError> {
    let v = parse_cpu_list(s).map_err(|e| bad(field, format!("{s:?}: {e}")))?;
    if v.is_empty() {
        return Err(bad(field, "empty CPU list"));
    }
    Ok(v)
}

/// Resolves `args[0]` against `PATH` inside the rootfs, as runc does.
fn resolve_exec(rootfs: &Path, arg0: &str, env: &[String]) -> Result<String, ConfigError> {
    if arg0.contains('/') {
        return Ok(arg0.to_string());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let cand = format!("{}/{arg0}", dir.trim_end_matches('/'));
        if join_root(rootfs, Path::new(&cand)).is_file() {
            return Ok(cand);
        }
    }
    Err(bad("process.args[0]", format!("{arg0:?} not found in the container's PATH ({path})")))
}

/// Options that do not come from config.json.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Links to move into the container's network namespace: (name on the
    /// host or in the source namespace, name inside).
    pub net_devices: Vec<(String, String)>,
}

/// Turns a checked bundle into a [`Plan`] for container `id`.
pub fn plan(b: &Bundle, id: &str, host: &HostInfo, opts: &PlanOptions) -> Result<Plan, ConfigError> {
    let spec = &b.spec;
    let root = spec.root().as_ref().ok_or_else(|| bad("root", "missing"))?;
    let rootfs = if root.path().is_absolute() { root.path().clone() } else { b.dir.join(root.path()) };
    let rootfs = rootfs.canonicalize().map_err(|e| bad("root.path", format!("{}: {e}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(bad("root.path", format!("{} is not a directory", rootfs.display())));
    }
    let process = spec.process().as_ref().ok_or_else(|| bad("process", "missing"))?;
    if process.terminal() == Some(true) {
        return Err(bad("process.terminal", format!("true: a console is {UNSUPPORTED}")));
    }
    let linux = spec.linux().as_ref().ok_or_else(|| bad("linux", "missing"))?;
    let mut notes = Vec::new();

    // Namespaces.
    let mut clone_flags = 0;
    let mut unshare_cgroup = false;
    let mut join = Vec::new();
    let mut id_maps = None;
    let mut has_mount_ns = false;
    let mut has_net_ns = false;
    let mut has_uts_ns = false;
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let flag = match ns.typ() {
            LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
            LinuxNamespaceType::Network => libc::CLONE_NEWNET,
            LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
            LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
            LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
            LinuxNamespaceType::User => libc::CLONE_NEWUSER,
            LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
            LinuxNamespaceType::Time => return Err(bad(field, format!("time namespace: {UNSUPPORTED}"))),
        };
        match ns.path() {
            Some(p) => {
                if matches!(ns.typ(), LinuxNamespaceType::Pid | LinuxNamespaceType::User | LinuxNamespaceType::Mount) {
                    return Err(bad(format!("{field}.path"), format!("joining an existing {:?} namespace: {UNSUPPORTED}", ns.typ())));
                }
                join.push(JoinNs { path: cstr(&field, p.as_os_str().as_bytes())?, nstype: flag });
            }
            None => {
                if flag == libc::CLONE_NEWCGROUP {
                    unshare_cgroup = true;
                } else {
                    clone_flags |= flag;
                }
            }
        }
        match ns.typ() {
            LinuxNamespaceType::Mount => has_mount_ns = true,
            LinuxNamespaceType::Network => has_net_ns = ns.path().is_none(),
            LinuxNamespaceType::Uts => has_uts_ns = true,
            _ => {}
        }
    }
    if !has_mount_ns {
        return Err(bad("linux.namespaces", "a mount namespace is required (pivot_root)"));
    }
    if clone_flags & libc::CLONE_NEWUSER != 0 {
        let fmt = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>, f: &str| -> Result<String, ConfigError> {
            let m = m.filter(|m| !m.is_empty()).ok_or_else(|| bad(f, "a new user namespace needs mappings"))?;
            Ok(m.iter().map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size())).collect())
        };
        id_maps = Some((fmt(linux.uid_mappings().as_ref(), "linux.uidMappings")?, fmt(linux.gid_mappings().as_ref(), "linux.gidMappings")?));
    } else if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(bad("linux.uidMappings", "given without a user namespace"));
    }

    let hostname = match spec.hostname() {
        Some(h) if !h.is_empty() => {
            if !has_uts_ns {
                return Err(bad("hostname", "set without a uts namespace"));
            }
            Some(cstr("hostname", h)?)
        }
        _ => None,
    };
    let domainname = match spec.domainname() {
        Some(h) if !h.is_empty() => Some(cstr("domainname", h)?),
        _ => None,
    };

    // Network devices: from config (`linux.netDevices`) and the caller.
    let mut net_devices = Vec::new();
    let mut devs: Vec<(String, String)> = opts.net_devices.clone();
    if let Some(nd) = linux.net_devices() {
        let mut keys: Vec<_> = nd.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (host, d) in keys {
            devs.push((host.clone(), d.name().clone().unwrap_or_else(|| host.clone())));
        }
    }
    let mut link_up = Vec::new();
    if has_net_ns {
        link_up.push(super::netlink::set_up("lo"));
    }
    for (host, inner) in devs {
        if !has_net_ns {
            return Err(bad("linux.netDevices", "moving links needs a new network namespace"));
        }
        if inner.is_empty() || inner.len() > 15 || inner.contains('/') {
            return Err(bad("linux.netDevices", format!("{inner:?} is not a valid interface name")));
        }
        let up = super::netlink::set_up(&inner);
        link_up.push(up.clone());
        net_devices.push(NetDevice { host_name: host, inner_name: inner, up_msg: up });
    }

    // Mounts.
    let root_propagation = match linux.rootfs_propagation() {
        Some(p) if !p.is_empty() => propagation(p).ok_or_else(|| bad("linux.rootfsPropagation", format!("{p:?} is not a propagation mode")))?,
        _ => libc::MS_PRIVATE | libc::MS_REC,
    };
    let mut fs_ops: Vec<(FsOp, String)> = Vec::new();
    let mut dev_is_mount = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let field = format!("mounts[{i}]");
        let dest = m.destination();
        if !dest.is_absolute() || dest.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(bad(format!("{field}.destination"), format!("{} must be absolute without `..`", dest.display())));
        }
        if dest == Path::new("/dev") {
            dev_is_mount = true;
        }
        let target = join_root(&rootfs, dest);
        let typ = m.typ().clone().unwrap_or_default();
        let (flags, prop, data, bind_opt, rec) = mount_options(m.options().as_deref().unwrap_or(&[]));
        let bind = bind_opt || typ == "bind";
        let label = format!("mount {} on {} ({field})", if bind { "bind" } else { &typ }, dest.display());
        if typ == "cgroup" {
            // tmpfs with one cgroup filesystem per host hierarchy, showing the
            // container's own cgroup (cgroup namespace).
            mkdir_p(&mut fs_ops, &rootfs, &target, &field)?;
            let t = cstr(&field, target.as_os_str().as_bytes())?;
            fs_ops.push((
                FsOp::Mount {
                    src: Some(cstr(&field, "tmpfs")?),
                    target: t.clone(),
                    fstype: Some(cstr(&field, "tmpfs")?),
                    flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    data: Some(cstr(&field, "mode=755")?),
                },
                format!("mount tmpfs on {} ({field})", dest.display()),
            ));
            for (name, fstype, cdata) in &host.cgroup_mounts {
                if name.is_empty() {
                    // Pure v2 host: the single hierarchy is the mount point itself.
                    fs_ops.pop();
                }
                let sub = if name.is_empty() { target.clone() } else { target.join(name) };
                if !name.is_empty() {
                    fs_ops.push((FsOp::Mkdir(cstr(&field, sub.as_os_str().as_bytes())?), format!("create directory {}", sub.display())));
                }
                fs_ops.push((
                    FsOp::Mount {
                        src: Some(cstr(&field, fstype.as_bytes())?),
                        target: cstr(&field, sub.as_os_str().as_bytes())?,
                        fstype: Some(cstr(&field, fstype.as_bytes())?),
                        flags: flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        data: if cdata.is_empty() { None } else { Some(cstr(&field, cdata.as_bytes())?) },
                    },
                    format!("mount {fstype} {cdata} on {} ({field})", Path::new(dest).join(name).display()),
                ));
            }
            if flags & libc::MS_RDONLY != 0 && host.cgroup_mounts.iter().all(|(n, _, _)| !n.is_empty()) {
                fs_ops.push((
                    FsOp::Mount {
                        src: None,
                        target: t,
                        fstype: None,
                        flags: libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        data: Some(cstr(&field, "mode=755")?),
                    },
                    format!("remount tmpfs on {} read-only ({field})", dest.display()),
                ));
            }
            continue;
        }
        let src_path = m.source().clone().unwrap_or_else(|| PathBuf::from(&typ));
        let src_host = if bind && src_path.is_relative() { b.dir.join(&src_path) } else { src_path.clone() };
        if bind {
            let meta = std::fs::metadata(&src_host).map_err(|e| bad(format!("{field}.source"), format!("{}: {e}", src_host.display())))?;
            if let Some(parent) = target.parent() {
                mkdir_p(&mut fs_ops, &rootfs, parent, &field)?;
            }
            if meta.is_dir() {
                mkdir_p(&mut fs_ops, &rootfs, &target, &field)?;
            } else {
                fs_ops.push((FsOp::Touch(cstr(&field, target.as_os_str().as_bytes())?), format!("create mount point {}", dest.display())));
            }
        } else {
            mkdir_p(&mut fs_ops, &rootfs, &target, &field)?;
        }
        let t = cstr(&field, target.as_os_str().as_bytes())?;
        let data_s = if data.is_empty() { None } else { Some(cstr(&field, data.join(","))?) };
        if bind {
            fs_ops.push((
                FsOp::Mount {
                    src: Some(cstr(&field, src_host.as_os_str().as_bytes())?),
                    target: t.clone(),
                    fstype: None,
                    flags: libc::MS_BIND | if rec { libc::MS_REC } else { 0 },
                    data: None,
                },
                label.clone(),
            ));
            if flags != 0 {
                fs_ops.push((
                    FsOp::Mount { src: None, target: t.clone(), fstype: None, flags: flags | libc::MS_BIND | libc::MS_REMOUNT, data: None },
                    format!("remount {} with its options ({field})", dest.display()),
                ));
            }
        } else {
            fs_ops.push((
                FsOp::Mount {
                    src: Some(cstr(&field, src_path.as_os_str().as_bytes())?),
                    target: t.clone(),
                    fstype: Some(cstr(&field, typ.as_bytes())?),
                    flags,
                    data: data_s,
                },
                label.clone(),
            ));
        }
        if prop != 0 {
            fs_ops.push((FsOp::Mount { src: None, target: t, fstype: None, flags: prop, data: None }, format!("set propagation of {} ({field})", dest.display())));
        }
    }
    if dev_is_mount {
        let dev = rootfs.join("dev");
        for d in &host.host_devices {
            let target = dev.join(d);
            let tc = cstr("mounts", target.as_os_str().as_bytes())?;
            fs_ops.push((FsOp::Touch(tc.clone()), format!("create /dev/{d}")));
            fs_ops.push((
                FsOp::Mount { src: Some(cstr("mounts", format!("/dev/{d}"))?), target: tc, fstype: None, flags: libc::MS_BIND, data: None },
                format!("bind-mount /dev/{d} from the host"),
            ));
        }
        for (t, l) in [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr")] {
            let link = dev.join(l);
            fs_ops.push((FsOp::Symlink(cstr("mounts", t)?, cstr("mounts", link.as_os_str().as_bytes())?), format!("symlink /dev/{l}")));
        }
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let field = format!("linux.devices[{i}]");
        use oci_spec::runtime::LinuxDeviceType as T;
        let kind = match d.typ() {
            T::C | T::U => libc::S_IFCHR,
            T::B => libc::S_IFBLK,
            T::P => libc::S_IFIFO,
            T::A => return Err(bad(format!("{field}.type"), "`a` is not a device type")),
        };
        let target = join_root(&rootfs, d.path());
        if let Some(parent) = target.parent() {
            mkdir_p(&mut fs_ops, &rootfs, parent, &field)?;
        }
        fs_ops.push((
            FsOp::Mknod {
                path: cstr(&field, target.as_os_str().as_bytes())?,
                mode: kind | d.file_mode().unwrap_or(0o666),
                dev: libc::makedev(d.major() as u32, d.minor() as u32),
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            },
            format!("create device {} ({field})", d.path().display()),
        ));
    }
    let masked = linux.masked_paths().iter().flatten().map(|p| cstr("linux.maskedPaths", p)).collect::<Result<_, _>>()?;
    let readonly = linux.readonly_paths().iter().flatten().map(|p| cstr("linux.readonlyPaths", p)).collect::<Result<_, _>>()?;
    let mut sysctl = Vec::new();
    if let Some(s) = linux.sysctl() {
        let mut keys: Vec<_> = s.iter().collect();
        keys.sort();
        for (k, v) in keys {
            if k.contains('/') || k.contains("..") {
                return Err(bad(format!("linux.sysctl.{k}"), "not a sysctl name"));
            }
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            sysctl.push((cstr("linux.sysctl", path)?, v.as_bytes().to_vec(), format!("sysctl {k}={v}")));
        }
    }

    // Process.
    let user = process.user();
    if user.username().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(bad("process.user.username", UNSUPPORTED));
    }
    let mut rlimits = Vec::new();
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        let (res, name) = rlimit_resource(r.typ());
        if r.soft() > r.hard() {
            return Err(bad(format!("process.rlimits[{i}]"), format!("{name}: soft {} above hard {}", r.soft(), r.hard())));
        }
        rlimits.push((res, r.soft(), r.hard(), name));
    }
    let oom_score_adj = process.oom_score_adj().map(|v| v.to_string().into_bytes());

    // Scheduling: every field is applied or refused.
    let mut realtime = false;
    let sched = match process.scheduler() {
        None => None,
        Some(s) => {
            let mut a = SchedAttr { size: std::mem::size_of::<SchedAttr>() as u32, ..SchedAttr::default() };
            let (policy, name) = match s.policy() {
                LinuxSchedulerPolicy::SchedOther => (libc::SCHED_OTHER as u32, "SCHED_OTHER"),
                LinuxSchedulerPolicy::SchedFifo => (libc::SCHED_FIFO as u32, "SCHED_FIFO"),
                LinuxSchedulerPolicy::SchedRr => (libc::SCHED_RR as u32, "SCHED_RR"),
                LinuxSchedulerPolicy::SchedBatch => (libc::SCHED_BATCH as u32, "SCHED_BATCH"),
                LinuxSchedulerPolicy::SchedIdle => (libc::SCHED_IDLE as u32, "SCHED_IDLE"),
                LinuxSchedulerPolicy::SchedDeadline => (super::sys::SCHED_DEADLINE, "SCHED_DEADLINE"),
                LinuxSchedulerPolicy::SchedIso => return Err(bad("process.scheduler.policy", "SCHED_ISO does not exist in mainline Linux")),
            };
            a.policy = policy;
            let rt = matches!(s.policy(), LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr);
            realtime = rt;
            match (rt, s.priority()) {
                (true, Some(p)) if (1..=99).contains(p) => a.priority = *p as u32,
                (true, Some(p)) => return Err(bad("process.scheduler.priority", format!("{p} is outside 1..99 for {name}"))),
                (true, None) => return Err(bad("process.scheduler.priority", format!("{name} needs a priority (1..99)"))),
                (false, Some(p)) if *p != 0 => return Err(bad("process.scheduler.priority", format!("{p}: {name} takes no priority"))),
                _ => {}
            }
            if let Some(n) = s.nice() {
                if rt || policy == super::sys::SCHED_DEADLINE {
                    if *n != 0 {
                        return Err(bad("process.scheduler.nice", format!("{n}: {name} has no nice value")));
                    }
                } else if !(-20..=19).contains(n) {
                    return Err(bad("process.scheduler.nice", format!("{n} is outside -20..19")));
                }
                a.nice = *n;
            }
            let dl = [("runtime", s.runtime()), ("deadline", s.deadline()), ("period", s.period())];
            if policy == super::sys::SCHED_DEADLINE {
                for (f, v) in dl {
                    if v.is_none() {
                        return Err(bad(format!("process.scheduler.{f}"), "SCHED_DEADLINE needs runtime, deadline and period"));
                    }
                }
                a.runtime = s.runtime().unwrap_or(0);
                a.deadline = s.deadline().unwrap_or(0);
                a.period = s.period().unwrap_or(0);
            } else {
                for (f, v) in dl {
                    if v.is_some_and(|v| v != 0) {
                        return Err(bad(format!("process.scheduler.{f}"), format!("only for SCHED_DEADLINE, not {name}")));
                    }
                }
            }
            for fl in s.flags().iter().flatten() {
                a.flags |= match fl {
                    LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                    LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                    LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                    other => return Err(bad("process.scheduler.flags", format!("{other:?}: {UNSUPPORTED} (needs values the spec does not carry)"))),
                };
            }
            Some(a)
        }
    };
    let ioprio = match process.io_priority() {
        None => None,
        Some(p) => {
            use oci_spec::runtime::IOPriorityClass as C;
            let class = match p.class() {
                C::IoprioClassRt => 1,
                C::IoprioClassBe => 2,
                C::IoprioClassIdle => 3,
            };
            if !(0..=7).contains(&p.priority()) {
                return Err(bad("process.ioPriority.priority", format!("{} is outside 0..7", p.priority())));
            }
            Some((class, p.priority() as u32))
        }
    };

    // Resources → cgroup limits.
    let mut limits = Limits { realtime, ..Limits::default() };
    let mut resources_cpus = None;
    if let Some(r) = linux.resources() {
        if let Some(c) = r.cpu() {
            if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                resources_cpus = Some(cpu_list("linux.resources.cpu.cpus", cpus)?);
                limits.cpus = Some(cpus.to_string());
            }
            if let Some(m) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                cpu_list("linux.resources.cpu.mems", m)?;
                limits.mems = Some(m.to_string());
            }
            if let Some(sh) = c.shares() {
                if !(2..=262_144).contains(&sh) {
                    return Err(bad("linux.resources.cpu.shares", format!("{sh} is outside 2..262144")));
                }
                limits.cpu_weight = Some(1 + ((sh - 2) * 9999) / 262_142);
            }
            if let Some(rt) = c.realtime_runtime() {
                limits.rt_runtime_us = Some(rt);
            }
            if let Some(p) = c.realtime_period() {
                limits.rt_period_us = Some(p);
            }
        }
        if let Some(m) = r.memory() {
            if let Some(l) = m.limit() {
                if l > 0 {
                    limits.memory_max = Some(l as u64);
                } else if l != -1 {
                    return Err(bad("linux.resources.memory.limit", format!("{l} is not a limit")));
                }
            }
            for (f, set) in [
                ("reservation", m.reservation().is_some()),
                ("swap", m.swap().is_some()),
                ("kernel", m.kernel().is_some()),
                ("kernelTCP", m.kernel_tcp().is_some()),
                ("swappiness", m.swappiness().is_some()),
                ("disableOOMKiller", m.disable_oom_killer().is_some()),
            ] {
                if set {
                    return Err(bad(format!("linux.resources.memory.{f}"), UNSUPPORTED));
                }
            }
        }
        if let Some(p) = r.pids() {
            if p.limit() > 0 {
                limits.pids_max = Some(p.limit() as u64);
            }
        }
    }
    let cgroup_name = match linux.cgroups_path() {
        Some(p) if !p.as_os_str().is_empty() => {
            let s = p.to_string_lossy().trim_start_matches('/').to_string();
            if !s.starts_with(crate::cgroup::PREFIX) {
                return Err(bad("linux.cgroupsPath", format!("{s:?}: rt-runtime only creates cgroups under `cranlab*`")));
            }
            s
        }
        _ => format!("cranlab/{id}"),
    };

    // CPU affinity: execCPUAffinity wins; else the cpuset's CPUs.
    let mut affinity_initial = None;
    let mut affinity_final = resources_cpus.clone();
    if let Some(a) = process.exec_cpu_affinity() {
        if let Some(s) = a.initial() {
            affinity_initial = Some(cpu_list("process.execCPUAffinity.initial", s)?);
        }
        if let Some(s) = a.cpu_affinity_final() {
            affinity_final = Some(cpu_list("process.execCPUAffinity.final", s)?);
        }
    }
    if let (Some(f), Some(c)) = (&affinity_final, &resources_cpus) {
        if let Some(x) = f.iter().find(|x| !c.contains(x)) {
            return Err(bad("process.execCPUAffinity.final", format!("cpu {x} is outside linux.resources.cpu.cpus")));
        }
    }

    // Capabilities, checked against what execve will really leave.
    let caps = match process.capabilities() {
        None => None,
        Some(c) => {
            let s = CapSets {
                bounding: cap_mask(c.bounding().as_ref(), "process.capabilities.bounding")?,
                effective: cap_mask(c.effective().as_ref(), "process.capabilities.effective")?,
                permitted: cap_mask(c.permitted().as_ref(), "process.capabilities.permitted")?,
                inheritable: cap_mask(c.inheritable().as_ref(), "process.capabilities.inheritable")?,
                ambient: cap_mask(c.ambient().as_ref(), "process.capabilities.ambient")?,
            };
            check_caps(&s, user.uid())?;
            Some(s)
        }
    };

    let seccomp = match linux.seccomp() {
        None => None,
        Some(s) => Some(seccomp::compile(s).map_err(|e| {
            let (f, r) = e.split_once(": ").unwrap_or(("linux.seccomp", &e));
            bad(f, r)
        })?),
    };

    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(bad("process.args", "empty"));
    }
    let env = process.env().clone().unwrap_or_default();
    let exec = resolve_exec(&rootfs, &args[0], &env)?;
    if !process.cwd().is_absolute() {
        return Err(bad("process.cwd", "must be absolute"));
    }
    Ok(Plan {
        clone_flags,
        unshare_cgroup,
        join,
        id_maps,
        hostname,
        domainname,
        link_up,
        net_devices,
        root_propagation,
        rootfs: cstr("root.path", rootfs.as_os_str().as_bytes())?,
        fs_ops,
        masked,
        readonly,
        root_readonly: root.readonly().unwrap_or(false),
        sysctl,
        oom_score_adj,
        rlimits,
        sched,
        ioprio,
        affinity_initial,
        affinity_final,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        caps,
        cap_last_cap: host.cap_last_cap,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        seccomp,
        cwd: cstr("process.cwd", process.cwd().as_os_str().as_bytes())?,
        exec: cstr("process.args[0]", exec)?,
        argv: args.iter().map(|a| cstr("process.args", a)).collect::<Result<_, _>>()?,
        envp: env.iter().map(|a| cstr("process.env", a)).collect::<Result<_, _>>()?,
        limits,
        cgroup_name,
        notes: std::mem::take(&mut notes),
    })
}

/// Refuses capability sets that `execve(2)` would not leave as configured.
///
/// For uid 0 the kernel treats the program as having every file capability,
/// so after exec permitted = effective = bounding ∪ inheritable and ambient
/// is cleared; for other uids permitted = effective = ambient.
pub fn check_caps(s: &CapSets, uid: u32) -> Result<(), ConfigError> {
    let show = |m: u64| format!("[{}]", caps::names(m).join(", "));
    if s.ambient & !(s.permitted & s.inheritable) != 0 {
        return Err(bad("process.capabilities.ambient", format!("{} must be in both permitted and inheritable", show(s.ambient & !(s.permitted & s.inheritable)))));
    }
    if s.permitted & !s.bounding != 0 && uid == 0 {
        return Err(bad("process.capabilities.permitted", format!("{} outside the bounding set", show(s.permitted & !s.bounding))));
    }
    let after = if uid == 0 { s.bounding | s.inheritable } else { s.ambient };
    if s.effective != after || s.permitted != after {
        let why = if uid == 0 {
            "a uid-0 process gets bounding ∪ inheritable as permitted and effective at exec"
        } else {
            "a non-root process keeps only its ambient set across exec"
        };
        return Err(bad(
            "process.capabilities.effective",
            format!("{} with permitted {} cannot hold after exec ({why}: {}); make them equal", show(s.effective), show(s.permitted), show(after)),
        ));
    }
    Ok(())
}
