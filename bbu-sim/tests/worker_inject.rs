//! The worker counts bad traffic instead of failing: malformed, foreign,
//! duplicate, out-of-order and stale frames injected over the in-memory
//! transport, around two clean slots.

use std::sync::atomic::AtomicBool;

use bbu_sim::pipeline::SlotProcessor;
use bbu_sim::worker::{self, PollMode, WorkerConfig};
use fronthaul::cell::{CellConfig, Direction};
use fronthaul::ecpri::{Eaxc, EthHeader, RtcHeader};
use fronthaul::oran::AppHeader;
use fronthaul::packetize::{PlanConfig, SymbolPlan, UPlaneFields};
use fronthaul::reply::{config_hash, trailer, EndOfRun, Message, StartOfRun};
use fronthaul::numerology::SymbolClock;
use fronthaul::timing::TimingConfig;
use fronthaul::traffic::TrafficModel;
use pktio::PacketIo;

const DST: [u8; 6] = [2, 0, 0, 0, 0, 2];
const SRC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// The U-plane frames of one slot, per symbol and antenna, SEQ_IDs from `seq`.
fn slot_frames(cell: &CellConfig, model: &TrafficModel, slot: u64, seq: &mut [u8]) -> Vec<Vec<u8>> {
    let plan = SymbolPlan::new(PlanConfig { trailer_len: trailer::LEN, ..PlanConfig::from_cell(cell) }).unwrap();
    let id = SymbolClock::new(cell.mu, 0).unwrap().slot_id(slot);
    let eth = EthHeader { dst: DST, src: SRC, vlan_tci: None };
    let mut out = Vec::new();
    for s in 0..14u8 {
        for a in 0..cell.antennas {
            let eaxc = Eaxc { ru_port: a, ..Eaxc::default() }.to_u16(cell.eaxc_split).unwrap();
            for k in 0..plan.len() {
                let mut buf = vec![0u8; plan.max_frame_len()];
                let f = UPlaneFields {
                    eth,
                    rtc: RtcHeader::new(eaxc, seq[usize::from(a)]),
                    app: AppHeader::new(Direction::Uplink, id.frame, id.subframe, id.slot, s),
                    mu: cell.mu,
                    section_id: 1,
                };
                seq[usize::from(a)] = seq[usize::from(a)].wrapping_add(1);
                let mut tr = [0u8; trailer::LEN];
                trailer::write(&mut tr, worker::now_ns()).unwrap();
                let n = plan.write_packet(k, &f, model.symbol_iq(slot, s, a), &tr, &mut buf).unwrap();
                buf.truncate(n);
                out.push(buf);
            }
        }
    }
    out
}

fn send(io: &mut dyn PacketIo, f: &[u8]) {
    assert_eq!(io.send_batch(1, &mut |_, b| {
        b[..f.len()].copy_from_slice(f);
        f.len()
    })
    .unwrap(), 1);
}

fn control(m: Message) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    let n = m.encode(DST, SRC, &mut b).unwrap();
    b.truncate(n);
    b
}

#[test]
fn bad_frames_are_counted_not_fatal() {
    let cell = CellConfig::default();
    let timing = TimingConfig::default();
    let model = TrafficModel::new(&cell).unwrap();
    let (mut a, mut b) = pktio::mem::pair(4096, 2048);
    let stop = AtomicBool::new(false);
    let cfg = WorkerConfig { shared_clock: true, poll: PollMode::Block, max_ns: Some(60_000_000_000), ..WorkerConfig::new(cell.clone(), timing.clone()) };

    let mut seq = vec![0u8; usize::from(cell.antennas)];
    let slot0 = slot_frames(&cell, &model, 0, &mut seq);
    let slot1 = slot_frames(&cell, &model, 1, &mut seq);
    let per_symbol = usize::from(cell.antennas); // one packet per antenna at 51 PRBs
    assert_eq!(slot0.len(), 14 * per_symbol);

    let start = StartOfRun { run_id: 9, epoch_ns: worker::now_ns(), config_hash: config_hash(&cell.to_spec(), &timing.to_spec()) };
    send(&mut a, &control(Message::Start(start)));
    // Slot 0 with: symbol 1 of antenna 0 sent before symbol 0 (one SEQ_ID gap,
    // then one packet behind), a duplicate, a truncated frame, a frame for an
    // antenna the cell does not have, a non-eCPRI frame.
    let mut order: Vec<usize> = (0..slot0.len()).collect();
    order.swap(0, per_symbol); // antenna 0: symbol 1 first, then symbol 0
    let mut sent = 0u64;
    for (i, &k) in order.iter().enumerate() {
        send(&mut a, &slot0[k]);
        sent += 1;
        if i == 6 {
            send(&mut a, &slot0[k]); // duplicate
            let half = &slot0[k][..slot0[k].len() / 2];
            send(&mut a, half); // malformed: truncated section
            let mut bad = slot0[k].clone();
            bad[19] = 9; // PC_ID low byte: RU port 9 of a 2-antenna cell
            send(&mut a, &bad);
            let mut ipv4 = slot0[k].clone();
            ipv4[12] = 0x08;
            ipv4[13] = 0x00;
            send(&mut a, &ipv4); // foreign
        }
    }
    for f in &slot1 {
        send(&mut a, f);
        sent += 1;
    }
    send(&mut a, &slot0[3]); // stale: slot 0 is done
    send(&mut a, &control(Message::End(EndOfRun { run_id: 9, slots_sent: 2, uplane_sent: sent + 1, cplane_sent: 0 })));

    let mut p = SlotProcessor::new(&cell).unwrap();
    let s = worker::run(&cfg, &mut b, &mut p, &stop).unwrap();
    let c = &s.counters;
    assert_eq!(s.end_reason, "end_message");
    assert_eq!(s.run_id, 9);
    assert!(!s.config_mismatch);
    assert_eq!(c.slots_processed, 2);
    assert_eq!(c.slots_incomplete, 0);
    assert_eq!(c.bit_errors, 0);
    assert!(c.bits_checked > 0);
    assert_eq!(c.duplicate, 1);
    assert_eq!(c.malformed, 2);
    assert_eq!(c.foreign, 1);
    assert_eq!(c.out_of_order, 1);
    // The first packet of an eAxC sets its expected SEQ_ID: no gap, then one behind.
    assert_eq!(c.seq_gaps, 0);
    // Everything was queued before the worker started: all past the Ta4 window.
    assert_eq!(c.late, c.uplane_rx);
    assert_eq!(c.stale, 1);
    assert_eq!(c.lost, Some(0));
    assert_eq!(c.replies_sent, 2);
    assert_eq!(c.start_messages, 1);
    assert_eq!(c.end_messages, 1);
    // Both replies are on the wire back to the sender.
    let mut replies = Vec::new();
    a.recv_batch(16, pktio::Wait::Poll, &mut |f| replies.push(Message::decode(f).unwrap())).unwrap();
    assert_eq!(replies.len(), 2);
    for (i, r) in replies.iter().enumerate() {
        let Message::SlotDone(r) = r else { panic!("{r:?}") };
        assert_eq!((r.slot_index, r.seq, r.run_id), (i as u64, i as u32, 9));
        assert_eq!(r.bit_errors, 0);
    }
}

#[test]
fn config_mismatch_and_missing_epoch_are_reported() {
    let cell = CellConfig::default();
    let timing = TimingConfig::default();
    let model = TrafficModel::new(&cell).unwrap();
    let (mut a, mut b) = pktio::mem::pair(4096, 2048);
    let stop = AtomicBool::new(false);
    // Not a shared clock: the epoch is estimated over the warm-up slots.
    let cfg = WorkerConfig { warmup_slots: 1, poll: PollMode::Busy, max_ns: Some(60_000_000_000), ..WorkerConfig::new(cell.clone(), timing.clone()) };
    send(&mut a, &control(Message::Start(StartOfRun { run_id: 3, epoch_ns: 1, config_hash: 42 })));
    let mut seq = vec![0u8; usize::from(cell.antennas)];
    let mut sent = 0;
    for n in 0..3 {
        for f in slot_frames(&cell, &model, n, &mut seq) {
            send(&mut a, &f);
            sent += 1;
        }
    }
    send(&mut a, &control(Message::End(EndOfRun { run_id: 3, slots_sent: 3, uplane_sent: sent + 5, cplane_sent: 0 })));
    let mut p = SlotProcessor::new(&cell).unwrap();
    let s = worker::run(&cfg, &mut b, &mut p, &stop).unwrap();
    assert!(s.config_mismatch);
    assert_eq!(s.epoch_source, "estimated");
    assert!(!s.histograms.contains_key("one_way_ns"), "no one-way figure without a shared clock");
    let c = &s.counters;
    assert_eq!(c.slots_processed, 3);
    assert_eq!(c.lost, Some(5));
    assert_eq!(c.unclassified, 28, "slot 0 is the warm-up");
    assert_eq!(c.early + c.on_time + c.late, 2 * 28);
}

#[test]
fn stop_flag_ends_the_worker_with_a_summary() {
    let cell = CellConfig::default();
    let (_a, mut b) = pktio::mem::pair(16, 2048);
    let stop = AtomicBool::new(true);
    let cfg = WorkerConfig::new(cell.clone(), TimingConfig::default());
    let mut p = SlotProcessor::new(&cell).unwrap();
    let s = worker::run(&cfg, &mut b, &mut p, &stop).unwrap();
    assert_eq!(s.end_reason, "signal");
    assert_eq!(s.counters.lost, None);
    assert_eq!(s.epoch_source, "none");
}

#[test]
fn a_long_loss_is_a_gap_not_reordering() {
    let cell = CellConfig::default();
    let timing = TimingConfig::default();
    let model = TrafficModel::new(&cell).unwrap();
    let (mut a, mut b) = pktio::mem::pair(4096, 2048);
    let stop = AtomicBool::new(false);
    let cfg = WorkerConfig { shared_clock: true, poll: PollMode::Busy, max_ns: Some(60_000_000_000), ..WorkerConfig::new(cell.clone(), timing.clone()) };
    send(&mut a, &control(Message::Start(StartOfRun { run_id: 4, epoch_ns: worker::now_ns(), config_hash: 0 })));
    let mut seq = vec![0u8; usize::from(cell.antennas)];
    for f in slot_frames(&cell, &model, 0, &mut seq) {
        send(&mut a, &f);
    }
    // Slots 1..=10 are lost on the wire: 140 SEQ_IDs per eAxC (more than 128).
    for n in 1..=10 {
        let _ = slot_frames(&cell, &model, n, &mut seq);
    }
    for f in slot_frames(&cell, &model, 11, &mut seq) {
        send(&mut a, &f);
    }
    send(&mut a, &control(Message::End(EndOfRun { run_id: 4, slots_sent: 12, uplane_sent: 12 * 28, cplane_sent: 0 })));
    let mut p = SlotProcessor::new(&cell).unwrap();
    let s = worker::run(&cfg, &mut b, &mut p, &stop).unwrap();
    let c = &s.counters;
    assert_eq!(c.slots_processed, 2);
    assert_eq!(c.out_of_order, 0);
    assert_eq!(c.seq_gaps, 2 * 140);
    assert_eq!(c.lost, Some(10 * 28));
    assert_eq!(c.bit_errors, 0);
}

/// One C-plane frame for `eaxc` at slot 0, symbol 0.
fn cplane_frame(cell: &CellConfig, eaxc: Eaxc) -> Vec<u8> {
    use fronthaul::oran::{CPlaneHeader, CSection, UdCompHdr};
    let eth = EthHeader { dst: DST, src: SRC, vlan_tci: None };
    let ud = UdCompHdr { iq_width: cell.iq_width, compression: cell.compression }.to_byte().unwrap();
    let ch = CPlaneHeader { num_sections: 1, section_type: 1, ud_comp_hdr: ud, type3: None };
    let app = AppHeader::new(Direction::Uplink, 0, 0, 0, 0);
    let mut buf = vec![0u8; 256];
    let rtc = RtcHeader::new(eaxc.to_u16(cell.eaxc_split).unwrap(), 0);
    let mut b = fronthaul::FrameBuilder::cplane(&mut buf, &eth, &rtc, &app, cell.mu, &ch).unwrap();
    let s = CSection { section_id: 1, rb: false, sym_inc: false, start_prb: 0, num_prb: cell.prbs, re_mask: 0xfff, num_symbol: 14, beam_id: 0, frequency_offset: 0 };
    b.push_csection(&s).unwrap();
    let n = b.finish(&[0u8; trailer::LEN]).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn cplane_eaxc_is_checked_like_uplane() {
    let cell = CellConfig::default();
    let timing = TimingConfig::default();
    let (mut a, mut b) = pktio::mem::pair(64, 2048);
    let stop = AtomicBool::new(false);
    let cfg = WorkerConfig { shared_clock: true, poll: PollMode::Block, max_ns: Some(60_000_000_000), ..WorkerConfig::new(cell.clone(), timing.clone()) };
    let start = StartOfRun { run_id: 5, epoch_ns: worker::now_ns(), config_hash: config_hash(&cell.to_spec(), &timing.to_spec()) };
    send(&mut a, &control(Message::Start(start)));
    send(&mut a, &cplane_frame(&cell, Eaxc::default()));
    // Same RU port, but a DU port / component carrier the rrh-sim never uses.
    send(&mut a, &cplane_frame(&cell, Eaxc { du_port: 1, ..Eaxc::default() }));
    send(&mut a, &cplane_frame(&cell, Eaxc { cc: 1, ..Eaxc::default() }));
    send(&mut a, &control(Message::End(EndOfRun { run_id: 5, slots_sent: 0, uplane_sent: 0, cplane_sent: 3 })));
    let mut p = SlotProcessor::new(&cell).unwrap();
    let s = worker::run(&cfg, &mut b, &mut p, &stop).unwrap();
    assert_eq!(s.end_reason, "end_message");
    assert_eq!(s.counters.cplane_rx, 1, "{:?}", s.counters);
    assert_eq!(s.counters.malformed, 2, "{:?}", s.counters);
}
