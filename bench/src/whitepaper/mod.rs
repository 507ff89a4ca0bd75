//! `cranlab whitepaper`: the container-versus-VM benchmark table of the 2016
//! carrier-grade Linux whitepaper, reproduced on this host in one run.
//!
//! Rows: (1) asynchronous launch of N instances, (2) serial launch, (3) serial
//! reboot, (4) snapshot of a running instance, (5) guest performance against
//! bare metal (CPU, memory bandwidth, network). Every platform runs the same
//! `cranlab-workload` binary; a platform is anything that can start it and
//! show its `READY` line ([`Platform`]).

pub mod platforms;
pub mod sample;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::workload::WorkloadResult;
use sample::{tree_pss_bytes, Sampler, Usage};

/// Errors from the whitepaper benchmarks.
#[derive(Debug, thiserror::Error)]
pub enum WpError {
    /// SIGINT / SIGTERM arrived; what was started has been stopped.
    #[error("interrupted: stopped and cleaned up")]
    Interrupted,
    /// A step failed; `step` names it.
    #[error("{step}: {reason}")]
    Step {
        /// What was being done.
        step: String,
        /// What went wrong.
        reason: String,
    },
}

impl WpError {
    /// A failed step.
    pub fn step(step: impl Into<String>, reason: impl std::fmt::Display) -> WpError {
        WpError::Step { step: step.into(), reason: reason.to_string() }
    }
}

/// The stop flag signal handlers set: every wait checks it.
#[derive(Debug, Clone, Default)]
pub struct Stop(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Stop {
    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What kind of platform a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A plain process.
    Bare,
    /// A container runtime.
    Container,
    /// A virtual machine.
    Vm,
}

/// A started instance of the workload.
pub trait Instance: Send {
    /// Waits for a stdout / console line starting with `prefix`; returns it.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, WpError>;
    /// Reboots: stops the instance and starts it again (container) or resets
    /// the guest (VM). Returns once the restart was requested; callers then
    /// wait for `READY`.
    fn reboot(&mut self) -> Result<(), WpError>;
    /// Writes a restorable image of the instance to `dir`; returns its size in
    /// bytes and a sentence saying what the image holds.
    fn snapshot(&mut self, dir: &Path) -> Result<(u64, String), WpError>;
    /// Stops the instance and removes what it created.
    fn stop(&mut self);
    /// Host pid at the top of the instance's process tree (the runtime or
    /// QEMU process), for its memory.
    fn root_pid(&self) -> Option<i32>;
}

/// A way of running the workload.
pub trait Platform {
    /// Short name: `bare`, `rt-runtime`, `crun`, `runc`, `qemu-tcg`, `qemu-kvm`.
    fn name(&self) -> String;
    /// Kind of platform.
    fn kind(&self) -> Kind;
    /// Starts instance `id` running `cranlab-workload ARGS` without waiting.
    fn start(&self, id: usize, args: &[&str]) -> Result<Box<dyn Instance>, WpError>;
    /// Like [`Platform::start`], behind this platform's network path (a veth
    /// pair for processes and containers, a tap and virtio-net for guests),
    /// addressed; returns the instance and where a client reaches it.
    fn start_networked(&self, id: usize, args: &[&str]) -> Result<(Box<dyn Instance>, platforms::NetPath), WpError>;
}

/// Options of a whitepaper run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Instances per launch test (15 in the paper).
    pub count: usize,
    /// Where images and logs go.
    pub out: PathBuf,
    /// Seconds of the CPU workload.
    pub prime_seconds: f64,
    /// MiB per array of the memory workload.
    pub mbw_mib: usize,
    /// Seconds of each network workload (stream, request/response).
    pub net_seconds: f64,
    /// How long to wait for one instance to be ready.
    pub ready_timeout: Duration,
    /// procfs root (`/proc`).
    pub proc_root: PathBuf,
    /// Set by SIGINT / SIGTERM: the run stops at the next wait.
    pub stop: Stop,
}

/// Figures of one platform.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlatformFigures {
    /// Platform name.
    pub name: String,
    /// Kind.
    pub kind: Option<Kind>,
    /// (1) time until all N were ready, launched at once, s.
    pub async_launch_s: Option<f64>,
    /// (1) peak CPU during the async launch, % of all CPUs.
    pub async_peak_cpu_pct: Option<f64>,
    /// (1) average CPU at steady state with N running, %.
    pub steady_cpu_pct: Option<f64>,
    /// (1) memory used by N running instances, MiB: proportional set size of
    /// each instance's process tree (runtime or QEMU process included).
    pub memory_mib: Option<f64>,
    /// (2) average time to ready, launched one after another, s.
    pub serial_launch_avg_s: Option<f64>,
    /// (2) peak CPU during the serial launch, %.
    pub serial_peak_cpu_pct: Option<f64>,
    /// (3) average reboot-to-ready time, s.
    pub reboot_avg_s: Option<f64>,
    /// (3) average CPU during the reboots, %.
    pub reboot_cpu_pct: Option<f64>,
    /// (4) snapshot time, s.
    pub snapshot_s: Option<f64>,
    /// (4) peak CPU during the snapshot, %.
    pub snapshot_cpu_pct: Option<f64>,
    /// (4) snapshot size, MiB.
    pub snapshot_mib: Option<f64>,
    /// (4) what the snapshot holds.
    pub snapshot_kind: Option<String>,
    /// (5) prime runs per second.
    pub prime_events_per_s: Option<f64>,
    /// (5) memory bandwidth per mbw method, MiB/s.
    pub mbw_mib_per_s: Vec<(String, f64)>,
    /// (5) TCP stream throughput into the instance, MiB/s.
    pub net_stream_mib_per_s: Option<f64>,
    /// (5) TCP request/response transactions per second (1 byte each way).
    pub net_rr_per_s: Option<f64>,
    /// (5) the network path measured.
    pub net_path: Option<String>,
    /// Steps that failed or were skipped, with the reason.
    pub notes: Vec<String>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Instances that became ready, how long that took, and the host's CPU meanwhile.
type Launched = (Vec<Box<dyn Instance>>, Duration, Usage);

fn launch_all(p: &dyn Platform, opt: &Options, base: usize) -> Result<Launched, WpError> {
    let sampler = Sampler::start(&opt.proc_root, Duration::from_millis(20));
    let t = Instant::now();
    let mut v = Vec::new();
    for i in 0..opt.count {
        v.push(p.start(base + i, &["idle"])?);
    }
    for inst in v.iter_mut() {
        inst.wait_line("READY", opt.ready_timeout)?;
    }
    let took = t.elapsed();
    Ok((v, took, sampler.finish()))
}

/// Runs rows (1)–(4) on one platform.
pub fn lifecycle(p: &dyn Platform, opt: &Options) -> PlatformFigures {
    let mut f = PlatformFigures { name: p.name(), kind: Some(p.kind()), ..Default::default() };
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    // (1) asynchronous launch
    match launch_all(p, opt, 0) {
        Ok((mut insts, took, usage)) => {
            f.async_launch_s = Some(secs(took));
            f.async_peak_cpu_pct = Some(usage.peak_cpu_pct);
            std::thread::sleep(Duration::from_millis(500));
            let s = Sampler::start(&opt.proc_root, Duration::from_millis(100));
            std::thread::sleep(Duration::from_secs(2));
            let steady = s.finish();
            f.steady_cpu_pct = Some(steady.avg_cpu_pct);
            let pss: u64 = insts.iter().filter_map(|i| i.root_pid()).map(|p| tree_pss_bytes(&opt.proc_root, p)).sum();
            f.memory_mib = Some(mib(pss));
            // (4) snapshot of the first running instance
            let snap_dir = opt.out.join(format!("snapshot-{}", p.name()));
            let s = Sampler::start(&opt.proc_root, Duration::from_millis(20));
            let t = Instant::now();
            match insts[0].snapshot(&snap_dir) {
                Ok((bytes, what)) => {
                    f.snapshot_s = Some(secs(t.elapsed()));
                    f.snapshot_mib = Some(mib(bytes));
                    f.snapshot_kind = Some(what);
                    f.snapshot_cpu_pct = Some(s.finish().peak_cpu_pct);
                }
                Err(e) => f.notes.push(format!("snapshot: {e}")),
            }
            let _ = std::fs::remove_dir_all(&snap_dir);
            for i in insts.iter_mut() {
                i.stop();
            }
        }
        Err(e) => f.notes.push(format!("asynchronous launch: {e}")),
    }
    if opt.stop.requested() {
        return f;
    }
    // (2) serial launch, (3) serial reboot
    let s = Sampler::start(&opt.proc_root, Duration::from_millis(20));
    let mut insts = Vec::new();
    let mut total = Duration::ZERO;
    let mut ok = true;
    for i in 0..opt.count {
        let t = Instant::now();
        match p.start(1000 + i, &["idle"]).and_then(|mut inst| inst.wait_line("READY", opt.ready_timeout).map(|_| inst)) {
            Ok(inst) => {
                total += t.elapsed();
                insts.push(inst);
            }
            Err(e) => {
                f.notes.push(format!("serial launch: {e}"));
                ok = false;
                break;
            }
        }
    }
    let u = s.finish();
    if ok {
        f.serial_launch_avg_s = Some(secs(total) / opt.count as f64);
        f.serial_peak_cpu_pct = Some(u.peak_cpu_pct);
        let s = Sampler::start(&opt.proc_root, Duration::from_millis(20));
        let mut total = Duration::ZERO;
        let mut n = 0;
        for inst in insts.iter_mut() {
            let t = Instant::now();
            match inst.reboot().and_then(|_| inst.wait_line("READY", opt.ready_timeout)) {
                Ok(_) => {
                    total += t.elapsed();
                    n += 1;
                }
                Err(e) => {
                    f.notes.push(format!("serial reboot: {e}"));
                    break;
                }
            }
        }
        let u = s.finish();
        if n == insts.len() && n > 0 {
            f.reboot_avg_s = Some(secs(total) / n as f64);
            f.reboot_cpu_pct = Some(u.avg_cpu_pct);
        }
    }
    for i in insts.iter_mut() {
        i.stop();
    }
    f
}

/// Waits for the `RESULT {json}` line of a workload and parses it.
pub(crate) fn result_of(inst: &mut dyn Instance, who: &str, timeout: Duration) -> Result<WorkloadResult, WpError> {
    inst.wait_line("RESULT", timeout).and_then(|line| {
        serde_json::from_str::<WorkloadResult>(line.trim_start_matches("RESULT").trim())
            .map_err(|e| WpError::step(format!("parse workload result of {who}"), e))
    })
}

fn run_to_result(p: &dyn Platform, id: usize, args: &[&str], timeout: Duration) -> Result<WorkloadResult, WpError> {
    let mut inst = p.start(id, args)?;
    let r = result_of(inst.as_mut(), &p.name(), timeout);
    inst.stop();
    r
}

/// Port the network workload listens on.
const NET_PORT: u16 = 5201;

/// Runs the network half of row (5): a `net-serve` instance on the platform,
/// a stream client and then a request/response client from the far end of
/// its network path.
fn network(p: &dyn Platform, opt: &Options, f: &mut PlatformFigures) -> Result<(), WpError> {
    let port = NET_PORT.to_string();
    let (mut server, path) = p.start_networked(2002, &["net-serve", "--port", &port, "--connections", "2"])?;
    f.net_path = Some(path.what.clone());
    let to = format!("{}:{NET_PORT}", path.server);
    let secs = format!("{}", opt.net_seconds);
    let timeout = Duration::from_secs_f64(opt.net_seconds * 4.0 + 30.0);
    let r = server.wait_line("READY", opt.ready_timeout).and_then(|_| {
        let stream = path.run_client(&["net-stream", "--to", &to, "--seconds", &secs], timeout)?;
        let rr = path.run_client(&["net-rr", "--to", &to, "--seconds", &secs], timeout)?;
        Ok((stream, rr))
    });
    server.stop();
    drop(path);
    let (stream, rr) = r?;
    f.net_stream_mib_per_s = stream.mib_per_s.first().map(|x| x.1);
    f.net_rr_per_s = rr.events_per_s;
    Ok(())
}

/// Runs row (5) on one platform: CPU, memory bandwidth and network inside it.
pub fn performance(p: &dyn Platform, opt: &Options, f: &mut PlatformFigures) {
    let secs = format!("{}", opt.prime_seconds);
    let timeout = opt.ready_timeout + Duration::from_secs_f64(opt.prime_seconds * 4.0 + 30.0);
    match run_to_result(p, 2000, &["prime", "--seconds", &secs], timeout) {
        Ok(r) => f.prime_events_per_s = r.events_per_s,
        Err(e) => f.notes.push(format!("cpu: {e}")),
    }
    if opt.stop.requested() {
        return;
    }
    let mib = format!("{}", opt.mbw_mib);
    match run_to_result(p, 2001, &["mbw", "--mib", &mib, "--reps", "5"], timeout) {
        Ok(r) => f.mbw_mib_per_s = r.mib_per_s,
        Err(e) => f.notes.push(format!("memory: {e}")),
    }
    if opt.stop.requested() {
        return;
    }
    if let Err(e) = network(p, opt, f) {
        f.notes.push(format!("network: {e}"));
    }
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map(|x| if x >= 100.0 { format!("{x:.0} {unit}") } else { format!("{x:.3} {unit}") }.trim_end().to_string())
        .unwrap_or_else(|| "–".into())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a > 0.0 => {
            let r = a / b;
            if r < 0.1 {
                format!("{r:.3}×")
            } else {
                format!("{r:.1}×")
            }
        }
        _ => "–".into(),
    }
}

/// The paper's table: each row with the container and VM figures and the
/// VM/container ratio, then the extra runtimes.
pub fn table(container: &PlatformFigures, vm: &PlatformFigures, bare: &PlatformFigures, others: &[PlatformFigures]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| test | metric | {} | {} | {} / {} |", container.name, vm.name, vm.name, container.name);
    let _ = writeln!(s, "|---|---|---|---|---|");
    type Row<'a> = (&'a str, &'a str, Option<f64>, Option<f64>, &'a str);
    let rows: [Row; 11] = [
        ("1 async launch", "time to all ready", container.async_launch_s, vm.async_launch_s, "s"),
        ("1 async launch", "peak CPU", container.async_peak_cpu_pct, vm.async_peak_cpu_pct, "%"),
        ("1 async launch", "steady-state CPU", container.steady_cpu_pct, vm.steady_cpu_pct, "%"),
        ("1 async launch", "memory used", container.memory_mib, vm.memory_mib, "MiB"),
        ("2 serial launch", "average boot", container.serial_launch_avg_s, vm.serial_launch_avg_s, "s"),
        ("2 serial launch", "peak CPU", container.serial_peak_cpu_pct, vm.serial_peak_cpu_pct, "%"),
        ("3 serial reboot", "average reboot", container.reboot_avg_s, vm.reboot_avg_s, "s"),
        ("3 serial reboot", "CPU", container.reboot_cpu_pct, vm.reboot_cpu_pct, "%"),
        ("4 snapshot", "time", container.snapshot_s, vm.snapshot_s, "s"),
        ("4 snapshot", "peak CPU", container.snapshot_cpu_pct, vm.snapshot_cpu_pct, "%"),
        ("4 snapshot", "size", container.snapshot_mib, vm.snapshot_mib, "MiB"),
    ];
    for (t, m, c, v, u) in rows {
        let _ = writeln!(s, "| {t} | {m} | {} | {} | {} |", fmt_opt(c, u), fmt_opt(v, u), ratio(v, c));
    }
    let _ = writeln!(s, "\nGuest performance against bare metal (higher is better; ratio = platform / bare):\n");
    let _ = writeln!(s, "| metric | bare | {} | {} | {} / bare | {} / bare |", container.name, vm.name, container.name, vm.name);
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| CPU prime (runs/s) | {} | {} | {} | {} | {} |",
        fmt_opt(bare.prime_events_per_s, ""),
        fmt_opt(container.prime_events_per_s, ""),
        fmt_opt(vm.prime_events_per_s, ""),
        ratio(container.prime_events_per_s, bare.prime_events_per_s),
        ratio(vm.prime_events_per_s, bare.prime_events_per_s)
    );
    let get = |f: &PlatformFigures, k: &str| f.mbw_mib_per_s.iter().find(|(n, _)| n == k).map(|x| x.1);
    let mut perf: Vec<(String, [Option<f64>; 3])> =
        ["memcpy", "dumb", "mcblock"].iter().map(|k| (format!("memory {k} (MiB/s)"), [get(bare, k), get(container, k), get(vm, k)])).collect();
    perf.push(("network TCP stream (MiB/s)".into(), [bare, container, vm].map(|f| f.net_stream_mib_per_s)));
    perf.push(("network TCP request/response (trans/s)".into(), [bare, container, vm].map(|f| f.net_rr_per_s)));
    for (name, [b, c, v]) in perf {
        let _ = writeln!(s, "| {name} | {} | {} | {} | {} | {} |", fmt_opt(b, ""), fmt_opt(c, ""), fmt_opt(v, ""), ratio(c, b), ratio(v, b));
    }
    let paths: Vec<String> = [bare, container, vm].iter().filter_map(|f| f.net_path.as_ref().map(|p| format!("{}: {p}", f.name))).collect();
    if !paths.is_empty() {
        let _ = writeln!(s, "\nNetwork paths: {}.", paths.join("; "));
    }
    if !others.is_empty() {
        let _ = writeln!(s, "\nOther runtimes, same bundle:\n");
        let _ = writeln!(s, "| runtime | async launch of N (s) | serial launch avg (s) | reboot avg (s) | memory (MiB) |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for o in others.iter().chain(std::iter::once(container)) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                o.name,
                fmt_opt(o.async_launch_s, ""),
                fmt_opt(o.serial_launch_avg_s, ""),
                fmt_opt(o.reboot_avg_s, ""),
                fmt_opt(o.memory_mib, "")
            );
        }
    }
    let notes: Vec<String> = [container, vm, bare]
        .into_iter()
        .chain(others.iter())
        .flat_map(|f| f.notes.iter().map(move |n| format!("- {}: {n}", f.name)))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "\nNotes:\n{}", notes.join("\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_ratios_and_gaps() {
        let c = PlatformFigures { name: "rt-runtime".into(), async_launch_s: Some(0.5), memory_mib: Some(10.0), ..Default::default() };
        let v = PlatformFigures {
            name: "qemu-tcg".into(),
            async_launch_s: Some(2.0),
            memory_mib: Some(600.0),
            notes: vec!["emulation".into()],
            ..Default::default()
        };
        let b = PlatformFigures {
            name: "bare".into(),
            prime_events_per_s: Some(100.0),
            net_rr_per_s: Some(20000.0),
            net_path: Some("veth".into()),
            ..Default::default()
        };
        let c = PlatformFigures { net_rr_per_s: Some(10000.0), ..c };
        let t = table(&c, &v, &b, &[]);
        assert!(t.contains("| network TCP request/response (trans/s) | 20000 | 10000 | – | 0.5× | – |"), "{t}");
        assert!(t.contains("| network TCP stream (MiB/s) | – | – | – | – | – |"), "{t}");
        assert!(t.contains("Network paths: bare: veth."), "{t}");
        assert!(t.contains("| 1 async launch | time to all ready | 0.500 s | 2.000 s | 4.0× |"), "{t}");
        assert!(t.contains("60.0×"), "{t}");
        assert!(t.contains("| CPU prime (runs/s) | 100 | – | – | – | – |"), "{t}");
        assert!(t.contains("- qemu-tcg: emulation"), "{t}");
    }
}

/// Everything a `cranlab whitepaper` run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WhitepaperResults {
    /// `cranlab.whitepaper/1`.
    pub schema: String,
    /// Instances per launch test.
    pub count: usize,
    /// The container row (rt-runtime).
    pub container: PlatformFigures,
    /// The VM row (qemu-kvm or qemu-tcg).
    pub vm: PlatformFigures,
    /// Bare metal (row 5 reference).
    pub bare: PlatformFigures,
    /// crun / runc on the same bundle, where installed.
    pub others: Vec<PlatformFigures>,
    /// The table as printed.
    pub table: String,
}

/// Runs the whole table. `vm` is `None` where QEMU is unavailable (the reason
/// goes into the VM row's notes).
pub fn run_all(
    opt: &Options,
    bare: &dyn Platform,
    container: &dyn Platform,
    vm: Result<&dyn Platform, String>,
    others: &[&dyn Platform],
    progress: &dyn Fn(&str),
) -> Result<WhitepaperResults, WpError> {
    let interrupted = || if opt.stop.requested() { Err(WpError::Interrupted) } else { Ok(()) };
    progress("bare metal: cpu, memory and network");
    let mut b = PlatformFigures { name: bare.name(), kind: Some(bare.kind()), ..Default::default() };
    performance(bare, opt, &mut b);
    interrupted()?;
    progress(&format!("{}: launch, reboot, snapshot of {}", container.name(), opt.count));
    let mut c = lifecycle(container, opt);
    interrupted()?;
    progress(&format!("{}: cpu, memory and network", container.name()));
    performance(container, opt, &mut c);
    interrupted()?;
    let v = match vm {
        Ok(vm) => {
            progress(&format!("{}: launch, reboot, snapshot of {}", vm.name(), opt.count));
            let mut v = lifecycle(vm, opt);
            interrupted()?;
            progress(&format!("{}: cpu, memory and network", vm.name()));
            performance(vm, opt, &mut v);
            interrupted()?;
            v
        }
        Err(reason) => PlatformFigures { name: "vm".into(), kind: Some(Kind::Vm), notes: vec![format!("skipped: {reason}")], ..Default::default() },
    };
    let mut o = Vec::new();
    for p in others {
        progress(&format!("{}: launch and reboot of {}", p.name(), opt.count));
        o.push(lifecycle(*p, opt));
        interrupted()?;
    }
    let table = table(&c, &v, &b, &o);
    Ok(WhitepaperResults { schema: "cranlab.whitepaper/1".into(), count: opt.count, container: c, vm: v, bare: b, others: o, table })
}

/// Runs the whole table on this host: bare processes, rt-runtime containers,
/// QEMU guests (kvm where the host really has it, TCG labelled as such), and
/// crun / runc where installed. Writes `whitepaper.json` and `whitepaper.md`
/// into `opt.out`.
pub fn run_on_host(opt: &Options, progress: &dyn Fn(&str)) -> Result<WhitepaperResults, WpError> {
    use platforms::{Bare, ContainerRuntime, Vm};
    use std::sync::Arc;
    if !nix::unistd::geteuid().is_root() {
        return Err(WpError::step("whitepaper", "needs root (containers, network namespaces, QEMU taps)"));
    }
    std::fs::create_dir_all(&opt.out).map_err(|e| WpError::step(format!("create {}", opt.out.display()), e))?;
    // What a killed run left (guests, taps, namespaces, cgroups): owner-aware.
    for line in crate::sweep::sweep(false).removed {
        progress(&format!("removed leftover {line}"));
    }
    let find = |name: &str, build: &str| crate::run::find_binary(name, None, build).map_err(|e| WpError::step(format!("find {name}"), e));
    let workload = find("cranlab-workload", "cargo build --release -p bench")?;
    let rt = find("rt-runtime", "cargo build --release -p rt-runtime")?;
    let bundles = opt.out.join("bundles");
    let stop = opt.stop.clone();
    let bare = Bare { workload: workload.clone(), stop: stop.clone() };
    let container = ContainerRuntime { name: "rt-runtime".into(), binary: rt, workload: workload.clone(), bundles: bundles.clone(), stop: stop.clone() };
    let mut others: Vec<ContainerRuntime> = Vec::new();
    for name in ["crun", "runc"] {
        for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                others.push(ContainerRuntime { name: name.into(), binary: p, workload: workload.clone(), bundles: bundles.clone(), stop: stop.clone() });
                break;
            }
        }
    }
    let vm = match rt_runtime::kvm::detect_accel() {
        Ok(d) => {
            let netns = rt_runtime::net::Netns::create(&rt_runtime::net::owned_netns_name("wp"))
                .map_err(|e| WpError::step("create the network namespace for the guests' taps", e))?;
            let label = if d.label() == "kvm" { "qemu-kvm".to_string() } else { format!("qemu-{} (emulation)", d.label()) };
            Ok(Vm {
                deployment: Arc::new(rt_runtime::kvm::KvmDeployment::new()),
                workload: workload.clone(),
                netns: Arc::new(netns),
                work_dir: opt.out.join("guests"),
                // Room for the memory workload's two arrays next to the
                // initramfs, which lives in guest RAM.
                memory_bytes: ((4 * opt.mbw_mib as u64) << 20).max(256 << 20) + (128 << 20),
                label,
                stop: stop.clone(),
            })
        }
        Err(e) => Err(e.to_string()),
    };
    let other_refs: Vec<&dyn Platform> = others.iter().map(|p| p as &dyn Platform).collect();
    let r = run_all(opt, &bare, &container, vm.as_ref().map(|v| v as &dyn Platform).map_err(|e| e.clone()), &other_refs, progress);
    let _ = std::fs::remove_dir_all(&bundles);
    let r = r?;
    let json = serde_json::to_string_pretty(&r).map_err(|e| WpError::step("serialise whitepaper results", e))?;
    let write = |name: &str, text: &str| {
        let p = opt.out.join(name);
        std::fs::write(&p, text).map_err(|e| WpError::step(format!("write {}", p.display()), e))
    };
    write("whitepaper.json", &json)?;
    write("whitepaper.md", &format!("# Container vs VM, the 2016 whitepaper's table on this host\n\n{} instances per launch test.\n\n{}", r.count, r.table))?;
    Ok(r)
}
