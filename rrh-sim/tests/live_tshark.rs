//! The live mode's frames (with their transmit-time trailer, C-plane and
//! control messages) decode cleanly in Wireshark's `ecpri`/`oran_fh_cus`
//! dissectors. The generator runs over the in-memory transport; a thread on
//! the other end answers every slot and writes everything it received to a
//! pcap. Skips with a printed reason when tshark is not installed.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use fronthaul::cell::CellConfig;
use fronthaul::pcap::PcapSink;
use fronthaul::reply::{Message, SlotDone};
use fronthaul::timing::TimingConfig;
use fronthaul::{parse_frame, ParseConfig};
use pktio::{PacketIo, Wait};
use rrh_sim::live::{self, LiveConfig};

#[test]
fn live_frames_decode_cleanly_in_tshark() {
    if !Command::new("tshark").arg("--version").output().map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIP live_tshark: tshark is not installed (apt-get install tshark)");
        return;
    }
    let cell = CellConfig::default();
    let timing = TimingConfig { lead_slots: 240_000, ..TimingConfig::default() };
    let slots = 4;
    let (mut a, mut b) = pktio::mem::pair(4096, 2048);
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let pcfg = ParseConfig::from_cell(&cell);
    let frames = std::thread::scope(|s| {
        let peer = s.spawn(|| {
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut answered = 0u64;
            while !done.load(Ordering::Relaxed) {
                let mut last_slot_done = Vec::new();
                let _ = b.recv_batch(64, Wait::Block(std::time::Duration::from_millis(1)), &mut |f| {
                    got.push(f.to_vec());
                    if let Ok(fr) = parse_frame(f, &pcfg) {
                        if let fronthaul::Message::UPlane(u) = fr.message {
                            if u.header.symbol_id == 13 && u.rtc.eaxc == 1 {
                                last_slot_done.push(answered);
                                answered += 1;
                            }
                        }
                    }
                });
                for n in last_slot_done {
                    let m = Message::SlotDone(SlotDone { run_id: 1, seq: n as u32, slot_index: n, ..SlotDone::default() });
                    let _ = b.send_batch(1, &mut |_, buf| m.encode([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], buf).unwrap());
                    let mut v = vec![0u8; m.frame_len()];
                    m.encode([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], &mut v).unwrap();
                    got.push(v);
                }
            }
            got
        });
        let r = live::run(&LiveConfig::new(cell.clone(), timing, slots), &mut a, &stop, &|_| {}).unwrap();
        assert_eq!(r.replies, slots);
        // Let the end-of-run messages reach the peer.
        std::thread::sleep(std::time::Duration::from_millis(20));
        done.store(true, Ordering::Relaxed);
        peer.join().unwrap()
    });
    assert_eq!(frames.len() as u64, 3 + slots * (2 + 28) + slots + 5);
    let dir = std::env::temp_dir().join(format!("cranlab-live-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("live.pcap");
    let mut sink = PcapSink::new(std::fs::File::create(&pcap).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        sink.write_frame(i as u64 * 1000, f).unwrap();
    }
    drop(sink);
    let mut args: Vec<String> = vec!["-n".into(), "-r".into(), pcap.display().to_string()];
    for d in ["up", "down"] {
        args.extend(["-o".into(), format!("oran_fh_cus.oran.iq_bitwidth_{d}:9")]);
        args.extend(["-o".into(), format!("oran_fh_cus.oran.ud_comp_{d}:COMP_BLOCK_FP")]);
        args.extend(["-o".into(), format!("oran_fh_cus.oran.ud_comp_hdr_{d}:TRUE")]);
    }
    let run = |extra: &[&str]| {
        let out = Command::new("tshark").args(&args).args(extra).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let bad = run(&["-Y", "_ws.malformed || _ws.expert.severity >= \"Error\""]);
    assert!(bad.trim().is_empty(), "tshark flags frames:\n{bad}");
    let all = run(&["-Y", "ecpri"]);
    assert_eq!(all.lines().count(), frames.len(), "every frame is eCPRI");
    let uplane = run(&["-Y", "oran_fh_cus && ecpri.type == 0"]);
    assert_eq!(uplane.lines().count() as u64, slots * 28);
    let _ = std::fs::remove_dir_all(&dir);
}
