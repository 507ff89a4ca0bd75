//! Test helpers: a veth pair between two network namespaces of our own,
//! removed on every path (guard), plus frame builders.

#![allow(dead_code)]

use std::process::Command;

/// Runs a command, returning (success, stdout+stderr).
pub fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    match Command::new(cmd).args(args).output() {
        Ok(o) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), s)
        }
        Err(e) => (false, format!("{cmd}: {e}")),
    }
}

fn must(cmd: &str, args: &[&str]) {
    let (ok, out) = run(cmd, args);
    assert!(ok, "{cmd} {}: {out}", args.join(" "));
}

/// Why the privileged tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: veth/netns tests need root".into());
    }
    if !run("ip", &["-V"]).0 {
        return Some("iproute2 `ip` not found".into());
    }
    None
}

/// Prints the skip reason and returns true when the test must skip.
pub fn skip(test: &str) -> bool {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP {test}: {r}");
        return true;
    }
    false
}

/// Two namespaces joined by a veth pair, addresses 10.77.<n>.1/.2.
pub struct Veth {
    /// Namespace of side A.
    pub ns_a: String,
    /// Namespace of side B.
    pub ns_b: String,
    /// Link in A.
    pub if_a: String,
    /// Link in B.
    pub if_b: String,
    /// IPv4 address of B.
    pub ip_b: String,
}

impl Veth {
    /// Creates the pair with `mtu`; `tag` (≤ 2 chars) tells tests apart.
    pub fn new(tag: &str, mtu: u32) -> Veth {
        Veth::with_queues(tag, mtu, 1)
    }

    /// Like [`Veth::new`] with `queues` rx/tx queues on each end.
    pub fn with_queues(tag: &str, mtu: u32, queues: u32) -> Veth {
        let pid = std::process::id() % 10000;
        let ns_a = format!("cranlab-t-{tag}{pid}a");
        let ns_b = format!("cranlab-t-{tag}{pid}b");
        let if_a = format!("cranlab{tag}{pid}a");
        let if_b = format!("cranlab{tag}{pid}b");
        assert!(if_a.len() <= 15);
        let n = (tag.bytes().map(|b| b as u32).sum::<u32>() + pid) % 250 + 1;
        let v = Veth { ns_a, ns_b, if_a, if_b, ip_b: format!("10.77.{n}.2") };
        // Remove leftovers of an earlier crashed run with the same pid.
        let _ = run("ip", &["netns", "del", &v.ns_a]);
        let _ = run("ip", &["netns", "del", &v.ns_b]);
        must("ip", &["netns", "add", &v.ns_a]);
        must("ip", &["netns", "add", &v.ns_b]);
        let q = queues.to_string();
        must(
            "ip",
            &["link", "add", &v.if_a, "numtxqueues", &q, "numrxqueues", &q, "type", "veth", "peer", "name", &v.if_b, "numtxqueues", &q, "numrxqueues", &q],
        );
        must("ip", &["link", "set", &v.if_a, "netns", &v.ns_a]);
        must("ip", &["link", "set", &v.if_b, "netns", &v.ns_b]);
        let mtu_s = mtu.to_string();
        for (ns, ifn, ip) in [(&v.ns_a, &v.if_a, format!("10.77.{n}.1/24")), (&v.ns_b, &v.if_b, format!("10.77.{n}.2/24"))] {
            must("ip", &["-n", ns, "link", "set", "lo", "up"]);
            must("ip", &["-n", ns, "link", "set", "dev", ifn, "mtu", &mtu_s]);
            must("ip", &["-n", ns, "addr", "add", &ip, "dev", ifn]);
            must("ip", &["-n", ns, "link", "set", "dev", ifn, "up"]);
        }
        v
    }

    /// `ip link show` of B's link.
    pub fn link_b(&self) -> String {
        run("ip", &["-n", &self.ns_b, "link", "show", "dev", &self.if_b]).1
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.ns_a]);
        let _ = run("ip", &["netns", "del", &self.ns_b]);
        let (_, list) = run("ip", &["netns", "list"]);
        let (_, links) = run("ip", &["link", "show"]);
        if !std::thread::panicking() {
            assert!(!list.contains(&self.ns_a) && !list.contains(&self.ns_b), "netns left behind: {list}");
            assert!(!links.contains(&self.if_a) && !links.contains(&self.if_b), "link left behind: {links}");
        }
    }
}

/// Builds test frame `seq` of `len` bytes (≥ 18): broadcast, EtherType
/// 0xAEFE, seq, then a pattern of seq and offset.
pub fn frame(buf: &mut [u8], seq: u32, len: usize) -> usize {
    buf[..6].fill(0xff);
    buf[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    buf[12..14].copy_from_slice(&0xAEFEu16.to_be_bytes());
    buf[14..18].copy_from_slice(&seq.to_be_bytes());
    for (k, b) in buf[18..len].iter_mut().enumerate() {
        *b = (seq as usize * 7 + k) as u8;
    }
    len
}

/// Checks a frame built by [`frame`]; returns its seq.
pub fn check(f: &[u8], expect_len: usize) -> Result<u32, String> {
    if f.len() != expect_len {
        return Err(format!("length {} != {expect_len}", f.len()));
    }
    if f[12..14] != 0xAEFEu16.to_be_bytes() {
        return Err("not eCPRI".into());
    }
    let seq = u32::from_be_bytes(f[14..18].try_into().unwrap());
    for (k, b) in f[18..].iter().enumerate() {
        if *b != (seq as usize * 7 + k) as u8 {
            return Err(format!("seq {seq} byte {} corrupt", 18 + k));
        }
    }
    Ok(seq)
}
