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
use pktio::PacketIo;
use rrh_sim::live::{self, LiveConfig};

struct Veth(&'static str);
impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).stderr(std::process::Stdio::null()).status();
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).status().map(|s| s.success()).unwrap_or(false)
}

#[test]
fn veth_af_packet_end_to_end() {
    end_to_end("cranlab-lv0a", "cranlab-lv0b", false);
}

#[test]
fn veth_afxdp_worker_end_to_end() {
    end_to_end("cranlab-lv1a", "cranlab-lv1b", true);
}

fn end_to_end(a_if: &'static str, b_if: &'static str, xdp_worker: bool) {
    let (a, b) = (a_if, b_if);
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("skipped: creating a veth pair needs root");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: iproute2 (ip) is not installed");
        return;
    }
    let _ = Command::new("ip").args(["link", "del", a]).stderr(std::process::Stdio::null()).status();
    assert!(ip(&["link", "add", a, "type", "veth", "peer", "name", b]), "create veth {a}/{b}");
    let guard = Veth(a);
    assert!(ip(&["link", "set", a, "up"]) && ip(&["link", "set", b, "up"]));

    let cell = CellConfig::default();
    let timing = TimingConfig { lead_slots: 4_000, ..TimingConfig::default() };
    let slots = 200;
    let mut rrh = AfPacket::open(a, &AfPacketConfig::default()).unwrap();
    let mut bbu: Box<dyn PacketIo> = if xdp_worker {
        match pktio::afxdp::AfXdp::open(b, &pktio::afxdp::XdpConfig::default()) {
            Ok(x) => Box::new(x),
            Err(e) => {
                eprintln!("skipped: af_xdp on {b}: {e}");
                return;
            }
        }
    } else {
        Box::new(AfPacket::open(b, &AfPacketConfig::default()).unwrap())
    };
    let stop = AtomicBool::new(false);
    let wcfg = WorkerConfig { shared_clock: true, poll: if xdp_worker { PollMode::Busy } else { PollMode::Block }, max_ns: Some(300_000_000_000), ..WorkerConfig::new(cell.clone(), timing.clone()) };
    let (report, summary) = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut p = SlotProcessor::new(&wcfg.cell).unwrap();
            worker::run(&wcfg, bbu.as_mut(), &mut p, &stop).unwrap()
        });
        let mut cfg = LiveConfig::new(cell.clone(), timing.clone(), slots);
        cfg.dst_mac = [0xff; 6];
        let r = live::run(&cfg, &mut rrh, &stop, &|_| {}).unwrap();
        (r, w.join().unwrap())
    });
    drop(bbu);
    drop(guard);
    let left = Command::new("ip").args(["link", "show", a]).stderr(std::process::Stdio::null()).status().map(|s| s.success()).unwrap_or(true);
    assert!(!left, "veth {a} removed");

    assert_eq!(report.transport, "af_packet");
    assert_eq!(summary.transport, if xdp_worker { "afxdp" } else { "af_packet" });
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
        "veth {}: replies {}/{} turnaround p50 {} ns, one-way p50 {} ns, lost packets {:?}, incomplete slots {}",
        summary.transport,
        report.replies,
        slots,
        report.hists.turnaround.value_at_quantile(0.5),
        summary.histogram("one_way_ns").unwrap().unwrap().value_at_quantile(0.5),
        c.lost,
        c.slots_incomplete
    );
}
