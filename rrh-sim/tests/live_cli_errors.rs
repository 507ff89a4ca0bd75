//! `rrh-sim --live` on an interface that does not exist: non-zero exit and
//! an error chain that names the interface and its cause exactly once.

use std::process::Command;

#[test]
fn missing_interface_names_the_cause_once() {
    for transport in ["af_packet", "af_packet_uring", "afxdp"] {
        let out = Command::new(env!("CARGO_BIN_EXE_rrh-sim"))
            .args(["--live", "cranlabnosuch0", "--transport", transport, "--seconds", "1"])
            .output()
            .expect("run rrh-sim");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("cranlabnosuch0"), "{err}");
        assert_eq!(err.matches("os error").count(), 1, "the cause is printed once: {err}");
        assert_eq!(err.matches("cranlabnosuch0").count(), 1, "the interface is named once: {err}");
    }
}
