//! Host facts and readiness checks.
//!
//! [`HostFacts::gather`] reads what the host provides for real-time work
//! (kernel, preemption model, command line, isolated / nohz_full / rcu_nocbs
//! CPUs, RT throttling, governors and idle states, SMT, THP, timer
//! migration, clocksource, IRQ affinities, hardware KVM, AF_XDP, io_uring,
//! cgroup layout) from roots given as parameters, so tests run against fake
//! trees. [`check`] turns facts into pass/warn/fail items, each with the
//! exact fix; `cranlab host-check` prints them and `--strict` fails on any
//! warning ([`exit_code`]). `docs/host-tuning.md` explains each item.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::{format_cpu_list, parse_cpu_list, CgroupRoot};

/// Filesystem roots the host is read from (fakes in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// procfs (`/proc`).
    pub proc: PathBuf,
    /// sysfs (`/sys`).
    pub sys: PathBuf,
    /// `/boot` (kernel configs).
    pub boot: PathBuf,
    /// cgroup filesystem (`/sys/fs/cgroup`).
    pub cgroup: PathBuf,
    /// `/dev` (for `/dev/kvm`).
    pub dev: PathBuf,
    /// Run the syscall probes (AF_XDP socket, io_uring_setup). Off for fake roots.
    pub probe_syscalls: bool,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc: "/proc".into(),
            sys: "/sys".into(),
            boot: "/boot".into(),
            cgroup: "/sys/fs/cgroup".into(),
            dev: "/dev".into(),
            probe_syscalls: true,
        }
    }
}

impl Roots {
    /// Roots under one directory (`<dir>/proc`, `<dir>/sys`, ...), probes off.
    pub fn under(dir: &Path) -> Roots {
        Roots {
            proc: dir.join("proc"),
            sys: dir.join("sys"),
            boot: dir.join("boot"),
            cgroup: dir.join("sys/fs/cgroup"),
            dev: dir.join("dev"),
            probe_syscalls: false,
        }
    }
}

/// One cpuidle state of a CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleState {
    /// `name` (POLL, C1, C6 ...).
    pub name: String,
    /// Exit latency, µs.
    pub latency_us: u64,
    /// Disabled through sysfs.
    pub disabled: bool,
}

/// Per-CPU facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFacts {
    /// CPU number.
    pub cpu: usize,
    /// cpufreq governor (`None`: no cpufreq driver).
    pub governor: Option<String>,
    /// cpufreq driver.
    pub scaling_driver: Option<String>,
    /// cpuidle states.
    pub idle_states: Vec<IdleState>,
    /// `topology/thread_siblings_list` (includes the CPU itself).
    pub smt_siblings: Vec<usize>,
}

/// One interrupt's affinity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqFacts {
    /// IRQ number.
    pub irq: u32,
    /// `smp_affinity_list`.
    pub affinity: Vec<usize>,
    /// `effective_affinity_list` where the kernel has it.
    pub effective: Option<Vec<usize>>,
}

/// Hardware virtualisation facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmFacts {
    /// `/dev/kvm` exists.
    pub dev_kvm: bool,
    /// Loaded vendor module (`kvm_intel`, `kvm_amd`), or another kvm backend (`kvm_pvm`).
    pub modules: Vec<String>,
    /// CPU advertises `vmx` or `svm`.
    pub cpu_virt_flag: bool,
    /// CPU advertises `hypervisor`: this host is itself a guest.
    pub hypervisor_guest: bool,
    /// `nested` parameter of the vendor module.
    pub nested: Option<String>,
    /// Hardware-assisted KVM usable: vendor module loaded, vmx/svm and `/dev/kvm`.
    pub hardware: bool,
}

/// Result of a syscall probe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The probe succeeded.
    pub available: bool,
    /// What happened (`socket(AF_XDP) ok`, `io_uring_setup: operation not permitted`).
    pub detail: String,
}

/// Facts about the host (a superset of bench's results `HostFacts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -v`.
    pub kernel_version: String,
    /// `PREEMPT_RT`, `PREEMPT_DYNAMIC (full)`, `PREEMPT_DYNAMIC (none)`, `voluntary`, `none`, `unknown`.
    pub preemption: String,
    /// Where the preemption model was read from.
    pub preemption_source: String,
    /// The kernel is PREEMPT_RT.
    pub preempt_rt: bool,
    /// `/proc/cmdline`.
    pub cmdline: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Online CPUs.
    pub cpus_online: Vec<usize>,
    /// `/sys/devices/system/cpu/isolated`.
    pub isolated_cpus: Vec<usize>,
    /// `/sys/devices/system/cpu/nohz_full`.
    pub nohz_full_cpus: Vec<usize>,
    /// `rcu_nocbs=` from the command line.
    pub rcu_nocbs_cpus: Vec<usize>,
    /// Kernel built with CONFIG_NO_HZ_FULL (`None`: no kernel config found).
    pub config_no_hz_full: Option<bool>,
    /// Where the kernel config was read (`/proc/config.gz`, `/boot/config-*`).
    pub kernel_config: Option<String>,
    /// RT group scheduling active per the kernel config and `rt_group_sched=`
    /// (`None`: no kernel config found). On cgroup v2 it has no
    /// `cpu.rt_runtime_us`, so SCHED_FIFO in a non-root cpu cgroup gets EPERM.
    pub config_rt_group_sched: Option<bool>,
    /// `kernel.sched_rt_runtime_us` (-1: throttling off).
    pub sched_rt_runtime_us: Option<i64>,
    /// `kernel.sched_rt_period_us`.
    pub sched_rt_period_us: Option<i64>,
    /// CONFIG_RT_GROUP_SCHED (cpu.rt_runtime_us in the cgroup fs).
    pub rt_group_sched: bool,
    /// Per-CPU facts for online CPUs.
    pub cpus: Vec<CpuFacts>,
    /// `/sys/devices/system/cpu/smt/active`.
    pub smt_active: Option<bool>,
    /// Selected THP mode (`always`, `madvise`, `never`).
    pub thp: Option<String>,
    /// `kernel.timer_migration`.
    pub timer_migration: Option<bool>,
    /// Current clocksource.
    pub clocksource: Option<String>,
    /// Available clocksources.
    pub clocksources_available: Vec<String>,
    /// Every IRQ's affinity.
    pub irqs: Vec<IrqFacts>,
    /// `irqbalance` is running (it undoes IRQ steering).
    pub irqbalance_running: bool,
    /// Virtualisation.
    pub kvm: KvmFacts,
    /// AF_XDP socket probe.
    pub af_xdp: Probe,
    /// io_uring probe.
    pub io_uring: Probe,
    /// `kernel.io_uring_disabled` (0 allowed, 1 privileged only, 2 off).
    pub io_uring_disabled: Option<i64>,
    /// `v1`, `v2`, `hybrid` or `none`.
    pub cgroup_version: String,
    /// Anything that could not be read.
    pub notes: Vec<String>,
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

fn read_list(p: &Path) -> Vec<usize> {
    read_trim(p).and_then(|s| parse_cpu_list(&s).ok()).unwrap_or_default()
}

/// Value of `key=` on a kernel command line (last one wins).
pub fn cmdline_param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    let mut out = None;
    for tok in cmdline.split_whitespace() {
        if tok == "--" {
            break;
        }
        if let Some(v) = tok.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
            out = Some(v);
        }
    }
    out
}

/// CPU list of an `isolcpus=`-style value (flags such as `managed_irq,domain,` dropped).
pub fn cmdline_cpus(v: &str) -> Vec<usize> {
    let cpus: Vec<&str> = v.split(',').filter(|p| p.chars().next().is_some_and(|c| c.is_ascii_digit())).collect();
    parse_cpu_list(&cpus.join(",")).unwrap_or_default()
}

/// Kernel config text: `/proc/config.gz`, else `/boot/config-<release>`.
fn kernel_config(roots: &Roots, release: &str) -> Option<(String, String)> {
    let gz = roots.proc.join("config.gz");
    if let Ok(f) = fs::File::open(&gz) {
        let mut s = String::new();
        if flate2::read::GzDecoder::new(f).read_to_string(&mut s).is_ok() {
            return Some((s, gz.display().to_string()));
        }
    }
    let b = roots.boot.join(format!("config-{release}"));
    fs::read_to_string(&b).ok().map(|s| (s, b.display().to_string()))
}

fn config_has(cfg: &str, key: &str) -> bool {
    cfg.lines().any(|l| l.trim() == format!("{key}=y"))
}

/// Works out the preemption model: (model, source, is_rt).
fn preemption(roots: &Roots, version: &str, cmdline: &str, release: &str) -> (String, String, bool) {
    let dbg = roots.sys.join("kernel/debug/sched/preempt");
    let rt = version.contains("PREEMPT_RT");
    if let Some(s) = read_trim(&dbg) {
        // `none voluntary (full) lazy`: the selected one is in parentheses.
        if let Some(sel) = s.split_whitespace().find(|w| w.starts_with('(')) {
            let m = sel.trim_matches(|c| c == '(' || c == ')');
            let model = if rt { format!("PREEMPT_RT ({m})") } else { format!("PREEMPT_DYNAMIC ({m})") };
            return (model, dbg.display().to_string(), rt);
        }
    }
    if rt {
        return ("PREEMPT_RT".into(), "uname -v".into(), true);
    }
    if version.contains("PREEMPT_DYNAMIC") {
        if let Some(m) = cmdline_param(cmdline, "preempt") {
            return (format!("PREEMPT_DYNAMIC ({m})"), "preempt= on /proc/cmdline".into(), false);
        }
        if let Some((cfg, src)) = kernel_config(roots, release) {
            let m = if config_has(&cfg, "CONFIG_PREEMPT_NONE") {
                "none"
            } else if config_has(&cfg, "CONFIG_PREEMPT_VOLUNTARY") {
                "voluntary"
            } else if config_has(&cfg, "CONFIG_PREEMPT_LAZY") {
                "lazy"
            } else if config_has(&cfg, "CONFIG_PREEMPT") {
                "full"
            } else {
                "unknown"
            };
            return (format!("PREEMPT_DYNAMIC ({m})"), format!("build default in {src}, no preempt= on the command line"), false);
        }
        return ("PREEMPT_DYNAMIC (unknown)".into(), "uname -v; debugfs not mounted, no kernel config".into(), false);
    }
    if version.contains("PREEMPT") {
        return ("full".into(), "uname -v".into(), false);
    }
    if let Some((cfg, src)) = kernel_config(roots, release) {
        let m = if config_has(&cfg, "CONFIG_PREEMPT_VOLUNTARY") { "voluntary" } else { "none" };
        return (m.into(), src, false);
    }
    ("unknown".into(), "uname -v".into(), false)
}

impl HostFacts {
    /// Reads everything from `roots` (and runs the syscall probes if
    /// `roots.probe_syscalls`). Never fails: what cannot be read is `None`
    /// / empty and noted.
    pub fn gather(roots: &Roots) -> HostFacts {
        let mut f = HostFacts { kernel_release: read_trim(&roots.proc.join("sys/kernel/osrelease")).unwrap_or_default(), ..HostFacts::default() };
        f.kernel_version = read_trim(&roots.proc.join("sys/kernel/version")).unwrap_or_default();
        f.cmdline = read_trim(&roots.proc.join("cmdline")).unwrap_or_default();
        let (p, src, rt) = preemption(roots, &f.kernel_version, &f.cmdline, &f.kernel_release);
        f.preemption = p;
        f.preemption_source = src;
        f.preempt_rt = rt;
        let cpuinfo = read_trim(&roots.proc.join("cpuinfo")).unwrap_or_default();
        f.cpu_model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
        let flags: BTreeSet<&str> = cpuinfo.lines().filter(|l| l.starts_with("flags")).flat_map(|l| l.split_once(':').map(|x| x.1).unwrap_or("").split_whitespace()).collect();
        let sysc = roots.sys.join("devices/system/cpu");
        f.cpus_online = read_list(&sysc.join("online"));
        f.isolated_cpus = read_list(&sysc.join("isolated"));
        f.nohz_full_cpus = read_list(&sysc.join("nohz_full"));
        f.rcu_nocbs_cpus = cmdline_param(&f.cmdline, "rcu_nocbs").map(cmdline_cpus).unwrap_or_default();
        if let Some((cfg, src)) = kernel_config(roots, &f.kernel_release) {
            f.config_no_hz_full = Some(config_has(&cfg, "CONFIG_NO_HZ_FULL"));
            let built = config_has(&cfg, "CONFIG_RT_GROUP_SCHED");
            let default_on = !config_has(&cfg, "CONFIG_RT_GROUP_SCHED_DEFAULT_DISABLED");
            let param = cmdline_param(&f.cmdline, "rt_group_sched").map(|v| matches!(v, "1" | "y" | "Y" | "on"));
            f.config_rt_group_sched = Some(built && param.unwrap_or(default_on));
            f.kernel_config = Some(src);
        }
        f.sched_rt_runtime_us = read_trim(&roots.proc.join("sys/kernel/sched_rt_runtime_us")).and_then(|s| s.parse().ok());
        f.sched_rt_period_us = read_trim(&roots.proc.join("sys/kernel/sched_rt_period_us")).and_then(|s| s.parse().ok());
        for &c in &f.cpus_online {
            let d = sysc.join(format!("cpu{c}"));
            let mut idle = Vec::new();
            if let Ok(rd) = fs::read_dir(d.join("cpuidle")) {
                let mut states: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("state"))).collect();
                states.sort();
                for s in states {
                    idle.push(IdleState {
                        name: read_trim(&s.join("name")).unwrap_or_default(),
                        latency_us: read_trim(&s.join("latency")).and_then(|v| v.parse().ok()).unwrap_or(0),
                        disabled: read_trim(&s.join("disable")).is_some_and(|v| v == "1"),
                    });
                }
            }
            f.cpus.push(CpuFacts {
                cpu: c,
                governor: read_trim(&d.join("cpufreq/scaling_governor")),
                scaling_driver: read_trim(&d.join("cpufreq/scaling_driver")),
                idle_states: idle,
                smt_siblings: read_list(&d.join("topology/thread_siblings_list")),
            });
        }
        f.smt_active = read_trim(&sysc.join("smt/active")).map(|s| s == "1");
        f.thp = read_trim(&roots.sys.join("kernel/mm/transparent_hugepage/enabled"))
            .and_then(|s| s.split_whitespace().find(|w| w.starts_with('[')).map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string()));
        f.timer_migration = read_trim(&roots.proc.join("sys/kernel/timer_migration")).map(|s| s == "1");
        let cs = roots.sys.join("devices/system/clocksource/clocksource0");
        f.clocksource = read_trim(&cs.join("current_clocksource"));
        f.clocksources_available = read_trim(&cs.join("available_clocksource")).unwrap_or_default().split_whitespace().map(str::to_string).collect();
        if let Ok(rd) = fs::read_dir(roots.proc.join("irq")) {
            for e in rd.flatten() {
                let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
                let Some(a) = read_trim(&e.path().join("smp_affinity_list")) else { continue };
                f.irqs.push(IrqFacts {
                    irq: n,
                    affinity: parse_cpu_list(&a).unwrap_or_default(),
                    effective: read_trim(&e.path().join("effective_affinity_list")).and_then(|s| parse_cpu_list(&s).ok()),
                });
            }
            f.irqs.sort_by_key(|i| i.irq);
        }
        f.irqbalance_running = fs::read_dir(&roots.proc).map(|rd| rd.flatten().any(|e| read_trim(&e.path().join("comm")).is_some_and(|c| c == "irqbalance"))).unwrap_or(false);
        // KVM.
        let mut kvm = KvmFacts { dev_kvm: roots.dev.join("kvm").exists(), ..KvmFacts::default() };
        for m in ["kvm_intel", "kvm_amd", "kvm_pvm"] {
            if roots.sys.join("module").join(m).is_dir() {
                kvm.modules.push(m.to_string());
                if let Some(n) = read_trim(&roots.sys.join("module").join(m).join("parameters/nested")) {
                    kvm.nested = Some(n);
                }
            }
        }
        kvm.cpu_virt_flag = flags.contains("vmx") || flags.contains("svm");
        kvm.hypervisor_guest = flags.contains("hypervisor");
        kvm.hardware = kvm.dev_kvm && kvm.cpu_virt_flag && kvm.modules.iter().any(|m| m == "kvm_intel" || m == "kvm_amd");
        f.kvm = kvm;
        f.io_uring_disabled = read_trim(&roots.proc.join("sys/kernel/io_uring_disabled")).and_then(|s| s.parse().ok());
        if roots.probe_syscalls {
            f.af_xdp = sys::probe_af_xdp();
            f.io_uring = sys::probe_io_uring();
        } else {
            f.af_xdp = Probe { available: false, detail: "not probed".into() };
            f.io_uring = Probe { available: false, detail: "not probed".into() };
        }
        match CgroupRoot::detect(&roots.cgroup) {
            Ok(r) => {
                f.cgroup_version = r.version().as_str().to_string();
                f.rt_group_sched = r.rt_group_sched();
            }
            Err(e) => {
                f.cgroup_version = "none".into();
                f.notes.push(e.to_string());
            }
        }
        if f.kernel_release.is_empty() {
            f.notes.push(format!("cannot read {}", roots.proc.join("sys/kernel/osrelease").display()));
        }
        f
    }

    /// The facts as bench's results schema spells them (`cranlab.results/1`
    /// `HostFacts` fields), for `bench` to deserialize or merge.
    pub fn results_json(&self, worker_cpus: &[usize], isolation: &str) -> serde_json::Value {
        let gov = worker_cpus.first().and_then(|c| self.cpus.iter().find(|x| x.cpu == *c)).and_then(|x| x.governor.clone());
        serde_json::json!({
            "kernel_release": self.kernel_release,
            "preemption": self.preemption,
            "cmdline": self.cmdline,
            "cpu_model": self.cpu_model,
            "cpus_online": self.cpus_online.len(),
            "isolated_cpus": self.isolated_cpus,
            "nohz_full_cpus": self.nohz_full_cpus,
            "worker_cpus": worker_cpus,
            "sched_rt_runtime_us": self.sched_rt_runtime_us,
            "sched_rt_period_us": self.sched_rt_period_us,
            "cgroup_version": self.cgroup_version,
            "isolation": isolation,
            "governor": gov,
            "smt_active": self.smt_active,
            "clocksource": self.clocksource,
            "notes": self.notes,
        })
    }
}

/// Outcome of one readiness item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ready.
    Pass,
    /// Works, but results will be worse than the host could give.
    Warn,
    /// Missing: the measurement cannot be what it claims.
    Fail,
}

impl Status {
    /// `PASS`, `WARN`, `FAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One readiness item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    /// Short stable name (`preemption`, `isolcpus`, ...).
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// Exact fix (command, cmdline parameter, sysctl, package); empty on pass.
    pub fix: String,
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    /// Cores the workers will use.
    pub worker_cpus: Vec<usize>,
    /// Where to read the host from (`Roots::default()` for this host).
    pub roots: Roots,
}

/// Gathers the facts and checks them (see [`check_facts`]).
pub fn check(req: &CheckRequest) -> Vec<CheckItem> {
    check_facts(&HostFacts::gather(&req.roots), &req.worker_cpus)
}

/// Exit status for a list of items: 0 ready, 1 a failure, 2 (with `strict`) a warning.
pub fn exit_code(items: &[CheckItem], strict: bool) -> i32 {
    if items.iter().any(|i| i.status == Status::Fail) {
        1
    } else if strict && items.iter().any(|i| i.status == Status::Warn) {
        2
    } else {
        0
    }
}

/// Plain-text table of items (one line each, fix indented below).
pub fn render(items: &[CheckItem]) -> String {
    let mut s = String::new();
    for i in items {
        s.push_str(&format!("{:<4}  {:<16} {}\n", i.status.as_str(), i.name, i.detail));
        if !i.fix.is_empty() {
            s.push_str(&format!("      {:<16} fix: {}\n", "", i.fix));
        }
    }
    s
}

fn item(name: &str, status: Status, detail: String, fix: &str) -> CheckItem {
    CheckItem { name: name.into(), status, detail, fix: if status == Status::Pass { String::new() } else { fix.to_string() } }
}

/// Checks facts for workers on `worker_cpus` (empty: every online CPU but
/// the first). Pure: tests feed it made-up facts.
pub fn check_facts(f: &HostFacts, worker_cpus: &[usize]) -> Vec<CheckItem> {
    use Status::*;
    let w: Vec<usize> = if worker_cpus.is_empty() { f.cpus_online.iter().copied().skip(1).collect() } else { worker_cpus.to_vec() };
    let ws = format_cpu_list(&w);
    let hk: Vec<usize> = f.cpus_online.iter().copied().filter(|c| !w.contains(c)).collect();
    let hks = if hk.is_empty() { "0".to_string() } else { format_cpu_list(&hk) };
    let subset = |set: &[usize]| !w.is_empty() && w.iter().all(|c| set.contains(c));
    let grub = "(add to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub, reboot)";
    let mut out = Vec::new();

    let offline: Vec<usize> = w.iter().copied().filter(|c| !f.cpus_online.contains(c)).collect();
    out.push(if w.is_empty() {
        item("worker cpus", Fail, format!("host has {} online cpu(s): none left for a worker besides housekeeping", f.cpus_online.len()), "use a host with at least 2 cores")
    } else if !offline.is_empty() {
        item("worker cpus", Fail, format!("cpus {} are not online (online: {})", format_cpu_list(&offline), format_cpu_list(&f.cpus_online)), "choose online cpus with --cpus, or bring them online: echo 1 > /sys/devices/system/cpu/cpuN/online")
    } else {
        item("worker cpus", Pass, format!("workers on {ws}, housekeeping on {hks}"), "")
    });

    out.push(if f.preempt_rt {
        item("preemption", Pass, format!("{} ({})", f.preemption, f.preemption_source), "")
    } else if f.preemption.contains("full") || f.preemption == "full" {
        item("preemption", Warn, format!("{} is not PREEMPT_RT: long kernel sections can delay the worker ({})", f.preemption, f.preemption_source), "install a PREEMPT_RT kernel: apt install linux-image-rt-amd64, reboot into it")
    } else {
        item(
            "preemption",
            Fail,
            format!("{}: not PREEMPT_RT and not fully preemptible ({})", f.preemption, f.preemption_source),
            &format!("install a PREEMPT_RT kernel: apt install linux-image-rt-amd64, reboot into it; at least boot with preempt=full {grub}"),
        )
    });

    let iso_fix = format!("kernel command line isolcpus=managed_irq,domain,{ws} nohz_full={ws} rcu_nocbs={ws} irqaffinity={hks} {grub}");
    out.push(if subset(&f.isolated_cpus) {
        item("isolcpus", Pass, format!("cpus {ws} are isolated (isolated: {})", format_cpu_list(&f.isolated_cpus)), "")
    } else if f.isolated_cpus.is_empty() {
        item("isolcpus", Warn, "no isolated cpus: cranlab run shields the worker core with cpusets and IRQ steering for the run (the scheduler tick, unbound kworkers and RCU callbacks still reach it)".into(), &iso_fix)
    } else {
        item("isolcpus", Warn, format!("worker cpus {ws} are not among the isolated cpus {}", format_cpu_list(&f.isolated_cpus)), &format!("run the workers on the isolated cpus (--cpus {}), or {iso_fix}", format_cpu_list(&f.isolated_cpus)))
    });
    out.push(if subset(&f.nohz_full_cpus) {
        item("nohz_full", Pass, format!("cpus {ws} run tickless (nohz_full: {})", format_cpu_list(&f.nohz_full_cpus)), "")
    } else {
        let now = if f.nohz_full_cpus.is_empty() { "none".into() } else { format_cpu_list(&f.nohz_full_cpus) };
        match f.config_no_hz_full {
            Some(false) => item(
                "nohz_full",
                Warn,
                format!("worker cpus {ws} not in nohz_full ({now}) and this kernel lacks CONFIG_NO_HZ_FULL ({}): the scheduler tick interrupts the worker", f.kernel_config.clone().unwrap_or_default()),
                &format!("boot a kernel built with CONFIG_NO_HZ_FULL=y (check: grep NO_HZ_FULL /boot/config-<release>), then nohz_full={ws} on the kernel command line {grub}"),
            ),
            _ => item("nohz_full", Warn, format!("worker cpus {ws} not in nohz_full ({now}): the scheduler tick interrupts the worker"), &format!("kernel command line nohz_full={ws} {grub}")),
        }
    });
    out.push(if subset(&f.rcu_nocbs_cpus) || subset(&f.nohz_full_cpus) {
        item("rcu_nocbs", Pass, format!("RCU callbacks offloaded from {ws}"), "")
    } else {
        item("rcu_nocbs", Warn, format!("RCU callbacks still run on {ws} (rcu_nocbs: {})", if f.rcu_nocbs_cpus.is_empty() { "none".into() } else { format_cpu_list(&f.rcu_nocbs_cpus) }), &format!("kernel command line rcu_nocbs={ws} {grub}"))
    });

    out.push(match (f.sched_rt_runtime_us, f.sched_rt_period_us) {
        (Some(-1), _) if subset(&f.isolated_cpus) => item("rt throttling", Pass, "sched_rt_runtime_us = -1 (off) with isolated worker cores".into(), ""),
        (Some(-1), _) => item("rt throttling", Warn, "sched_rt_runtime_us = -1 (off) without isolated cores: a busy-polling SCHED_FIFO worker can starve the host".into(), "sysctl -w kernel.sched_rt_runtime_us=950000, or isolate the worker cores first"),
        (Some(r), Some(p)) if r < p => item(
            "rt throttling",
            Warn,
            format!("sched_rt_runtime_us = {r} of {p}: a SCHED_FIFO worker busy for a whole period is stopped for {} µs (RT throttling)", p - r),
            "on a host with isolated worker cores: sysctl -w kernel.sched_rt_runtime_us=-1 (persist in /etc/sysctl.d/90-cranlab.conf); keep it on shared hosts",
        ),
        (Some(r), Some(p)) => item("rt throttling", Pass, format!("sched_rt_runtime_us = {r} of {p}"), ""),
        _ => item("rt throttling", Warn, "cannot read /proc/sys/kernel/sched_rt_runtime_us".into(), "mount procfs at /proc"),
    });
    out.push(if f.rt_group_sched {
        item("rt group sched", Pass, "CONFIG_RT_GROUP_SCHED: container cgroups need cpu.rt_runtime_us, which rt-runtime assigns (parents first)".into(), "")
    } else if f.cgroup_version == "v2" && f.config_rt_group_sched == Some(true) {
        item(
            "rt group sched",
            Fail,
            format!("RT group scheduling is active ({}) but cgroup v2 has no cpu.rt_runtime_us: SCHED_FIFO inside a container cgroup fails with EPERM", f.kernel_config.clone().unwrap_or_default()),
            &format!("rt_group_sched=0 on the kernel command line (kernels from 6.16), or a kernel without CONFIG_RT_GROUP_SCHED {grub}"),
        )
    } else {
        item("rt group sched", Pass, "no RT group scheduling: SCHED_FIFO in cgroups needs no budget".into(), "")
    });

    // Governor of each worker cpu.
    let wc: Vec<&CpuFacts> = f.cpus.iter().filter(|c| w.contains(&c.cpu)).collect();
    let govs: Vec<String> = wc.iter().map(|c| format!("cpu{}={}", c.cpu, c.governor.clone().unwrap_or_else(|| "none".into()))).collect();
    out.push(if wc.is_empty() {
        item("governor", Warn, "no per-cpu facts for the worker cpus".into(), "check /sys/devices/system/cpu")
    } else if wc.iter().all(|c| c.governor.as_deref() == Some("performance")) {
        item("governor", Pass, govs.join(" "), "")
    } else if wc.iter().all(|c| c.governor.is_none()) {
        item("governor", Warn, "no cpufreq driver: frequency is set by firmware or the hypervisor and cannot be checked".into(), "on bare metal enable the cpufreq driver (intel_pstate / amd-pstate) and set: cpupower frequency-set -g performance (apt install linux-cpupower); in a VM pin the host's governor")
    } else {
        item("governor", Warn, format!("{}: frequency changes add latency", govs.join(" ")), &format!("cpupower -c {ws} frequency-set -g performance (apt install linux-cpupower)"))
    });

    // Idle states deeper than 10 µs exit latency.
    let deep: Vec<String> = wc.iter().flat_map(|c| c.idle_states.iter().filter(|s| !s.disabled && s.latency_us > 10).map(move |s| format!("cpu{} {} {} µs", c.cpu, s.name, s.latency_us))).collect();
    let states: Vec<String> = wc.first().map(|c| c.idle_states.iter().map(|s| format!("{}({} µs{})", s.name, s.latency_us, if s.disabled { ", disabled" } else { "" })).collect()).unwrap_or_default();
    out.push(if deep.is_empty() {
        item("idle states", Pass, if states.is_empty() { "no cpuidle states".into() } else { format!("shallow only: {}", states.join(" ")) }, "")
    } else {
        item("idle states", Warn, format!("deep idle states enabled: {}", deep.join(", ")), &format!("cpupower -c {ws} idle-set -D 10 (apt install linux-cpupower), or kernel command line processor.max_cstate=1 intel_idle.max_cstate=0 {grub}"))
    });

    // SMT siblings.
    let mut shared = Vec::new();
    for c in &wc {
        for s in &c.smt_siblings {
            if *s != c.cpu && !w.contains(s) {
                shared.push(format!("cpu{} shares a core with cpu{s}", c.cpu));
            }
        }
    }
    out.push(if !shared.is_empty() {
        item("smt", Warn, format!("{}: the sibling's load slows the worker", shared.join(", ")), "keep the siblings idle (add them to --cpus and leave them unused), or echo off > /sys/devices/system/cpu/smt/control, or nosmt on the kernel command line")
    } else {
        item("smt", Pass, format!("no SMT sibling shared by a worker cpu (smt active: {})", f.smt_active.map(|b| b.to_string()).unwrap_or_else(|| "unknown".into())), "")
    });

    out.push(match f.thp.as_deref() {
        Some("always") => item("thp", Warn, "transparent hugepages = always: khugepaged and compaction stalls".into(), "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled, or transparent_hugepage=madvise on the kernel command line"),
        Some(m) => item("thp", Pass, format!("transparent hugepages = {m}"), ""),
        None => item("thp", Pass, "no transparent hugepage support".into(), ""),
    });
    out.push(match f.timer_migration {
        Some(true) => item("timer migration", Warn, "kernel.timer_migration = 1: timers of other cpus may be moved onto the worker cores".into(), "sysctl -w kernel.timer_migration=0 (persist in /etc/sysctl.d/90-cranlab.conf)"),
        Some(false) => item("timer migration", Pass, "kernel.timer_migration = 0".into(), ""),
        None => item("timer migration", Pass, "no kernel.timer_migration sysctl".into(), ""),
    });
    out.push(match f.clocksource.as_deref() {
        Some(c @ ("tsc" | "kvm-clock" | "arch_sys_counter")) => item("clocksource", Pass, format!("{c} (read in user space through the vDSO)"), ""),
        Some(c) => item(
            "clocksource",
            Warn,
            format!("{c}: clock reads are system calls (available: {})", f.clocksources_available.join(" ")),
            "kernel command line clocksource=tsc tsc=reliable (when the TSC is invariant), or echo tsc > /sys/devices/system/clocksource/clocksource0/current_clocksource",
        ),
        None => item("clocksource", Warn, "cannot read the clocksource".into(), "mount sysfs at /sys"),
    });

    let on_worker: Vec<String> = f.irqs.iter().filter(|i| i.effective.as_ref().unwrap_or(&i.affinity).iter().any(|c| w.contains(c)) || i.affinity.iter().any(|c| w.contains(c))).map(|i| i.irq.to_string()).collect();
    let irqb = if f.irqbalance_running { "; irqbalance is running and will move them back" } else { "" };
    out.push(if on_worker.is_empty() {
        item("irq affinity", Pass, format!("no IRQ may fire on {ws}{irqb}"), "")
    } else {
        item(
            "irq affinity",
            Warn,
            format!("{} IRQs may fire on {ws} (irqs {}); cranlab run steers them away for the run and restores them after{irqb}", on_worker.len(), on_worker.join(",")),
            &format!("kernel command line irqaffinity={hks} {grub}; systemctl disable --now irqbalance (or IRQBALANCE_BANNED_CPULIST={ws} in /etc/default/irqbalance)"),
        )
    });

    let k = &f.kvm;
    out.push(if k.hardware && !k.hypervisor_guest {
        item("kvm", Pass, format!("hardware KVM ({}) on /dev/kvm", k.modules.join(",")), "")
    } else if k.hardware {
        item("kvm", Warn, format!("nested KVM ({}, nested={}): this host is itself a guest, guest timings include two hypervisors", k.modules.join(","), k.nested.clone().unwrap_or_else(|| "?".into())), "run the kvm deployment on bare metal")
    } else {
        let why = if !k.dev_kvm {
            "no /dev/kvm".to_string()
        } else if !k.cpu_virt_flag {
            format!("/dev/kvm is {} but the cpu has no vmx/svm{}", if k.modules.is_empty() { "present".into() } else { format!("from {}", k.modules.join(",")) }, if k.hypervisor_guest { " (this host is a guest)" } else { "" })
        } else {
            "vmx/svm present but kvm_intel / kvm_amd not loaded".to_string()
        };
        item(
            "kvm",
            Fail,
            format!("no hardware KVM: {why}; the kvm deployment runs under TCG emulation, labelled as such"),
            "enable VT-x / AMD-V in the firmware and modprobe kvm_intel (or kvm_amd); on a cloud VM enable nested virtualisation; apt install qemu-system-x86",
        )
    });
    out.push(if f.af_xdp.available {
        item("af_xdp", Pass, f.af_xdp.detail.clone(), "")
    } else {
        item("af_xdp", Warn, format!("AF_XDP unavailable ({}): the fronthaul falls back to AF_PACKET", f.af_xdp.detail), "a kernel with CONFIG_XDP_SOCKETS=y (Debian's has it); run as root or with CAP_NET_RAW + CAP_BPF")
    });
    out.push(match (f.io_uring.available, f.io_uring_disabled) {
        (true, _) => item("io_uring", Pass, format!("{}{}", f.io_uring.detail, f.io_uring_disabled.map(|d| format!(", kernel.io_uring_disabled = {d}")).unwrap_or_default()), ""),
        (false, Some(d)) if d > 0 => item("io_uring", Warn, format!("kernel.io_uring_disabled = {d} ({})", f.io_uring.detail), "sysctl -w kernel.io_uring_disabled=0"),
        (false, _) => item("io_uring", Warn, format!("io_uring unavailable ({})", f.io_uring.detail), "a kernel with CONFIG_IO_URING=y; sysctl -w kernel.io_uring_disabled=0"),
    });
    out.push(match f.cgroup_version.as_str() {
        "v2" => item("cgroup", Pass, "cgroup v2 (unified)".into(), ""),
        "hybrid" | "v1" => item(
            "cgroup",
            Warn,
            format!("cgroup {}: v1 controllers (supported by rt-runtime, but v1 is deprecated and not what lab hosts run)", f.cgroup_version),
            &format!("kernel command line systemd.unified_cgroup_hierarchy=1 {grub}"),
        ),
        _ => item("cgroup", Fail, "no cgroup filesystem: containers cannot be limited".into(), "mount cgroup2 at /sys/fs/cgroup: mount -t cgroup2 none /sys/fs/cgroup"),
    });
    out
}

/// The syscall probes, fenced.
mod sys {
    use super::Probe;
    use crate::cgroup::errno_text;

    /// `socket(AF_XDP, SOCK_RAW)`, closed at once.
    pub fn probe_af_xdp() -> Probe {
        // SAFETY: socket(2) takes no pointers; the returned descriptor is
        // owned here and closed below.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Probe { available: false, detail: format!("socket(AF_XDP): {}", errno_text(&e)) };
        }
        // SAFETY: fd is a valid descriptor we own and do not use afterwards.
        unsafe { libc::close(fd) };
        Probe { available: true, detail: "socket(AF_XDP) ok".into() }
    }

    /// `io_uring_setup` with a 2-entry ring, dropped at once.
    pub fn probe_io_uring() -> Probe {
        match io_uring::IoUring::new(2) {
            Ok(_) => Probe { available: true, detail: "io_uring_setup ok".into() },
            Err(e) => Probe { available: false, detail: format!("io_uring_setup: {}", errno_text(&e)) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_parsing() {
        let c = "quiet isolcpus=managed_irq,domain,2-3 nohz_full=2-3 rcu_nocbs=2,3 -- init args rcu_nocbs=9";
        assert_eq!(cmdline_param(c, "isolcpus"), Some("managed_irq,domain,2-3"));
        assert_eq!(cmdline_cpus(cmdline_param(c, "isolcpus").unwrap()), vec![2, 3]);
        assert_eq!(cmdline_cpus(cmdline_param(c, "rcu_nocbs").unwrap()), vec![2, 3]);
        assert_eq!(cmdline_param(c, "preempt"), None);
    }

    #[test]
    fn exit_codes() {
        let p = item("a", Status::Pass, String::new(), "");
        let w = item("b", Status::Warn, String::new(), "x");
        let f = item("c", Status::Fail, String::new(), "y");
        assert_eq!(exit_code(std::slice::from_ref(&p), true), 0);
        assert_eq!(exit_code(&[p.clone(), w.clone()], false), 0);
        assert_eq!(exit_code(&[p.clone(), w.clone()], true), 2);
        assert_eq!(exit_code(&[p, w, f], false), 1);
    }
}
