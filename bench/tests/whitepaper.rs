//! End-to-end test of `cranlab whitepaper` (issue 7): with two instances per
//! launch test and short workloads, every row of the table is filled for
//! rt-runtime containers and, where QEMU is installed, guests (TCG-labelled
//! without hardware KVM); row (5) has CPU, memory and network figures for
//! bare metal, the container and the guest, the network ones over a veth pair
//! and a tap; crun and runc get their rows where installed; and the run
//! leaves no namespace, link or process behind, also when interrupted.
//!
//! Root only. No timing thresholds: what is asserted is that each figure was
//! measured (present and positive), labelled and cleaned up.

use std::process::{Command, Stdio};

use bench::whitepaper::{PlatformFigures, WhitepaperResults};

mod common;
use common::{assert_nothing_left, cranlab, cranlab_links, processes_mentioning, qemu_skip_reason, root};

fn assert_performance(f: &PlatformFigures, text: &str) {
    let who = &f.name;
    assert!(f.prime_events_per_s.is_some_and(|x| x > 0.0), "{who}: no CPU figure: {text}");
    let methods: Vec<&str> = f.mbw_mib_per_s.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(methods, ["memcpy", "dumb", "mcblock"], "{who}: {text}");
    assert!(f.mbw_mib_per_s.iter().all(|(_, v)| *v > 0.0), "{who}: {:?}", f.mbw_mib_per_s);
    assert!(f.net_stream_mib_per_s.is_some_and(|x| x > 0.0), "{who}: no TCP stream figure: {text}");
    assert!(f.net_rr_per_s.is_some_and(|x| x > 0.0), "{who}: no TCP request/response figure: {text}");
    assert!(f.net_path.is_some(), "{who}: the network path is not named");
}

fn assert_lifecycle(f: &PlatformFigures, text: &str) {
    let who = &f.name;
    for (row, v) in [
        ("async launch", f.async_launch_s),
        ("memory", f.memory_mib),
        ("serial launch", f.serial_launch_avg_s),
        ("reboot", f.reboot_avg_s),
        ("snapshot time", f.snapshot_s),
        ("snapshot size", f.snapshot_mib),
    ] {
        assert!(v.is_some_and(|x| x > 0.0), "{who}: {row} not measured: {text}");
    }
}

#[test]
fn whitepaper_fills_every_row_and_leaves_nothing() {
    if !root() {
        eprintln!("skipped: needs root (containers, network namespaces, QEMU taps)");
        return;
    }
    let out = std::env::temp_dir().join(format!("cranlab-test-whitepaper-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let links_before = cranlab_links();
    let child = Command::new(cranlab())
        .args(["whitepaper", "--count", "2", "--prime-seconds", "0.3", "--mbw-mib", "4", "--net-seconds", "0.5", "--out"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "cranlab whitepaper failed: {text}");

    let r: WhitepaperResults = serde_json::from_str(&std::fs::read_to_string(out.join("whitepaper.json")).unwrap()).unwrap();
    assert_eq!(r.count, 2);
    assert_eq!(r.container.name, "rt-runtime");
    assert!(r.container.notes.is_empty(), "rt-runtime: {:?}", r.container.notes);
    assert_lifecycle(&r.container, &text);
    assert_performance(&r.bare, &text);
    assert_performance(&r.container, &text);
    assert!(r.bare.net_path.as_deref().is_some_and(|p| p.contains("veth")), "{:?}", r.bare.net_path);
    match qemu_skip_reason() {
        None => {
            assert!(r.vm.name.starts_with("qemu-"), "{}", r.vm.name);
            if r.vm.name != "qemu-kvm" {
                assert!(r.vm.name.contains("emulation"), "an emulated guest must say so: {}", r.vm.name);
            }
            assert!(r.vm.notes.is_empty(), "{}: {:?}", r.vm.name, r.vm.notes);
            assert_lifecycle(&r.vm, &text);
            assert_performance(&r.vm, &text);
            assert!(r.vm.net_path.as_deref().is_some_and(|p| p.contains("tap")), "{:?}", r.vm.net_path);
        }
        Some(why) => {
            eprintln!("note: no guest rows: {why}");
            assert!(r.vm.notes.iter().any(|n| n.contains("skipped")), "{:?}", r.vm.notes);
        }
    }
    for name in ["crun", "runc"] {
        let installed = ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"].iter().any(|d| std::path::Path::new(d).join(name).is_file());
        assert_eq!(r.others.iter().any(|o| o.name == name), installed, "{name} row present iff installed");
    }
    for row in ["| 1 async launch | time to all ready |", "| 3 serial reboot |", "| 4 snapshot | size |", "| CPU prime", "| memory mcblock", "| network TCP stream", "| network TCP request/response"] {
        assert!(stdout.contains(row), "the printed table lacks {row:?}: {stdout}");
    }
    assert!(std::fs::read_to_string(out.join("whitepaper.md")).unwrap().contains(&r.table));

    assert_nothing_left(pid, &links_before, &out);
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn bad_whitepaper_flags_are_named_and_nothing_is_created() {
    let out = std::env::temp_dir().join(format!("cranlab-test-whitepaper-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    for (flag, value) in [("--net-seconds", "0"), ("--prime-seconds", "-1"), ("--count", "0"), ("--net-seconds", "nan")] {
        let o = Command::new(cranlab()).args(["whitepaper", &format!("{flag}={value}"), "--out"]).arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{flag} {value} was accepted");
        assert!(err.contains(flag), "{flag} {value}: the error does not name the flag: {err}");
        assert!(!out.exists(), "{flag} {value}: the output directory was created");
    }
}

#[test]
fn sigint_stops_the_whitepaper_and_leaves_nothing() {
    use std::io::{BufRead, BufReader};
    if !root() {
        eprintln!("skipped: needs root (containers, network namespaces, QEMU taps)");
        return;
    }
    let out = std::env::temp_dir().join(format!("cranlab-test-whitepaper-int-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let links_before = cranlab_links();
    let mut child = Command::new(cranlab())
        .args(["whitepaper", "--count", "15", "--prime-seconds", "0.3", "--mbw-mib", "4", "--net-seconds", "0.5", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Interrupt while instances are starting: the guests' asynchronous launch
    // where QEMU is installed, the containers' otherwise.
    let wanted = if qemu_skip_reason().is_none() { "qemu-" } else { "rt-runtime: launch" };
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx.recv().unwrap_or_else(|_| panic!("cranlab ended before {wanted:?}: {seen:?}"));
        let hit = line.contains(wanted) && line.contains("launch, reboot, snapshot");
        seen.push(line);
        if hit {
            break;
        }
    }
    if qemu_skip_reason().is_none() {
        // Until a guest of this run is up, so the interrupt meets running QEMUs.
        let t = std::time::Instant::now();
        while !processes_mentioning(&out.to_string_lossy()).iter().any(|p| p.contains("qemu-system")) && t.elapsed() < std::time::Duration::from_secs(120) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    } else {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    // A guard against a hang, not a timing assertion.
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > std::time::Duration::from_secs(300) {
            let _ = child.kill();
            panic!("cranlab whitepaper did not stop within 300 s of SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    seen.extend(rx.try_iter());
    assert_eq!(status.code(), Some(130), "{seen:?}");
    assert!(seen.iter().any(|l| l.contains("interrupted")), "{seen:?}");
    assert!(!out.join("whitepaper.json").exists(), "an interrupted run must not write results");
    assert_nothing_left(pid, &links_before, &out);
    let _ = std::fs::remove_dir_all(out);
}
