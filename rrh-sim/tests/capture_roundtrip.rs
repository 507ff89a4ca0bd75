//! A capture written in memory and read back with fronthaul's own parser:
//! time order, per-eAxC per-plane SEQ_ID (including the wrap at 256), the
//! C-plane before each slot's U-plane, and PRBs that decode to the traffic
//! model's IQ within the BFP error bound.

use std::collections::HashMap;
use std::path::Path;

use fronthaul::cell::CellConfig;
use fronthaul::ecpri::Eaxc;
use fronthaul::numerology::SymbolClock;
use fronthaul::pcap::{read_frames, PcapSink};
use fronthaul::traffic::TrafficModel;
use fronthaul::{bfp, parse_frame, Message, ParseConfig};
use rrh_sim::capture::{write_capture, SECTION_ID};

#[test]
fn capture_reads_back_with_the_model_iq() {
    let cell = CellConfig { mu: 1, prbs: 273, antennas: 2, iq_width: 9, ..CellConfig::default() };
    let slots = 6u64; // 6 slots × 14 symbols × 6 packets = 504 U-plane packets per eAxC: SEQ_ID wraps
    let mut sink = PcapSink::new(Vec::new()).unwrap();
    let st = write_capture(&cell, slots, &mut sink, Path::new("memory")).unwrap();
    let frames = read_frames(&sink.into_inner()[..]).unwrap();
    assert_eq!(st.packets_per_symbol, 6);
    assert_eq!(frames.len() as u64, st.cplane_frames + st.uplane_frames);
    assert_eq!(st.cplane_frames, slots * 2);
    assert_eq!(st.uplane_frames, slots * 14 * 2 * 6);

    let model = TrafficModel::new(&cell).unwrap();
    let clock = SymbolClock::new(cell.mu, 0).unwrap();
    let cfg = ParseConfig::from_cell(&cell);
    let mut seq: HashMap<(bool, u8), u32> = HashMap::new();
    let mut last_ts = 0u64;
    let mut slot = 0u64;
    let mut cplane_seen_for_slot = 0;
    let mut got = vec![vec![vec![0i16; 273 * 24]; 2]; 14];
    let mut out = vec![0i16; 255 * 24];
    for (ts, f) in &frames {
        assert!(*ts >= last_ts, "timestamps go backwards");
        last_ts = *ts;
        let p = parse_frame(f, &cfg).unwrap();
        assert!(p.trailer.is_empty());
        match p.message {
            Message::CPlane(c) => {
                let ant = Eaxc::from_u16(c.rtc.eaxc, cell.eaxc_split).unwrap().ru_port;
                let n = seq.entry((false, ant)).or_default();
                assert_eq!(u32::from(c.rtc.seq_id), *n % 256);
                *n += 1;
                if cplane_seen_for_slot == 2 {
                    slot += 1;
                    cplane_seen_for_slot = 0;
                }
                cplane_seen_for_slot += 1;
                let t = clock.slot_symbol(slot, 0);
                assert_eq!(*ts, t.due_ns);
                assert_eq!((c.header.frame_id, c.header.subframe_id, c.header.slot_id), (t.time.frame_id, t.time.subframe, t.time.slot));
                let s: Vec<_> = c.sections().collect();
                assert_eq!((s.len(), s[0].section_id, s[0].num_prb, s[0].num_symbol), (1, SECTION_ID, 273, 14));
            }
            Message::UPlane(u) => {
                assert_eq!(cplane_seen_for_slot, 2, "u-plane before both c-plane messages of its slot");
                let ant = Eaxc::from_u16(u.rtc.eaxc, cell.eaxc_split).unwrap().ru_port;
                let n = seq.entry((true, ant)).or_default();
                assert_eq!(u32::from(u.rtc.seq_id), *n % 256);
                *n += 1;
                let sym = u.header.symbol_id;
                // Stamped with the end of its symbol = the start of the next one.
                assert_eq!(*ts, clock.symbol(slot * 14 + u64::from(sym) + 1).due_ns);
                for (h, payload) in u.sections() {
                    assert_eq!(h.section_id, SECTION_ID);
                    let k = usize::from(h.num_prb) * 24;
                    bfp::decode_prbs(payload, h.iq_width, h.compression, &mut out[..k]).unwrap();
                    let s = usize::from(h.start_prb) * 24;
                    got[usize::from(sym)][usize::from(ant)][s..s + k].copy_from_slice(&out[..k]);
                }
                if sym == 13 && ant == 1 && u.first_section().unwrap().0.start_prb == 260 {
                    // Slot complete: compare with the model.
                    for (s, per_ant) in got.iter().enumerate() {
                        for (a, iq) in per_ant.iter().enumerate() {
                            let want = model.symbol_iq(slot, s as u8, a as u8);
                            for (p, (x, y)) in want.chunks(24).zip(iq.chunks(24)).enumerate() {
                                let e = bfp::exponent(x.try_into().unwrap(), 9);
                                for (&xv, &yv) in x.iter().zip(y) {
                                    let d = i32::from(xv) - i32::from(yv);
                                    assert!((0..(1 << e)).contains(&d), "slot {slot} sym {s} ant {a} prb {p}: {xv} -> {yv}");
                                }
                            }
                        }
                    }
                }
            }
            other => panic!("unexpected message {other:?}"),
        }
    }
    assert_eq!(slot, slots - 1);
    assert_eq!(seq[&(true, 0)], 504);
}
