//! Real shield of the last CPU as root: tasks and IRQs steered away, then
//! back exactly as before, both through restore and after a simulated
//! crash through the journal sweep.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rt_runtime::cgroup::{parse_cpu_list, CgroupRoot, CgroupVersion};
use rt_runtime::host::Roots;
use rt_runtime::isolate::{self, IsolationMode, Shield};

/// tid -> (start time, cpuset, Cpus_allowed_list) for every thread not in a cranlab cgroup.
type Tasks = BTreeMap<i32, (String, String, String)>;

fn tasks() -> Tasks {
    let mut out = BTreeMap::new();
    for p in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(tr) = fs::read_dir(p.path().join("task")) else { continue };
        for t in tr.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            let d = t.path();
            let (Ok(stat), Ok(cs), Ok(status)) = (fs::read_to_string(d.join("stat")), fs::read_to_string(d.join("cpuset")), fs::read_to_string(d.join("status"))) else { continue };
            let start = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().nth(19).unwrap().to_string();
            let aff = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap().split(':').nth(1).unwrap().trim().to_string();
            if cs.trim().trim_start_matches('/').starts_with("cranlab") {
                continue;
            }
            out.insert(tid, (start, cs.trim().to_string(), aff));
        }
    }
    out
}

fn irqs() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir("/proc/irq").unwrap().flatten() {
        let f = e.path().join("smp_affinity_list");
        if let Ok(v) = fs::read_to_string(&f) {
            out.insert(f.display().to_string(), v.trim().to_string());
        }
    }
    out.insert("default".into(), fs::read_to_string("/proc/irq/default_smp_affinity").unwrap().trim().to_string());
    out
}

/// Differences for threads alive in both snapshots (same tid and start time).
fn task_diffs(a: &Tasks, b: &Tasks) -> Vec<String> {
    a.iter()
        .filter_map(|(tid, x)| b.get(tid).filter(|y| y.0 == x.0 && *y != x).map(|y| format!("tid {tid}: {x:?} -> {y:?}")))
        .collect()
}

fn housekeeping_left() -> Vec<PathBuf> {
    fs::read_dir("/sys/fs/cgroup/cpuset").map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("cranlab-housekeeping")).collect()).unwrap_or_default()
}

#[test]
fn shield_last_cpu_and_restore_exactly_for_real() {
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("skipping: not root");
        return;
    }
    let Ok(cg) = CgroupRoot::detect(Path::new("/sys/fs/cgroup")) else {
        eprintln!("skipping: no cgroup filesystem");
        return;
    };
    if cg.version() == CgroupVersion::V2 {
        eprintln!("skipping: the real shield test is written for v1/hybrid cpusets (this host); v2 is covered by fake roots");
        return;
    }
    let online = parse_cpu_list(&fs::read_to_string("/sys/devices/system/cpu/online").unwrap()).unwrap();
    if online.len() < 2 {
        eprintln!("skipping: one cpu");
        return;
    }
    let cpu = *online.last().unwrap();
    if !fs::read_to_string("/sys/devices/system/cpu/isolated").unwrap_or_default().trim().is_empty() {
        eprintln!("skipping: host has isolated cpus, the shield is not used");
        return;
    }
    let jdir = std::env::temp_dir().join(format!("cranlab-shield-test-{}", std::process::id()));
    let mut sleeper = Command::new("sleep").arg("30").stdout(Stdio::null()).spawn().unwrap();
    let spid = sleeper.id();

    for crash in [false, true] {
        let irq_before = irqs();
        let tasks_before = tasks();
        let t = std::time::Instant::now();
        let shield = Shield::apply(&cg, &Roots::default(), &[cpu], &jdir).expect("apply shield");
        eprintln!("apply took {:?}", t.elapsed());
        let f = shield.report();
        eprintln!("shield facts: {}", serde_json::to_string(&f).unwrap());
        assert_eq!(f.mode, IsolationMode::CpusetShield);
        assert!(f.tasks_moved > 0);
        // The sleeper is off the worker cpu now.
        let cs = fs::read_to_string(format!("/proc/{spid}/cpuset")).unwrap();
        assert!(cs.trim().starts_with("/cranlab-housekeeping-"), "sleeper in {cs}");
        let st = fs::read_to_string(format!("/proc/{spid}/status")).unwrap();
        let aff = parse_cpu_list(st.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap().split(':').nth(1).unwrap()).unwrap();
        assert!(!aff.contains(&cpu), "sleeper may still run on {cpu}: {aff:?}");
        // Every IRQ that could fire on the cpu was steered or counted as refused.
        let on_cpu = irq_before.iter().filter(|(k, v)| *k != "default" && parse_cpu_list(v).unwrap().contains(&cpu)).count() as u64;
        assert_eq!(f.irqs_steered + f.irqs_refused, on_cpu);
        let irq_during = irqs();
        let steered_now = irq_during.iter().filter(|(k, v)| *k != "default" && irq_before[*k] != **v).count() as u64;
        assert_eq!(steered_now, f.irqs_steered);
        let jpath = shield.journal_path().unwrap().to_path_buf();
        assert!(jpath.exists());

        if crash {
            std::mem::forget(shield);
            // Its owner (this process) is alive: only sweep_all takes it.
            assert!(isolate::sweep(&jdir).expect("sweep").is_empty());
            let done = isolate::sweep_all(&jdir).expect("sweep");
            assert_eq!(done, vec![jpath.clone()]);
        } else {
            let t = std::time::Instant::now();
            let rep = shield.restore().expect("restore");
            eprintln!("restore took {:?}: {rep:?}", t.elapsed());
        }
        assert!(!jpath.exists());
        assert_eq!(irqs(), irq_before, "IRQ affinities not restored (crash={crash})");
        let diffs = task_diffs(&tasks_before, &tasks());
        assert!(diffs.is_empty(), "threads not back where they were (crash={crash}): {diffs:#?}");
        assert!(housekeeping_left().is_empty(), "left: {:?}", housekeeping_left());
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let _ = fs::remove_dir_all(&jdir);
}
