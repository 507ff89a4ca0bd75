//! Helpers shared by the end-to-end tests: the binary under test and what a
//! run may have left on the host.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `cranlab` binary of this build.
pub fn cranlab() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cranlab"))
}

/// Whether the tests run as root.
pub fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Why QEMU tests cannot run here (not root, no `qemu-system-x86_64`), if so.
pub fn qemu_skip_reason() -> Option<String> {
    if !root() {
        return Some("needs root (network namespaces, a tap, QEMU with pinned vCPU threads)".into());
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("qemu-system-x86_64").is_file()))
        .unwrap_or(false);
    if !on_path {
        return Some("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)".into());
    }
    None
}

/// Network namespaces whose owner (recorded by cranlab in the name) is `pid`.
pub fn netns_of(pid: u32) -> Vec<String> {
    rt_runtime::net::list_netns().unwrap().into_iter().filter(|n| rt_runtime::net::netns_owner(n) == Some(pid as i32)).collect()
}

/// Links named cranlab* in the root network namespace.
pub fn cranlab_links() -> Vec<String> {
    let o = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("").to_string()))
        .filter(|n| n.starts_with("cranlab"))
        .collect()
}

/// Processes whose command line mentions `needle` (a run's directory: its
/// guests keep their serial console there).
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                v.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    v
}

/// Asserts that the cranlab process `pid` left nothing: no namespace it owns,
/// no cranlab link beyond `links_before`, no process mentioning its `out` dir.
pub fn assert_nothing_left(pid: u32, links_before: &[String], out: &Path) {
    assert!(netns_of(pid).is_empty(), "left behind: {:?}", netns_of(pid));
    let new_links: Vec<String> = cranlab_links().into_iter().filter(|l| !links_before.contains(l)).collect();
    assert!(new_links.is_empty(), "links left behind: {new_links:?}");
    let procs = processes_mentioning(&out.to_string_lossy());
    assert!(procs.is_empty(), "processes of this run left behind: {procs:?}");
}
