//! Host facts for results.json, read from `/proc` and `/sys` (roots are
//! parameters so tests can use fake trees).

use std::path::Path;

use crate::results::HostFacts;

fn read(root: &Path, p: &str) -> Option<String> {
    std::fs::read_to_string(root.join(p.trim_start_matches('/'))).ok().map(|s| s.trim().to_string())
}

/// Parses a kernel CPU list (`0-2,5`).
pub fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    v.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    v.push(a);
                }
            }
        }
    }
    v
}

/// Gathers what the host provides; `root` is `/` on a real host.
pub fn gather(root: &Path) -> HostFacts {
    let mut f = HostFacts { kernel_release: read(root, "/proc/sys/kernel/osrelease").unwrap_or_default(), ..HostFacts::default() };
    let version = read(root, "/proc/sys/kernel/version").unwrap_or_default();
    let cmdline = read(root, "/proc/cmdline").unwrap_or_default();
    f.preemption = if version.contains("PREEMPT_RT") {
        "PREEMPT_RT".into()
    } else if let Some(mode) = read(root, "/sys/kernel/debug/sched/preempt").and_then(|s| {
        s.split_whitespace().find(|w| w.starts_with('(')).map(|w| w.trim_matches(|c| c == '(' || c == ')').to_string())
    }) {
        format!("PREEMPT_DYNAMIC ({mode})")
    } else if version.contains("PREEMPT_DYNAMIC") {
        match cmdline.split_whitespace().find_map(|w| w.strip_prefix("preempt=")) {
            Some(mode) => format!("PREEMPT_DYNAMIC ({mode})"),
            None => "PREEMPT_DYNAMIC (mode not readable: /sys/kernel/debug/sched/preempt absent, no preempt= on the cmdline)".into(),
        }
    } else if version.contains("PREEMPT") {
        "PREEMPT".into()
    } else {
        "none (server)".into()
    };
    f.cmdline = cmdline;
    f.cpu_model = read(root, "/proc/cpuinfo")
        .and_then(|c| c.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())))
        .unwrap_or_default();
    f.cpus_online = read(root, "/sys/devices/system/cpu/online").map(|s| parse_cpu_list(&s).len()).unwrap_or(0);
    f.isolated_cpus = read(root, "/sys/devices/system/cpu/isolated").map(|s| parse_cpu_list(&s)).unwrap_or_default();
    f.nohz_full_cpus = read(root, "/sys/devices/system/cpu/nohz_full").map(|s| parse_cpu_list(&s)).unwrap_or_default();
    f.sched_rt_runtime_us = read(root, "/proc/sys/kernel/sched_rt_runtime_us").and_then(|s| s.parse().ok());
    f.sched_rt_period_us = read(root, "/proc/sys/kernel/sched_rt_period_us").and_then(|s| s.parse().ok());
    let v2 = root.join("sys/fs/cgroup/cgroup.controllers").exists();
    let unified = root.join("sys/fs/cgroup/unified").exists();
    f.cgroup_version = if v2 {
        "v2".into()
    } else if unified {
        "hybrid".into()
    } else {
        "v1".into()
    };
    f.smt_active = read(root, "/sys/devices/system/cpu/smt/active").map(|s| s == "1");
    f.clocksource = read(root, "/sys/devices/system/clocksource/clocksource0/current_clocksource");
    f.isolation = if f.isolated_cpus.is_empty() { "none".into() } else { "isolcpus".into() };
    f
}

/// Governor of `cpu`, if cpufreq exists.
pub fn governor(root: &Path, cpu: usize) -> Option<String> {
    read(root, &format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
    }

    #[test]
    fn facts_from_a_fake_tree() {
        let d = std::env::temp_dir().join(format!("cranlab-hostfacts-{}", std::process::id()));
        let w = |p: &str, c: &str| {
            let p = d.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, c).unwrap();
        };
        w("proc/sys/kernel/osrelease", "6.18.0\n");
        w("proc/sys/kernel/version", "#1 SMP PREEMPT_DYNAMIC Debian\n");
        w("proc/cmdline", "root=/dev/vda1 isolcpus=1\n");
        w("sys/devices/system/cpu/online", "0-3\n");
        w("sys/devices/system/cpu/isolated", "1\n");
        w("proc/sys/kernel/sched_rt_runtime_us", "950000\n");
        std::fs::create_dir_all(d.join("sys/fs/cgroup/unified")).unwrap();
        let f = gather(&d);
        assert_eq!(f.kernel_release, "6.18.0");
        assert_eq!(f.cpus_online, 4);
        assert_eq!(f.isolated_cpus, vec![1]);
        assert_eq!(f.isolation, "isolcpus");
        assert_eq!(f.cgroup_version, "hybrid");
        assert_eq!(f.sched_rt_runtime_us, Some(950000));
        assert!(f.preemption.starts_with("PREEMPT_DYNAMIC"), "{}", f.preemption);
        std::fs::remove_dir_all(d).unwrap();
    }
}
