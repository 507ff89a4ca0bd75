//! Cgroups v1 and v2 through cgroupfs, with real-time budgets.
//!
//! One logical [`Cgroup`] is one directory per v1 controller (`cpuset`,
//! `cpu`, `memory`, `pids`) or one directory in the v2 hierarchy. The
//! filesystem root is a parameter ([`CgroupRoot::detect`]) so the logic runs
//! against fake roots in tests and against `/sys/fs/cgroup` for real.
//!
//! Layouts detected at run time ([`CgroupVersion`]):
//! - **v2**: `cgroup.controllers` at the root (most lab hosts);
//! - **hybrid**: v1 controllers at `<root>/<controller>`, plus a cgroup2 at
//!   `<root>/unified` with no controllers (this development host);
//! - **v1**: v1 controllers only.
//!
//! On hybrid hosts the controllers live in v1, so cranlab uses the v1 dirs
//! and does not touch `unified`.
//!
//! ## Real-time budgets (`CONFIG_RT_GROUP_SCHED`)
//! With RT group scheduling a task in a cgroup whose `cpu.rt_runtime_us` is
//! 0 gets `EPERM` from `sched_setscheduler(SCHED_FIFO)`. The kernel requires
//! every group's budget (as a runtime/period ratio) to be at least the sum of
//! its children's and at most the global `sched_rt_runtime_us`. So
//! [`Cgroup::create`] raises each ancestor's `cpu.rt_runtime_us` top-down by
//! the leaf's budget (scaled to the ancestor's period), then writes the
//! leaf's period and runtime; [`Cgroup::remove`] undoes it bottom-up (it
//! subtracts exactly what it added, which restores the value each ancestor
//! had before even when several cranlab cgroups share the parent).
//!
//! On cgroup v2 the kernel offers no `cpu.rt_runtime_us` (RT group
//! scheduling is a v1 feature): with `CONFIG_RT_GROUP_SCHED` active (not
//! switched off by `rt_group_sched=0`, kernels from 6.16) SCHED_FIFO inside
//! a cgroup with its own cpu controller fails with EPERM and no budget can
//! fix it; `host::check` reports that as a failure with the fix. An explicit
//! `rt_runtime_us` on such a layout is refused ([`CgroupError::InvalidLimit`]).
//!
//! **Policy for a real-time worker without a budget** (`Limits::realtime`
//! set, `rt_runtime_us` unset): a default budget is assigned and a note says
//! so ([`Cgroup::notes`]). The default is the RT bandwidth still free under
//! the hierarchy root (what the global `sched_rt_runtime_us` leaves after
//! every other group), capped at [`DEFAULT_RT_RUNTIME_US`] per
//! [`DEFAULT_RT_PERIOD_US`], so a contained worker gets what a bare worker in
//! the root group gets. When less than [`MIN_DEFAULT_RT_RUNTIME_US`] is free
//! the create is refused with [`CgroupError::Budget`] naming the numbers:
//! give explicit `realtimeRuntime` values to share the budget among workers.
//!
//! ## Launch timing
//! The first write of a pid into a v1 `cgroup.procs` can block 9–19 ms on an
//! RCU grace period (measured on this host); later writes take ≈ 20 µs. Put
//! the worker into its cgroup before the timed part of a launch, or count it.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Default RT runtime (µs per period) given to a real-time worker that asked
/// for no budget; capped further by what is free (see module docs).
pub const DEFAULT_RT_RUNTIME_US: i64 = 950_000;
/// Default RT period (µs) for the default budget.
pub const DEFAULT_RT_PERIOD_US: u64 = 1_000_000;
/// Below this much free runtime (µs per [`DEFAULT_RT_PERIOD_US`]) a default
/// budget is refused rather than granted.
pub const MIN_DEFAULT_RT_RUNTIME_US: i64 = 50_000;
/// Prefix of every cgroup cranlab creates.
pub const PREFIX: &str = "cranlab";
/// Prefix of the housekeeping cpusets made by [`crate::isolate`]: they hold
/// the host's own tasks, so [`sweep`] moves their tasks back to the
/// hierarchy root instead of killing them.
pub const HOUSEKEEPING_PREFIX: &str = "cranlab-housekeeping";

/// Serialises budget changes made by this process (ancestors are shared).
static BUDGET_LOCK: Mutex<()> = Mutex::new(());

/// File locked (flock) around budget changes so that several cranlab
/// processes do not interleave read-modify-writes of a shared parent.
pub const BUDGET_LOCK_FILE: &str = "/run/cranlab/cgroup-budget.lock";

/// Holds the in-process mutex and, on a real cgroup fs, the lock file.
struct BudgetGuard {
    _file: Option<nix::fcntl::Flock<fs::File>>,
    _mutex: std::sync::MutexGuard<'static, ()>,
}

fn budget_guard(real: bool) -> BudgetGuard {
    let m = BUDGET_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let file = if real {
        let p = Path::new(BUDGET_LOCK_FILE);
        p.parent().and_then(|d| fs::create_dir_all(d).ok()).and_then(|_| fs::OpenOptions::new().create(true).truncate(false).write(true).open(p).ok()).and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok())
    } else {
        None
    };
    BudgetGuard { _file: file, _mutex: m }
}

/// Errors from cgroup operations; messages name the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A filesystem operation failed.
    #[error("{op} {}: {msg}", path.display())]
    Io {
        /// `read`, `write`, `create cgroup`, `remove cgroup`, `list`.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Lowercase reason (`invalid argument`), plus detail where known.
        msg: String,
        /// The OS error (its text is already in `msg`, so not a `source`).
        err: io::Error,
    },
    /// No usable cgroup filesystem at the root given.
    #[error("no cgroup filesystem at {}: {reason}", root.display())]
    NotMounted {
        /// The root looked at.
        root: PathBuf,
        /// What was missing.
        reason: String,
    },
    /// The cgroup name is not acceptable.
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why.
        reason: String,
    },
    /// A limit is out of range or not supported by this host.
    #[error("invalid cgroup limit {field}: {reason}")]
    InvalidLimit {
        /// The [`Limits`] field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The leaf cgroup already exists.
    #[error("cgroup {} already exists (left by a killed run? `cranlab cleanup` removes it)", path.display())]
    Exists {
        /// The directory.
        path: PathBuf,
    },
    /// The real-time budget cannot be granted.
    #[error("rt budget: {0}")]
    Budget(String),
    /// Processes survived SIGKILL long enough to block removal.
    #[error("cgroup {} still has processes {pids:?} after kill", path.display())]
    Busy {
        /// The directory.
        path: PathBuf,
        /// Pids still listed.
        pids: Vec<i32>,
    },
}

/// Lowercase text of an OS error without the `(os error N)` suffix.
pub(crate) fn errno_text(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

fn io_err(op: &'static str, path: &Path, e: io::Error) -> CgroupError {
    CgroupError::Io { op, path: path.to_path_buf(), msg: errno_text(&e), err: e }
}

/// Reads a cgroup file, trimmed.
pub(crate) fn read_file(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|e| io_err("read", path, e))
}

/// Reads a cgroup file; a missing file gives `None`.
fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path, e)),
    }
}

/// Writes a value to a cgroup file in one `write(2)` (as the kernel wants).
pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_err("write", path, e))?;
    f.write_all(value.as_bytes()).map_err(|e| io_err("write", path, e))
}

/// Parses a kernel CPU list (`0-3,5,7-8`; empty gives an empty list).
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = BTreeSet::new();
    let s = s.trim();
    if s.is_empty() || s == "(null)" {
        return Ok(Vec::new());
    }
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        // `0-7:2/4` group syntax (isolcpus) is not used by sysfs lists.
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: usize = a.trim().parse().map_err(|_| format!("bad cpu list element {part:?} in {s:?}"))?;
        let b: usize = b.trim().parse().map_err(|_| format!("bad cpu list element {part:?} in {s:?}"))?;
        if b < a || b - a > 65_536 {
            return Err(format!("bad cpu range {part:?} in {s:?}"));
        }
        out.extend(a..=b);
    }
    Ok(out.into_iter().collect())
}

/// Formats CPUs as a kernel CPU list (`0-3,5`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let set: BTreeSet<usize> = cpus.iter().copied().collect();
    let v: Vec<usize> = set.into_iter().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    out.join(",")
}

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// Controllers in v1 hierarchies only.
    V1,
    /// One unified v2 hierarchy.
    V2,
    /// v1 controllers plus an (empty) cgroup2 at `<root>/unified`.
    Hybrid,
}

impl CgroupVersion {
    /// `v1`, `v2` or `hybrid` (the results schema's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
            CgroupVersion::Hybrid => "hybrid",
        }
    }
}

/// The v1 controllers cranlab uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    /// cpuset: cpus, mems, exclusivity.
    Cpuset,
    /// cpu: shares/weight and the RT budget.
    Cpu,
    /// memory: limit, OOM counting.
    Memory,
    /// pids: pids.max.
    Pids,
}

impl Controller {
    /// All of them, in the order cranlab creates and joins them.
    pub const ALL: [Controller; 4] = [Controller::Cpuset, Controller::Cpu, Controller::Memory, Controller::Pids];

    /// Kernel name.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpuset => "cpuset",
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
        }
    }

    /// A file that exists in every cgroup of this v1 controller.
    fn marker(self) -> &'static str {
        match self {
            Controller::Cpuset => "cpuset.cpus",
            Controller::Cpu => "cpu.shares",
            Controller::Memory => "memory.limit_in_bytes",
            // The root of the pids hierarchy has no pids.* files.
            Controller::Pids => "cgroup.procs",
        }
    }
}

/// A detected cgroup filesystem.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    root: PathBuf,
    version: CgroupVersion,
    /// v1 hierarchy roots, by controller (absent controllers omitted).
    v1: Vec<(Controller, PathBuf)>,
    /// The cgroup2 mount: the root itself (v2) or `<root>/unified` (hybrid).
    unified: Option<PathBuf>,
}

impl CgroupRoot {
    /// Looks at `root` (normally `/sys/fs/cgroup`) and works out the layout.
    pub fn detect(root: &Path) -> Result<CgroupRoot, CgroupError> {
        if !root.is_dir() {
            return Err(CgroupError::NotMounted { root: root.to_path_buf(), reason: "not a directory".into() });
        }
        if root.join("cgroup.controllers").is_file() {
            return Ok(CgroupRoot { root: root.to_path_buf(), version: CgroupVersion::V2, v1: Vec::new(), unified: Some(root.to_path_buf()) });
        }
        let mut v1 = Vec::new();
        let entries = fs::read_dir(root).map_err(|e| io_err("list", root, e))?;
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for c in Controller::ALL {
            // `cpu` may be co-mounted as `cpu,cpuacct` (with or without a symlink).
            let exact = root.join(c.name());
            let found = if exact.join(c.marker()).is_file() {
                Some(exact)
            } else {
                dirs.iter()
                    .find(|d| {
                        d.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.split(',').any(|p| p == c.name())) && d.join(c.marker()).is_file()
                    })
                    .cloned()
            };
            if let Some(p) = found {
                v1.push((c, p));
            }
        }
        let unified = root.join("unified");
        let unified = unified.join("cgroup.controllers").is_file().then_some(unified);
        if v1.is_empty() {
            return Err(CgroupError::NotMounted {
                root: root.to_path_buf(),
                reason: "neither cgroup.controllers (v2) nor v1 controller directories (cpuset, cpu, memory, pids)".into(),
            });
        }
        let version = if unified.is_some() { CgroupVersion::Hybrid } else { CgroupVersion::V1 };
        Ok(CgroupRoot { root: root.to_path_buf(), version, v1, unified })
    }

    /// The layout found.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The root path given to [`CgroupRoot::detect`].
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Root of the v1 hierarchy holding `c`, if mounted (v1 and hybrid only).
    pub fn v1_hierarchy(&self, c: Controller) -> Option<&Path> {
        self.v1.iter().find(|(k, _)| *k == c).map(|(_, p)| p.as_path())
    }

    /// The cgroup2 mount: the root (v2) or `<root>/unified` (hybrid).
    pub fn unified(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// Whether the kernel does RT group scheduling (`cpu.rt_runtime_us`
    /// exists at the root of the cpu hierarchy / the v2 root).
    pub fn rt_group_sched(&self) -> bool {
        self.rt_base().is_some_and(|b| b.join("cpu.rt_runtime_us").is_file())
    }

    /// Directory whose `cpu.rt_*` files are the hierarchy root's budget.
    fn rt_base(&self) -> Option<&Path> {
        match self.version {
            CgroupVersion::V2 => self.unified.as_deref(),
            _ => self.v1_hierarchy(Controller::Cpu),
        }
    }

    /// Every hierarchy root cranlab may have created cgroups in (all v1
    /// hierarchies mounted under the root, and the cgroup2 mount).
    fn all_hierarchies(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        match self.version {
            CgroupVersion::V2 => out.push(self.root.clone()),
            _ => {
                if let Ok(rd) = fs::read_dir(&self.root) {
                    for e in rd.flatten() {
                        let p = e.path();
                        if p.is_dir() && !p.is_symlink() && p.join("cgroup.procs").is_file() {
                            out.push(p);
                        }
                    }
                }
                for (_, p) in &self.v1 {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Children of the hierarchy root holding an RT budget: (dir, runtime µs, period µs).
    pub fn rt_holders(&self) -> Vec<(PathBuf, i64, u64)> {
        let mut out = Vec::new();
        let Some(base) = self.rt_base() else { return out };
        if let Ok(rd) = fs::read_dir(base) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() && p.join("cpu.rt_runtime_us").is_file() {
                    if let Ok((r, per)) = read_rt(&p) {
                        if r > 0 {
                            out.push((p, r, per));
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// RT runtime (µs per [`DEFAULT_RT_PERIOD_US`]) not yet given to any
    /// child of the hierarchy root: what a new top-level budget may take.
    /// `None` when the kernel has no RT group scheduling.
    pub fn rt_free_runtime_us(&self) -> Result<Option<i64>, CgroupError> {
        let Some(base) = self.rt_base().filter(|b| b.join("cpu.rt_runtime_us").is_file()) else {
            return Ok(None);
        };
        let (rt, per) = read_rt(base)?;
        let total = if rt < 0 { to_ratio(per, per as i64) } else { to_ratio(per, rt) };
        let mut used = 0u64;
        for e in fs::read_dir(base).map_err(|e| io_err("list", base, e))?.flatten() {
            let p = e.path();
            if p.is_dir() && p.join("cpu.rt_runtime_us").is_file() {
                let (r, pp) = read_rt(&p)?;
                if r > 0 {
                    used += to_ratio(pp, r);
                }
            }
        }
        let free = total.saturating_sub(used);
        Ok(Some(from_ratio(free, DEFAULT_RT_PERIOD_US)))
    }
}

/// Kernel's `to_ratio`: bandwidth as runtime/period in 2^-20 units.
fn to_ratio(period_us: u64, runtime_us: i64) -> u64 {
    if period_us == 0 || runtime_us <= 0 {
        return 0;
    }
    ((runtime_us as u128) << 20).div_euclid(period_us as u128) as u64
}

/// Runtime (µs, rounded down) for a ratio at `period_us`.
fn from_ratio(ratio: u64, period_us: u64) -> i64 {
    ((ratio as u128 * period_us as u128) >> 20) as i64
}

/// `runtime_us` per `from_period` re-expressed per `to_period`, rounded up
/// (an ancestor must never end up with less than its child needs).
pub fn scale_runtime(runtime_us: i64, from_period: u64, to_period: u64) -> i64 {
    if runtime_us <= 0 || from_period == 0 {
        return 0;
    }
    let n = runtime_us as u128 * to_period as u128;
    n.div_ceil(from_period as u128) as i64
}

/// Reads (`cpu.rt_runtime_us`, `cpu.rt_period_us`) of a dir; missing files
/// give the kernel's defaults for a new group (0, 1 s).
fn read_rt(dir: &Path) -> Result<(i64, u64), CgroupError> {
    let rpath = dir.join("cpu.rt_runtime_us");
    let ppath = dir.join("cpu.rt_period_us");
    let r = match read_opt(&rpath)? {
        Some(s) => s.parse::<i64>().map_err(|_| CgroupError::Io {
            op: "read",
            path: rpath.clone(),
            msg: format!("not a number: {s:?}"),
            err: io::Error::from(io::ErrorKind::InvalidData),
        })?,
        None => 0,
    };
    let p = match read_opt(&ppath)? {
        Some(s) => s.parse::<u64>().map_err(|_| CgroupError::Io {
            op: "read",
            path: ppath.clone(),
            msg: format!("not a number: {s:?}"),
            err: io::Error::from(io::ErrorKind::InvalidData),
        })?,
        None => DEFAULT_RT_PERIOD_US,
    };
    Ok((r, p))
}

/// Resource limits of one cgroup. `Default` is "no limit, no RT budget".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// cpuset.cpus (kernel list syntax, `1` or `2-3`); `None` inherits the parent's.
    pub cpus: Option<String>,
    /// cpuset.mems; `None` inherits the parent's.
    pub mems: Option<String>,
    /// Ask for an exclusive cpuset (v1 `cpuset.cpu_exclusive`, v2
    /// `cpuset.cpus.partition = isolated`). Best effort: when the kernel
    /// refuses, a note says so and the cgroup is still created. On v1 the
    /// kernel wants every ancestor exclusive and no overlapping sibling, so
    /// it is refused while an [`crate::isolate`] housekeeping cpuset exists
    /// (which keeps the other tasks off the worker cpus anyway); and an
    /// exclusive `cranlab` parent makes a later shield fail to set up.
    pub cpu_exclusive: bool,
    /// Memory limit in bytes (v2 `memory.max`, v1 `memory.limit_in_bytes`).
    pub memory_max: Option<u64>,
    /// Maximum number of tasks (`pids.max`).
    pub pids_max: Option<u64>,
    /// CPU weight in v2 units 1..=10000 (v1: converted to `cpu.shares`).
    pub cpu_weight: Option<u64>,
    /// RT runtime, µs per period (OCI `realtimeRuntime`).
    pub rt_runtime_us: Option<i64>,
    /// RT period, µs (OCI `realtimePeriod`); default 1 s.
    pub rt_period_us: Option<u64>,
    /// The worker will ask for a real-time policy: if `rt_runtime_us` is
    /// unset and the kernel does RT group scheduling, a default budget is
    /// assigned (see module docs) and noted.
    pub realtime: bool,
}

/// v2 weight (1..=10000) to v1 shares (2..=262144): the inverse of the OCI
/// runtime-spec conversion `weight = 1 + ((shares - 2) * 9999) / 262142`.
pub fn weight_to_shares(weight: u64) -> u64 {
    2 + ((weight.clamp(1, 10_000) - 1) * 262_142).div_ceil(9_999)
}

/// One directory of a logical cgroup.
#[derive(Debug, Clone)]
struct Dir {
    /// Controller (`None`: the v2 dir).
    ctrl: Option<Controller>,
    /// Hierarchy root.
    base: PathBuf,
    /// The leaf directory.
    path: PathBuf,
}

/// One budget change on an ancestor, for undo.
#[derive(Debug, Clone)]
struct BudgetChange {
    file: PathBuf,
    added_us: i64,
}

/// A logical cgroup created by cranlab. Removed by [`Cgroup::remove`], or
/// best effort on drop.
#[derive(Debug)]
pub struct Cgroup {
    name: String,
    version: CgroupVersion,
    dirs: Vec<Dir>,
    /// Directories this object created, in creation order (parents first).
    created: Vec<PathBuf>,
    /// Ancestor budget increases, top-down.
    budget: Vec<BudgetChange>,
    rt: Option<(i64, u64)>,
    notes: Vec<String>,
    writes: Vec<(PathBuf, String)>,
    removed: bool,
    /// On a real cgroup fs (take the cross-process budget lock).
    real: bool,
}

fn validate_name(name: &str) -> Result<Vec<&str>, CgroupError> {
    let bad = |reason: &str| CgroupError::InvalidName { name: name.to_string(), reason: reason.to_string() };
    let parts: Vec<&str> = name.split('/').collect();
    if name.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err(bad("empty path component"));
    }
    if !parts[0].starts_with(PREFIX) {
        return Err(bad("the first component must start with `cranlab`"));
    }
    for p in &parts {
        if *p == "." || *p == ".." {
            return Err(bad("`.` and `..` are not allowed"));
        }
        if p.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("whitespace or control characters"));
        }
        if p.len() > 200 {
            return Err(bad("component longer than 200 bytes"));
        }
    }
    Ok(parts)
}

impl Cgroup {
    /// Creates `name` (e.g. `cranlab/w-bare-1`; the first component must
    /// start with `cranlab`) with `limits` in every controller, parents as
    /// needed. On error, everything this call created or changed is undone.
    pub fn create(root: &CgroupRoot, name: &str, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let parts = validate_name(name)?;
        check_limits(limits)?;
        let mut cg = Cgroup {
            name: name.to_string(),
            version: root.version,
            dirs: Vec::new(),
            created: Vec::new(),
            budget: Vec::new(),
            rt: None,
            notes: Vec::new(),
            writes: Vec::new(),
            removed: false,
            real: root.rt_base().is_some_and(|b| !is_fake(b)),
        };
        match cg.build(root, &parts, limits) {
            Ok(()) => Ok(cg),
            Err(e) => {
                let _g = budget_guard(cg.real);
                cg.undo();
                cg.removed = true;
                Err(e)
            }
        }
    }

    fn write(&mut self, path: &Path, value: &str) -> Result<(), CgroupError> {
        write_file(path, value)?;
        self.writes.push((path.to_path_buf(), value.to_string()));
        Ok(())
    }

    /// Creates the directories from the top; returns the leaf.
    fn mkdirs(&mut self, base: &Path, parts: &[&str]) -> Result<PathBuf, CgroupError> {
        let mut p = base.to_path_buf();
        for (i, part) in parts.iter().enumerate() {
            p.push(part);
            let leaf = i + 1 == parts.len();
            if p.exists() {
                if leaf {
                    return Err(CgroupError::Exists { path: p });
                }
                continue;
            }
            fs::create_dir(&p).map_err(|e| io_err("create cgroup", &p, e))?;
            self.created.push(p.clone());
            mark_owner(&p);
        }
        Ok(p)
    }

    fn build(&mut self, root: &CgroupRoot, parts: &[&str], limits: &Limits) -> Result<(), CgroupError> {
        // Resolve the RT budget first: it may refuse the whole thing.
        // Budgets are shared with siblings: decide and grant under one lock.
        let _g = budget_guard(self.real);
        let rt = self.resolve_rt(root, limits)?;
        match root.version {
            CgroupVersion::V2 => self.build_v2(root, parts, limits, rt),
            _ => self.build_v1(root, parts, limits, rt),
        }
    }

    fn resolve_rt(&mut self, root: &CgroupRoot, limits: &Limits) -> Result<Option<(i64, u64)>, CgroupError> {
        let has = root.rt_group_sched();
        let period = limits.rt_period_us.unwrap_or(DEFAULT_RT_PERIOD_US);
        match limits.rt_runtime_us {
            Some(r) if !has => {
                if r != 0 {
                    return Err(CgroupError::InvalidLimit {
                        field: "rt_runtime_us",
                        reason: format!("{r} µs asked but this kernel has no RT group scheduling (no cpu.rt_runtime_us under {})", root.path().display()),
                    });
                }
                Ok(None)
            }
            Some(0) => Ok(Some((0, period))),
            Some(r) => {
                // The top cranlab group grows by this much: check the root has it
                // free, and say who holds the rest when not.
                let free = root.rt_free_runtime_us()?.unwrap_or(0);
                let need = scale_runtime(r, period, DEFAULT_RT_PERIOD_US);
                if need > free {
                    return Err(CgroupError::Budget(format!(
                        "{} asks {r} µs per {period} µs but only {free} µs per {DEFAULT_RT_PERIOD_US} µs is free under {} (held: {})",
                        self.name,
                        root.rt_base().map(|p| p.display().to_string()).unwrap_or_default(),
                        root.rt_holders().iter().map(|(p, r, per)| format!("{} {r}/{per}", p.display())).collect::<Vec<_>>().join(", ")
                    )));
                }
                Ok(Some((r, period)))
            }
            None if limits.realtime && has => {
                let free = root.rt_free_runtime_us()?.unwrap_or(0);
                let free_here = free * period as i64 / DEFAULT_RT_PERIOD_US as i64;
                let want = scale_runtime(DEFAULT_RT_RUNTIME_US, DEFAULT_RT_PERIOD_US, period).min(period as i64);
                let min = scale_runtime(MIN_DEFAULT_RT_RUNTIME_US, DEFAULT_RT_PERIOD_US, period);
                if free_here < min {
                    return Err(CgroupError::Budget(format!(
                        "a real-time policy was asked without a budget and only {free} µs per {DEFAULT_RT_PERIOD_US} µs of RT bandwidth is free under {} (minimum for a default {MIN_DEFAULT_RT_RUNTIME_US}); give explicit realtimeRuntime/realtimePeriod",
                        root.rt_base().map(|p| p.display().to_string()).unwrap_or_default()
                    )));
                }
                let r = want.min(free_here);
                self.notes.push(format!(
                    "no rt budget given for a real-time worker: assigned the default {r} µs per {period} µs (cpu.rt_runtime_us) to cgroup {}",
                    self.name
                ));
                Ok(Some((r, period)))
            }
            None => Ok(None),
        }
    }

    fn build_v1(&mut self, root: &CgroupRoot, parts: &[&str], limits: &Limits, rt: Option<(i64, u64)>) -> Result<(), CgroupError> {
        for c in Controller::ALL {
            let Some(base) = root.v1_hierarchy(c) else {
                let needed = match c {
                    Controller::Cpuset => limits.cpus.is_some() || limits.mems.is_some() || limits.cpu_exclusive,
                    Controller::Cpu => limits.cpu_weight.is_some() || rt.is_some(),
                    Controller::Memory => limits.memory_max.is_some(),
                    Controller::Pids => limits.pids_max.is_some(),
                };
                if needed {
                    return Err(CgroupError::InvalidLimit { field: c.name(), reason: format!("controller {} not mounted under {}", c.name(), root.path().display()) });
                }
                continue;
            };
            let base = base.to_path_buf();
            let created_before = self.created.len();
            let leaf = self.mkdirs(&base, parts)?;
            let new_dirs: Vec<PathBuf> = self.created[created_before..].to_vec();
            self.dirs.push(Dir { ctrl: Some(c), base: base.clone(), path: leaf.clone() });
            match c {
                Controller::Cpuset => {
                    // v1: cpus and mems must be set in every level before a task may join.
                    for d in &new_dirs {
                        let parent = d.parent().map(Path::to_path_buf).unwrap_or_default();
                        for f in ["cpuset.cpus", "cpuset.mems"] {
                            let cur = read_opt(&d.join(f))?.unwrap_or_default();
                            if cur.is_empty() {
                                let pv = read_file(&parent.join(f))?;
                                let v = if *d == leaf {
                                    match f {
                                        "cpuset.cpus" => limits.cpus.clone().unwrap_or(pv),
                                        _ => limits.mems.clone().unwrap_or(pv),
                                    }
                                } else {
                                    pv
                                };
                                self.write(&d.join(f), &v)?;
                            }
                        }
                    }
                    if limits.cpu_exclusive {
                        // The kernel wants every ancestor exclusive too; only
                        // the ancestors this call created are touched.
                        let mut targets: Vec<PathBuf> = new_dirs.clone();
                        if !targets.contains(&leaf) {
                            targets.push(leaf.clone());
                        }
                        for d in targets {
                            let f = d.join("cpuset.cpu_exclusive");
                            if let Err(e) = self.write(&f, "1") {
                                self.notes.push(format!("exclusive cpuset not granted: {e}"));
                                break;
                            }
                        }
                    }
                }
                Controller::Cpu => {
                    if let Some(w) = limits.cpu_weight {
                        self.write(&leaf.join("cpu.shares"), &weight_to_shares(w).to_string())?;
                    }
                    if let Some((r, p)) = rt {
                        self.grant_rt(&base, &leaf, r, p)?;
                    }
                }
                Controller::Memory => {
                    if let Some(m) = limits.memory_max {
                        self.write(&leaf.join("memory.limit_in_bytes"), &m.to_string())?;
                    }
                }
                Controller::Pids => {
                    if let Some(n) = limits.pids_max {
                        self.write(&leaf.join("pids.max"), &n.to_string())?;
                    }
                }
            }
        }
        self.rt = rt;
        Ok(())
    }

    fn build_v2(&mut self, root: &CgroupRoot, parts: &[&str], limits: &Limits, rt: Option<(i64, u64)>) -> Result<(), CgroupError> {
        let base = root.unified().map(Path::to_path_buf).unwrap_or_else(|| root.path().to_path_buf());
        let available: BTreeSet<String> = read_file(&base.join("cgroup.controllers"))?.split_whitespace().map(str::to_string).collect();
        let mut wanted: Vec<&str> = Vec::new();
        for (c, needed) in [
            ("cpuset", limits.cpus.is_some() || limits.mems.is_some() || limits.cpu_exclusive),
            ("cpu", limits.cpu_weight.is_some() || rt.is_some()),
            ("memory", limits.memory_max.is_some()),
            ("pids", limits.pids_max.is_some()),
        ] {
            if available.contains(c) {
                wanted.push(c);
            } else if needed {
                return Err(CgroupError::InvalidLimit { field: "controllers", reason: format!("controller {c} not in {}", base.join("cgroup.controllers").display()) });
            }
        }
        let enable: String = wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ");
        // Enable the controllers from the root down to the leaf's parent.
        let mut p = base.clone();
        let mut levels = vec![p.clone()];
        for part in &parts[..parts.len() - 1] {
            p.push(part);
            levels.push(p.clone());
        }
        let leaf = self.mkdirs(&base, parts)?;
        self.dirs.push(Dir { ctrl: None, base: base.clone(), path: leaf.clone() });
        if !enable.is_empty() {
            for l in &levels {
                let cur: BTreeSet<String> = read_opt(&l.join("cgroup.subtree_control"))?.unwrap_or_default().split_whitespace().map(str::to_string).collect();
                if wanted.iter().all(|c| cur.contains(*c)) {
                    continue;
                }
                self.write(&l.join("cgroup.subtree_control"), &enable)?;
            }
        }
        if let Some(c) = &limits.cpus {
            self.write(&leaf.join("cpuset.cpus"), c)?;
        }
        if let Some(m) = &limits.mems {
            self.write(&leaf.join("cpuset.mems"), m)?;
        }
        if limits.cpu_exclusive {
            match self.write(&leaf.join("cpuset.cpus.partition"), "isolated") {
                Ok(()) => {
                    let got = read_opt(&leaf.join("cpuset.cpus.partition"))?.unwrap_or_default();
                    if got != "isolated" {
                        self.notes.push(format!("exclusive cpuset not granted: {} reads {got:?}", leaf.join("cpuset.cpus.partition").display()));
                        let _ = write_file(&leaf.join("cpuset.cpus.partition"), "member");
                    }
                }
                Err(e) => self.notes.push(format!("exclusive cpuset not granted: {e}")),
            }
        }
        if let Some(m) = limits.memory_max {
            self.write(&leaf.join("memory.max"), &m.to_string())?;
            if leaf.join("memory.swap.max").exists() {
                self.write(&leaf.join("memory.swap.max"), "0")?;
            }
        }
        if let Some(n) = limits.pids_max {
            self.write(&leaf.join("pids.max"), &n.to_string())?;
        }
        if let Some(w) = limits.cpu_weight {
            self.write(&leaf.join("cpu.weight"), &w.to_string())?;
        }
        if let Some((r, per)) = rt {
            self.grant_rt(&base, &leaf, r, per)?;
        }
        self.rt = rt;
        Ok(())
    }

    /// Raises each ancestor's budget top-down, then sets the leaf's.
    fn grant_rt(&mut self, base: &Path, leaf: &Path, runtime: i64, period: u64) -> Result<(), CgroupError> {
        let mut ancestors: Vec<PathBuf> = Vec::new();
        let mut a = leaf.parent();
        while let Some(d) = a {
            if d == base || !d.starts_with(base) {
                break;
            }
            ancestors.push(d.to_path_buf());
            a = d.parent();
        }
        ancestors.reverse();
        for d in ancestors {
            let (cur, aper) = read_rt(&d)?;
            if cur < 0 {
                continue;
            }
            let add = scale_runtime(runtime, period, aper);
            let new = cur + add;
            let file = d.join("cpu.rt_runtime_us");
            if new > aper as i64 {
                return Err(CgroupError::Budget(format!(
                    "{}: {new} µs per {aper} µs would exceed the period (asked {runtime} µs per {period} µs for {})",
                    file.display(),
                    leaf.display()
                )));
            }
            self.write(&file, &new.to_string()).map_err(|e| budget_err(e, &format!("{cur} → {new} µs")))?;
            self.budget.push(BudgetChange { file, added_us: add });
        }
        let pfile = leaf.join("cpu.rt_period_us");
        let (_, cur_period) = read_rt(leaf)?;
        if cur_period != period {
            self.write(&pfile, &period.to_string())?;
        }
        let rfile = leaf.join("cpu.rt_runtime_us");
        self.write(&rfile, &runtime.to_string()).map_err(|e| budget_err(e, &format!("{runtime} µs per {period} µs")))?;
        Ok(())
    }

    /// Moves process `pid` (all its threads) into every directory of this
    /// cgroup (v1: cpuset, cpu, memory, pids in that order). The first v1
    /// write on a host can block 9–19 ms (RCU).
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            write_file(&d.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The cgroup's directories (one per v1 controller, or the v2 dir).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// The directory of one controller (v2: the single dir for any).
    pub fn path_of(&self, c: Controller) -> Option<&Path> {
        self.dirs.iter().find(|d| d.ctrl.is_none() || d.ctrl == Some(c)).map(|d| d.path.as_path())
    }

    /// The name given to [`Cgroup::create`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Layout this cgroup lives in.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// RT budget in force (runtime µs, period µs), if any.
    pub fn rt_budget(&self) -> Option<(i64, u64)> {
        self.rt
    }

    /// Plain sentences about what was assigned or not granted (default RT
    /// budget, exclusivity refused); copy them into `GrantedFacts::notes`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Every write done by [`Cgroup::create`], in order (file, value).
    pub fn writes(&self) -> &[(PathBuf, String)] {
        &self.writes
    }

    /// One-line description for results: the paths joined with `,`.
    pub fn describe(&self) -> String {
        self.dirs.iter().map(|d| d.path.display().to_string()).collect::<Vec<_>>().join(",")
    }

    /// Pids currently in the cgroup (union over its directories).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut set = BTreeSet::new();
        for d in &self.dirs {
            set.extend(read_pids(&d.path)?);
        }
        Ok(set.into_iter().collect())
    }

    /// OOM kills inside this cgroup (v2 `memory.events` `oom_kill`, v1
    /// `memory.oom_control` `oom_kill`; kernels ≥ 4.13).
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        let (dir, file) = match self.version {
            CgroupVersion::V2 => (self.dirs.first(), "memory.events"),
            _ => (self.dirs.iter().find(|d| d.ctrl == Some(Controller::Memory)), "memory.oom_control"),
        };
        let Some(dir) = dir else {
            return Err(CgroupError::InvalidLimit { field: "memory", reason: "no memory controller in this cgroup".into() });
        };
        let p = dir.path.join(file);
        let s = read_file(&p)?;
        for line in s.lines() {
            let mut it = line.split_whitespace();
            if it.next() == Some("oom_kill") {
                if let Some(n) = it.next().and_then(|v| v.parse().ok()) {
                    return Ok(n);
                }
            }
        }
        Err(CgroupError::Io { op: "read", path: p, msg: "no oom_kill line".into(), err: io::Error::from(io::ErrorKind::InvalidData) })
    }

    /// Kills what is left inside, removes the directories, gives back the RT
    /// budget added to the ancestors (bottom-up) and removes empty parents
    /// up to the top `cranlab` directory.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.removed = true;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), CgroupError> {
        let mut first: Option<CgroupError> = None;
        for d in self.dirs.clone() {
            if let Err(e) = kill_and_wait(&d.path) {
                first.get_or_insert(e);
            }
        }
        let _g = budget_guard(self.real);
        // The kernel unlinks a removed group from its parent only after an
        // RCU grace period, so zero the leaf's budget before rmdir: the
        // parents can then be lowered at once.
        if self.rt.is_some() {
            for d in &self.dirs {
                let f = d.path.join("cpu.rt_runtime_us");
                if d.ctrl.is_none_or(|c| c == Controller::Cpu) && f.is_file() {
                    if let Err(e) = write_file(&f, "0") {
                        first.get_or_insert(e);
                    }
                }
            }
        }
        for d in self.dirs.clone() {
            if let Err(e) = rmdir_if_exists(&d.path) {
                first.get_or_insert(e);
            }
        }
        if let Err(e) = self.return_budget() {
            first.get_or_insert(e);
        }
        for d in self.dirs.clone() {
            let mut a = d.path.parent();
            while let Some(p) = a {
                if p == d.base || !p.starts_with(&d.base) {
                    break;
                }
                if !remove_if_empty(p) {
                    break;
                }
                a = p.parent();
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Undo after a failed create: dirs created (bottom-up) and budgets.
    fn undo(&mut self) {
        for d in self.created.clone().iter().rev() {
            let _ = kill_and_wait(d);
            let _ = rmdir_if_exists(d);
        }
        let _ = self.return_budget();
    }

    /// Callers hold [`BUDGET_LOCK`].
    fn return_budget(&mut self) -> Result<(), CgroupError> {
        let mut first = None;
        while let Some(b) = self.budget.pop() {
            // Bottom-up: the deepest ancestor was pushed last.
            if !b.file.exists() {
                continue;
            }
            let r = (|| {
                let cur: i64 = read_file(&b.file)?.parse().unwrap_or(0);
                let new = (cur - b.added_us).max(0);
                write_file(&b.file, &new.to_string())
            })();
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.removed {
            self.removed = true;
            let _ = self.teardown();
        }
    }
}

fn budget_err(e: CgroupError, what: &str) -> CgroupError {
    match e {
        CgroupError::Io { op, path, msg, err } if matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::EBUSY)) => CgroupError::Io {
            op,
            path,
            msg: format!(
                "{msg} ({what}: the kernel requires each group's rt budget to be at least the sum of its children's and at most the global sched_rt_runtime_us)"
            ),
            err,
        },
        other => other,
    }
}

fn check_limits(l: &Limits) -> Result<(), CgroupError> {
    if let Some(c) = &l.cpus {
        let v = parse_cpu_list(c).map_err(|r| CgroupError::InvalidLimit { field: "cpus", reason: r })?;
        if v.is_empty() {
            return Err(CgroupError::InvalidLimit { field: "cpus", reason: "empty cpu list".into() });
        }
    }
    if let Some(m) = &l.mems {
        let v = parse_cpu_list(m).map_err(|r| CgroupError::InvalidLimit { field: "mems", reason: r })?;
        if v.is_empty() {
            return Err(CgroupError::InvalidLimit { field: "mems", reason: "empty node list".into() });
        }
    }
    if let Some(w) = l.cpu_weight {
        if !(1..=10_000).contains(&w) {
            return Err(CgroupError::InvalidLimit { field: "cpu_weight", reason: format!("{w} not in 1..=10000") });
        }
    }
    if l.pids_max == Some(0) {
        return Err(CgroupError::InvalidLimit { field: "pids_max", reason: "0 would forbid every task".into() });
    }
    if let Some(p) = l.rt_period_us {
        if !(1..=1_000_000).contains(&p) {
            return Err(CgroupError::InvalidLimit { field: "rt_period_us", reason: format!("{p} not in 1..=1000000") });
        }
    }
    if let Some(r) = l.rt_runtime_us {
        let p = l.rt_period_us.unwrap_or(DEFAULT_RT_PERIOD_US);
        if r < 0 {
            return Err(CgroupError::InvalidLimit { field: "rt_runtime_us", reason: format!("{r}: unlimited (-1) is not allowed below the root") });
        }
        if r as u64 > p {
            return Err(CgroupError::InvalidLimit { field: "rt_runtime_us", reason: format!("{r} µs exceeds the period {p} µs") });
        }
    }
    Ok(())
}

fn read_pids(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let p = dir.join("cgroup.procs");
    match fs::read_to_string(&p) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err("read", &p, e)),
    }
}

/// SIGKILLs every process in `dir` (v2: `cgroup.kill`) and its children
/// dirs, then waits up to 2 s for them to go.
fn kill_and_wait(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() || is_fake(dir) {
        // Fake roots (tests) list made-up pids: never signal them.
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let kill_file = dir.join("cgroup.kill");
    let mut use_kill_file = kill_file.is_file() && fs::metadata(dir.join("cgroup.controllers")).is_ok();
    loop {
        let pids = read_pids(dir)?;
        if pids.is_empty() {
            return Ok(());
        }
        if use_kill_file {
            if write_file(&kill_file, "1").is_err() {
                use_kill_file = false;
            }
        } else {
            for p in &pids {
                sys::kill9(*p);
            }
        }
        if Instant::now() > deadline {
            return Err(CgroupError::Busy { path: dir.to_path_buf(), pids });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn rmdir_if_exists(dir: &Path) -> Result<(), CgroupError> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            // Fake roots (tests) hold regular files; cgroupfs rmdir ignores them.
            if is_fake(dir) {
                return fs::remove_dir_all(dir).map_err(|e| io_err("remove cgroup", dir, e));
            }
            Err(io_err("remove cgroup", dir, e))
        }
    }
}

/// A directory on an ordinary filesystem rather than cgroupfs (test roots).
fn is_fake(dir: &Path) -> bool {
    sys::fs_magic(dir).is_some_and(|m| m != sys::CGROUP_SUPER_MAGIC && m != sys::CGROUP2_SUPER_MAGIC)
}

/// Removes `dir` if it has no child cgroups; true if removed.
fn remove_if_empty(dir: &Path) -> bool {
    let has_children = fs::read_dir(dir).map(|rd| rd.flatten().any(|e| e.path().is_dir())).unwrap_or(true);
    if has_children {
        return false;
    }
    if !read_pids(dir).map(|p| p.is_empty()).unwrap_or(false) {
        return false;
    }
    rmdir_if_exists(dir).is_ok()
}

/// Extended attribute naming the process that created a cgroup directory:
/// `<pid>:<start time>` (start time in clock ticks since boot, from
/// `/proc/<pid>/stat`), so [`sweep`] can tell a live run's cgroups from a
/// killed run's. cgroupfs (kernfs) and tmpfs keep `trusted.*` attributes.
pub const OWNER_XATTR: &str = "trusted.cranlab.owner";

/// `<pid>:<start time>` of this process.
pub fn owner_tag() -> String {
    let pid = std::process::id() as i32;
    format!("{pid}:{}", process_start(pid).unwrap_or(0))
}

/// Start time of a process (field 22 of `/proc/<pid>/stat`).
pub fn process_start(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
}

/// Whether an owner tag names a live process (same pid, same start time).
pub fn owner_alive(tag: &str) -> bool {
    let Some((pid, start)) = tag.trim().split_once(':') else { return false };
    let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>()) else { return false };
    pid > 0 && process_start(pid) == Some(start)
}

/// Tags `dir` with this process as owner (best effort: a filesystem
/// without xattrs leaves the directory unowned, which [`sweep`] treats as
/// a leftover).
pub(crate) fn mark_owner(dir: &Path) {
    sys::set_xattr(dir, OWNER_XATTR, &owner_tag());
}

/// The owner tag of `dir`, if any.
pub fn owner_of(dir: &Path) -> Option<String> {
    sys::get_xattr(dir, OWNER_XATTR)
}

/// Removes every cgroup named `cranlab*` left by a killed run, in every
/// hierarchy under the root; returns the directories removed. A cgroup
/// whose owner ([`OWNER_XATTR`]) is still running is a live run's and is
/// kept, with its parents. Processes in removed cgroups are killed, except
/// in housekeeping cpusets ([`HOUSEKEEPING_PREFIX`]), whose tasks (the
/// host's own) are moved back to the hierarchy root. Run
/// [`crate::isolate::sweep`] first to restore their exact placement.
pub fn sweep(root: &CgroupRoot) -> Result<Vec<PathBuf>, CgroupError> {
    sweep_inner(root, false)
}

/// Like [`sweep`], but removes live runs' cgroups too (killing their
/// processes): for `cranlab cleanup --all` when owners cannot be trusted.
pub fn sweep_all(root: &CgroupRoot) -> Result<Vec<PathBuf>, CgroupError> {
    sweep_inner(root, true)
}

fn sweep_inner(root: &CgroupRoot, all: bool) -> Result<Vec<PathBuf>, CgroupError> {
    let mut removed = Vec::new();
    let mut first = None;
    for h in root.all_hierarchies() {
        let Ok(rd) = fs::read_dir(&h) else { continue };
        let mut tops: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(PREFIX)))
            .collect();
        tops.sort();
        for t in tops {
            if let Err(e) = sweep_dir(&h, &t, all, &mut removed) {
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// Returns whether `dir` was removed.
fn sweep_dir(hier: &Path, dir: &Path, all: bool, removed: &mut Vec<PathBuf>) -> Result<bool, CgroupError> {
    let mut subs: Vec<PathBuf> = fs::read_dir(dir).map_err(|e| io_err("list", dir, e))?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    subs.sort();
    let mut all_gone = true;
    for s in subs {
        all_gone &= sweep_dir(hier, &s, all, removed)?;
    }
    if !all && (!all_gone || owner_of(dir).is_some_and(|o| owner_alive(&o))) {
        // A live run's cgroup, or the parent of one.
        return Ok(false);
    }
    let housekeeping = dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(HOUSEKEEPING_PREFIX));
    if housekeeping {
        let root_procs = hier.join("cgroup.procs");
        for pid in read_pids(dir)? {
            // Tasks that exited meanwhile give ESRCH: ignore.
            let _ = write_file(&root_procs, &pid.to_string());
        }
        let tasks = dir.join("tasks");
        if tasks.is_file() {
            for tid in fs::read_to_string(&tasks).unwrap_or_default().lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = write_file(&hier.join("tasks"), &tid.to_string());
            }
        }
    } else {
        kill_and_wait(dir)?;
    }
    rmdir_if_exists(dir)?;
    removed.push(dir.to_path_buf());
    Ok(true)
}

/// The few syscalls this module needs, fenced.
mod sys {
    use std::path::Path;

    /// `CGROUP_SUPER_MAGIC` from `linux/magic.h`.
    pub const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
    /// `CGROUP2_SUPER_MAGIC` from `linux/magic.h`.
    pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

    /// SIGKILL to `pid` (errors such as ESRCH are ignored: it is gone).
    pub fn kill9(pid: i32) {
        if pid > 0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Sets an extended attribute (errors ignored: best effort).
    pub fn set_xattr(p: &Path, name: &str, value: &str) {
        use std::os::unix::ffi::OsStrExt;
        let (Ok(path), Ok(name)) = (std::ffi::CString::new(p.as_os_str().as_bytes()), std::ffi::CString::new(name)) else { return };
        // SAFETY: path and name are NUL-terminated and outlive the call;
        // value points to value.len() readable bytes.
        unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    }

    /// Reads an extended attribute as text (`None` if absent or unreadable).
    pub fn get_xattr(p: &Path, name: &str) -> Option<String> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
        let name = std::ffi::CString::new(name).ok()?;
        let mut buf = [0u8; 128];
        // SAFETY: path and name are NUL-terminated; buf is writable for
        // buf.len() bytes and the kernel writes at most that many.
        let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return None;
        }
        String::from_utf8(buf[..n as usize].to_vec()).ok()
    }

    /// Filesystem magic of the filesystem holding `p`.
    pub fn fs_magic(p: &Path) -> Option<i64> {
        #[allow(clippy::unnecessary_cast)] // __fsword_t differs between libcs
        nix::sys::statfs::statfs(p).ok().map(|s| s.filesystem_type().0 as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_round_trip() {
        assert_eq!(parse_cpu_list("0-3,5,7-8").unwrap(), vec![0, 1, 2, 3, 5, 7, 8]);
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpu_list("1\n").unwrap(), vec![1]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(format_cpu_list(&[4]), "4");
        assert_eq!(format_cpu_list(&[]), "");
    }

    #[test]
    fn scaling_rounds_up() {
        assert_eq!(scale_runtime(100_000, 1_000_000, 1_000_000), 100_000);
        assert_eq!(scale_runtime(1, 3, 10), 4);
        assert_eq!(scale_runtime(50_000, 500_000, 1_000_000), 100_000);
        assert_eq!(scale_runtime(0, 1, 1), 0);
    }

    #[test]
    fn ratio_matches_kernel_arithmetic() {
        assert_eq!(to_ratio(1_000_000, 950_000), (950_000u64 << 20) / 1_000_000);
        assert_eq!(from_ratio(to_ratio(1_000_000, 500_000), 1_000_000), 500_000);
    }

    #[test]
    fn weight_conversion_inverts_oci() {
        for shares in [2u64, 1024, 262_144] {
            let w = 1 + ((shares - 2) * 9999) / 262_142;
            let back = weight_to_shares(w);
            let w2 = 1 + ((back - 2) * 9999) / 262_142;
            assert_eq!(w, w2, "shares {shares}");
        }
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("cranlab/w0").is_ok());
        assert!(validate_name("other/w0").is_err());
        assert!(validate_name("cranlab/../x").is_err());
        assert!(validate_name("cranlab//x").is_err());
        assert!(validate_name("").is_err());
    }

    #[test]
    fn errno_text_is_lowercase_without_suffix() {
        let e = io::Error::from_raw_os_error(22);
        assert_eq!(errno_text(&e), "invalid argument");
    }
}
