//! Shield logic against fake /proc, /sys and cgroup roots: what is moved,
//! steered and journaled, and that restore / sweep put it all back.

use std::fs;
use std::path::Path;

use rt_runtime::cgroup::CgroupRoot;
use rt_runtime::host::Roots;
use rt_runtime::isolate::{self, IsolateError, IsolationMode, Journal, Shield};

mod common;
use common::{get, put, Tmp};

fn task(r: &Path, pid: i32, tid: i32, cpuset: &str, aff: &str) {
    let d = r.join(format!("proc/{pid}/task/{tid}"));
    put(&d.join("stat"), &format!("{tid} (t {tid}) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {} 0 0", 1000 + tid));
    put(&d.join("status"), &format!("Name:\tt\nCpus_allowed_list:\t{aff}\n"));
    put(&d.join("cpuset"), &format!("{cpuset}\n"));
}

/// 4 cpus, hybrid cgroups, 4 tasks (one in a cranlab cgroup), 3 IRQs.
fn fake_host(r: &Path) {
    put(&r.join("sys/devices/system/cpu/online"), "0-3\n");
    put(&r.join("sys/devices/system/cpu/isolated"), "\n");
    let cg = r.join("sys/fs/cgroup");
    put(&cg.join("cpuset/cpuset.cpus"), "0-3\n");
    put(&cg.join("cpuset/cpuset.mems"), "0\n");
    put(&cg.join("cpuset/cgroup.procs"), "");
    put(&cg.join("cpuset/tasks"), "");
    put(&cg.join("cpuset/system/cpuset.cpus"), "0-3\n");
    put(&cg.join("cpuset/system/tasks"), "");
    put(&cg.join("unified/cgroup.controllers"), "");
    task(r, 1, 1, "/", "0-3");
    task(r, 10, 10, "/system", "0-3");
    task(r, 10, 11, "/system", "0");
    task(r, 20, 20, "/cranlab/w0", "2");
    put(&r.join("proc/irq/24/smp_affinity_list"), "0-3\n");
    put(&r.join("proc/irq/25/smp_affinity_list"), "2\n");
    put(&r.join("proc/irq/26/smp_affinity_list"), "0\n");
    put(&r.join("proc/irq/default_smp_affinity"), "f\n");
}

fn snapshot(r: &Path) -> Vec<(String, String)> {
    ["proc/irq/24/smp_affinity_list", "proc/irq/25/smp_affinity_list", "proc/irq/26/smp_affinity_list", "proc/irq/default_smp_affinity"]
        .iter()
        .map(|f| (f.to_string(), get(&r.join(f))))
        .collect()
}

#[test]
fn v1_shield_moves_tasks_steers_irqs_and_restores() {
    let t = Tmp::new("isofake", "v1");
    let r = &t.0;
    fake_host(r);
    let before = snapshot(r);
    let roots = Roots::under(r);
    let cg = CgroupRoot::detect(&roots.cgroup).unwrap();
    let jdir = r.join("run/cranlab");
    let shield = Shield::apply(&cg, &roots, &[2], &jdir).unwrap();
    let f = shield.report();
    assert_eq!(f.mode, IsolationMode::CpusetShield);
    assert_eq!(f.housekeeping_cpus, vec![0, 1, 3]);
    assert_eq!(f.tasks_moved, 3);
    assert_eq!(f.tasks_cranlab, 1);
    assert_eq!((f.irqs_steered, f.irqs_refused, f.irqs_untouched), (2, 0, 1));
    let hk = cg.v1_hierarchy(rt_runtime::cgroup::Controller::Cpuset).unwrap().join(format!("cranlab-housekeeping-{}", shield.journal_path().unwrap().file_stem().unwrap().to_str().unwrap().trim_start_matches("shield-")));
    assert_eq!(get(&hk.join("cpuset.cpus")), "0-1,3");
    assert_eq!(get(&hk.join("cpuset.mems")), "0");
    assert_eq!(get(&r.join("proc/irq/24/smp_affinity_list")), "0-1,3");
    assert_eq!(get(&r.join("proc/irq/25/smp_affinity_list")), "0-1,3");
    assert_eq!(get(&r.join("proc/irq/26/smp_affinity_list")), "0");
    assert_eq!(get(&r.join("proc/irq/default_smp_affinity")), "b");
    // The journal holds the old values before anything changed.
    let j: Journal = serde_json::from_slice(&fs::read(shield.journal_path().unwrap()).unwrap()).unwrap();
    assert_eq!(j.tasks.len(), 3);
    let t11 = j.tasks.iter().find(|t| t.tid == 11).unwrap();
    assert_eq!((t11.cpuset.as_str(), t11.affinity.clone(), t11.start), ("/system", vec![0], 1011));
    assert!(j.files.iter().any(|f| f.path.ends_with("irq/25/smp_affinity_list") && f.restore == "2"));
    let jpath = shield.journal_path().unwrap().to_path_buf();
    let rep = shield.restore().unwrap();
    assert_eq!(rep.tasks_restored, 3);
    assert_eq!(rep.files_restored, 3);
    assert_eq!(snapshot(r), before);
    assert!(!hk.exists(), "housekeeping cpuset left");
    assert!(!jpath.exists(), "journal left");
    // The last thread written back went to its own cpuset.
    assert_eq!(get(&r.join("sys/fs/cgroup/cpuset/system/tasks")), "11");
}

#[test]
fn a_crashed_shield_is_undone_by_sweep() {
    let t = Tmp::new("isofake", "crash");
    let r = &t.0;
    fake_host(r);
    let before = snapshot(r);
    let roots = Roots::under(r);
    let cg = CgroupRoot::detect(&roots.cgroup).unwrap();
    let jdir = r.join("run/cranlab");
    let shield = Shield::apply(&cg, &roots, &[1, 2], &jdir).unwrap();
    assert_eq!(get(&r.join("proc/irq/24/smp_affinity_list")), "0,3");
    let jpath = shield.journal_path().unwrap().to_path_buf();
    std::mem::forget(shield); // the run dies without restoring
    assert!(jpath.exists());
    // While its owner (this process) lives, sweep leaves the shield alone.
    assert!(isolate::sweep(&jdir).unwrap().is_empty());
    assert!(jpath.exists());
    // Pretend the owner died: a pid that cannot exist.
    let mut j: Journal = serde_json::from_slice(&fs::read(&jpath).unwrap()).unwrap();
    j.owner = "2147483646:1".into();
    fs::write(&jpath, serde_json::to_vec(&j).unwrap()).unwrap();
    assert_ne!(snapshot(r), before);
    let done = isolate::sweep(&jdir).unwrap();
    assert_eq!(done, vec![jpath.clone()]);
    assert_eq!(snapshot(r), before);
    assert!(!jpath.exists());
    let left: Vec<_> = fs::read_dir(r.join("sys/fs/cgroup/cpuset")).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with("cranlab")).collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(isolate::sweep(&jdir).unwrap().is_empty());
    assert!(isolate::sweep(&r.join("no/such/dir")).unwrap().is_empty());
}

#[test]
fn host_isolated_cpus_are_used_as_they_are() {
    let t = Tmp::new("isofake", "iso");
    let r = &t.0;
    fake_host(r);
    put(&r.join("sys/devices/system/cpu/isolated"), "2-3\n");
    put(&r.join("sys/devices/system/cpu/nohz_full"), "2-3\n");
    let before = snapshot(r);
    let roots = Roots::under(r);
    let cg = CgroupRoot::detect(&roots.cgroup).unwrap();
    let shield = Shield::apply(&cg, &roots, &[3], &r.join("run")).unwrap();
    let f = shield.report();
    assert_eq!(f.mode, IsolationMode::Isolcpus);
    assert_eq!(f.tasks_moved, 0);
    assert!(f.notes.is_empty(), "{:?}", f.notes);
    assert!(shield.journal_path().is_none());
    drop(shield);
    assert_eq!(snapshot(r), before);
    // A worker cpu outside the isolated set is shielded, and says why.
    let shield = Shield::apply(&cg, &roots, &[1], &r.join("run")).unwrap();
    assert_eq!(shield.report().mode, IsolationMode::CpusetShield);
    assert!(shield.report().notes.iter().any(|n| n.contains("isolates cpus 2-3")));
    drop(shield); // restore on drop
    assert_eq!(snapshot(r), before);
}

#[test]
fn impossible_requests_are_refused_without_changes() {
    let t = Tmp::new("isofake", "bad");
    let r = &t.0;
    fake_host(r);
    let before = snapshot(r);
    let roots = Roots::under(r);
    let cg = CgroupRoot::detect(&roots.cgroup).unwrap();
    for cpus in [vec![0, 1, 2, 3], vec![7], vec![]] {
        let e = Shield::apply(&cg, &roots, &cpus, &r.join("run")).unwrap_err();
        assert!(matches!(e, IsolateError::Invalid { .. }), "{e}");
        assert!(e.to_string().starts_with("isolate cpus"), "{e}");
    }
    assert_eq!(snapshot(r), before);
    assert!(!r.join("run").exists() || fs::read_dir(r.join("run")).unwrap().next().is_none());
}

#[test]
fn v2_shield_restricts_top_level_cgroups_and_restores_them() {
    let t = Tmp::new("isofake", "v2");
    let r = &t.0;
    fake_host(r);
    let cgp = r.join("sys/fs/cgroup");
    fs::remove_dir_all(&cgp).unwrap();
    put(&cgp.join("cgroup.controllers"), "cpuset cpu memory pids\n");
    put(&cgp.join("cgroup.subtree_control"), "cpu memory\n");
    put(&cgp.join("cgroup.procs"), "1\n2\n");
    put(&cgp.join("system.slice/cpuset.cpus"), "\n");
    put(&cgp.join("system.slice/cgroup.procs"), "10\n");
    put(&cgp.join("user.slice/cpuset.cpus"), "0-3\n");
    put(&cgp.join("user.slice/cgroup.procs"), "30\n31\n");
    put(&cgp.join("cranlab/cpuset.cpus"), "2\n");
    let roots = Roots::under(r);
    let cg = CgroupRoot::detect(&roots.cgroup).unwrap();
    let shield = Shield::apply(&cg, &roots, &[2], &r.join("run")).unwrap();
    let f = shield.report();
    assert_eq!(f.mode, IsolationMode::CpusetShield);
    assert_eq!(get(&cgp.join("cgroup.subtree_control")), "+cpuset");
    assert_eq!(get(&cgp.join("system.slice/cpuset.cpus")), "0-1,3");
    assert_eq!(get(&cgp.join("user.slice/cpuset.cpus")), "0-1,3");
    assert_eq!(get(&cgp.join("cranlab/cpuset.cpus")), "2");
    assert_eq!(f.tasks_moved, 3);
    assert_eq!(f.tasks_not_movable, 2);
    shield.restore().unwrap();
    assert_eq!(get(&cgp.join("system.slice/cpuset.cpus")), "");
    assert_eq!(get(&cgp.join("user.slice/cpuset.cpus")), "0-3");
    // cranlab enabled the cpuset controller, so restore disables it again.
    assert_eq!(get(&cgp.join("cgroup.subtree_control")), "-cpuset");
}
