//! Container runtime tests with real kernel objects (run as root; each test
//! skips with a printed reason where the host lacks a feature).
//!
//! Every test uses names starting with `cranlab-ct` and checks at the end
//! that no cgroup, mount, link or state file with its name remains.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rt_runtime::container::{self, build_bundle, Bundle, BundleSpec, Container, Exit, StartOptions};
use rt_runtime::deploy::SchedPolicy;

/// Tests that take an RT budget run one at a time (the worker deployment
/// takes all free RT bandwidth by the cgroup module's default policy).
static RT_BUDGET: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rt_lock() -> std::sync::MutexGuard<'static, ()> {
    RT_BUDGET.lock().unwrap_or_else(|e| e.into_inner())
}

const PROBE: &str = env!("CARGO_BIN_EXE_rt-probe");
const RUNTIME: &str = env!("CARGO_BIN_EXE_rt-runtime");

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    for c in ["cpuset", "memory", "pids"] {
        let v1 = Path::new("/sys/fs/cgroup").join(c);
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
        if !v1.is_dir() && !std::fs::read_to_string(v2).unwrap_or_default().contains(c) {
            return Some(format!("no {c} cgroup controller"));
        }
    }
    None
}

macro_rules! require_host {
    () => {
        if let Some(r) = skip_reason() {
            eprintln!("skipped: {r}");
            return;
        }
    };
}

fn work_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cranlab-ct-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn probe_spec(mode: &str) -> BundleSpec {
    let mut s = BundleSpec::worker(PROBE, vec![mode.to_string()]);
    s.hostname = "cranlab-probe".into();
    s.cpus = vec![last_cpu()];
    s.pin_cpu = Some(last_cpu());
    s.sched = SchedPolicy::Fifo(10);
    s.rt_runtime_us = Some(50_000);
    s.memory_bytes = Some(64 << 20);
    s.pids_max = Some(16);
    s
}

fn last_cpu() -> usize {
    std::thread::available_parallelism().map(|n| n.get() - 1).unwrap_or(0)
}

/// Asserts nothing named `id` is left: cgroup dirs, state, mounts of the bundle.
fn assert_clean(id: &str, bundle: &Path) {
    for h in ["cpuset", "cpu", "memory", "pids", "unified", ""] {
        let p = Path::new("/sys/fs/cgroup").join(h).join("cranlab").join(id);
        assert!(!p.exists(), "cgroup {} left behind", p.display());
    }
    assert!(!Path::new(container::STATE_DIR).join(format!("{id}.json")).exists(), "state of {id} left behind");
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let b = bundle.to_string_lossy();
    assert!(!mi.contains(b.as_ref()), "mount under {b} left behind");
}

fn wait_exit(c: &mut Container, limit: Duration) -> Exit {
    let t = Instant::now();
    loop {
        if let Some(e) = c.try_wait().unwrap() {
            return e;
        }
        assert!(t.elapsed() < limit, "container {} did not exit within {limit:?}", c.id());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts the bundle in-process with stdout to a log; returns (exit, log).
fn run_probe(tag: &str, spec: &BundleSpec, inspect: impl FnOnce(&Container)) -> (Exit, String) {
    let dir = work_dir(tag);
    let bdir = dir.join("bundle");
    build_bundle(&bdir, spec).unwrap();
    let bundle = Bundle::load(&bdir).unwrap();
    let log = dir.join("log");
    let id = format!("cranlab-ct-{tag}");
    let opts = StartOptions { log: Some(std::fs::File::create(&log).unwrap()), stdin_null: true, ..StartOptions::default() };
    let mut c = Container::start(&bundle, &id, opts).unwrap();
    let exit = wait_exit(&mut c, Duration::from_secs(60));
    inspect(&c);
    c.destroy().unwrap();
    let out = std::fs::read_to_string(&log).unwrap();
    assert_clean(&id, &bdir);
    let _ = std::fs::remove_dir_all(&dir);
    (exit, out)
}

fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key} in probe output:\n{out}"))
}

#[test]
fn probe_sees_the_configured_container() {
    require_host!();
    let _rt = rt_lock();
    let spec = probe_spec("report");
    let (exit, out) = run_probe("report", &spec, |_| {});
    assert_eq!(exit, Exit::Code(0), "{out}");
    assert_eq!(field(&out, "pid"), "1");
    assert_eq!(field(&out, "procs"), "1", "host processes visible");
    assert_eq!(field(&out, "hostname"), "cranlab-probe");
    assert_eq!(field(&out, "cpuset"), last_cpu().to_string());
    assert_eq!(field(&out, "memory"), (64u64 << 20).to_string());
    assert_eq!(field(&out, "pids"), "16");
    assert_eq!(field(&out, "sched"), "SCHED_FIFO:10");
    assert_eq!(field(&out, "affinity"), last_cpu().to_string());
    // CAP_NET_RAW (13) and CAP_IPC_LOCK (14), nothing else.
    assert_eq!(field(&out, "capeff"), "0000000000006000");
    assert_eq!(field(&out, "capbnd"), "0000000000006000");
    assert_eq!(field(&out, "nnp"), "1");
    assert_eq!(field(&out, "seccomp"), "2");
    assert_eq!(field(&out, "rootfs_ro"), "yes");
}

#[test]
fn memory_hog_is_killed_inside_its_cgroup() {
    require_host!();
    let mut spec = probe_spec("hog");
    spec.sched = SchedPolicy::Other;
    spec.rt_runtime_us = None;
    spec.memory_bytes = Some(32 << 20);
    let mut ooms = 0;
    let (exit, out) = run_probe("hog", &spec, |c| ooms = c.cgroup().unwrap().oom_kills().unwrap());
    assert_eq!(exit, Exit::Signal(libc::SIGKILL), "{out}");
    assert!(ooms >= 1, "no oom kill counted in the container's cgroup");
    // The host (this test process) is untouched and the hog got near its limit only.
    assert!(out.contains("allocated 16 MiB"), "{out}");
    assert!(!out.contains("allocated 48 MiB"), "{out}");
}

#[test]
fn fork_bomb_stops_at_pids_max() {
    require_host!();
    let mut spec = probe_spec("forkbomb");
    spec.sched = SchedPolicy::Other;
    spec.rt_runtime_us = None;
    spec.pids_max = Some(8);
    let (exit, out) = run_probe("forkbomb", &spec, |_| {});
    assert_eq!(exit, Exit::Code(0), "{out}");
    let line = out.lines().find(|l| l.starts_with("forks=")).unwrap_or_else(|| panic!("{out}"));
    let n: usize = line["forks=".len()..].split_whitespace().next().unwrap().parse().unwrap();
    assert!(n < 8, "{line}");
    assert!(line.ends_with(&format!("error={}", libc::EAGAIN)), "{line}");
}

#[test]
fn hundreds_of_short_runs_never_hang() {
    require_host!();
    let dir = work_dir("short");
    let bdir = dir.join("bundle");
    let mut spec = probe_spec("true");
    spec.sched = SchedPolicy::Other;
    spec.rt_runtime_us = None;
    build_bundle(&bdir, &spec).unwrap();
    let runs = 300;
    for i in 0..runs {
        let mut child = Command::new(RUNTIME).args(["run", "--bundle"]).arg(&bdir).arg("cranlab-ct-short").spawn().unwrap();
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("run {i} of {runs} hung for 30 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(status.code(), Some(0), "run {i}");
    }
    assert_clean("cranlab-ct-short", &bdir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_status_and_signals_pass_through() {
    require_host!();
    let dir = work_dir("status");
    let bdir = dir.join("bundle");
    let mut spec = BundleSpec::worker("/bin/busybox", vec!["sh".into(), "-c".into(), "exit 7".into()]);
    spec.sched = SchedPolicy::Other;
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox missing (apt install busybox-static)");
        return;
    }
    build_bundle(&bdir, &spec).unwrap();
    let st = Command::new(RUNTIME).args(["run", "-b"]).arg(&bdir).arg("cranlab-ct-status").status().unwrap();
    assert_eq!(st.code(), Some(7));
    // SIGTERM to the runtime is forwarded to the container (pid 1 ignores it
    // by default, so busybox sleep is killed by the TERM trap instead).
    let mut spec = BundleSpec::worker("/bin/busybox", vec!["sh".into(), "-c".into(), "trap 'exit 42' TERM; while :; do sleep 0.05; done".into()]);
    spec.sched = SchedPolicy::Other;
    build_bundle(&bdir, &spec).unwrap();
    let mut child = Command::new(RUNTIME).args(["run", "-b"]).arg(&bdir).arg("cranlab-ct-status").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(42));
    assert_clean("cranlab-ct-status", &bdir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unsupported_realtime_field_is_refused_naming_it() {
    require_host!();
    let dir = work_dir("refuse");
    let bdir = dir.join("bundle");
    build_bundle(&bdir, &probe_spec("true")).unwrap();
    let cfg_path = bdir.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["process"]["scheduler"]["flags"] = serde_json::json!(["SCHED_FLAG_UTIL_CLAMP_MAX"]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let out = Command::new(RUNTIME).args(["run", "-b"]).arg(&bdir).arg("cranlab-ct-refuse").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("process.scheduler.flags"), "{err}");
    assert_clean("cranlab-ct-refuse", &bdir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failing_setup_step_is_named_and_undone() {
    require_host!();
    let _rt = rt_lock();
    let dir = work_dir("badcwd");
    let bdir = dir.join("bundle");
    build_bundle(&bdir, &probe_spec("true")).unwrap();
    let cfg_path = bdir.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["process"]["cwd"] = serde_json::json!("/no/such/dir");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let bundle = Bundle::load(&bdir).unwrap();
    let e = Container::start(&bundle, "cranlab-ct-badcwd", StartOptions::default()).unwrap_err().to_string();
    assert!(e.contains("chdir /no/such/dir (process.cwd)"), "{e}");
    assert_clean("cranlab-ct-badcwd", &bdir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn container_deployment_moves_the_link_and_reports_facts() {
    require_host!();
    let _rt = rt_lock();
    deployment_case("cranlabctA", "cranlabctB", false, None);
}

#[test]
fn container_deployment_hands_in_afxdp() {
    require_host!();
    let _rt = rt_lock();
    deployment_case("cranlabctC", "cranlabctD", true, None);
}

#[test]
fn container_deployment_addresses_the_link_where_asked() {
    require_host!();
    let _rt = rt_lock();
    deployment_case("cranlabctE", "cranlabctF", false, Some("10.213.0.2/30"));
}

fn deployment_case(outer: &str, inner: &str, afxdp: bool, addr: Option<&str>) {
    use rt_runtime::deploy::{Deployment, WorkerLink, WorkerSpec};
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: no ip (apt install iproute2)");
        return;
    }
    let name = match (afxdp, addr) {
        (true, _) => "cranlab-ct-xdp",
        (false, Some(_)) => "cranlab-ct-addr",
        (false, None) => "cranlab-ct-deploy",
    };
    let _ = Command::new("ip").args(["link", "del", outer]).stderr(std::process::Stdio::null()).status();
    let st = Command::new("ip").args(["link", "add", outer, "type", "veth", "peer", "name", inner]).status().unwrap();
    assert!(st.success(), "create veth");
    // The worker end starts in a namespace of its own, as the orchestrator leaves it.
    let src = format!("{name}-src");
    let _ = Command::new("ip").args(["netns", "del", &src]).stderr(std::process::Stdio::null()).status();
    assert!(Command::new("ip").args(["netns", "add", &src]).status().unwrap().success());
    assert!(Command::new("ip").args(["link", "set", inner, "netns", &src]).status().unwrap().success());
    let dir = work_dir(name);
    let mut args: Vec<std::ffi::OsString> = vec!["ready".into(), "{iface}".into()];
    if afxdp {
        args.extend(["--transport".into(), "afxdp".into()]);
    }
    let spec = WorkerSpec {
        name: name.into(),
        program: PROBE.into(),
        args,
        cpus: vec![last_cpu()],
        sched: SchedPolicy::Fifo(10),
        mlock: false,
        link: WorkerLink { netns: Some(src.clone()), ifname: inner.into(), inner_name: "fh0".into(), mac: [0; 6], addr: addr.map(|a| a.parse().unwrap()) },
        memory_bytes: 64 << 20,
        log: dir.join("worker.log"),
        work_dir: dir.clone(),
        ready_timeout: Duration::from_secs(30),
    };
    let d = rt_runtime::container::ContainerDeployment::new();
    let mut h = d.launch(&spec).unwrap();
    let log = std::fs::read_to_string(&spec.log).unwrap();
    assert!(log.contains("READY iface=fh0 up=true SCHED_FIFO:10"), "{log}");
    assert!(log.contains(&format!("xsk={afxdp}")), "{log}");
    if afxdp {
        // stdin, stdout, stderr, the listing's own fd, plus socket + UMEM per queue.
        let fds: usize = log.split("fds=").nth(1).unwrap().trim().parse().unwrap();
        assert!(fds >= 6, "{log}");
        assert!(h.facts().notes.iter().any(|n| n.starts_with("AF_XDP prepared by the runtime")), "{:?}", h.facts().notes);
    }
    if let Some(a) = addr {
        // The runtime's own namespace holds the link, addressed.
        let shown = String::from_utf8(Command::new("ip").args(["-n", name, "-o", "-4", "addr", "show", "dev", "fh0"]).output().unwrap().stdout).unwrap();
        assert!(shown.contains(&format!("inet {a}")), "{shown}");
    }
    let f = h.facts().clone();
    assert_eq!(f.deployment, "container");
    assert_eq!(f.sched, "SCHED_FIFO:10");
    assert_eq!(f.cpus, vec![last_cpu()]);
    assert!(f.cgroup.as_deref().unwrap_or("").contains(&format!("cranlab/{name}")), "{f:?}");
    assert!(f.start_to_ready_ns.is_some());
    // The worker end left its namespace.
    let links = String::from_utf8(Command::new("ip").args(["-n", &src, "-o", "link"]).output().unwrap().stdout).unwrap();
    assert!(!links.contains(inner), "{links}");
    h.stop(Duration::from_secs(2)).unwrap();
    drop(h);
    // The namespace is gone, and with it the veth pair (both ends).
    let t = Instant::now();
    loop {
        let links = String::from_utf8(Command::new("ip").args(["-o", "link"]).output().unwrap().stdout).unwrap();
        if !links.contains(outer) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "veth {outer} left behind");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("ip").args(["netns", "del", &src]).status().unwrap().success());
    assert!(!dir.join(format!("{name}-bundle")).exists(), "bundle left behind");
    assert!(!Path::new("/run/netns").join(name).exists(), "netns {name} left behind");
    assert_clean(name, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn delete_cleans_up_after_a_killed_run() {
    require_host!();
    let dir = work_dir("killed");
    let bdir = dir.join("bundle");
    let mut spec = probe_spec("sleep");
    spec.sched = SchedPolicy::Other;
    spec.rt_runtime_us = None;
    build_bundle(&bdir, &spec).unwrap();
    let id = "cranlab-ct-killed";
    let mut child = Command::new(RUNTIME).args(["run", "-b"]).arg(&bdir).arg(id).spawn().unwrap();
    let state = Path::new(container::STATE_DIR).join(format!("{id}.json"));
    let t = Instant::now();
    while !state.exists() {
        assert!(t.elapsed() < Duration::from_secs(30), "container never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The runtime died without cleaning up: its state and cgroup are still there.
    assert!(state.exists());
    assert!(Path::new("/sys/fs/cgroup/pids/cranlab").join(id).exists() || Path::new("/sys/fs/cgroup/cranlab").join(id).exists());
    let st = Command::new(RUNTIME).args(["delete", id]).status().unwrap();
    assert!(st.success());
    assert_clean(id, &bdir);
    // A second delete has nothing to act on and says so.
    let out = Command::new(RUNTIME).args(["delete", id]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("read state"), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
