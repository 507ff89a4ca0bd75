//! Cgroup logic against fake roots (v1, hybrid, v2 layouts in a temp dir):
//! what is written where, order of parents, budget arithmetic, errors.

use std::fs;
use std::path::{Path, PathBuf};

use rt_runtime::cgroup::{self, Cgroup, CgroupError, CgroupRoot, CgroupVersion, Controller, Limits};

mod common;
use common::{get, put, Tmp};

fn fake_v1(root: &Path, rt: bool) {
    put(&root.join("cpuset/cpuset.cpus"), "0-3\n");
    put(&root.join("cpuset/cpuset.mems"), "0\n");
    put(&root.join("cpuset/cgroup.procs"), "");
    put(&root.join("cpu/cpu.shares"), "1024\n");
    put(&root.join("cpu/cgroup.procs"), "");
    if rt {
        put(&root.join("cpu/cpu.rt_runtime_us"), "950000\n");
        put(&root.join("cpu/cpu.rt_period_us"), "1000000\n");
    }
    put(&root.join("memory/memory.limit_in_bytes"), "9223372036854771712\n");
    put(&root.join("memory/cgroup.procs"), "");
    put(&root.join("pids/cgroup.procs"), "");
}

fn fake_v2(root: &Path) {
    put(&root.join("cgroup.controllers"), "cpuset cpu io memory pids\n");
    put(&root.join("cgroup.subtree_control"), "\n");
    put(&root.join("cgroup.procs"), "1\n");
}

#[test]
fn detects_each_layout() {
    let t = Tmp::new("cgfake", "detect");
    let v1 = t.0.join("v1");
    fake_v1(&v1, true);
    assert_eq!(CgroupRoot::detect(&v1).unwrap().version(), CgroupVersion::V1);
    let hy = t.0.join("hybrid");
    fake_v1(&hy, true);
    put(&hy.join("unified/cgroup.controllers"), "");
    let r = CgroupRoot::detect(&hy).unwrap();
    assert_eq!(r.version(), CgroupVersion::Hybrid);
    assert_eq!(r.unified(), Some(hy.join("unified").as_path()));
    assert_eq!(r.v1_hierarchy(Controller::Pids), Some(hy.join("pids").as_path()));
    let v2 = t.0.join("v2");
    fake_v2(&v2);
    assert_eq!(CgroupRoot::detect(&v2).unwrap().version(), CgroupVersion::V2);
    // Co-mounted cpu,cpuacct is found too.
    let co = t.0.join("comount");
    fake_v1(&co, true);
    fs::rename(co.join("cpu"), co.join("cpu,cpuacct")).unwrap();
    let r = CgroupRoot::detect(&co).unwrap();
    assert_eq!(r.v1_hierarchy(Controller::Cpu), Some(co.join("cpu,cpuacct").as_path()));
    let empty = t.0.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let e = CgroupRoot::detect(&empty).unwrap_err();
    assert!(matches!(e, CgroupError::NotMounted { .. }), "{e}");
    assert!(e.to_string().starts_with("no cgroup filesystem at "), "{e}");
}

#[test]
fn v1_writes_parents_first_and_limits_in_each_controller() {
    let t = Tmp::new("cgfake", "v1");
    fake_v1(&t.0, true);
    let root = CgroupRoot::detect(&t.0).unwrap();
    let limits = Limits {
        cpus: Some("2".into()),
        memory_max: Some(1 << 30),
        pids_max: Some(64),
        cpu_weight: Some(100),
        rt_runtime_us: Some(100_000),
        ..Limits::default()
    };
    let cg = Cgroup::create(&root, "cranlab/w0", &limits).unwrap();
    let p = &t.0;
    // cpuset: parent gets the root's cpus and mems before the leaf gets its own.
    assert_eq!(get(&p.join("cpuset/cranlab/cpuset.cpus")), "0-3");
    assert_eq!(get(&p.join("cpuset/cranlab/cpuset.mems")), "0");
    assert_eq!(get(&p.join("cpuset/cranlab/w0/cpuset.cpus")), "2");
    assert_eq!(get(&p.join("cpuset/cranlab/w0/cpuset.mems")), "0");
    assert_eq!(get(&p.join("memory/cranlab/w0/memory.limit_in_bytes")), (1u64 << 30).to_string());
    assert_eq!(get(&p.join("pids/cranlab/w0/pids.max")), "64");
    assert_eq!(get(&p.join("cpu/cranlab/w0/cpu.shares")), cgroup::weight_to_shares(100).to_string());
    assert_eq!(get(&p.join("cpu/cranlab/cpu.rt_runtime_us")), "100000");
    assert_eq!(get(&p.join("cpu/cranlab/w0/cpu.rt_runtime_us")), "100000");
    let order: Vec<PathBuf> = cg.writes().iter().map(|(f, _)| f.strip_prefix(p).unwrap().to_path_buf()).collect();
    let pos = |s: &str| order.iter().position(|f| f == Path::new(s)).unwrap_or_else(|| panic!("{s} not written: {order:?}"));
    assert!(pos("cpuset/cranlab/cpuset.cpus") < pos("cpuset/cranlab/w0/cpuset.cpus"));
    assert!(pos("cpuset/cranlab/cpuset.mems") < pos("cpuset/cranlab/w0/cpuset.cpus"));
    assert!(pos("cpu/cranlab/cpu.rt_runtime_us") < pos("cpu/cranlab/w0/cpu.rt_runtime_us"));
    assert_eq!(cg.paths().len(), 4);
    assert_eq!(cg.rt_budget(), Some((100_000, 1_000_000)));
    assert!(cg.notes().is_empty(), "{:?}", cg.notes());
    // add_pid writes into every controller.
    cg.add_pid(4242).unwrap();
    for c in ["cpuset", "cpu", "memory", "pids"] {
        assert_eq!(get(&p.join(c).join("cranlab/w0/cgroup.procs")), "4242");
    }
    cg.remove().unwrap();
    for c in ["cpuset", "cpu", "memory", "pids"] {
        assert!(!p.join(c).join("cranlab").exists(), "{c}/cranlab left");
    }
}

#[test]
fn budget_is_added_to_ancestors_and_given_back() {
    let t = Tmp::new("cgfake", "budget");
    fake_v1(&t.0, true);
    let p = &t.0;
    // A sibling already holds 100 ms per 1 s under cranlab.
    put(&p.join("cpu/cranlab/cpu.rt_runtime_us"), "100000");
    put(&p.join("cpu/cranlab/cpu.rt_period_us"), "1000000");
    put(&p.join("cpu/cranlab/other/cpu.rt_runtime_us"), "100000");
    let root = CgroupRoot::detect(p).unwrap();
    // 50 ms per 500 ms is 100 ms per 1 s in the parent's period.
    let limits = Limits { rt_runtime_us: Some(50_000), rt_period_us: Some(500_000), ..Limits::default() };
    let cg = Cgroup::create(&root, "cranlab/pool/w1", &limits).unwrap();
    assert_eq!(get(&p.join("cpu/cranlab/cpu.rt_runtime_us")), "200000");
    // The new intermediate group has the default 1 s period.
    assert_eq!(get(&p.join("cpu/cranlab/pool/cpu.rt_runtime_us")), "100000");
    assert_eq!(get(&p.join("cpu/cranlab/pool/w1/cpu.rt_period_us")), "500000");
    assert_eq!(get(&p.join("cpu/cranlab/pool/w1/cpu.rt_runtime_us")), "50000");
    cg.remove().unwrap();
    // The shared parent keeps its sibling and gets exactly its old value back;
    // the intermediate parent went away with the leaf.
    assert_eq!(get(&p.join("cpu/cranlab/cpu.rt_runtime_us")), "100000");
    assert!(!p.join("cpu/cranlab/pool").exists());
    assert!(p.join("cpu/cranlab/other").exists());
}

#[test]
fn realtime_without_budget_gets_the_free_default_and_a_note() {
    let t = Tmp::new("cgfake", "default");
    fake_v1(&t.0, true);
    let p = &t.0;
    put(&p.join("cpu/someone/cpu.rt_runtime_us"), "200000");
    put(&p.join("cpu/someone/cpu.rt_period_us"), "1000000");
    let root = CgroupRoot::detect(p).unwrap();
    let free = root.rt_free_runtime_us().unwrap().unwrap();
    assert!((749_998..=750_000).contains(&free), "free {free}");
    let cg = Cgroup::create(&root, "cranlab/w0", &Limits { realtime: true, ..Limits::default() }).unwrap();
    let (r, per) = cg.rt_budget().unwrap();
    assert_eq!((r, per), (free, 1_000_000));
    assert_eq!(get(&p.join("cpu/cranlab/w0/cpu.rt_runtime_us")), free.to_string());
    assert!(cg.notes().iter().any(|n| n.contains("default") && n.contains("cranlab/w0")), "{:?}", cg.notes());
    cg.remove().unwrap();

    // Too little left: refused, naming the way out, nothing created.
    put(&p.join("cpu/someone/cpu.rt_runtime_us"), "930000");
    let e = Cgroup::create(&root, "cranlab/w1", &Limits { realtime: true, ..Limits::default() }).unwrap_err();
    assert!(matches!(e, CgroupError::Budget(_)), "{e}");
    assert!(e.to_string().contains("realtimeRuntime"), "{e}");
    for c in ["cpuset", "cpu", "memory", "pids"] {
        assert!(!p.join(c).join("cranlab").exists(), "{c}/cranlab left after refusal");
    }
}

#[test]
fn rt_budget_without_rt_group_sched_is_refused() {
    let t = Tmp::new("cgfake", "nort");
    fake_v1(&t.0, false);
    let root = CgroupRoot::detect(&t.0).unwrap();
    assert!(!root.rt_group_sched());
    let e = Cgroup::create(&root, "cranlab/w0", &Limits { rt_runtime_us: Some(1000), ..Limits::default() }).unwrap_err();
    assert!(matches!(e, CgroupError::InvalidLimit { field: "rt_runtime_us", .. }), "{e}");
    // A real-time worker on such a kernel needs no budget: no note, no error.
    let cg = Cgroup::create(&root, "cranlab/w0", &Limits { realtime: true, ..Limits::default() }).unwrap();
    assert_eq!(cg.rt_budget(), None);
    cg.remove().unwrap();
}

#[test]
fn write_errors_name_the_file_and_undo_everything() {
    let t = Tmp::new("cgfake", "err");
    fake_v1(&t.0, true);
    let p = &t.0;
    // Make the leaf's pids.max a directory: the write fails with EISDIR.
    let root = CgroupRoot::detect(p).unwrap();
    fs::create_dir_all(p.join("cpu/cranlab")).unwrap();
    put(&p.join("cpu/cranlab/cpu.rt_runtime_us"), "0");
    // Pre-create the leaf in pids only, with pids.max as a directory, by
    // racing the create: instead make the pids hierarchy's cranlab a file.
    put(&p.join("pids/cranlab"), "not a dir");
    let limits = Limits { pids_max: Some(10), rt_runtime_us: Some(10_000), ..Limits::default() };
    let e = Cgroup::create(&root, "cranlab/w0", &limits).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("create cgroup {}", p.join("pids/cranlab").display())), "{msg}");
    assert!(!msg.contains("os error"), "{msg}");
    // Everything created before the failure is gone; the budget given back.
    assert!(!p.join("cpuset/cranlab").exists());
    assert!(!p.join("memory/cranlab").exists());
    assert!(!p.join("cpu/cranlab/w0").exists());
    assert_eq!(get(&p.join("cpu/cranlab/cpu.rt_runtime_us")), "0");

    // A budget write refused by the "kernel" (here: a directory) names the file.
    fs::remove_file(p.join("pids/cranlab")).unwrap();
    fs::create_dir_all(p.join("cpu/cranlab/cpu.rt_runtime_us.d")).unwrap();
    fs::remove_file(p.join("cpu/cranlab/cpu.rt_runtime_us")).unwrap();
    fs::create_dir_all(p.join("cpu/cranlab/cpu.rt_runtime_us")).unwrap();
    let e = Cgroup::create(&root, "cranlab/w0", &limits).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&format!("{}:", p.join("cpu/cranlab/cpu.rt_runtime_us").display())), "{msg}");
    assert!(msg.contains("directory"), "{msg}");
}

#[test]
fn existing_leaf_and_bad_names_and_limits_are_refused() {
    let t = Tmp::new("cgfake", "exists");
    fake_v1(&t.0, true);
    let root = CgroupRoot::detect(&t.0).unwrap();
    fs::create_dir_all(t.0.join("cpuset/cranlab/w0")).unwrap();
    let e = Cgroup::create(&root, "cranlab/w0", &Limits::default()).unwrap_err();
    assert!(matches!(e, CgroupError::Exists { .. }), "{e}");
    assert!(matches!(Cgroup::create(&root, "w0", &Limits::default()), Err(CgroupError::InvalidName { .. })));
    assert!(matches!(Cgroup::create(&root, "cranlab/../w0", &Limits::default()), Err(CgroupError::InvalidName { .. })));
    let bad = Limits { cpus: Some("3-1".into()), ..Limits::default() };
    assert!(matches!(Cgroup::create(&root, "cranlab/w9", &bad), Err(CgroupError::InvalidLimit { field: "cpus", .. })));
    let bad = Limits { rt_runtime_us: Some(2_000_000), ..Limits::default() };
    assert!(matches!(Cgroup::create(&root, "cranlab/w9", &bad), Err(CgroupError::InvalidLimit { field: "rt_runtime_us", .. })));
    let bad = Limits { cpu_weight: Some(0), ..Limits::default() };
    assert!(matches!(Cgroup::create(&root, "cranlab/w9", &bad), Err(CgroupError::InvalidLimit { field: "cpu_weight", .. })));
    assert!(!t.0.join("cpu/cranlab/w9").exists());
}

#[test]
fn v2_enables_controllers_down_the_tree() {
    let t = Tmp::new("cgfake", "v2");
    fake_v2(&t.0);
    let p = &t.0;
    let root = CgroupRoot::detect(p).unwrap();
    let limits = Limits { cpus: Some("1".into()), memory_max: Some(1 << 20), pids_max: Some(8), cpu_weight: Some(200), ..Limits::default() };
    let cg = Cgroup::create(&root, "cranlab/w0", &limits).unwrap();
    assert_eq!(get(&p.join("cgroup.subtree_control")), "+cpuset +cpu +memory +pids");
    assert_eq!(get(&p.join("cranlab/cgroup.subtree_control")), "+cpuset +cpu +memory +pids");
    assert_eq!(get(&p.join("cranlab/w0/cpuset.cpus")), "1");
    assert_eq!(get(&p.join("cranlab/w0/memory.max")), "1048576");
    assert_eq!(get(&p.join("cranlab/w0/pids.max")), "8");
    assert_eq!(get(&p.join("cranlab/w0/cpu.weight")), "200");
    assert_eq!(cg.paths(), vec![p.join("cranlab/w0")]);
    assert_eq!(cg.path_of(Controller::Memory), Some(p.join("cranlab/w0").as_path()));
    put(&p.join("cranlab/w0/memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
    assert_eq!(cg.oom_kills().unwrap(), 1);
    cg.remove().unwrap();
    assert!(!p.join("cranlab").exists());
}

#[test]
fn sweep_removes_leftovers_in_every_hierarchy() {
    let t = Tmp::new("cgfake", "sweep");
    fake_v1(&t.0, true);
    put(&t.0.join("unified/cgroup.controllers"), "");
    put(&t.0.join("unified/cgroup.procs"), "");
    let p = &t.0;
    for d in ["cpuset/cranlab/w0", "cpu/cranlab/w0", "memory/cranlab-x", "unified/cranlab/w1", "cpuset/cranlab-housekeeping-7"] {
        put(&p.join(d).join("cgroup.procs"), "");
    }
    put(&p.join("memory/process_api/cgroup.procs"), "");
    let root = CgroupRoot::detect(p).unwrap();
    let removed = cgroup::sweep(&root).unwrap();
    assert_eq!(removed.len(), 8, "{removed:?}");
    for d in ["cpuset/cranlab", "cpu/cranlab", "memory/cranlab-x", "unified/cranlab", "cpuset/cranlab-housekeeping-7"] {
        assert!(!p.join(d).exists(), "{d} left");
    }
    assert!(p.join("memory/process_api").exists(), "sweep touched a cgroup not named cranlab");
    assert!(cgroup::sweep(&root).unwrap().is_empty());
}

#[test]
fn sweep_keeps_live_runs_cgroups() {
    let t = Tmp::new("cgfake", "owners");
    fake_v1(&t.0, true);
    let p = &t.0;
    let root = CgroupRoot::detect(p).unwrap();
    // Made by this (live) process through create: owned.
    let cg = Cgroup::create(&root, "cranlab/live", &Limits::default()).unwrap();
    if cgroup::owner_of(&p.join("cpu/cranlab/live")).is_none() {
        eprintln!("skipping: no trusted xattrs here (not root?)");
        return;
    }
    assert!(cgroup::owner_alive(&cgroup::owner_of(&p.join("cpu/cranlab/live")).unwrap()));
    // A killed run's leftover next to it: owner gone.
    put(&p.join("cpu/cranlab/dead/cgroup.procs"), "");
    put(&p.join("cpu/cranlab-old/cgroup.procs"), "");
    let removed = cgroup::sweep(&root).unwrap();
    assert!(removed.contains(&p.join("cpu/cranlab/dead")), "{removed:?}");
    assert!(removed.contains(&p.join("cpu/cranlab-old")), "{removed:?}");
    assert!(p.join("cpu/cranlab/live").exists(), "a live run's cgroup was swept");
    assert!(p.join("cpu/cranlab").exists(), "the parent of a live cgroup was swept");
    // sweep_all takes everything.
    let removed = cgroup::sweep_all(&root).unwrap();
    assert!(removed.contains(&p.join("cpu/cranlab/live")), "{removed:?}");
    assert!(!p.join("cpu/cranlab").exists());
    drop(cg);
}
