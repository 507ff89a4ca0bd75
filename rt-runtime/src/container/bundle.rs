//! Building the minimal worker bundle: a read-only rootfs holding only the
//! worker binary (and its shared libraries if it is not static), mount
//! points for /dev, /proc, /sys, /tmp, and a `config.json` with the
//! real-time settings (SCHED_FIFO, cpuset, RTPRIO/MEMLOCK rlimits), dropped
//! capabilities, no_new_privs and a seccomp deny-list.
//!
//! [`build_bundle`] is what `cranlab` calls (through
//! [`super::ContainerDeployment`]); `scripts/build-bundle.sh` calls the same
//! function through `rt-runtime bundle`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::deploy::{SchedPolicy, WorkerSpec};

/// Errors from building a bundle; messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A filesystem step failed.
    #[error("{step} {}: {err}", path.display())]
    Io {
        /// What was being done.
        step: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// The spec cannot be turned into a bundle.
    #[error("bundle spec: {0}")]
    Invalid(String),
}

fn io<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BundleError + 'a {
    move |err| BundleError::Io { step, path: path.to_path_buf(), err }
}

/// Syscalls the worker bundle's seccomp filter refuses with EPERM: host
/// administration, module loading, namespace and mount changes, tracing,
/// kernel keyrings and BPF (the worker gets its sockets ready-made).
pub const SECCOMP_DENY: &[&str] = &[
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "mount",
    "move_mount",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "userfaultfd",
    "uselib",
    "vhangup",
];

/// Capabilities the worker keeps: CAP_NET_RAW for its AF_PACKET/AF_XDP
/// socket and CAP_IPC_LOCK for `mlockall` and an AF_XDP UMEM beyond
/// RLIMIT_MEMLOCK (hosts whose runtime lacks CAP_SYS_RESOURCE cannot raise
/// that limit, as on the development host). Scheduling needs none: the
/// runtime sets SCHED_FIFO before exec, and RLIMIT_RTPRIO covers the
/// worker's own threads.
pub const WORKER_CAPS: &[&str] = &["CAP_NET_RAW", "CAP_IPC_LOCK"];

/// RLIMIT_MEMLOCK for a bundle that asks for none: unlimited when this
/// process may raise limits (CAP_SYS_RESOURCE), else the current hard limit.
pub fn default_memlock() -> u64 {
    reachable_limit(nix::sys::resource::Resource::RLIMIT_MEMLOCK, u64::MAX)
}

/// `wanted`, or the current hard limit of `res` when this process cannot
/// raise limits (no CAP_SYS_RESOURCE) and `wanted` is above it.
pub fn reachable_limit(res: nix::sys::resource::Resource, wanted: u64) -> u64 {
    let has_sys_resource = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string())))
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .is_some_and(|m| m & (1 << 24) != 0);
    if has_sys_resource {
        return wanted;
    }
    nix::sys::resource::getrlimit(res).map(|(_, hard)| hard.min(wanted)).unwrap_or(wanted)
}

/// What goes into a bundle.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    /// Host binary copied to `/bin/<file name>` in the rootfs.
    pub program: PathBuf,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// Environment.
    pub env: Vec<String>,
    /// Hostname inside.
    pub hostname: String,
    /// cpuset CPUs (empty: no cpuset limit).
    pub cpus: Vec<usize>,
    /// CPU the process is pinned to at exec (`process.execCPUAffinity.final`).
    pub pin_cpu: Option<usize>,
    /// Scheduling policy.
    pub sched: SchedPolicy,
    /// RT budget, µs per period (None: the cgroup module assigns a default and says so).
    pub rt_runtime_us: Option<i64>,
    /// RT period, µs.
    pub rt_period_us: Option<u64>,
    /// Memory limit, bytes.
    pub memory_bytes: Option<u64>,
    /// pids.max.
    pub pids_max: Option<u64>,
    /// Capabilities kept (all five sets; inheritable and ambient empty).
    pub capabilities: Vec<String>,
    /// RLIMIT_MEMLOCK (None: [`default_memlock`]).
    pub memlock_bytes: Option<u64>,
    /// `process.noNewPrivileges`.
    pub no_new_privileges: bool,
    /// Install the [`SECCOMP_DENY`] filter.
    pub seccomp: bool,
    /// Read-only root.
    pub readonly_root: bool,
    /// Mount the container's cgroup read-only at /sys/fs/cgroup.
    pub cgroup_mount: bool,
    /// Links to move in: (name outside, name inside) → `linux.netDevices`.
    pub net_devices: Vec<(String, String)>,
    /// Extra host files copied into the rootfs: (host path, path inside).
    pub extra_files: Vec<(PathBuf, String)>,
    /// Join this existing network namespace instead of a new one.
    pub netns_path: Option<PathBuf>,
}

impl BundleSpec {
    /// The defaults for a real-time worker: SCHED_FIFO 80, 256 MiB, 64 tasks,
    /// only [`WORKER_CAPS`], no_new_privs, seccomp, read-only root.
    pub fn worker(program: impl Into<PathBuf>, args: Vec<String>) -> BundleSpec {
        BundleSpec {
            program: program.into(),
            args,
            env: vec!["PATH=/bin".into()],
            hostname: "cranlab-worker".into(),
            cpus: Vec::new(),
            pin_cpu: None,
            sched: SchedPolicy::Fifo(80),
            rt_runtime_us: None,
            rt_period_us: None,
            memory_bytes: Some(256 << 20),
            pids_max: Some(64),
            capabilities: WORKER_CAPS.iter().map(|s| s.to_string()).collect(),
            memlock_bytes: None,
            no_new_privileges: true,
            seccomp: true,
            readonly_root: true,
            cgroup_mount: true,
            net_devices: Vec::new(),
            extra_files: Vec::new(),
            netns_path: None,
        }
    }

    /// The bundle for a [`WorkerSpec`]: its program and arguments (`{iface}`
    /// becomes the inner link name), cores (pinned to the first), policy,
    /// memory limit, and its link moved in under `inner_name`.
    pub fn for_worker(spec: &WorkerSpec) -> BundleSpec {
        let args: Vec<String> = crate::bare::expand_args(&spec.args, &spec.link.inner_name)
            .into_iter()
            .map(|a: OsString| a.to_string_lossy().into_owned())
            .collect();
        let mut b = BundleSpec::worker(&spec.program, args);
        b.hostname = spec.name.clone();
        b.cpus = spec.cpus.clone();
        b.pin_cpu = spec.cpus.first().copied();
        b.sched = spec.sched;
        if spec.memory_bytes > 0 {
            b.memory_bytes = Some(spec.memory_bytes);
        }
        b.net_devices = vec![(spec.link.ifname.clone(), spec.link.inner_name.clone())];
        b
    }

    /// Path of the program inside the container.
    pub fn exec_path(&self) -> String {
        format!("/bin/{}", self.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "worker".into()))
    }
}

fn cpu_list(cpus: &[usize]) -> String {
    crate::cgroup::format_cpu_list(cpus)
}

/// The `config.json` for a spec (rootfs at `rootfs`, relative to the bundle).
pub fn config_json(s: &BundleSpec) -> Value {
    let caps: Vec<&str> = s.capabilities.iter().map(String::as_str).collect();
    let memlock = s.memlock_bytes.unwrap_or_else(default_memlock);
    let mut args = vec![s.exec_path()];
    args.extend(s.args.iter().cloned());
    let mut rlimits = vec![
        json!({ "type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096 }),
        json!({ "type": "RLIMIT_MEMLOCK", "hard": memlock, "soft": memlock }),
    ];
    let mut process = json!({
        "terminal": false,
        "user": { "uid": 0, "gid": 0 },
        "args": args,
        "env": s.env,
        "cwd": "/",
        "capabilities": { "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": [] },
        "noNewPrivileges": s.no_new_privileges,
    });
    if let SchedPolicy::Fifo(p) = s.sched {
        let rtprio = reachable_limit(nix::sys::resource::Resource::RLIMIT_RTPRIO, u64::from(p));
        rlimits.push(json!({ "type": "RLIMIT_RTPRIO", "hard": rtprio, "soft": rtprio }));
        process["scheduler"] = json!({ "policy": "SCHED_FIFO", "priority": p });
    }
    process["rlimits"] = json!(rlimits);
    if let Some(c) = s.pin_cpu {
        process["execCPUAffinity"] = json!({ "final": c.to_string() });
    }
    let mut cpu = json!({});
    if !s.cpus.is_empty() {
        cpu["cpus"] = json!(cpu_list(&s.cpus));
        cpu["mems"] = json!("0");
    }
    if let Some(r) = s.rt_runtime_us {
        cpu["realtimeRuntime"] = json!(r);
        cpu["realtimePeriod"] = json!(s.rt_period_us.unwrap_or(1_000_000));
    }
    let mut resources = json!({ "cpu": cpu });
    if let Some(m) = s.memory_bytes {
        resources["memory"] = json!({ "limit": m });
    }
    if let Some(p) = s.pids_max {
        resources["pids"] = json!({ "limit": p });
    }
    let mut mounts = vec![
        json!({ "destination": "/proc", "type": "proc", "source": "proc" }),
        json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }),
        json!({ "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] }),
        json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=16m"] }),
        json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] }),
    ];
    if s.cgroup_mount {
        mounts.push(json!({ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }));
    }
    let mut linux = json!({
        "namespaces": [{ "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }],
        "resources": resources,
        "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    });
    if s.seccomp {
        linux["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{ "names": SECCOMP_DENY, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM }]
        });
    }
    if let Some(p) = &s.netns_path {
        linux["namespaces"] = json!([{ "type": "pid" }, { "type": "network", "path": p }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }]);
    }
    if !s.net_devices.is_empty() {
        let mut nd = serde_json::Map::new();
        for (outside, inside) in &s.net_devices {
            nd.insert(outside.clone(), json!({ "name": inside }));
        }
        linux["netDevices"] = Value::Object(nd);
    }
    json!({
        // 1.0.2 keeps the bundle runnable by Debian 12's crun 1.8.1 (it refuses
        // newer versions); linux.netDevices is a 1.2 field.
        "ociVersion": if s.net_devices.is_empty() { "1.0.2" } else { "1.2.0" },
        "root": { "path": "rootfs", "readonly": s.readonly_root },
        "hostname": s.hostname,
        "mounts": mounts,
        "process": process,
        "linux": linux,
        "annotations": { "org.cranlab.bundle": "worker" }
    })
}

/// Shared libraries a dynamic binary needs (from `ldd`); empty for static ones.
fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>, BundleError> {
    crate::elf::shared_libs(bin).map_err(|e| BundleError::Io { step: e.step, path: e.path, err: e.err })
}

fn copy_into(rootfs: &Path, host: &Path, inside: &str, mode: u32) -> Result<(), BundleError> {
    use std::os::unix::fs::PermissionsExt;
    let dst = rootfs.join(inside.trim_start_matches('/'));
    if let Some(p) = dst.parent() {
        std::fs::create_dir_all(p).map_err(io("create directory", p))?;
    }
    std::fs::copy(host, &dst).map_err(io("copy", host))?;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).map_err(io("chmod", &dst))?;
    Ok(())
}

/// Writes the bundle to `out` (created; an existing `rootfs` in it is
/// replaced) and returns `out`. A dynamically linked program gets its
/// shared libraries copied too (static binaries are preferred).
pub fn build_bundle(out: &Path, s: &BundleSpec) -> Result<PathBuf, BundleError> {
    if !s.program.is_file() {
        return Err(BundleError::Invalid(format!("program {} is not a file", s.program.display())));
    }
    let rootfs = out.join("rootfs");
    if rootfs.exists() {
        std::fs::remove_dir_all(&rootfs).map_err(io("remove old rootfs", &rootfs))?;
    }
    for d in ["bin", "dev", "proc", "sys", "tmp", "etc"] {
        let p = rootfs.join(d);
        std::fs::create_dir_all(&p).map_err(io("create directory", &p))?;
    }
    copy_into(&rootfs, &s.program, &s.exec_path(), 0o755)?;
    for lib in shared_libs(&s.program)? {
        copy_into(&rootfs, &lib, &lib.to_string_lossy(), 0o755)?;
    }
    for (host, inside) in &s.extra_files {
        copy_into(&rootfs, host, inside, 0o755)?;
    }
    let hn = rootfs.join("etc/hostname");
    std::fs::write(&hn, format!("{}\n", s.hostname)).map_err(io("write", &hn))?;
    let cfg = out.join("config.json");
    let text = serde_json::to_string_pretty(&config_json(s)).map_err(|e| BundleError::Invalid(e.to_string()))?;
    std::fs::write(&cfg, text).map_err(io("write", &cfg))?;
    Ok(out.to_path_buf())
}
