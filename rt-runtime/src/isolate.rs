//! Core isolation: isolcpus/nohz_full when present, else a cpuset shield and
//! IRQ steering, restored afterwards.
//!
//! [`Shield::apply`] first looks at the host: when every worker CPU is in
//! `/sys/devices/system/cpu/isolated` (isolcpus / `isolated` cpuset
//! partitions), nothing is changed and the mode is `isolcpus`. Otherwise it
//! shields the worker CPUs for the duration of the run (mode
//! `cpuset-shield`):
//! - **v1 / hybrid**: a housekeeping cpuset
//!   `<cpuset>/cranlab-housekeeping-<id>` holding every other CPU; every
//!   movable thread not already in a `cranlab` cgroup is moved into it
//!   (threads the kernel refuses, per-CPU kernel threads among them, are
//!   counted as not movable);
//! - **v2**: each top-level cgroup other than `cranlab*` gets
//!   `cpuset.cpus` = the housekeeping CPUs (tasks of the root cgroup cannot
//!   be restricted by a cpuset and are counted as not movable);
//! - **IRQs**: every `/proc/irq/N/smp_affinity_list` that includes a worker
//!   CPU is steered to the others, and `/proc/irq/default_smp_affinity` too.
//!   Writes the kernel refuses (managed or per-CPU interrupts) are counted.
//!
//! Everything needed to undo it is written to a journal
//! (`<journal_dir>/shield-<id>.json`) **before** the change is made, so
//! [`restore_from_journal`] / [`sweep`] put the host back after a crash of
//! the run. [`Shield::restore`] (also run on drop) puts every thread back in
//! the cpuset it came from, re-applies its original CPU affinity when the
//! move changed it, writes back every IRQ affinity, removes the housekeeping
//! cpuset and deletes the journal.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::cgroup::{self, format_cpu_list, parse_cpu_list, CgroupError, CgroupRoot, CgroupVersion, Controller};
use crate::host::Roots;

/// Default journal directory.
pub const DEFAULT_JOURNAL_DIR: &str = "/run/cranlab";

/// Errors from isolating or restoring.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A file operation failed.
    #[error("{op} {}: {msg}", path.display())]
    Io {
        /// What was done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Lowercase reason.
        msg: String,
    },
    /// The request cannot be met (e.g. no CPU left for housekeeping).
    #[error("isolate cpus {cpus}: {reason}")]
    Invalid {
        /// Worker CPUs asked for.
        cpus: String,
        /// Why.
        reason: String,
    },
    /// Restore could not put everything back; each item names what.
    #[error("restore incomplete: {}", .0.join("; "))]
    Incomplete(Vec<String>),
}

fn io_err(op: &'static str, path: &Path, e: &io::Error) -> IsolateError {
    IsolateError::Io { op, path: path.to_path_buf(), msg: cgroup::errno_text(e) }
}

/// How the worker CPUs were isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IsolationMode {
    /// The host isolated them already (isolcpus / isolated partition).
    #[serde(rename = "isolcpus")]
    Isolcpus,
    /// cranlab shielded them with cpusets and IRQ steering.
    #[serde(rename = "cpuset-shield")]
    CpusetShield,
    /// Nothing was isolated.
    #[serde(rename = "none")]
    None,
}

impl IsolationMode {
    /// `isolcpus`, `cpuset-shield` or `none` (results schema spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationMode::Isolcpus => "isolcpus",
            IsolationMode::CpusetShield => "cpuset-shield",
            IsolationMode::None => "none",
        }
    }
}

/// What isolation was achieved; goes into `results.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationFacts {
    /// Mode achieved.
    pub mode: IsolationMode,
    /// Worker CPUs.
    pub worker_cpus: Vec<usize>,
    /// CPUs left to everything else.
    pub housekeeping_cpus: Vec<usize>,
    /// The host's `isolated` CPUs.
    pub host_isolated_cpus: Vec<usize>,
    /// The host's `nohz_full` CPUs.
    pub host_nohz_full_cpus: Vec<usize>,
    /// Housekeeping cpuset created (v1) or top-level cgroups restricted (v2).
    pub housekeeping_cgroups: Vec<String>,
    /// Threads moved to the housekeeping CPUs.
    pub tasks_moved: u64,
    /// Threads the kernel would not move (per-CPU kernel threads, root-cgroup tasks on v2).
    pub tasks_not_movable: u64,
    /// Threads left alone because they are in a `cranlab` cgroup already.
    pub tasks_cranlab: u64,
    /// IRQs whose affinity was steered off the worker CPUs.
    pub irqs_steered: u64,
    /// IRQs whose affinity the kernel refused to change.
    pub irqs_refused: u64,
    /// IRQs already off the worker CPUs.
    pub irqs_untouched: u64,
    /// Plain sentences on anything partial.
    pub notes: Vec<String>,
}

/// One thread moved, with what to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEntry {
    /// Process (thread group) id.
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// Start time (clock ticks since boot, `/proc/.../stat` field 22): a
    /// reused tid is recognised and left alone.
    pub start: u64,
    /// Its cpuset, relative to the cpuset hierarchy (`/`).
    pub cpuset: String,
    /// Its CPU affinity before.
    pub affinity: Vec<usize>,
}

/// A file to write back on restore: `restore` is written verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The file.
    pub path: PathBuf,
    /// Value to write to undo the change (the old value, or `-cpuset` for a
    /// controller cranlab enabled).
    pub restore: String,
}

/// The on-disk journal of one shield.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Shield id.
    pub id: String,
    /// procfs root used.
    pub procfs: PathBuf,
    /// v1 cpuset hierarchy root (v1/hybrid shields).
    pub cpuset_hierarchy: Option<PathBuf>,
    /// Housekeeping cpuset created (v1/hybrid shields).
    pub housekeeping: Option<PathBuf>,
    /// Threads moved (or about to be).
    pub tasks: Vec<TaskEntry>,
    /// Files changed (or about to be), in order.
    pub files: Vec<FileEntry>,
    /// `<pid>:<start time>` of the process that applied the shield
    /// ([`cgroup::owner_tag`]): [`sweep`] leaves a live owner's shield alone.
    #[serde(default)]
    pub owner: String,
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// Threads put back in their cpuset.
    pub tasks_restored: u64,
    /// Threads that had exited (or whose tid was reused).
    pub tasks_gone: u64,
    /// Threads whose affinity had to be set again after the move back.
    pub affinities_reset: u64,
    /// Threads started during the shield, moved to the hierarchy root.
    pub tasks_born_during: u64,
    /// Files written back.
    pub files_restored: u64,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// An applied isolation. [`Shield::restore`] undoes it (also on drop).
#[derive(Debug)]
pub struct Shield {
    journal: Journal,
    journal_path: Option<PathBuf>,
    facts: IsolationFacts,
    worker_cpus: Vec<usize>,
    restored: bool,
}

fn read_list(p: &Path) -> Vec<usize> {
    fs::read_to_string(p).ok().and_then(|s| parse_cpu_list(&s).ok()).unwrap_or_default()
}

/// Writes a value in one write without creating the file (procfs/sysfs).
fn write_value(path: &Path, v: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().write(true).truncate(true).open(path)?;
    f.write_all(v.as_bytes())
}

/// Writes a value to a cgroup file in one write (creating it on fake roots).
fn write_cg(path: &Path, v: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    f.write_all(v.as_bytes())
}

/// `/proc/<pid>/task/<tid>/stat` start time (field 22).
fn start_time(task_dir: &Path) -> Option<u64> {
    let s = fs::read_to_string(task_dir.join("stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    // Fields after `)` start at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `Cpus_allowed_list` from a status file.
fn affinity_of(task_dir: &Path) -> Option<Vec<usize>> {
    let s = fs::read_to_string(task_dir.join("status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Cpus_allowed_list:"))?;
    parse_cpu_list(line.split_once(':')?.1).ok()
}

/// Every (pid, tid, task dir) under procfs.
fn all_tasks(procfs: &Path) -> Vec<(i32, i32, PathBuf)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(procfs) else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(tr) = fs::read_dir(e.path().join("task")) else { continue };
        for t in tr.flatten() {
            if let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                out.push((pid, tid, t.path()));
            }
        }
    }
    out.sort_by_key(|(p, t, _)| (*p, *t));
    out
}

/// Hex mask (`/proc/irq/default_smp_affinity` form, 32-bit words, comma separated).
pub fn cpu_mask_hex(cpus: &[usize]) -> String {
    let max = cpus.iter().copied().max().unwrap_or(0);
    let words = max / 32 + 1;
    let mut w = vec![0u32; words];
    for &c in cpus {
        w[c / 32] |= 1 << (c % 32);
    }
    w.iter().rev().enumerate().map(|(i, x)| if i == 0 { format!("{x:x}") } else { format!("{x:08x}") }).collect::<Vec<_>>().join(",")
}

/// Parses a hex CPU mask (`3`, `ff,00000001`).
pub fn parse_cpu_mask(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let words: Vec<&str> = s.trim().split(',').collect();
    for (i, w) in words.iter().rev().enumerate() {
        let v = u32::from_str_radix(w.trim(), 16).ok()?;
        for b in 0..32 {
            if v & (1 << b) != 0 {
                out.push(i * 32 + b);
            }
        }
    }
    Some(out)
}

/// Whether `p` is on the real procfs (so syscalls on its tids are meant).
fn real_procfs(p: &Path) -> bool {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    #[allow(clippy::unnecessary_cast)] // __fsword_t differs between libcs
    let m = nix::sys::statfs::statfs(p).ok().map(|s| s.filesystem_type().0 as i64);
    m == Some(PROC_SUPER_MAGIC)
}

fn set_affinity(tid: i32, cpus: &[usize]) -> io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(io::Error::from)?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set).map_err(io::Error::from)
}

impl Shield {
    /// Isolates `worker_cpus` (see module docs), journaling to
    /// `journal_dir` first. `roots` gives the procfs and sysfs to use.
    pub fn apply(cg: &CgroupRoot, roots: &Roots, worker_cpus: &[usize], journal_dir: &Path) -> Result<Shield, IsolateError> {
        let cpus_s = format_cpu_list(worker_cpus);
        if worker_cpus.is_empty() {
            return Err(IsolateError::Invalid { cpus: cpus_s, reason: "no worker cpu given".into() });
        }
        let sysc = roots.sys.join("devices/system/cpu");
        let online = read_list(&sysc.join("online"));
        if online.is_empty() {
            return Err(IsolateError::Invalid { cpus: cpus_s, reason: format!("cannot read {}", sysc.join("online").display()) });
        }
        let worker: BTreeSet<usize> = worker_cpus.iter().copied().collect();
        if let Some(c) = worker.iter().find(|c| !online.contains(c)) {
            return Err(IsolateError::Invalid { cpus: cpus_s, reason: format!("cpu {c} is not online (online: {})", format_cpu_list(&online)) });
        }
        let housekeeping: Vec<usize> = online.iter().copied().filter(|c| !worker.contains(c)).collect();
        let isolated = read_list(&sysc.join("isolated"));
        let nohz = read_list(&sysc.join("nohz_full"));
        let mut facts = IsolationFacts {
            mode: IsolationMode::None,
            worker_cpus: worker.iter().copied().collect(),
            housekeeping_cpus: housekeeping.clone(),
            host_isolated_cpus: isolated.clone(),
            host_nohz_full_cpus: nohz.clone(),
            housekeeping_cgroups: Vec::new(),
            tasks_moved: 0,
            tasks_not_movable: 0,
            tasks_cranlab: 0,
            irqs_steered: 0,
            irqs_refused: 0,
            irqs_untouched: 0,
            notes: Vec::new(),
        };
        let id = format!("{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let mut shield = Shield {
            journal: Journal { id: id.clone(), procfs: roots.proc.clone(), owner: cgroup::owner_tag(), ..Journal::default() },
            journal_path: None,
            facts: facts.clone(),
            worker_cpus: worker.iter().copied().collect(),
            restored: false,
        };
        if worker.iter().all(|c| isolated.contains(c)) {
            facts.mode = IsolationMode::Isolcpus;
            if !worker.iter().all(|c| nohz.contains(c)) {
                facts.notes.push(format!("worker cpus {cpus_s} are isolated but not nohz_full: the tick still runs there"));
            }
            shield.facts = facts;
            shield.restored = true;
            return Ok(shield);
        }
        if housekeeping.is_empty() {
            return Err(IsolateError::Invalid { cpus: cpus_s, reason: "no cpu left for housekeeping".into() });
        }
        if !isolated.is_empty() {
            facts.notes.push(format!("host isolates cpus {} but the worker asked {cpus_s}: shielding instead", format_cpu_list(&isolated)));
        }
        fs::create_dir_all(journal_dir).map_err(|e| io_err("create journal dir", journal_dir, &e))?;
        shield.journal_path = Some(journal_dir.join(format!("shield-{id}.json")));
        shield.facts = facts;
        match shield.shield(cg, roots, &housekeeping) {
            Ok(()) => Ok(shield),
            Err(e) => {
                let _ = shield.restore_inner();
                Err(e)
            }
        }
    }

    fn save(&self) -> Result<(), IsolateError> {
        let Some(p) = &self.journal_path else { return Ok(()) };
        let tmp = p.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(&self.journal).map_err(|e| IsolateError::Io { op: "encode journal", path: p.clone(), msg: e.to_string() })?;
        fs::write(&tmp, data).map_err(|e| io_err("write journal", &tmp, &e))?;
        fs::rename(&tmp, p).map_err(|e| io_err("write journal", p, &e))
    }

    fn shield(&mut self, cg: &CgroupRoot, roots: &Roots, housekeeping: &[usize]) -> Result<(), IsolateError> {
        let hk = format_cpu_list(housekeeping);
        self.save()?;
        match cg.version() {
            CgroupVersion::V2 => self.shield_v2(cg, &hk)?,
            _ => match cg.v1_hierarchy(Controller::Cpuset) {
                Some(h) => self.shield_v1(h, &roots.proc, &hk)?,
                None => self.facts.notes.push("no cpuset controller: tasks not moved".into()),
            },
        }
        self.steer_irqs(&roots.proc, housekeeping)?;
        self.facts.mode = IsolationMode::CpusetShield;
        Ok(())
    }

    fn shield_v1(&mut self, hier: &Path, procfs: &Path, hk: &str) -> Result<(), IsolateError> {
        let dir = hier.join(format!("{}-{}", cgroup::HOUSEKEEPING_PREFIX, self.journal.id));
        self.journal.cpuset_hierarchy = Some(hier.to_path_buf());
        self.journal.housekeeping = Some(dir.clone());
        self.save()?;
        fs::create_dir(&dir).map_err(|e| io_err("create cgroup", &dir, &e))?;
        cgroup::mark_owner(&dir);
        let mems = cgroup::read_file(&hier.join("cpuset.mems"))?;
        cgroup::write_file(&dir.join("cpuset.cpus"), hk)?;
        cgroup::write_file(&dir.join("cpuset.mems"), &mems)?;
        self.facts.housekeeping_cgroups.push(dir.display().to_string());
        let tasks_file = dir.join("tasks");
        let mut seen: BTreeSet<i32> = BTreeSet::new();
        // Threads forked while we move others land in the old cpuset: a few passes.
        for _pass in 0..3 {
            let mut batch = Vec::new();
            for (pid, tid, tdir) in all_tasks(procfs) {
                if !seen.insert(tid) {
                    continue;
                }
                let Ok(cs) = fs::read_to_string(tdir.join("cpuset")) else { continue };
                let cs = cs.trim().to_string();
                let first = cs.trim_start_matches('/').split('/').next().unwrap_or("");
                if first.starts_with(cgroup::PREFIX) {
                    self.facts.tasks_cranlab += 1;
                    continue;
                }
                let (Some(start), Some(aff)) = (start_time(&tdir), affinity_of(&tdir)) else { continue };
                batch.push(TaskEntry { pid, tid, start, cpuset: cs, affinity: aff });
            }
            if batch.is_empty() {
                break;
            }
            self.journal.tasks.extend(batch.iter().cloned());
            self.save()?;
            for t in &batch {
                match write_cg(&tasks_file, &t.tid.to_string()) {
                    Ok(()) => self.facts.tasks_moved += 1,
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) if fs::metadata(&tasks_file).is_err() => return Err(io_err("write", &tasks_file, &e)),
                    Err(_) => self.facts.tasks_not_movable += 1,
                }
            }
        }
        if self.facts.tasks_not_movable > 0 {
            self.facts.notes.push(format!("{} threads could not leave the worker cpus (kernel threads the kernel will not move: per-cpu or no-setaffinity)", self.facts.tasks_not_movable));
        }
        Ok(())
    }

    fn shield_v2(&mut self, cg: &CgroupRoot, hk: &str) -> Result<(), IsolateError> {
        let root = cg.path().to_path_buf();
        let sc = root.join("cgroup.subtree_control");
        let enabled = cgroup::read_file(&sc)?;
        if !enabled.split_whitespace().any(|c| c == "cpuset") {
            self.journal.files.push(FileEntry { path: sc.clone(), restore: "-cpuset".into() });
            self.save()?;
            cgroup::write_file(&sc, "+cpuset")?;
        }
        let mut children: Vec<PathBuf> = fs::read_dir(&root)
            .map_err(|e| io_err("list", &root, &e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.file_name().and_then(|n| n.to_str()).unwrap_or("").starts_with(cgroup::PREFIX))
            .collect();
        children.sort();
        for c in children {
            let f = c.join("cpuset.cpus");
            let Ok(old) = cgroup::read_file(&f) else { continue };
            self.journal.files.push(FileEntry { path: f.clone(), restore: old });
            self.save()?;
            match cgroup::write_file(&f, hk) {
                Ok(()) => {
                    self.facts.housekeeping_cgroups.push(c.display().to_string());
                    self.facts.tasks_moved += cgroup_task_count(&c);
                }
                Err(e) => self.facts.notes.push(format!("not shielded: {e}")),
            }
        }
        let in_root = fs::read_to_string(root.join("cgroup.procs")).map(|s| s.lines().count() as u64).unwrap_or(0);
        self.facts.tasks_not_movable += in_root;
        if in_root > 0 {
            self.facts.notes.push(format!("{in_root} processes in the root cgroup (kernel threads, early services) are not restricted by a v2 cpuset"));
        }
        Ok(())
    }

    fn steer_irqs(&mut self, procfs: &Path, housekeeping: &[usize]) -> Result<(), IsolateError> {
        let irqdir = procfs.join("irq");
        let mut irqs: Vec<(u32, PathBuf)> = match fs::read_dir(&irqdir) {
            Ok(rd) => rd.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()).map(|n| (n, e.path()))).collect(),
            Err(_) => {
                self.facts.notes.push(format!("no {}: irq affinity not steered", irqdir.display()));
                return Ok(());
            }
        };
        irqs.sort();
        let mut plan: Vec<(PathBuf, String, String)> = Vec::new();
        for (_, d) in irqs {
            let f = d.join("smp_affinity_list");
            let Ok(old) = fs::read_to_string(&f) else { continue };
            let old = old.trim().to_string();
            let Ok(cur) = parse_cpu_list(&old) else { continue };
            if !cur.iter().any(|c| self.worker_cpus.contains(c)) {
                self.facts.irqs_untouched += 1;
                continue;
            }
            let mut new: Vec<usize> = cur.iter().copied().filter(|c| !self.worker_cpus.contains(c)).collect();
            if new.is_empty() {
                new = housekeeping.to_vec();
            }
            plan.push((f, old, format_cpu_list(&new)));
        }
        let dflt = irqdir.join("default_smp_affinity");
        let dflt_plan = fs::read_to_string(&dflt).ok().map(|s| s.trim().to_string()).filter(|old| {
            parse_cpu_mask(old).is_some_and(|c| c.iter().any(|c| self.worker_cpus.contains(c)))
        });
        for (f, old, _) in &plan {
            self.journal.files.push(FileEntry { path: f.clone(), restore: old.clone() });
        }
        if let Some(old) = &dflt_plan {
            self.journal.files.push(FileEntry { path: dflt.clone(), restore: old.clone() });
        }
        self.save()?;
        let mut refused = Vec::new();
        for (f, _, new) in &plan {
            match write_value(f, new) {
                Ok(()) => self.facts.irqs_steered += 1,
                Err(e) => {
                    self.facts.irqs_refused += 1;
                    refused.push(format!("{} ({})", f.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("?"), cgroup::errno_text(&e)));
                }
            }
        }
        if dflt_plan.is_some() {
            let mut hk_cpus = housekeeping.to_vec();
            hk_cpus.sort();
            if let Err(e) = write_value(&dflt, &cpu_mask_hex(&hk_cpus)) {
                self.facts.notes.push(format!("write {}: {}", dflt.display(), cgroup::errno_text(&e)));
            }
        }
        if !refused.is_empty() {
            self.facts.notes.push(format!("irq affinity refused by the kernel for irqs {}", refused.join(", ")));
        }
        Ok(())
    }

    /// What was achieved.
    pub fn report(&self) -> IsolationFacts {
        self.facts.clone()
    }

    /// The journal path (`None` when nothing had to change).
    pub fn journal_path(&self) -> Option<&Path> {
        self.journal_path.as_deref()
    }

    /// Moves every thread of `pid` out of the housekeeping cpuset into the
    /// root cpuset (all CPUs), so a bare worker started from a shielded
    /// process may pin itself to a worker CPU. A no-op without a v1
    /// housekeeping cpuset (isolcpus mode, v2).
    pub fn admit(&self, pid: i32) -> Result<(), IsolateError> {
        let (Some(hier), Some(_)) = (&self.journal.cpuset_hierarchy, &self.journal.housekeeping) else { return Ok(()) };
        let tasks = hier.join("tasks");
        let tdir = self.journal.procfs.join(pid.to_string()).join("task");
        let rd = fs::read_dir(&tdir).map_err(|e| io_err("list", &tdir, &e))?;
        for t in rd.flatten() {
            let tid = t.file_name().to_string_lossy().to_string();
            if let Err(e) = write_cg(&tasks, &tid) {
                if e.raw_os_error() != Some(libc::ESRCH) {
                    return Err(io_err("write", &tasks, &e));
                }
            }
        }
        Ok(())
    }

    /// Puts everything back; errors name what could not be restored.
    pub fn restore(mut self) -> Result<RestoreReport, IsolateError> {
        self.restore_inner()
    }

    fn restore_inner(&mut self) -> Result<RestoreReport, IsolateError> {
        if self.restored {
            return Ok(RestoreReport::default());
        }
        self.restored = true;
        let r = restore_journal(&self.journal);
        if r.is_ok() {
            if let Some(p) = &self.journal_path {
                let _ = fs::remove_file(p);
            }
        }
        r
    }
}

impl Drop for Shield {
    fn drop(&mut self) {
        let _ = self.restore_inner();
    }
}

fn cgroup_task_count(dir: &Path) -> u64 {
    let mut n = fs::read_to_string(dir.join("cgroup.procs")).map(|s| s.lines().count() as u64).unwrap_or(0);
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                n += cgroup_task_count(&e.path());
            }
        }
    }
    n
}

/// Undoes what a journal records (idempotent: restoring an unchanged value
/// is harmless).
pub fn restore_journal(j: &Journal) -> Result<RestoreReport, IsolateError> {
    let mut rep = RestoreReport::default();
    let mut errors = Vec::new();
    for f in j.files.iter().rev() {
        if !f.path.exists() {
            continue;
        }
        match write_value(&f.path, &f.restore) {
            Ok(()) => rep.files_restored += 1,
            // An IRQ that was refused before is refused again: nothing to undo.
            Err(e) => {
                let now = fs::read_to_string(&f.path).map(|s| s.trim().to_string()).unwrap_or_default();
                if now != f.restore && !(f.restore.starts_with('-') || equal_lists(&now, &f.restore)) {
                    errors.push(format!("write {}: {}", f.path.display(), cgroup::errno_text(&e)));
                }
            }
        }
    }
    let real = real_procfs(&j.procfs);
    if let (Some(hier), Some(hk)) = (&j.cpuset_hierarchy, &j.housekeeping) {
        // The last entry for a tid wins (a tid is journaled once per shield).
        let mut by_tid: BTreeMap<i32, &TaskEntry> = BTreeMap::new();
        for t in &j.tasks {
            by_tid.insert(t.tid, t);
        }
        let mut to_root = Vec::new();
        if hk.exists() {
            let in_hk: Vec<i32> = fs::read_to_string(hk.join("tasks")).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect();
            for tid in in_hk {
                if !by_tid.contains_key(&tid) {
                    to_root.push(tid);
                }
            }
        }
        for t in by_tid.values() {
            let tdir = j.procfs.join(t.pid.to_string()).join("task").join(t.tid.to_string());
            if start_time(&tdir) != Some(t.start) {
                rep.tasks_gone += 1;
                continue;
            }
            let target = hier.join(t.cpuset.trim_start_matches('/'));
            let target = if target.is_dir() { target } else { hier.to_path_buf() };
            match write_cg(&target.join("tasks"), &t.tid.to_string()) {
                Ok(()) => rep.tasks_restored += 1,
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                    rep.tasks_gone += 1;
                    continue;
                }
                Err(e) => {
                    // Not movable before either: it never left.
                    let cur = fs::read_to_string(tdir.join("cpuset")).map(|s| s.trim().to_string()).unwrap_or_default();
                    if cur != t.cpuset {
                        errors.push(format!("move tid {} back to {}: {}", t.tid, target.display(), cgroup::errno_text(&e)));
                    }
                    continue;
                }
            }
            if real {
                if let Some(now) = affinity_of(&tdir) {
                    if now != t.affinity {
                        match set_affinity(t.tid, &t.affinity) {
                            Ok(()) => rep.affinities_reset += 1,
                            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                            Err(e) => errors.push(format!("set affinity of tid {} to {}: {}", t.tid, format_cpu_list(&t.affinity), cgroup::errno_text(&e))),
                        }
                    }
                }
            }
        }
        for tid in to_root {
            if write_cg(&hier.join("tasks"), &tid.to_string()).is_ok() {
                rep.tasks_born_during += 1;
            }
        }
        if hk.exists() {
            let mut ok = false;
            for _ in 0..50 {
                // Late forks: anything still inside goes to the root.
                for tid in fs::read_to_string(hk.join("tasks")).unwrap_or_default().lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    if write_cg(&hier.join("tasks"), &tid.to_string()).is_ok() {
                        rep.tasks_born_during += 1;
                    }
                }
                let r = if real_cgroupfs(hk) { fs::remove_dir(hk) } else { fs::remove_dir_all(hk) };
                if r.is_ok() || !hk.exists() {
                    ok = true;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if !ok {
                errors.push(format!("remove cgroup {}: still busy", hk.display()));
            }
        }
    }
    if errors.is_empty() {
        Ok(rep)
    } else {
        Err(IsolateError::Incomplete(errors))
    }
}

fn real_cgroupfs(p: &Path) -> bool {
    #[allow(clippy::unnecessary_cast)] // __fsword_t differs between libcs
    let m = nix::sys::statfs::statfs(p).ok().map(|s| s.filesystem_type().0 as i64);
    matches!(m, Some(0x0027_e0eb) | Some(0x6367_7270))
}

fn equal_lists(a: &str, b: &str) -> bool {
    match (parse_cpu_list(a), parse_cpu_list(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Restores the shield recorded in one journal file and deletes it.
pub fn restore_from_journal(path: &Path) -> Result<RestoreReport, IsolateError> {
    let data = fs::read(path).map_err(|e| io_err("read journal", path, &e))?;
    let j: Journal = serde_json::from_slice(&data).map_err(|e| IsolateError::Io { op: "parse journal", path: path.to_path_buf(), msg: e.to_string() })?;
    let rep = restore_journal(&j)?;
    fs::remove_file(path).map_err(|e| io_err("remove journal", path, &e))?;
    Ok(rep)
}

/// Restores every `shield-*.json` left in `journal_dir` by a killed run
/// (its owner process is gone); returns the journals handled. Shields of
/// live processes are left alone. A missing directory is not an error.
pub fn sweep(journal_dir: &Path) -> Result<Vec<PathBuf>, IsolateError> {
    sweep_inner(journal_dir, false)
}

/// Like [`sweep`], but restores live processes' shields too.
pub fn sweep_all(journal_dir: &Path) -> Result<Vec<PathBuf>, IsolateError> {
    sweep_inner(journal_dir, true)
}

fn sweep_inner(journal_dir: &Path, all: bool) -> Result<Vec<PathBuf>, IsolateError> {
    let rd = match fs::read_dir(journal_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", journal_dir, &e)),
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("shield-") && n.ends_with(".json")))
        .collect();
    files.sort();
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        if !all {
            let owner = fs::read(&f).ok().and_then(|d| serde_json::from_slice::<Journal>(&d).ok()).map(|j| j.owner).unwrap_or_default();
            if cgroup::owner_alive(&owner) {
                continue;
            }
        }
        match restore_from_journal(&f) {
            Ok(_) => done.push(f),
            Err(e) => errors.push(format!("{}: {e}", f.display())),
        }
    }
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(IsolateError::Incomplete(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_round_trip() {
        assert_eq!(cpu_mask_hex(&[0, 1]), "3");
        assert_eq!(cpu_mask_hex(&[0]), "1");
        assert_eq!(cpu_mask_hex(&[0, 33]), "2,00000001");
        assert_eq!(parse_cpu_mask("2,00000001").unwrap(), vec![0, 33]);
        assert_eq!(parse_cpu_mask("3").unwrap(), vec![0, 1]);
        assert!(parse_cpu_mask("zz").is_none());
    }

    #[test]
    fn start_time_is_field_22() {
        let d = std::env::temp_dir().join(format!("cranlab-iso-stat-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("stat"), "2 (kthread d) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 25 0 0").unwrap();
        assert_eq!(start_time(&d), Some(25));
        fs::remove_dir_all(&d).unwrap();
    }
}
