//! Transports over a real veth pair in namespaces of our own (root only;
//! skipped with a printed reason elsewhere).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check, frame, run, skip, Veth};
use pktio::afpacket::{AfPacket, AfPacketConfig};
use pktio::afxdp::{AfXdp, XdpConfig, XskHandoff, HANDOFF_ENV};
use pktio::uring::AfPacketUring;
use pktio::{in_netns, PacketIo, PktError, Wait};

const CHILD_ENV: &str = "CRANLAB_PKTIO_CHILD";

fn open(kind: &str, ns: &str, ifname: &str) -> Result<Box<dyn PacketIo>, PktError> {
    let ifname = ifname.to_string();
    let kind = kind.to_string();
    in_netns(ns, move || -> Result<Box<dyn PacketIo>, PktError> {
        Ok(match kind.as_str() {
            "af_packet" => Box::new(AfPacket::open(&ifname, &AfPacketConfig::default())?),
            "af_packet_uring" => Box::new(AfPacketUring::open(&ifname, &AfPacketConfig::default())?),
            "afxdp" => Box::new(AfXdp::open(&ifname, &XdpConfig::default())?),
            _ => unreachable!(),
        })
    })
}

/// Sends frames of every length in `lens` from `tx` to `rx` in windows the
/// receiver acknowledges (so nothing can overflow) and checks that each
/// arrives intact and in order.
fn every_size(mut tx: Box<dyn PacketIo>, mut rx: Box<dyn PacketIo>, lens: std::ops::RangeInclusive<usize>) {
    let lens: Vec<usize> = lens.collect();
    let total = lens.len();
    let acked = Arc::new(AtomicUsize::new(0));
    let ack2 = acked.clone();
    let lens2 = lens.clone();
    let sender = std::thread::spawn(move || {
        let mut next = 0usize;
        let start = Instant::now();
        while next < total {
            let win = 32.min(total - next);
            let n = tx
                .send_batch(win, &mut |i, buf| {
                    let seq = next + i;
                    frame(buf, seq as u32, lens2[seq])
                })
                .unwrap();
            assert_eq!(n, win, "all frames of a window are queued");
            next += n;
            while ack2.load(Ordering::Acquire) < next {
                assert!(start.elapsed() < Duration::from_secs(60), "receiver stalled at {}", ack2.load(Ordering::Acquire));
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        tx
    });
    let mut expect = 0usize;
    let start = Instant::now();
    while expect < total {
        assert!(start.elapsed() < Duration::from_secs(60), "stalled waiting for frame {expect} (len {})", lens[expect]);
        rx.recv_batch(64, Wait::Block(Duration::from_millis(100)), &mut |f| {
            let seq = check(f, lens[expect]).unwrap_or_else(|e| panic!("frame {expect}: {e}"));
            assert_eq!(seq as usize, expect, "out of order");
            expect += 1;
        })
        .unwrap();
        acked.store(expect, Ordering::Release);
    }
    let tx = sender.join().unwrap();
    assert_eq!(tx.stats().tx_frames as usize, total);
    assert_eq!(rx.stats().rx_frames as usize, total);
    eprintln!("{} -> {}: {} frames; rx detail {}", tx.name(), rx.name(), total, rx.detail());
}

#[test]
fn af_packet_every_size_up_to_mtu() {
    if skip("af_packet_every_size_up_to_mtu") {
        return;
    }
    let v = Veth::new("p", 1500);
    let tx = open("af_packet", &v.ns_a, &v.if_a).unwrap();
    let rx = open("af_packet", &v.ns_b, &v.if_b).unwrap();
    every_size(tx, rx, 18..=1514);
}

#[test]
fn af_packet_uring_every_size_up_to_mtu() {
    if skip("af_packet_uring_every_size_up_to_mtu") {
        return;
    }
    let v = Veth::new("u", 1500);
    let tx = open("af_packet_uring", &v.ns_a, &v.if_a).unwrap();
    let rx = match open("af_packet_uring", &v.ns_b, &v.if_b) {
        Err(PktError::Unsupported(m)) => {
            eprintln!("SKIP af_packet_uring: {m}");
            return;
        }
        r => r.unwrap(),
    };
    every_size(tx, rx, 18..=1514);
}

#[test]
fn afxdp_every_size_up_to_mtu_both_ends() {
    if skip("afxdp_every_size_up_to_mtu_both_ends") {
        return;
    }
    let v = Veth::new("x", 1500);
    let tx = open("afxdp", &v.ns_a, &v.if_a).unwrap();
    let rx = open("afxdp", &v.ns_b, &v.if_b).unwrap();
    let d = rx.detail();
    assert!(d["mode"].as_str().unwrap().ends_with("copy"), "{d}");
    every_size(tx, rx, 18..=1514);
}

#[test]
fn afxdp_generic_mode_and_socket_busy_poll_work_too() {
    if skip("afxdp_generic_mode_and_socket_busy_poll_work_too") {
        return;
    }
    let v = Veth::new("s", 1500);
    let cfg = XdpConfig {
        attach: pktio::afxdp::AttachMode::Generic,
        copy: pktio::afxdp::CopyMode::Copy,
        busy_poll_us: 20,
        ..XdpConfig::default()
    };
    let open_generic = |ns: &str, ifn: &str| {
        let (c, i) = (cfg.clone(), ifn.to_string());
        in_netns(ns, move || AfXdp::open(&i, &c).map(|x| Box::new(x) as Box<dyn PacketIo>)).unwrap()
    };
    let tx = open_generic(&v.ns_a, &v.if_a);
    let rx = open_generic(&v.ns_b, &v.if_b);
    assert_eq!(rx.detail()["mode"], "generic-copy", "{}", rx.detail());
    assert_eq!(rx.detail()["busy_poll"], true, "{}", rx.detail());
    assert!(v.link_b().contains("xdpgeneric"), "{}", v.link_b());
    every_size(tx, rx, 1400..=1514);
}

#[test]
fn afxdp_jumbo_frames_or_clear_error() {
    if skip("afxdp_jumbo_frames_or_clear_error") {
        return;
    }
    let v = Veth::new("j", 9000);
    let tx = open("afxdp", &v.ns_a, &v.if_a);
    let rx = open("afxdp", &v.ns_b, &v.if_b);
    match (tx, rx) {
        (Ok(tx), Ok(rx)) => {
            assert!(rx.detail()["multi_buffer"].as_bool().unwrap(), "{}", rx.detail());
            assert_eq!(rx.max_frame(), 9018);
            // Sizes around the chunk boundaries and up to the MTU.
            every_size(tx, rx, 3800..=4200);
            let tx = open("afxdp", &v.ns_a, &v.if_a).unwrap();
            let rx = open("afxdp", &v.ns_b, &v.if_b).unwrap();
            every_size(tx, rx, 8990..=9014);
        }
        (tx, rx) => {
            let e = tx.err().or(rx.err()).unwrap().to_string();
            eprintln!("jumbo AF_XDP refused: {e}");
            assert!(e.contains("multi-buffer") || e.contains("MTU"), "error must say why: {e}");
        }
    }
}

fn pin_to(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; CPU_SET and sched_setaffinity act on
    // the calling thread with a valid set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[test]
fn afxdp_binds_every_active_queue() {
    if skip("afxdp_binds_every_active_queue") {
        return;
    }
    if std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) < 2 {
        eprintln!("SKIP afxdp_binds_every_active_queue: needs 2 CPUs to drive 2 queues");
        return;
    }
    let v = Veth::with_queues("m", 1500, 2);
    let mut rx = open("afxdp", &v.ns_b, &v.if_b).unwrap();
    assert_eq!(rx.detail()["queues"], serde_json::json!([0, 1]), "{}", rx.detail());
    // AF_PACKET picks the tx queue from the sending CPU; veth hands the
    // frame to the peer's rx queue of the same index.
    let n_per_cpu = 200u32;
    for cpu in 0..2usize {
        let (ns, ifn) = (v.ns_a.clone(), v.if_a.clone());
        in_netns(&ns, move || {
            assert!(pin_to(cpu), "pin to cpu {cpu}");
            let mut tx = AfPacket::open(&ifn, &AfPacketConfig::default())?;
            for k in 0..n_per_cpu {
                tx.send_batch(1, &mut |_, b| frame(b, cpu as u32 * 1000 + k, 100))?;
            }
            Ok(())
        })
        .unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let start = Instant::now();
    while seen.len() < 2 * n_per_cpu as usize && start.elapsed() < Duration::from_secs(10) {
        rx.recv_batch(64, Wait::Block(Duration::from_millis(100)), &mut |f| {
            seen.insert(check(f, 100).unwrap());
        })
        .unwrap();
    }
    let (_, stats) = run("ip", &["netns", "exec", &v.ns_b, "ethtool", "-S", &v.if_b]);
    let per_queue: Vec<&str> = stats.lines().filter(|l| l.contains("rx_queue_") && l.contains("xdp_packets")).collect();
    eprintln!("per-queue XDP counters: {per_queue:?}");
    if per_queue.len() == 2 {
        for l in &per_queue {
            let n: u64 = l.rsplit(':').next().unwrap().trim().parse().unwrap();
            assert!(n > 0, "both queues carried traffic: {per_queue:?}");
        }
    }
    assert_eq!(seen.len(), 2 * n_per_cpu as usize, "frames from both CPUs (both queues) arrive");
    drop(rx);
    // One program per interface: a second AfXdp on the other queue is refused
    // at the attach step with a clear message.
    let only = |q: u32| {
        let ifn = v.if_b.clone();
        in_netns(&v.ns_b, move || AfXdp::open(&ifn, &XdpConfig { queues: Some(vec![q]), ..XdpConfig::default() }))
    };
    let q0 = only(0).unwrap();
    assert_eq!(q0.queue_ids(), vec![0]);
    let e = only(1).expect_err("second program on the interface").to_string();
    eprintln!("second program: {e}");
    assert!(e.contains("attach XDP program") && e.contains("another XDP program is attached"), "{e}");
}

#[test]
fn afxdp_passes_other_traffic_to_the_kernel() {
    if skip("afxdp_passes_other_traffic_to_the_kernel") {
        return;
    }
    let v = Veth::new("g", 1500);
    let mut rx = open("afxdp", &v.ns_b, &v.if_b).unwrap();
    assert!(xdp_attached(&v), "program attached: {}", v.link_b());
    // UDP (and the ARP that resolves it) from A to B goes to B's kernel stack.
    let ip_b = v.ip_b.clone();
    let server = in_netns(&v.ns_b, move || {
        std::net::UdpSocket::bind((ip_b.as_str(), 7777)).map_err(|e| PktError::Os { op: "bind udp".into(), err: e })
    })
    .unwrap();
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let dst = format!("{}:7777", v.ip_b);
    in_netns(&v.ns_a, move || {
        let c = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..3 {
            c.send_to(b"not ecpri", &dst).unwrap();
        }
        Ok(())
    })
    .unwrap();
    let mut b = [0u8; 64];
    let (n, _) = server.recv_from(&mut b).expect("UDP datagram reached B's kernel with XDP attached");
    assert_eq!(&b[..n], b"not ecpri");
    for ping in [&["ping"][..], &["busybox", "ping"][..]] {
        let mut args: Vec<&str> = vec!["netns", "exec", &v.ns_a];
        args.extend_from_slice(ping);
        args.extend_from_slice(&["-c", "2", "-W", "2", &v.ip_b]);
        let (ok, out) = run("ip", &args);
        if out.contains("No such file") || out.contains("applet not found") {
            continue;
        }
        assert!(ok, "ping across the pair with XDP attached: {out}");
        eprintln!("ping with XDP attached: ok");
        break;
    }
    // eCPRI still goes to the socket.
    let mut tx = open("af_packet", &v.ns_a, &v.if_a).unwrap();
    tx.send_batch(1, &mut |_, b| frame(b, 9, 100)).unwrap();
    let mut got = 0;
    let start = Instant::now();
    while got == 0 && start.elapsed() < Duration::from_secs(5) {
        got += rx
            .recv_batch(8, Wait::Block(Duration::from_millis(100)), &mut |f| {
                assert_eq!(check(f, 100), Ok(9));
            })
            .unwrap();
    }
    assert_eq!(got, 1);
}

#[test]
fn afxdp_second_socket_on_same_queue_gets_clear_error() {
    if skip("afxdp_second_socket_on_same_queue_gets_clear_error") {
        return;
    }
    let v = Veth::new("d", 1500);
    let _first = open("afxdp", &v.ns_b, &v.if_b).unwrap();
    let ifname = v.if_b.clone();
    let second = in_netns(&v.ns_b, move || {
        AfXdp::open(&ifname, &XdpConfig { bind_timeout: Duration::from_millis(200), ..XdpConfig::default() })
    });
    let e = second.expect_err("second bind of queue 0 must fail").to_string();
    eprintln!("second socket: {e}");
    assert!(e.contains("queue 0") && e.contains("already in use"), "{e}");
}

fn xdp_attached(v: &Veth) -> bool {
    let l = v.link_b();
    l.contains(" xdp") || l.contains("prog/xdp")
}

fn wait_detached(v: &Veth) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if !xdp_attached(v) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn spawn_child(mode: &str, extra_env: &[(&str, String)], wrapper: &[&str]) -> std::process::Child {
    spawn_child_dup(mode, extra_env, wrapper, &[])
}

/// Like [`spawn_child`], with `dups` (from, to) applied with dup2 in the
/// child before exec (as a runtime does for `--preserve-fds`).
fn spawn_child_dup(mode: &str, extra_env: &[(&str, String)], wrapper: &[&str], dups: &[(i32, i32)]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap();
    let (prog, mut args): (String, Vec<String>) = if wrapper.is_empty() {
        (exe.display().to_string(), vec![])
    } else {
        let mut a: Vec<String> = wrapper[1..].iter().map(|s| s.to_string()).collect();
        a.push(exe.display().to_string());
        (wrapper[0].to_string(), a)
    };
    args.extend(["--exact", "child_entry", "--nocapture", "--test-threads=1"].map(String::from));
    let mut c = Command::new(prog);
    c.args(args).env(CHILD_ENV, mode).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    for (k, val) in extra_env {
        c.env(k, val);
    }
    let dups = dups.to_vec();
    if !dups.is_empty() {
        // SAFETY: the closure only calls dup2, which is async-signal-safe, on
        // descriptors this process owns.
        unsafe {
            c.pre_exec(move || {
                for &(from, to) in &dups {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    c.spawn().unwrap()
}

fn wait_line(child: &mut std::process::Child, prefix: &str) -> String {
    let out = child.stdout.as_mut().unwrap();
    let mut r = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            panic!("child ended before printing {prefix}");
        }
        // libtest prints "test child_entry ... " without a newline first.
        if let Some(at) = line.find(prefix) {
            return line[at..].trim().to_string();
        }
    }
}

#[test]
fn afxdp_program_gone_after_exit_and_after_sigkill() {
    if skip("afxdp_program_gone_after_exit_and_after_sigkill") {
        return;
    }
    let v = Veth::new("k", 1500);
    for how in ["exit", "hold"] {
        let mut child = spawn_child(&format!("{how}:{}:{}", v.ns_b, v.if_b), &[], &[]);
        let l = wait_line(&mut child, "READY");
        assert!(xdp_attached(&v), "child {how} attached the program: {l} / {}", v.link_b());
        if how == "hold" {
            // SAFETY: kill on the pid of our own child.
            assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
        } else {
            // Closing its stdin lets the child return normally.
            drop(child.stdin.take());
        }
        let st = child.wait().unwrap();
        if how == "hold" {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(st.signal(), Some(libc::SIGKILL));
        } else {
            assert!(st.success());
        }
        assert!(wait_detached(&v), "XDP program still attached after child {how}: {}", v.link_b());
    }
}

#[test]
fn afxdp_handoff_to_child_without_capabilities() {
    if skip("afxdp_handoff_to_child_without_capabilities") {
        return;
    }
    if !run("setpriv", &["--version"]).0 {
        eprintln!("SKIP afxdp_handoff_to_child_without_capabilities: setpriv (util-linux) not found");
        return;
    }
    let v = Veth::new("h", 1500);
    let no_caps = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs"];
    let as_nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    for (who, extra, renumber) in [
        ("uid 0 without capabilities", &[][..], false),
        ("uid 65534 without capabilities", &as_nobody[..], false),
        ("uid 65534 without capabilities, fds renumbered to 100/101", &as_nobody[..], true),
    ] {
        let ifname = v.if_b.clone();
        let h = in_netns(&v.ns_b, move || XskHandoff::prepare(&ifname, &XdpConfig::default())).unwrap();
        let (spec, dups) = if renumber {
            // The originals stay close-on-exec; only the dup2 copies pass.
            let fds = h.child_fds();
            (h.encode_with_fds(&[100, 101]).unwrap(), vec![(fds[0], 100), (fds[1], 101)])
        } else {
            h.set_inheritable(true).unwrap();
            (h.encode(), vec![])
        };
        let n = 500usize;
        let mut wrapper: Vec<&str> = no_caps.to_vec();
        wrapper.extend_from_slice(extra);
        wrapper.push("--");
        let mut child = spawn_child_dup(&format!("handoff:{n}"), &[(HANDOFF_ENV, spec.clone())], &wrapper, &dups);
        h.set_inheritable(false).unwrap();
        let ready = wait_line(&mut child, "READY");
        eprintln!("child as {who}: {ready} (spec {spec})");
        assert!(ready.contains("capeff=0000000000000000"), "child kept capabilities: {ready}");
        // Peer side: AF_PACKET in A sends n frames and expects n echoes.
        let mut peer = open("af_packet", &v.ns_a, &v.if_a).unwrap();
        let mut echoed = 0usize;
        let start = Instant::now();
        for seq in 0..n {
            peer.send_batch(1, &mut |_, b| frame(b, seq as u32, 60 + seq % 1400)).unwrap();
            while echoed <= seq {
                assert!(start.elapsed() < Duration::from_secs(30), "no echo for {seq}");
                peer.recv_batch(8, Wait::Block(Duration::from_millis(100)), &mut |f| {
                    assert_eq!(check(f, 60 + echoed % 1400), Ok(echoed as u32));
                    echoed += 1;
                })
                .unwrap();
            }
        }
        let done = wait_line(&mut child, "DONE");
        assert!(child.wait().unwrap().success(), "{done}");
        assert_eq!(done, format!("DONE rx={n} tx={n}"));
        drop(h);
        assert!(wait_detached(&v), "program detached once the runtime dropped the hand-off");
    }
}

#[test]
fn afxdp_without_privilege_names_the_step_that_failed() {
    if skip("afxdp_without_privilege_names_the_step_that_failed") {
        return;
    }
    if !run("setpriv", &["--version"]).0 {
        eprintln!("SKIP afxdp_without_privilege_names_the_step_that_failed: setpriv (util-linux) not found");
        return;
    }
    let mut child = spawn_child(
        "unpriv-open",
        &[],
        &["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"],
    );
    let line = wait_line(&mut child, "ERR");
    assert!(child.wait().unwrap().success());
    eprintln!("unprivileged open: {line}");
    assert!(line.contains("XSKMAP") && line.contains("needs CAP_BPF"), "{line}");
}

/// Entry point of the child processes above; does nothing in a normal run.
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = mode.split(':').collect();
    match parts[0] {
        "exit" | "hold" => {
            let (ns, ifname) = (parts[1].to_string(), parts[2].to_string());
            let x = in_netns(&ns, move || AfXdp::open(&ifname, &XdpConfig::default())).unwrap();
            println!("READY {}", x.mode().as_str());
            if parts[0] == "hold" {
                std::thread::sleep(Duration::from_secs(120));
            } else {
                // Wait for the parent to close our stdin.
                let mut s = String::new();
                let _ = std::io::stdin().read_line(&mut s);
            }
            drop(x);
        }
        "handoff" => {
            let n: usize = parts[1].parse().unwrap();
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let capeff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap().split_whitespace().nth(1).unwrap().to_string();
            let mut x = AfXdp::from_env().unwrap();
            println!("READY capeff={capeff} mode={}", x.mode().as_str());
            let (mut rx, mut tx) = (0usize, 0usize);
            let mut buf = vec![0u8; x.max_frame()];
            let start = Instant::now();
            while tx < n && start.elapsed() < Duration::from_secs(30) {
                let mut len = 0;
                let got = x
                    .recv_batch(1, Wait::Block(Duration::from_millis(100)), &mut |f| {
                        buf[..f.len()].copy_from_slice(f);
                        len = f.len();
                    })
                    .unwrap();
                if got == 0 {
                    continue;
                }
                rx += 1;
                tx += x
                    .send_batch(1, &mut |_, b| {
                        b[..len].copy_from_slice(&buf[..len]);
                        len
                    })
                    .unwrap();
            }
            println!("DONE rx={rx} tx={tx}");
        }
        "unpriv-open" => match AfXdp::open("lo", &XdpConfig::default()) {
            Ok(_) => println!("ERR none: opened without privilege"),
            Err(e) => println!("ERR {e}"),
        },
        m => panic!("unknown child mode {m}"),
    }
}
