//! Runs `rrh-sim --pcap` and checks the capture with Wireshark's `ecpri` and
//! `oran_fh_cus` dissectors (tshark): no malformed frame, no error-level
//! expert item, and every frame's fields are what the scenario implies.
//! Skips with a printed reason when tshark is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cranlab-capture-tshark-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn have_tshark() -> bool {
    Command::new("tshark").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// The dissector preferences matching a cell (uplink and downlink twins).
fn prefs(width: u8, ud_comp_hdr: bool) -> Vec<String> {
    let mut v = Vec::new();
    for d in ["up", "down"] {
        for (k, val) in [
            ("iq_bitwidth", width.to_string()),
            ("ud_comp", "COMP_BLOCK_FP".to_string()),
            ("ud_comp_hdr", if ud_comp_hdr { "TRUE" } else { "FALSE" }.to_string()),
        ] {
            v.push("-o".into());
            v.push(format!("oran_fh_cus.oran.{k}_{d}:{val}"));
        }
    }
    v
}

fn tshark(pcap: &Path, prefs: &[String], extra: &[&str]) -> String {
    let out = Command::new("tshark").arg("-n").arg("-r").arg(pcap).args(prefs).args(extra).output().expect("run tshark");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const BAD: &str = "_ws.malformed || _ws.expert.severity >= \"Error\"";

#[test]
fn capture_decodes_cleanly_with_expected_fields() {
    if !have_tshark() {
        eprintln!("SKIP capture_tshark: tshark is not installed (apt-get install tshark)");
        return;
    }
    let dir = tmpdir("fields");
    let scenario = dir.join("s.toml");
    // The file says 51 PRBs / 2 antennas; the flags override to the
    // reference 100 MHz 4-antenna cell. [timing] and [run] are accepted.
    std::fs::write(
        &scenario,
        "[cell]\nmu = 0\nprbs = 51\nantennas = 2\niq_width = 9\nseed = 7\n\n[timing]\nta3_ns = 20000\n\n[run]\nduration_s = 1.0\n",
    )
    .unwrap();
    let pcap = dir.join("out.pcap");
    let slots = 3u32;
    let st = Command::new(env!("CARGO_BIN_EXE_rrh-sim"))
        .arg("--pcap")
        .arg(&pcap)
        .args(["--slots", &slots.to_string(), "--mu", "1", "--prbs", "273", "--antennas", "4", "--iq-width", "9", "--scenario"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(st.status.success(), "rrh-sim failed: {}", String::from_utf8_lossy(&st.stderr));

    let p = prefs(9, true);
    // Negative control: the filter does flag frames decoded with the wrong width.
    let wrong = tshark(&pcap, &prefs(14, true), &["-c", "20", "-Y", BAD]);
    assert!(!wrong.trim().is_empty(), "the malformed filter flags nothing even with a wrong iq width");
    let bad = tshark(&pcap, &p, &["-Y", BAD]);
    assert!(bad.trim().is_empty(), "malformed or error-level frames:\n{bad}");

    let fields = tshark(
        &pcap,
        &p,
        &[
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "ecpri.type",
            "-e",
            "oran_fh_cus.ru_port_id",
            "-e",
            "oran_fh_cus.sequence_id",
            "-e",
            "oran_fh_cus.data_direction",
            "-e",
            "oran_fh_cus.frameId",
            "-e",
            "oran_fh_cus.subframe_id",
            "-e",
            "oran_fh_cus.slotId",
            "-e",
            "oran_fh_cus.startSymbolId",
            "-e",
            "oran_fh_cus.startPrbu",
            "-e",
            "oran_fh_cus.numPrbu",
            "-e",
            "oran_fh_cus.numPrbc",
            "-e",
            "oran_fh_cus.numSymbol",
            "-e",
            "oran_fh_cus.sectionId",
            "-e",
            "eth.type",
        ],
    );
    let got: Vec<&str> = fields.lines().collect();

    // Expected, from first principles: 273 PRBs of 1 + 3·9 = 28 bytes; the
    // 1500-byte MTU minus eCPRI (4) + PC_ID/SEQ_ID (4) + O-RAN common (4) +
    // section (4) + udCompHdr (2) headers holds 1482 / 28 = 52 PRBs.
    let per = 52u32;
    let mut want = Vec::new();
    let (mut seq_c, mut seq_u) = ([0u32; 4], [0u32; 4]);
    for slot in 0..slots {
        let (frame, sub, sl) = (slot / 20, (slot / 2) % 10, slot % 2);
        for a in 0..4 {
            // numPrbc = 0: all 273 PRBs (more than 255).
            want.push(format!("0x02,{a},{},0,{frame},{sub},{sl},0,,,0,14,1,0xaefe", seq_c[a as usize] % 256));
            seq_c[a as usize] += 1;
        }
        for sym in 0..14 {
            for a in 0..4 {
                let mut start = 0;
                while start < 273 {
                    let n = per.min(273 - start);
                    want.push(format!("0x00,{a},{},0,{frame},{sub},{sl},{sym},{start},{n},,,1,0xaefe", seq_u[a as usize] % 256));
                    seq_u[a as usize] += 1;
                    start += n;
                }
            }
        }
    }
    assert_eq!(got.len(), want.len(), "frame count");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "frame {}", i + 1);
    }

    // Timestamps: C-plane at the slot start, U-plane at the end of its symbol
    // (µ = 1: symbol 0 is 71168 Tc = 36197.9 ns long).
    let ts = tshark(&pcap, &p, &["-T", "fields", "-e", "frame.time_epoch", "-c", "5"]);
    let ts: Vec<&str> = ts.lines().collect();
    assert_eq!(ts[0], "0.000000000");
    assert_eq!(ts[4], "0.000036197");
    std::fs::remove_dir_all(&dir).unwrap();
}
