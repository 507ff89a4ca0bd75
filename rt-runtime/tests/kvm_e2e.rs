//! End to end, as root: build the guest image, boot it (TCG on hosts without
//! hardware KVM) with a tap in a network namespace created here, wait for the
//! worker's READY line, check the virtualization label, reach the guest over
//! the tap/virtio-net path, stop it and check nothing is left.
//!
//! The worker here is a busybox shell script (the guest has busybox): it puts
//! an address on its interface, prints READY, and prints a SUMMARY line when
//! it gets SIGTERM. The fronthaul data path with bbu-sim/rrh-sim is exercised
//! by the orchestrator's runs.

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use rt_runtime::deploy::{Deployment, SchedPolicy, WorkerExit, WorkerLink, WorkerSpec};
use rt_runtime::kvm::{self, detect_accel, KvmDeployment};
use rt_runtime::net;

/// One guest at a time: the machine has 2 cores.
static ONE_VM: Mutex<()> = Mutex::new(());

fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces, taps)".into());
    }
    if kvm::qemu::find_qemu().is_none() {
        return Some("qemu-system-x86_64 missing (apt-get install qemu-system-x86)".into());
    }
    if !std::path::Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox missing (apt-get install busybox-static)".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun missing".into());
    }
    None
}

const WORKER: &str = r#"#!/bin/sh
# test worker: address on the fronthaul interface, READY, SUMMARY on SIGTERM
ip addr add "$2" dev "$1" || exit 3
trap 'echo "SUMMARY {\"slots\":0,\"iface\":\"$1\"}"; exit 0' TERM
echo "READY iface=$1"
while :; do sleep 1; done
"#;

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn worker_cpu() -> usize {
    // The last core: the housekeeping vCPU and QEMU's other threads get the rest.
    std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
}

fn spec(tmp: &Tmp, name: &str, ns: &str, tap: &str, mac: [u8; 6]) -> WorkerSpec {
    let program = tmp.0.join("worker.sh");
    fs::write(&program, WORKER).unwrap();
    WorkerSpec {
        name: name.into(),
        program,
        args: vec![OsString::from("{iface}"), OsString::from("10.213.0.2/24")],
        cpus: vec![worker_cpu()],
        sched: SchedPolicy::Fifo(10),
        mlock: false,
        link: WorkerLink { netns: Some(ns.into()), ifname: tap.into(), inner_name: "fh0".into(), mac, addr: None },
        memory_bytes: 256 << 20,
        log: tmp.0.join("console.log"),
        work_dir: tmp.0.clone(),
        // TCG on a shared 2-core machine: generous, this is not a timing test.
        ready_timeout: Duration::from_secs(180),
    }
}

fn nothing_left(name: &str) {
    assert!(
        kvm::list_vms(std::path::Path::new("/proc")).iter().all(|v| v.name != name),
        "qemu {name} still running"
    );
    assert!(!PathBuf::from(kvm::STATE_DIR).join(name).exists(), "state dir of {name} left behind");
}

#[test]
fn guest_boots_reports_ready_is_labelled_and_reachable_over_the_tap() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let decision = detect_accel().expect("detect accelerator");
    let tmp = Tmp(std::env::temp_dir().join(format!("cranlab-kvm-e2e-{}", std::process::id())));
    fs::create_dir_all(&tmp.0).unwrap();
    let ns = net::Netns::create(&net::owned_netns_name("k")).expect("create netns");
    let link = net::tap(&net::short_tag(), ns.name(), 1500).expect("create tap");
    let name = format!("cranlab-e2e-{}", std::process::id());
    let s = spec(&tmp, &name, ns.name(), link.rrh.name(), link.worker_mac);

    let mut h = KvmDeployment::new().launch(&s).unwrap_or_else(|e| panic!("launch: {e}"));
    let f = h.facts().clone();
    eprintln!("facts: {f:#?}");
    assert_eq!(f.deployment, "kvm");
    assert_eq!(f.virtualization, decision.label());
    if decision.host.vendor_module.is_none() {
        // No kvm_intel/kvm_amd (this development machine): never labelled kvm.
        assert_eq!(f.virtualization, "tcg");
        assert!(f.notes.iter().any(|n| n.contains("say nothing about KVM latency")), "{:?}", f.notes);
    }
    assert!(f.start_to_ready_ns.is_some_and(|n| n > 0));
    assert_eq!(f.cpus, vec![worker_cpu()], "worker vCPU thread pinned to the worker core");
    assert_eq!(f.sched, "SCHED_FIFO:10", "guest init read back the worker's policy");
    let log = fs::read_to_string(&s.log).unwrap();
    assert!(log.contains("READY iface=fh0"), "{log}");

    // The fronthaul path: host side of the tap ↔ guest virtio-net.
    net::ip("address the tap", &["-n", ns.name(), "addr", "add", "10.213.0.1/24", "dev", link.rrh.name()]).unwrap();
    let ping = Command::new("ip")
        .args(["netns", "exec", ns.name(), "busybox", "ping", "-c", "3", "-W", "10", "10.213.0.2"])
        .output()
        .expect("run ping");
    assert!(ping.status.success(), "ping over tap: {}", String::from_utf8_lossy(&ping.stdout));

    // stop: SIGTERM to the worker through the control port, then power-off.
    let exit = h.stop(Duration::from_secs(60)).expect("stop");
    assert_eq!(exit, WorkerExit::Exited(0));
    let log = fs::read_to_string(&s.log).unwrap();
    assert!(log.contains("SUMMARY {\"slots\":0,\"iface\":\"fh0\"}"), "{log}");
    drop(h);
    nothing_left(&name);
    let ns_name = ns.name().to_string();
    drop(link);
    drop(ns);
    assert!(!net::list_netns().unwrap().contains(&ns_name));
}

#[test]
fn dropping_the_handle_kills_the_guest_and_a_bad_worker_fails_cleanly() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = Tmp(std::env::temp_dir().join(format!("cranlab-kvm-e2e2-{}", std::process::id())));
    fs::create_dir_all(&tmp.0).unwrap();
    let ns = net::Netns::create(&net::owned_netns_name("k")).expect("create netns");
    let link = net::tap(&net::short_tag(), ns.name(), 1500).expect("create tap");

    // A worker argument the kernel command line cannot carry: refused before anything starts.
    let name = format!("cranlab-bad-{}", std::process::id());
    let mut bad = spec(&tmp, &name, ns.name(), link.rrh.name(), link.worker_mac);
    bad.args.push("two words".into());
    let e = KvmDeployment::new().launch(&bad).err().expect("spaces in an argument must be refused");
    assert!(e.to_string().contains("two words"), "{e}");
    nothing_left(&name);

    // A namespace that does not exist: the step is named, nothing left.
    let mut nons = spec(&tmp, &name, ns.name(), link.rrh.name(), link.worker_mac);
    nons.link.netns = Some("cranlab-no-such-netns".into());
    let e = KvmDeployment::new().launch(&nons).err().expect("a missing netns must fail");
    assert!(e.to_string().contains("cranlab-no-such-netns"), "{e}");
    nothing_left(&name);

    // A worker that exits at once: NotReady naming the exit, nothing left.
    let mut quick = spec(&tmp, &name, ns.name(), link.rrh.name(), link.worker_mac);
    quick.args = vec!["{iface}".into(), "not-an-address".into()];
    let e = KvmDeployment::new().launch(&quick).err().expect("a worker that fails must not be ready");
    assert!(e.to_string().contains("CRANLAB-EXIT 3") || e.to_string().contains("Exited(3)"), "{e}");
    nothing_left(&name);

    // A dynamically linked worker runs too (its libraries are copied in):
    // coreutils `env` prints its environment, including READY=1, and exits.
    let mut dynamic = spec(&tmp, &name, ns.name(), link.rrh.name(), link.worker_mac);
    dynamic.program = "/usr/bin/env".into();
    dynamic.args = vec!["READY=1".into()];
    let mut h = KvmDeployment::new().launch(&dynamic).unwrap_or_else(|e| panic!("launch a dynamic worker: {e}"));
    assert_eq!(h.stop(Duration::from_secs(30)).expect("stop"), WorkerExit::Exited(0));
    drop(h);
    nothing_left(&name);

    // Drop without stop.
    let name = format!("cranlab-drop-{}", std::process::id());
    let s = spec(&tmp, &name, ns.name(), link.rrh.name(), link.worker_mac);
    let h = KvmDeployment::new().launch(&s).unwrap_or_else(|e| panic!("launch: {e}"));
    let pid = h.pid();
    assert!(kvm::list_vms(std::path::Path::new("/proc")).iter().any(|v| v.name == name && v.pid == pid));
    drop(h);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "qemu {pid} survived the drop");
    nothing_left(&name);
}

#[test]
fn kvm_probe_runs_a_real_guest_and_leaves_nothing() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    if !std::path::Path::new("/dev/kvm").exists() {
        eprintln!("skipped: no /dev/kvm to probe");
        return;
    }
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let qemu = kvm::qemu::find_qemu().unwrap();
    // The probe runs even where detection would skip it, to see what -accel kvm does here.
    let outcome = kvm::detect::run_probe(&qemu, &kvm::ImageOptions::default(), Duration::from_secs(60));
    eprintln!("probe under -accel kvm: {outcome:?}");
    match &outcome {
        kvm::detect::ProbeOutcome::Ran { boot_ms } => assert!(*boot_ms > 0),
        kvm::detect::ProbeOutcome::Failed { detail } => assert!(!detail.is_empty()),
    }
    let facts = kvm::detect::read_host_facts(&kvm::detect::HostRoots::default());
    let (accel, why) = kvm::detect::decide(&facts, Some(&outcome));
    if facts.vendor_module.is_none() {
        // Whatever the paravirtual /dev/kvm did, it is not hardware KVM.
        assert_eq!(accel, kvm::Accel::Tcg, "{why:?}");
    }
    assert!(kvm::list_vms(std::path::Path::new("/proc")).iter().all(|v| v.name != "cranlab-probe"), "probe qemu left running");
    let leftovers: Vec<_> = fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy() == format!("cranlab-kvm-probe-{}", std::process::id()))
        .collect();
    assert!(leftovers.is_empty(), "probe temp dir left behind");
}

#[test]
fn q35_fallback_boots_the_same_image() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = Tmp(std::env::temp_dir().join(format!("cranlab-kvm-e2e3-{}", std::process::id())));
    fs::create_dir_all(&tmp.0).unwrap();
    let ns = net::Netns::create(&net::owned_netns_name("k")).expect("create netns");
    let link = net::tap(&net::short_tag(), ns.name(), 1500).expect("create tap");
    let name = format!("cranlab-q35-{}", std::process::id());
    let s = spec(&tmp, &name, ns.name(), link.rrh.name(), link.worker_mac);
    let d = KvmDeployment::with_options(kvm::KvmOptions { machine: Some(kvm::Machine::Q35), ..kvm::KvmOptions::default() });
    let mut h = d.launch(&s).unwrap_or_else(|e| panic!("launch on q35: {e}"));
    assert!(h.facts().notes.iter().any(|n| n.contains("q35 (asked for)")), "{:?}", h.facts().notes);
    assert!(fs::read_to_string(&s.log).unwrap().contains("READY iface=fh0"));
    assert_eq!(h.stop(Duration::from_secs(60)).expect("stop"), WorkerExit::Exited(0));
    drop(h);
    nothing_left(&name);
}
