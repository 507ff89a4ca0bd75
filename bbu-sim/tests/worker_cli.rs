//! The worker binary's argument errors: clear message naming the field,
//! non-zero exit, nothing printed on stdout (no READY).

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bbu-sim")).args(args).output().expect("run bbu-sim");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_cell_names_the_field() {
    let (rc, out, err) = run(&["--iface", "lo", "--cell", "mu=9"]);
    assert_ne!(rc, 0);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("--cell") && err.contains("cell field mu"), "{err}");
    let (rc, _, err) = run(&["--iface", "lo", "--cell", "ant=1,layers=2"]);
    assert_ne!(rc, 0);
    assert!(err.contains("cell field layers"), "{err}");
    let (rc, _, err) = run(&["--iface", "lo", "--cell", "bogus=1"]);
    assert_ne!(rc, 0);
    assert!(err.contains("unknown field \"bogus\""), "{err}");
}

#[test]
fn bad_timing_poll_transport_and_limits_are_errors() {
    let (rc, _, err) = run(&["--iface", "lo", "--timing", "ta4=9:1"]);
    assert_ne!(rc, 0);
    assert!(err.contains("ta4_min_ns"), "{err}");
    let (rc, _, err) = run(&["--iface", "lo", "--poll", "spin"]);
    assert_ne!(rc, 0);
    assert!(err.contains("'spin' for '--poll") && err.contains("busy, block"), "{err}");
    let (rc, _, err) = run(&["--iface", "lo", "--transport", "dpdk"]);
    assert_ne!(rc, 0);
    assert!(err.contains("unknown transport \"dpdk\""), "{err}");
    let (rc, out, err) = run(&["--transport", "mem"]);
    assert_ne!(rc, 0);
    assert!(out.is_empty());
    assert!(err.contains("transport mem"), "{err}");
    let (rc, _, err) = run(&["--transport", "af_packet"]);
    assert_ne!(rc, 0);
    assert!(err.contains("--iface is required"), "{err}");
    let (rc, _, err) = run(&["--iface", "lo", "--fifo", "0", "--max-seconds", "1"]);
    assert_ne!(rc, 0);
    assert!(err.contains("priority 0"), "{err}");
    let (rc, _, err) = run(&["--iface", "lo", "--max-seconds", "0"]);
    assert_ne!(rc, 0);
    assert!(err.contains("--max-seconds"), "{err}");
}

#[test]
fn missing_interface_fails_before_ready() {
    let (rc, out, err) = run(&["--iface", "cranlab-nonexistent0", "--transport", "af_packet"]);
    assert_ne!(rc, 0);
    assert!(!out.contains("READY"), "{out}");
    assert!(err.contains("cranlab-nonexistent0"), "{err}");
}

#[test]
fn missing_interface_names_the_cause_once() {
    for transport in ["af_packet", "af_packet_uring", "afxdp"] {
        let (rc, out, err) = run(&["--iface", "cranlabnosuch0", "--transport", transport, "--cell", "mu=1"]);
        assert_ne!(rc, 0);
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.matches("os error").count(), 1, "the cause is printed once: {err}");
        assert!(err.contains("cranlabnosuch0"), "{err}");
    }
}
