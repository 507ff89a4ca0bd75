//! `rt-probe`: run inside a container by the tests; reports what the
//! container looks like from within, or misbehaves on purpose.
//!
//! Modes: `report` (key=value facts), `true` (exit 0), `hog` (allocate and
//! touch memory until killed), `forkbomb` (spawn sleepers until the kernel
//! refuses), `sleep` (sleep 60 s), `ready IFACE` (print READY when IFACE
//! exists and is up, then wait to be stopped).

use std::io::Write;
use std::time::Duration;

fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

fn read(p: &str) -> String {
    std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_else(|e| format!("error:{e}"))
}

fn first_existing(paths: &[&str]) -> String {
    for p in paths {
        if std::path::Path::new(p).exists() {
            return read(p);
        }
    }
    "missing".into()
}

fn sched() -> String {
    // Fields 40 (rt_priority) and 41 (policy) of /proc/self/stat.
    let s = read("/proc/self/stat");
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let prio = f.get(37).copied().unwrap_or("?");
    match f.get(38).copied() {
        Some("1") => format!("SCHED_FIFO:{prio}"),
        Some("2") => format!("SCHED_RR:{prio}"),
        Some("0") => "SCHED_OTHER".into(),
        Some(x) => format!("policy{x}"),
        None => "unknown".into(),
    }
}

fn report() {
    let procs = std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit())).count())
        .unwrap_or(0);
    let ro = match std::fs::File::create("/rt-probe-write-test") {
        Ok(_) => "no".to_string(),
        Err(e) if e.raw_os_error() == Some(30) => "yes".to_string(),
        Err(e) => format!("error:{e}"),
    };
    let out = [
        ("pid", std::process::id().to_string()),
        ("procs", procs.to_string()),
        ("hostname", read("/proc/sys/kernel/hostname")),
        ("cpuset", first_existing(&["/sys/fs/cgroup/cpuset/cpuset.cpus", "/sys/fs/cgroup/cpuset.cpus"])),
        ("memory", first_existing(&["/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"])),
        ("pids", first_existing(&["/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"])),
        ("sched", sched()),
        ("affinity", status("Cpus_allowed_list:")),
        ("capeff", status("CapEff:")),
        ("capbnd", status("CapBnd:")),
        ("nnp", status("NoNewPrivs:")),
        ("seccomp", status("Seccomp:")),
        ("rootfs_ro", ro),
    ];
    let mut o = std::io::stdout().lock();
    for (k, v) in out {
        let _ = writeln!(o, "{k}={v}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("report") => report(),
        Some("true") => {}
        Some("sleep") => std::thread::sleep(Duration::from_secs(60)),
        Some("hog") => {
            let mut v: Vec<Vec<u8>> = Vec::new();
            loop {
                v.push(vec![1u8; 1 << 20]);
                if v.len() % 16 == 0 {
                    println!("allocated {} MiB", v.len());
                }
            }
        }
        Some("forkbomb") => {
            let mut kids = Vec::new();
            loop {
                match std::process::Command::new("/proc/self/exe").arg("sleep").spawn() {
                    Ok(c) => kids.push(c),
                    Err(e) => {
                        println!("forks={} error={}", kids.len(), e.raw_os_error().unwrap_or(0));
                        break;
                    }
                }
                if kids.len() > 10_000 {
                    println!("forks={} error=none", kids.len());
                    break;
                }
            }
            for mut k in kids {
                let _ = k.kill();
                let _ = k.wait();
            }
        }
        Some("ready") => {
            let iface = args.get(2).cloned().unwrap_or_default();
            let flags = read(&format!("/sys/class/net/{iface}/flags"));
            let up = u32::from_str_radix(flags.trim_start_matches("0x"), 16).map(|f| f & 1 == 1).unwrap_or(false);
            let fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
                .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let xsk = std::env::var_os("CRANLAB_XSK").is_some();
            println!("READY iface={iface} up={up} {} xsk={xsk} fds={}", sched(), fds.len());
            let _ = std::io::stdout().flush();
            std::thread::sleep(Duration::from_secs(120));
        }
        _ => {
            eprintln!("usage: rt-probe report|true|sleep|hog|forkbomb|ready IFACE");
            std::process::exit(2);
        }
    }
}
