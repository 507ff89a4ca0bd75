//! End-to-end tests of the `cranlab` binary: real runs (veth pair in network
//! namespaces of its own as root; the in-memory path otherwise), bad
//! scenarios, SIGINT and SIGKILL followed by cleanup.
//!
//! No timing thresholds: the counts asserted are about scale (thousands of
//! slots), correctness (zero bit errors) and what is left on the host.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::results::{Results, METRICS, SCHEMA};

mod common;
use common::{cranlab, netns_of as owned_by, root};

/// The worker binary next to cranlab (the test build's target dir).
fn worker() -> Option<PathBuf> {
    let p = cranlab().parent()?.join("bbu-sim");
    p.is_file().then_some(p)
}

fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cranlab-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn check_outputs(dir: &Path) -> Results {
    let r: Results = serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(r.schema, SCHEMA);
    assert!(!r.git_revision.is_empty());
    assert!(!r.runs.is_empty());
    for run in &r.runs {
        for m in METRICS {
            if m == "one_way_ns" && run.deployment == "kvm" {
                assert!(!run.metrics.contains_key(m), "one-way must never be reported for kvm");
                continue;
            }
            assert!(run.metrics.contains_key(m), "{} lacks metric {m}", run.deployment);
            if m != "ta4_margin_ns" {
                let f = &run.files[m];
                assert!(dir.join(f).is_file(), "{f} missing");
                let rows = bench::histio::read_hgrm(&dir.join(f)).unwrap();
                assert_eq!(rows.last().map(|r| r.total_count), Some(run.metrics[m].count), "{f}");
            }
        }
        assert!(dir.join(&run.files["hlog"]).is_file());
        assert!(!bench::histio::read_hlog(&dir.join(&run.files["hlog"])).unwrap().is_empty());
    }
    assert!(std::fs::read_to_string(dir.join("report.md")).unwrap().contains("## What the host did and did not provide"));
    r
}

fn run_ok(args: &[&str], out: &Path) -> (Results, String) {
    let mut cmd = Command::new(cranlab());
    cmd.args(["run", "--out"]).arg(out).args(args).arg("--no-progress");
    if let Some(w) = worker() {
        cmd.arg("--worker").arg(w);
    }
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "cranlab run failed: {text}");
    assert!(text.contains(&format!("report: {}", out.join("report.md").display())), "{text}");
    // Nothing the run created is left (other tests' runs may be going on).
    assert!(owned_by(pid).is_empty(), "left behind: {:?}", owned_by(pid));
    (check_outputs(out), text)
}

#[test]
fn in_memory_run_produces_every_output() {
    let out = out_dir("mem");
    let (r, _) = run_ok(&["--duration", "3", "--transport", "mem"], &out);
    let run = &r.runs[0];
    assert_eq!(run.transport, "mem");
    assert!(run.slots >= 1000, "{} slots", run.slots);
    assert_eq!(run.bit_errors, 0);
    assert!(run.bits_checked > 0);
    assert_eq!(run.lost_packets, 0);
    assert!(run.metrics["slot_turnaround_ns"].count > 1000);
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn veth_run_over_af_packet() {
    if !root() {
        eprintln!("skipped: needs root for network namespaces and a veth pair");
        return;
    }
    if worker().is_none() {
        panic!("bbu-sim is not built next to cranlab: cargo build -p bbu-sim (scripts/test.sh does)");
    }
    let out = out_dir("afpacket");
    let (r, _) = run_ok(&["--duration", "4", "--transport", "af_packet"], &out);
    let run = &r.runs[0];
    assert_eq!(run.deployment, "bare");
    assert_eq!(run.transport, "af_packet");
    assert!(run.slots >= 1000, "{} slots", run.slots);
    assert!(run.metrics["slot_turnaround_ns"].count >= 1000);
    assert_eq!(run.bit_errors, 0);
    assert!(run.bits_checked > 0);
    assert!(run.granted.get("sched").is_some());
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn veth_run_over_afxdp_or_says_why_not() {
    if !root() {
        eprintln!("skipped: needs root for network namespaces, a veth pair and XDP");
        return;
    }
    if worker().is_none() {
        panic!("bbu-sim is not built next to cranlab: cargo build -p bbu-sim (scripts/test.sh does)");
    }
    let out = out_dir("afxdp");
    let (r, text) = run_ok(&["--duration", "4", "--transport", "afxdp"], &out);
    let run = &r.runs[0];
    assert!(run.slots >= 1000, "{} slots", run.slots);
    assert_eq!(run.bit_errors, 0);
    if run.transport != "afxdp" {
        // A fallback is never silent: console and results both say why.
        let why = run.transport_detail["fallback_reason"].as_str().unwrap_or("");
        assert!(!why.is_empty(), "fell back without a reason: {}", run.transport_detail);
        assert!(text.contains("falling back") || text.contains("uses AF_PACKET"), "{text}");
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn bad_scenario_field_is_named_and_nothing_is_created() {
    let dir = out_dir("badscn");
    std::fs::create_dir_all(&dir).unwrap();
    let scn = dir.join("bad.toml");
    std::fs::write(&scn, "[cell]\nprbs = 51\n\n[run]\nduration_s = \"ten\"\n").unwrap();
    let out = dir.join("out");
    let o = Command::new(cranlab()).arg("run").arg(&scn).arg("--out").arg(&out).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("run.duration_s"), "{err}");
    assert!(!out.exists(), "output directory created for a bad scenario");
    std::fs::write(&scn, "[cel]\nprbs = 51\n").unwrap();
    let o = Command::new(cranlab()).arg("run").arg(&scn).arg("--out").arg(&out).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cel"));
    assert!(!out.exists());
    let o = Command::new(cranlab()).args(["run", "--rounds", "0", "--out"]).arg(&out).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("run.rounds"));
    assert!(!out.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Starts a long run, waits until its worker is up, returns the child.
fn start_long_run(out: &Path) -> std::process::Child {
    let mut cmd = Command::new(cranlab());
    cmd.args(["run", "--duration", "60", "--transport", "af_packet", "--no-progress", "--out"]).arg(out);
    if let Some(w) = worker() {
        cmd.arg("--worker").arg(w);
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Wait for its worker log to say READY (the link and the worker exist).
    let t = Instant::now();
    loop {
        let ready = std::fs::read_dir(out)
            .map(|rd| {
                rd.flatten().any(|e| {
                    e.file_name().to_string_lossy().ends_with(".worker.log")
                        && std::fs::read_to_string(e.path()).map(|s| s.contains("READY")).unwrap_or(false)
                })
            })
            .unwrap_or(false);
        if ready {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "run never got its worker ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// Pids whose parent is `ppid`.
fn children_of(ppid: u32) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) {
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            if after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(ppid) {
                v.push(pid);
            }
        }
    }
    v
}

#[test]
fn sigint_stops_the_run_and_leaves_nothing() {
    if !root() || worker().is_none() {
        eprintln!("skipped: needs root and bbu-sim built next to cranlab");
        return;
    }
    let out = out_dir("sigint");
    let mut child = start_long_run(&out);
    let pid = child.id();
    assert!(!owned_by(pid).is_empty(), "the run created no namespace");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130), "interrupted runs exit 130");
    assert!(owned_by(pid).is_empty(), "{:?}", owned_by(pid));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn sigkilled_run_is_swept_by_cleanup() {
    if !root() || worker().is_none() {
        eprintln!("skipped: needs root and bbu-sim built next to cranlab");
        return;
    }
    let out = out_dir("sigkill");
    let mut child = start_long_run(&out);
    let pid = child.id();
    assert!(!owned_by(pid).is_empty());
    let workers = children_of(pid);
    assert!(!workers.is_empty(), "no worker process under cranlab");
    child.kill().unwrap();
    child.wait().unwrap();
    // The worker dies with cranlab (PR_SET_PDEATHSIG); the namespaces stay
    // until a cleanup (or the next run's sweep).
    assert!(!owned_by(pid).is_empty(), "expected leftovers after SIGKILL");
    let o = Command::new(cranlab()).arg("cleanup").output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(owned_by(pid).is_empty(), "{:?} after cleanup: {text}", owned_by(pid));
    assert!(text.contains("deleted netns"), "{text}");
    for w in workers {
        let t = Instant::now();
        while Path::new(&format!("/proc/{w}")).exists() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!Path::new(&format!("/proc/{w}")).exists(), "worker {w} outlived cranlab");
    }
    let cg = Command::new("find").args(["/sys/fs/cgroup", "-maxdepth", "3", "-name", &format!("cranlab*{pid}*")]).output().unwrap();
    assert!(cg.stdout.is_empty(), "{}", String::from_utf8_lossy(&cg.stdout));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn non_root_run_says_what_it_skips_and_still_produces_results() {
    // As root, drop to nobody with setpriv (util-linux); as a normal user, run directly.
    let setpriv = Path::new("/usr/bin/setpriv");
    if root() && !setpriv.is_file() {
        eprintln!("skipped: root without setpriv (util-linux) cannot test the unprivileged path");
        return;
    }
    let out = out_dir("nonroot");
    let mut cmd = if root() {
        let mut c = Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(cranlab());
        c
    } else {
        Command::new(cranlab())
    };
    // nobody needs a directory it can write: the parent is world-writable /tmp.
    let o = cmd.args(["run", "--duration", "2", "--deployments", "bare,container,kvm", "--no-progress", "--out"]).arg(&out).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    if root() && text.contains("Permission denied") && !out.exists() {
        eprintln!("skipped: nobody cannot execute {}: {text}", cranlab().display());
        return;
    }
    assert!(o.status.success(), "{text}");
    assert!(text.contains("not root: skipping"), "{text}");
    assert!(text.contains("skipping deployment container: needs root"), "{text}");
    assert!(text.contains("skipping deployment kvm: needs root"), "{text}");
    let r = check_outputs(&out);
    assert_eq!(r.runs.len(), 1);
    assert_eq!(r.runs[0].transport, "mem");
    assert!(r.runs[0].slots > 0);
    assert!(r.host.notes.iter().any(|n| n.contains("not root")), "{:?}", r.host.notes);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn bare_and_container_compare_on_one_transport_afxdp_where_possible() {
    if !root() {
        eprintln!("skipped: needs root for network namespaces, a veth pair, XDP and containers");
        return;
    }
    if worker().is_none() {
        panic!("bbu-sim is not built next to cranlab: cargo build -p bbu-sim (scripts/test.sh does)");
    }
    let out = out_dir("afxdp-cmp");
    let (r, text) = run_ok(&["--duration", "4", "--transport", "afxdp", "--deployments", "bare,container"], &out);
    assert_eq!(r.runs.iter().map(|x| x.deployment.as_str()).collect::<Vec<_>>(), ["bare", "container"], "{text}");
    // One transport for every deployment of a comparison.
    assert_eq!(r.runs[0].transport, r.runs[1].transport, "{text}");
    for run in &r.runs {
        assert!(run.slots >= 1000, "{} slots", run.slots);
        assert_eq!(run.bit_errors, 0, "{}: {text}", run.deployment);
        let d = &run.transport_detail;
        assert_eq!(d["requested"], "afxdp");
        if run.transport == "afxdp" {
            assert_eq!(d["worker"], "afxdp");
            assert_eq!(d["rrh"], "afxdp");
            assert!(d["xdp_mode"]["worker"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
        } else {
            let why = d["fallback_reason"].as_str().unwrap_or("");
            assert!(!why.is_empty(), "fell back without a reason: {d}");
        }
    }
    if r.runs[1].transport == "afxdp" {
        // The container's worker got its socket from the runtime.
        assert_eq!(r.runs[1].transport_detail["worker_io"]["from_handoff"], true, "{}", r.runs[1].transport_detail);
    }
    std::fs::remove_dir_all(out).unwrap();
}
