//! Host CPU and memory sampling while a benchmark step runs: busy share of
//! all CPUs from `/proc/stat` and `MemAvailable` from `/proc/meminfo`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Busy and total jiffies summed over all CPUs.
fn cpu_jiffies(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// `MemAvailable` in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// What a sampler saw.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Highest busy share of all CPUs over one sampling interval, percent.
    pub peak_cpu_pct: f64,
    /// Busy share over the whole sampled span, percent.
    pub avg_cpu_pct: f64,
    /// Lowest `MemAvailable` seen, bytes.
    pub min_mem_available: u64,
}

/// Samples `/proc` every `interval` on a thread until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Usage>>,
}

impl Sampler {
    /// Starts sampling the procfs at `proc_root` (normally `/proc`).
    pub fn start(proc_root: &Path, interval: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let root: PathBuf = proc_root.to_path_buf();
        let thread = std::thread::spawn(move || {
            let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
            let first = cpu_jiffies(&read("stat")).unwrap_or((0, 0));
            let mut prev = first;
            let mut usage = Usage { min_mem_available: u64::MAX, ..Usage::default() };
            loop {
                std::thread::sleep(interval);
                let now = cpu_jiffies(&read("stat")).unwrap_or(prev);
                let (db, dt) = (now.0.saturating_sub(prev.0), now.1.saturating_sub(prev.1));
                if dt > 0 {
                    usage.peak_cpu_pct = usage.peak_cpu_pct.max(100.0 * db as f64 / dt as f64);
                }
                prev = now;
                if let Some(m) = mem_available(&read("meminfo")) {
                    usage.min_mem_available = usage.min_mem_available.min(m);
                }
                if flag.load(Ordering::Relaxed) {
                    let (db, dt) = (now.0.saturating_sub(first.0), now.1.saturating_sub(first.1));
                    usage.avg_cpu_pct = if dt > 0 { 100.0 * db as f64 / dt as f64 } else { 0.0 };
                    return usage;
                }
            }
        });
        Sampler { stop, thread: Some(thread) }
    }

    /// Stops sampling and returns what was seen.
    pub fn finish(mut self) -> Usage {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_and_meminfo() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(cpu_jiffies(stat), Some((150, 1000)));
        assert_eq!(mem_available("MemTotal: 10 kB\nMemAvailable:    2048 kB\n"), Some(2 * 1024 * 1024));
        assert_eq!(cpu_jiffies("nothing"), None);
    }

    #[test]
    fn sampler_sees_a_busy_loop() {
        let s = Sampler::start(Path::new("/proc"), Duration::from_millis(20));
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let u = s.finish();
        assert!(u.peak_cpu_pct > 0.0, "{u:?}");
        assert!(u.min_mem_available > 0 && u.min_mem_available < u64::MAX);
    }
}

/// Proportional set size of `pid` and all its descendants, bytes: the memory
/// an instance costs, shared pages split fairly between their users.
pub fn tree_pss_bytes(proc_root: &Path, pid: i32) -> u64 {
    let mut children: std::collections::HashMap<i32, Vec<i32>> = std::collections::HashMap::new();
    if let Ok(rd) = std::fs::read_dir(proc_root) {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // ppid is the second field after the parenthesised command name.
            if let Some(ppid) = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|s| s.parse().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut total = 0;
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        total += pss_bytes(&std::fs::read_to_string(proc_root.join(p.to_string()).join("smaps_rollup")).unwrap_or_default());
        if let Some(c) = children.get(&p) {
            stack.extend(c);
        }
    }
    total
}

fn pss_bytes(smaps_rollup: &str) -> u64 {
    smaps_rollup
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod pss_tests {
    use super::*;

    #[test]
    fn pss_of_this_process_tree() {
        assert_eq!(pss_bytes("Rss: 10 kB\nPss:     2048 kB\n"), 2 * 1024 * 1024);
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id() as i32;
        let own = tree_pss_bytes(Path::new("/proc"), child.id() as i32);
        let tree = tree_pss_bytes(Path::new("/proc"), me);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(own > 0, "a running process has some pss");
        assert!(tree > own, "the tree includes the child and this process");
    }
}
