//! `rrh-sim --pcap` argument and scenario handling: bad input gives an
//! error naming the field, a non-zero exit and no output file.

use std::path::PathBuf;
use std::process::{Command, Output};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cranlab-capture-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rrh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rrh-sim")).args(args).output().unwrap()
}

/// Runs with `args` + `--pcap DIR/out.pcap`; asserts failure mentioning
/// `needle` and that the directory holds nothing but the scenario file.
fn fails(name: &str, scenario: Option<&str>, args: &[&str], needle: &str) {
    let dir = tmpdir(name);
    let out = dir.join("out.pcap");
    let mut a: Vec<String> = vec!["--pcap".into(), out.display().to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    if let Some(text) = scenario {
        let s = dir.join("s.toml");
        std::fs::write(&s, text).unwrap();
        a.push("--scenario".into());
        a.push(s.display().to_string());
    }
    let refs: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let o = rrh(&refs);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{name}: expected failure, stderr: {err}");
    assert!(err.contains(needle), "{name}: stderr does not name {needle:?}: {err}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| n != "s.toml").collect();
    assert!(left.is_empty(), "{name}: files left behind: {left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_flags_name_the_field_and_leave_no_file() {
    fails("mu", None, &["--slots", "2", "--mu", "4"], "mu");
    fails("prbs", None, &["--slots", "2", "--prbs", "300"], "prbs");
    fails("width", None, &["--slots", "2", "--iq-width", "17"], "iq_width");
    fails("mtu", None, &["--slots", "2", "--mtu", "100"], "mtu");
    fails("layers", None, &["--slots", "2", "--antennas", "1", "--layers", "2"], "layers");
    fails("modulation", None, &["--slots", "2", "--modulation", "qam1024"], "modulation");
    fails("slots0", None, &["--slots", "0"], "slots");
    fails("noslots", None, &[], "--slots");
    fails("notanumber", None, &["--slots", "2", "--prbs", "lots"], "--prbs");
}

#[test]
fn bad_scenarios_name_the_field_and_leave_no_file() {
    fails("unknown-table", Some("[cell]\nmu = 1\n[bogus]\nx = 1\n"), &["--slots", "1"], "bogus");
    fails("unknown-cell-field", Some("[cell]\nmu = 1\nwat = 3\n"), &["--slots", "1"], "wat");
    fails("bad-cell-value", Some("[cell]\nprbs = 0\n"), &["--slots", "1"], "prbs");
    fails("wrong-type", Some("[cell]\nantennas = \"four\"\n"), &["--slots", "1"], "antennas");
    fails("not-toml", Some("[cell\n"), &["--slots", "1"], "s.toml");
    fails("missing-file", None, &["--slots", "1", "--scenario", "/nonexistent/cranlab.toml"], "/nonexistent/cranlab.toml");
}

#[test]
fn flags_override_the_scenario() {
    let dir = tmpdir("override");
    let s = dir.join("s.toml");
    std::fs::write(&s, "[cell]\nprbs = 273\nantennas = 4\n[timing]\n[run]\n").unwrap();
    let out = dir.join("o.pcap");
    let o = rrh(&["--pcap", out.to_str().unwrap(), "--slots", "1", "--scenario", s.to_str().unwrap(), "--antennas", "1", "--prbs", "11"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let frames = fronthaul::pcap::read_frames(std::fs::File::open(&out).unwrap()).unwrap();
    // 1 antenna: 1 C-plane + 14 symbols × 1 packet.
    assert_eq!(frames.len(), 15);
    let cfg = fronthaul::ParseConfig { carrier_prbs: 11, ..fronthaul::ParseConfig::default() };
    let f = fronthaul::parse_frame(&frames[1].1, &cfg).unwrap();
    match f.message {
        fronthaul::Message::UPlane(u) => assert_eq!(u.first_section().unwrap().0.num_prb, 11),
        other => panic!("expected u-plane, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
