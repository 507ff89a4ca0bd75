//! Network plumbing: namespaces, veth pairs and taps, all `cranlab`-prefixed.
//!
//! Everything here goes through iproute2 (`ip`), so each step is the command
//! a lab engineer would type, and a failure names the step and carries
//! `ip`'s own message. Objects are owned by guards ([`Netns`], [`Link`]) that
//! delete them on drop; [`sweep`] removes whatever a killed run left.
//!
//! Names: network namespaces are `cranlab-<tag>-<role>`; link names must fit
//! the kernel's 15 characters (`IFNAMSIZ - 1`), so they are
//! `cranlab<tag><role>` with a short tag (see [`short_tag`]).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every host object cranlab creates.
pub const PREFIX: &str = "cranlab";

/// Longest interface name the kernel accepts.
pub const IFNAME_MAX: usize = 15;

/// Errors from network set-up; each names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// `ip` ran and failed.
    #[error("{step}: `ip {args}` failed: {stderr}")]
    Ip {
        /// What was being done.
        step: String,
        /// The arguments given to `ip`.
        args: String,
        /// What `ip` printed on stderr.
        stderr: String,
    },
    /// `ip` could not be started at all.
    #[error("{step}: cannot run `ip` (install iproute2): {err}")]
    NoIp {
        /// What was being done.
        step: String,
        /// The cause.
        err: std::io::Error,
    },
    /// A name does not follow the rules.
    #[error("bad name {name:?}: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A system call failed.
    #[error("{step}: {err}")]
    Os {
        /// What was being done.
        step: String,
        /// The cause.
        err: std::io::Error,
    },
}

/// Runs `ip ARGS`, returning stdout; `step` names the step in errors.
pub fn ip(step: &str, args: &[&str]) -> Result<String, NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|err| NetError::NoIp { step: step.to_string(), err })?;
    if !out.status.success() {
        return Err(NetError::Ip {
            step: step.to_string(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An IPv4 interface address with its prefix length, as `ip addr` writes it
/// (`10.213.0.2/30`). The fronthaul itself is layer 2; addresses are for the
/// TCP benchmarks that share its veth/tap paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub ip: std::net::Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl std::fmt::Display for IfAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

impl std::str::FromStr for IfAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<IfAddr, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| format!("interface address {s:?}: expected ADDRESS/PREFIX"))?;
        let ip = a.parse().map_err(|_| format!("interface address {s:?}: {a:?} is not an IPv4 address"))?;
        let prefix: u8 = p.parse().map_err(|_| format!("interface address {s:?}: prefix {p:?} is not a number"))?;
        if prefix > 32 {
            return Err(format!("interface address {s:?}: prefix {prefix} is over 32"));
        }
        Ok(IfAddr { ip, prefix })
    }
}

/// Adds `addr` to interface `ifname` in `netns` (`None`: the host's).
pub fn add_addr(netns: Option<&str>, ifname: &str, addr: IfAddr) -> Result<(), NetError> {
    let a = addr.to_string();
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["addr", "add", &a, "dev", ifname]);
    ip(&format!("add address {a} to {ifname}"), &args).map(|_| ())
}

/// A short tag unique to this process and call: 4 hex digits of the pid and a
/// counter digit pair, so `cranlab` + tag + a role letter fits in 15 chars.
pub fn short_tag() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) % 100;
    format!("{:04x}{:02}", std::process::id() & 0xffff, n)
}

fn check_name(name: &str, max: usize) -> Result<(), NetError> {
    if !name.starts_with(PREFIX) {
        return Err(NetError::BadName { name: name.into(), reason: format!("must start with {PREFIX:?}") });
    }
    if name.len() > max {
        return Err(NetError::BadName { name: name.into(), reason: format!("longer than {max} characters") });
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(NetError::BadName { name: name.into(), reason: "only letters, digits, '-' and '_' are allowed".into() });
    }
    Ok(())
}

/// A named network namespace (`/run/netns/NAME`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    keep: bool,
}

impl Netns {
    /// Creates `NAME` (must start with `cranlab`) with its loopback up.
    pub fn create(name: &str) -> Result<Netns, NetError> {
        check_name(name, 64)?;
        ip(&format!("create network namespace {name}"), &["netns", "add", name])?;
        let ns = Netns { name: name.to_string(), keep: false };
        ip(&format!("bring up lo in netns {name}"), &["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its bind-mount path, usable with `setns`.
    pub fn path(&self) -> PathBuf {
        netns_path(&self.name)
    }

    /// Moves the calling thread into this namespace (only this thread:
    /// `setns(CLONE_NEWNET)` is per thread).
    pub fn enter_current_thread(&self) -> Result<(), NetError> {
        enter_netns(&self.name)
    }

    /// Leaves the namespace in place when dropped (for debugging).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.keep {
            let _ = ip("delete network namespace", &["netns", "del", &self.name]);
        }
    }
}

/// Path of a named network namespace.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Opens a named network namespace for `setns` (e.g. in a child before exec).
pub fn open_netns(name: &str) -> Result<File, NetError> {
    let p = netns_path(name);
    File::open(&p).map_err(|err| NetError::Os { step: format!("open {}", p.display()), err })
}

/// Moves the calling thread into the named network namespace.
pub fn enter_netns(name: &str) -> Result<(), NetError> {
    let f = open_netns(name)?;
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| NetError::Os {
        step: format!("setns into network namespace {name}"),
        err: std::io::Error::from(e),
    })
}

/// A link (veth end or tap) deleted on drop, wherever it is.
#[derive(Debug)]
pub struct Link {
    name: String,
    netns: Option<String>,
}

impl Link {
    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace it is in (`None`: the host's).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// The link's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], NetError> {
        link_mac(self.netns.as_deref(), &self.name)
    }

    /// Records that someone else (a container's netns going away) now owns
    /// the link; drop will still try to delete it by name, harmlessly.
    pub fn moved_to(&mut self, netns: Option<String>, name: &str) {
        self.netns = netns;
        self.name = name.to_string();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let mut args: Vec<&str> = Vec::new();
        if let Some(ns) = &self.netns {
            args.extend(["-n", ns.as_str()]);
        }
        args.extend(["link", "del", self.name.as_str()]);
        // Deleting one end of a veth pair deletes both; a failure here means
        // it is already gone (peer deleted, namespace removed).
        let _ = ip("delete link", &args);
    }
}

fn ns_args<'a>(netns: Option<&'a str>, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = Vec::new();
    if let Some(ns) = netns {
        v.extend(["-n", ns]);
    }
    v.extend_from_slice(rest);
    v
}

/// Reads a link's MAC address.
pub fn link_mac(netns: Option<&str>, name: &str) -> Result<[u8; 6], NetError> {
    let out = ip(&format!("read mac of {name}"), &ns_args(netns, &["-o", "link", "show", "dev", name]))?;
    let mac = out
        .split_whitespace()
        .skip_while(|w| !w.starts_with("link/"))
        .nth(1)
        .ok_or_else(|| NetError::BadName { name: name.into(), reason: format!("no link-layer address in {out:?}") })?;
    parse_mac(mac).ok_or_else(|| NetError::BadName { name: name.into(), reason: format!("cannot parse mac {mac:?}") })
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// Both ends of a fronthaul link between the rrh-sim and a worker.
#[derive(Debug)]
pub struct FronthaulLink {
    /// The rrh-sim's end (veth end or, for kvm, the tap itself).
    pub rrh: Link,
    /// The worker's end (`None` for a tap: QEMU holds the other side).
    pub worker: Option<Link>,
    /// MAC of the rrh end.
    pub rrh_mac: [u8; 6],
    /// MAC of the worker end (for a tap: the MAC the guest should use).
    pub worker_mac: [u8; 6],
}

/// Creates a veth pair `cranlab<tag>r` / `cranlab<tag>w`, puts the first end
/// in `rrh_ns` and the second in `worker_ns`, sets both up with `mtu`.
pub fn veth_pair(tag: &str, rrh_ns: &str, worker_ns: &str, mtu: u16) -> Result<FronthaulLink, NetError> {
    let r = format!("{PREFIX}{tag}r");
    let w = format!("{PREFIX}{tag}w");
    check_name(&r, IFNAME_MAX)?;
    check_name(&w, IFNAME_MAX)?;
    let mtu_s = mtu.to_string();
    // Created directly inside the namespaces: no moment where they sit in the host's.
    ip(
        &format!("create veth pair {r}/{w}"),
        &["-n", rrh_ns, "link", "add", &r, "mtu", &mtu_s, "type", "veth", "peer", "name", &w, "netns", worker_ns, "mtu", &mtu_s],
    )?;
    let rrh = Link { name: r.clone(), netns: Some(rrh_ns.to_string()) };
    let worker = Link { name: w.clone(), netns: Some(worker_ns.to_string()) };
    for (ns, n) in [(rrh_ns, &r), (worker_ns, &w)] {
        // IPv6 autoconf would put router solicitations on the fronthaul.
        let _ = Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-qw", &format!("net.ipv6.conf.{n}.disable_ipv6=1")])
            .output();
        ip(&format!("bring up {n}"), &["-n", ns, "link", "set", n, "up"])?;
    }
    let rrh_mac = rrh.mac()?;
    let worker_mac = worker.mac()?;
    Ok(FronthaulLink { rrh, worker: Some(worker), rrh_mac, worker_mac })
}

/// Creates a tap `cranlab<tag>t` in `netns` (where QEMU will open it), up,
/// with `mtu`. The worker end is the guest's virtio-net; its MAC is
/// generated (locally administered) and returned as `worker_mac`.
pub fn tap(tag: &str, netns: &str, mtu: u16) -> Result<FronthaulLink, NetError> {
    let t = format!("{PREFIX}{tag}t");
    check_name(&t, IFNAME_MAX)?;
    ip(&format!("create tap {t}"), &["-n", netns, "tuntap", "add", "dev", &t, "mode", "tap"])?;
    let link = Link { name: t.clone(), netns: Some(netns.to_string()) };
    ip(&format!("set mtu of {t}"), &["-n", netns, "link", "set", &t, "mtu", &mtu.to_string()])?;
    ip(&format!("bring up {t}"), &["-n", netns, "link", "set", &t, "up"])?;
    let rrh_mac = link.mac()?;
    let pid = std::process::id();
    let worker_mac = [0x02, 0xc7, 0xab, (pid >> 8) as u8, pid as u8, tag.len() as u8];
    Ok(FronthaulLink { rrh: link, worker: None, rrh_mac, worker_mac })
}

/// Lists cranlab-prefixed network namespaces.
pub fn list_netns() -> Result<Vec<String>, NetError> {
    let out = ip("list network namespaces", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

/// Lists cranlab-prefixed links in the host's namespace (or `netns`).
pub fn list_links(netns: Option<&str>) -> Result<Vec<String>, NetError> {
    let out = ip("list links", &ns_args(netns, &["-o", "link", "show"]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(PREFIX))
        .collect())
}

/// Pids of processes whose network namespace is the named one.
pub fn netns_pids(name: &str) -> Vec<i32> {
    ip("list processes in netns", &["netns", "pids", name])
        .map(|o| o.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Name for a network namespace owned by this process:
/// `cranlab-<pid>-<n><role>`. The pid lets [`sweep`] tell a killed run's
/// leftovers from a live run's objects.
pub fn owned_netns_name(role: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{PREFIX}-{}-{}{role}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The owner pid encoded in a name made by [`owned_netns_name`].
pub fn netns_owner(name: &str) -> Option<i32> {
    name.strip_prefix(PREFIX)?.strip_prefix('-')?.split('-').next()?.parse().ok()
}

fn pid_alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Removes what a killed run left: network namespaces named by
/// [`owned_netns_name`] whose owner process is gone (the processes inside
/// them are killed first; links inside go with them). With `all`, also every
/// other `cranlab`-prefixed namespace and every `cranlab` link in the host's
/// namespace, whoever made them. Returns one line per object removed.
pub fn sweep(all: bool) -> Result<Vec<String>, NetError> {
    let mut done = Vec::new();
    for ns in list_netns()? {
        let owner = netns_owner(&ns);
        let orphan = match owner {
            Some(pid) => pid != std::process::id() as i32 && !pid_alive(pid),
            None => all,
        };
        if !orphan {
            continue;
        }
        for pid in netns_pids(&ns) {
            if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).is_ok() {
                done.push(format!("killed pid {pid} in netns {ns}"));
            }
        }
        ip(&format!("delete network namespace {ns}"), &["netns", "del", &ns])?;
        done.push(format!("deleted netns {ns}"));
    }
    if all {
        for l in list_links(None)? {
            // A veth whose peer went with a namespace may already be gone.
            if ip("delete link", &["link", "del", &l]).is_ok() {
                done.push(format!("deleted link {l}"));
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ifaddr_round_trips_and_rejects_what_ip_would() {
        let a: super::IfAddr = "10.213.0.2/30".parse().unwrap();
        assert_eq!(a.ip, std::net::Ipv4Addr::new(10, 213, 0, 2));
        assert_eq!(a.prefix, 30);
        assert_eq!(a.to_string(), "10.213.0.2/30");
        for bad in ["10.213.0.2", "10.213.0/30", "10.213.0.2/33", "10.213.0.2/x", "", "fe80::1/64"] {
            let e = bad.parse::<super::IfAddr>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    use super::*;

    #[test]
    fn names_fit_ifnamsiz() {
        let t = short_tag();
        assert!(format!("{PREFIX}{t}r").len() <= IFNAME_MAX);
        assert!(check_name("cranlab0123456789", IFNAME_MAX).is_err());
        assert!(check_name("foo", IFNAME_MAX).is_err());
        assert!(check_name("cranlab a", IFNAME_MAX).is_err());
        assert!(check_name("cranlab12ab01r", IFNAME_MAX).is_ok());
    }

    #[test]
    fn mac_parses() {
        assert_eq!(parse_mac("02:ab:00:10:ff:01"), Some([2, 0xab, 0, 0x10, 0xff, 1]));
        assert_eq!(parse_mac("02:ab:00:10:ff"), None);
        assert_eq!(parse_mac("02:ab:00:10:ff:01:02"), None);
        assert_eq!(parse_mac("zz:ab:00:10:ff:01"), None);
    }

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn veth_pair_in_namespaces_is_removed_on_drop() {
        if !root() {
            eprintln!("skipped: needs root to create network namespaces");
            return;
        }
        let tag = short_tag();
        let r = Netns::create(&owned_netns_name("r")).unwrap();
        let w = Netns::create(&owned_netns_name("w")).unwrap();
        assert_eq!(netns_owner(r.name()), Some(std::process::id() as i32));
        let link = veth_pair(&tag, r.name(), w.name(), 1500).unwrap();
        assert_eq!(list_links(Some(r.name())).unwrap(), vec![link.rrh.name().to_string()]);
        assert_ne!(link.rrh_mac, link.worker_mac);
        let (rn, wn) = (r.name().to_string(), w.name().to_string());
        drop(link);
        assert!(list_links(Some(&rn)).unwrap().is_empty());
        drop(r);
        drop(w);
        let left = list_netns().unwrap();
        assert!(!left.contains(&rn) && !left.contains(&wn), "{left:?}");
    }
}
