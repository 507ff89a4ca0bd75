//! End-to-end test of the kvm deployment as CI sees it on a host without
//! hardware KVM (issue 6): `cranlab run scenarios/tcg-light.toml
//! --deployments kvm` boots the guest under TCG, the rrh-sim sends a few
//! seconds of the light cell through the tap, and the replies come back with
//! zero bit errors and the `tcg` label. Afterwards nothing the run created is
//! left: no network namespace, no link, no QEMU process.
//!
//! Root only; skips with the reason where QEMU or root is missing. No timing
//! thresholds: what is asserted is labels, counts and correctness.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bench::results::Results;

mod common;
use common::{assert_nothing_left, cranlab, cranlab_links, qemu_skip_reason};

fn scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/tcg-light.toml")
}

#[test]
fn kvm_guest_under_tcg_answers_with_zero_bit_errors_and_leaves_nothing() {
    if let Some(why) = qemu_skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let worker = cranlab().parent().unwrap().join("bbu-sim");
    assert!(worker.is_file(), "bbu-sim is not built next to cranlab: cargo build --release -p bench -p bbu-sim");
    let out = std::env::temp_dir().join(format!("cranlab-test-kvm-tcg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let links_before = cranlab_links();

    let child = Command::new(cranlab())
        .arg("run")
        .arg(scenario())
        .args(["--deployments", "kvm", "--duration", "3", "--no-progress", "--worker"])
        .arg(&worker)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "cranlab run failed: {text}");

    let r: Results = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(r.runs.len(), 1, "{text}");
    let run = &r.runs[0];
    assert_eq!(run.deployment, "kvm");
    // This test is for hosts without hardware KVM (CI, this machine): the
    // guest must run, and be labelled, as TCG emulation.
    if run.virtualization == "kvm" {
        eprintln!("note: this host has hardware KVM; the run was real KVM, not the TCG path this test is about");
    } else {
        assert_eq!(run.virtualization, "tcg", "{text}");
        assert!(text.contains("TCG emulation"), "the console must say the kvm run is emulated: {text}");
        assert!(run.notes.iter().chain(r.host.notes.iter()).any(|n| n.contains("TCG")) || run.granted.to_string().contains("TCG"), "{run:?}");
    }
    // The guest times its own processing: its clock must be fine-grained
    // (tsc under TCG with tsc=reliable, kvm-clock under KVM), not jiffies.
    let granted = run.granted.to_string();
    assert!(granted.contains("guest clocksource "), "the guest's clocksource is not reported: {granted}");
    assert!(!granted.contains("jiffies"), "{granted}");
    assert!(run.slots > 0, "no slots sent");
    assert!(run.bits_checked > 0, "no bits checked: the replies carried no data");
    assert_eq!(run.bit_errors, 0, "bit errors through the guest: {text}");
    // The light cell is sized so the emulated guest keeps up: every slot is
    // answered (measured: 0 lost replies in every run here).
    assert_eq!(run.lost_replies, 0, "{} of {} replies lost: {text}", run.lost_replies, run.slots);
    assert_eq!(run.metrics["slot_turnaround_ns"].count, run.slots);
    assert!(!run.metrics.contains_key("one_way_ns"), "no one-way figure across the VM boundary");
    assert!(run.granted.get("start_to_ready_ns").and_then(|v| v.as_u64()).is_some_and(|ns| ns > 0), "{}", run.granted);

    // Nothing left: namespaces of this run, links, QEMU processes.
    assert_nothing_left(pid, &links_before, &out);
    std::fs::remove_dir_all(out).unwrap();
}
