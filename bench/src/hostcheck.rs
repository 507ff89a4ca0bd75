//! `cranlab host-check`: is this host ready for real-time BBU workers?
//! Each item is pass / warn / fail with the fix.

use std::path::Path;
use std::process::ExitCode;

use crate::host::gather;

/// Verdict of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Pass,
    /// Works, but figures will be worse than the host could give.
    Warn,
    /// cranlab cannot run this way.
    Fail,
}

/// One checked item.
#[derive(Debug, Clone)]
pub struct Item {
    /// What was checked.
    pub name: String,
    /// Verdict.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// How to fix it (empty when passing).
    pub fix: String,
}

fn item(name: &str, level: Level, detail: impl Into<String>, fix: &str) -> Item {
    Item { name: name.into(), level, detail: detail.into(), fix: fix.into() }
}

fn has_tool(t: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
        .unwrap_or(false)
}

/// Checks the host for `cpus` worker cores (plus one for the rrh-sim).
pub fn check(root: &Path, cpus: usize) -> Vec<Item> {
    let f = gather(root);
    let mut v = Vec::new();
    let is_root = nix::unistd::geteuid().is_root();
    v.push(if is_root {
        item("privileges", Level::Pass, "running as root", "")
    } else {
        item("privileges", Level::Warn, "not root: only the in-memory path runs", "run cranlab as root (sudo)")
    });
    v.push(if has_tool("ip") {
        item("iproute2", Level::Pass, "ip found", "")
    } else {
        item("iproute2", Level::Fail, "`ip` not found", "apt-get install iproute2")
    });
    let need = cpus + 1;
    v.push(if f.cpus_online >= need {
        item("cores", Level::Pass, format!("{} online, {need} needed ({cpus} worker + 1 rrh-sim)", f.cpus_online), "")
    } else {
        item("cores", Level::Fail, format!("{} online, {need} needed", f.cpus_online), "use a host with more cores or fewer workers")
    });
    v.push(if f.isolated_cpus.len() >= cpus {
        item("isolated cores", Level::Pass, format!("isolated {:?}, nohz_full {:?}", f.isolated_cpus, f.nohz_full_cpus), "")
    } else {
        item(
            "isolated cores",
            Level::Warn,
            format!("isolated {:?}: the worker core shares the scheduler with the host's tasks", f.isolated_cpus),
            "boot with isolcpus=<cores> nohz_full=<cores> rcu_nocbs=<cores> (cranlab shields cores with cpusets otherwise)",
        )
    });
    v.push(if f.preemption.contains("PREEMPT_RT") {
        item("preemption model", Level::Pass, f.preemption.clone(), "")
    } else {
        item(
            "preemption model",
            Level::Warn,
            format!("{} (not PREEMPT_RT): expect millisecond tails", f.preemption),
            "install a PREEMPT_RT kernel (Debian: linux-image-rt-amd64) or boot with preempt=full",
        )
    });
    v.push(match f.sched_rt_runtime_us {
        Some(-1) => item("RT throttling", Level::Warn, "off: a runaway SCHED_FIFO task can starve its core", "echo 950000 > /proc/sys/kernel/sched_rt_runtime_us"),
        Some(r) => item(
            "RT throttling",
            Level::Pass,
            format!("on ({r} µs per {} µs): a busy-polling SCHED_FIFO worker on a shared core is stopped for the rest of each period", f.sched_rt_period_us.unwrap_or(0)),
            "",
        ),
        None => item("RT throttling", Level::Warn, "unknown", ""),
    });
    v.push(if root.join("dev/kvm").exists() {
        item("/dev/kvm", Level::Pass, "present (whether hardware KVM really runs a guest is decided at run time)", "")
    } else {
        item("/dev/kvm", Level::Warn, "absent: the kvm deployment runs under TCG emulation, labelled as such", "enable VT-x/AMD-V and load kvm_intel / kvm_amd")
    });
    v.push(if has_tool("qemu-system-x86_64") {
        item("qemu", Level::Pass, "qemu-system-x86_64 found", "")
    } else {
        item("qemu", Level::Warn, "qemu-system-x86_64 not found: the kvm deployment is skipped", "apt-get install qemu-system-x86")
    });
    match crate::host::governor(root, 1) {
        Some(g) if g == "performance" => v.push(item("cpufreq governor", Level::Pass, g, "")),
        Some(g) => v.push(item("cpufreq governor", Level::Warn, g, "cpupower frequency-set -g performance")),
        None => v.push(item("cpufreq governor", Level::Pass, "no cpufreq (fixed frequency or virtual machine)", "")),
    }
    v
}

/// Prints the items and returns the exit code: failure on any fail, and on
/// any warn with `strict`.
pub fn print_and_code(cpus: usize, strict: bool) -> ExitCode {
    let items = check(Path::new("/"), cpus);
    let mut bad = false;
    for i in &items {
        let tag = match i.level {
            Level::Pass => "pass",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("[{tag}] {}: {}", i.name, i.detail);
        if !i.fix.is_empty() && i.level != Level::Pass {
            println!("       fix: {}", i.fix);
        }
        bad |= i.level == Level::Fail || (strict && i.level == Level::Warn);
    }
    if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
