//! End to end over a real veth pair with AF_PACKET (root only; skipped with
//! a printed reason otherwise): the rrh-sim live loop on one end, the
//! bbu-sim worker on the other, in one process. The pair carries the
//! `cranlab-` prefix and is removed on success and on failure.

use std::process::Command;
use std::sync::atomic::AtomicBool;

use bbu_sim::pipeline::SlotProcessor;
use bbu_sim::worker::{self, PollMode, WorkerConfig};
use fronthaul::cell::CellConfig;
use fronthaul::timing::TimingConfig;
use pktio::afpacket::{AfPacket, AfPacketConfig};
use rrh_sim::live::{self, LiveConfig};

const A: &str = "cranlab-lv0a";
const B: &str = "cranlab-lv0b";

struct Veth;
impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", A]).status();
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).status().map(|s| s.success()).unwrap_or(false)
}

#[test]
fn veth_af_packet_end_to_end() {
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("skipped: creating a veth pair needs root");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: iproute2 (ip) is not installed");
        return;
    }
    let _ = Command::new("ip").args(["link", "del", A]).status();
    assert!(ip(&["link", "add", A, "type", "veth", "peer", "name", B]), "create veth {A}/{B}");
    let guard = Veth;
    assert!(ip(&["link", "set", A, "up"]) && ip(&["link", "set", B, "up"]));

    let cell = CellConfig::default();
    let timing = TimingConfig { lead_slots: 4_000, ..TimingConfig::default() };
    let slots = 200;
    let mut rrh = AfPacket::open(A, &AfPacketConfig::default()).unwrap();
    let mut bbu = AfPacket::open(B, &AfPacketConfig::default()).unwrap();
    let stop = AtomicBool::new(false);
    let wcfg = WorkerConfig { shared_clock: true, poll: PollMode::Block, max_ns: Some(300_000_000_000), ..WorkerConfig::new(cell.clone(), timing.clone()) };
    let (report, summary) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut p = SlotProcessor::new(&wcfg.cell).unwrap();
            worker::run(&wcfg, &mut bbu, &mut p, &stop).unwrap()
        });
        let mut cfg = LiveConfig::new(cell.clone(), timing.clone(), slots);
        cfg.dst_mac = [0xff; 6];
        let r = live::run(&cfg, &mut rrh, &stop, &|_| {}).unwrap();
        (r, w.join().unwrap())
    });
    drop(guard);
    assert!(!ip(&["link", "show", A]), "veth removed");

    assert_eq!(report.transport, "af_packet");
    assert_eq!(report.slots_sent, slots);
    assert_eq!(report.tx_refused, 0);
    let c = &summary.counters;
    assert_eq!(summary.end_reason, "end_message");
    assert_eq!(c.malformed, 0);
    // A debug-build worker cannot keep up with the symbol clock: the socket
    // buffer overflows and the kernel drops. Whatever it did is accounted
    // for, and complete slots decode without error.
    if c.slots_incomplete == 0 {
        assert_eq!(c.bit_errors, 0);
    }
    assert!(report.bit_errors <= c.bit_errors, "replies carry a subset of the worker's counts");
    assert_eq!(c.lost, Some(report.uplane_sent - (c.uplane_rx - c.duplicate)));
    assert_eq!(report.replies + report.lost_replies, slots);
    assert_eq!(report.hists.turnaround.len(), report.replies);
    assert!(summary.histograms.contains_key("one_way_ns"));
    assert_eq!(c.early + c.on_time + c.late + c.unclassified, c.uplane_rx);
    eprintln!(
        "veth af_packet: replies {}/{} turnaround p50 {} ns, one-way p50 {} ns, lost packets {:?}, incomplete slots {}",
        report.replies,
        slots,
        report.hists.turnaround.value_at_quantile(0.5),
        summary.histogram("one_way_ns").unwrap().unwrap().value_at_quantile(0.5),
        c.lost,
        c.slots_incomplete
    );
}
