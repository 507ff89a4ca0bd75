//! The kvm deployment: the worker in a QEMU guest, hardware KVM or TCG
//! labelled as such.
//!
//! [`KvmDeployment`] boots a Debian kernel with an initramfs holding the
//! worker ([`image`]), on QEMU's microvm machine (q35 as fallback), with the
//! fronthaul tap as virtio-net and the serial console written to
//! `WorkerSpec.log`. QEMU starts paused inside the link's network namespace;
//! its vCPU threads are found through QMP (`query-cpus-fast`) and pinned
//! before the guest runs:
//!
//! | guest | host |
//! |---|---|
//! | worker vCPUs, numbered like the host cores in `spec.cpus` (so `--cpu 1` means the same inside): isolcpus, nohz_full, rcu_nocbs; the worker pinned there, SCHED_FIFO | one vCPU thread per core of `spec.cpus`, SCHED_FIFO at the worker's priority from the worker's READY on (the boot runs SCHED_OTHER) |
//! | the other vCPU(s): housekeeping (guest kernel, init, IRQs via irqaffinity) | every host core not in `spec.cpus`, with QEMU's main loop and I/O threads |
//!
//! On a 2-core host with the worker on core 1: guest vCPU 0 + QEMU's main
//! loop (virtio-net, serial) on host core 0, guest vCPU 1 (the worker) alone
//! on host core 1.
//!
//! Inside the guest the init pins the worker to its vCPU(s) with `taskset`,
//! gives it the policy with `chrt`, and reads back what the guest kernel
//! granted. The accelerator comes from [`detect::detect_accel`]; TCG is
//! always labelled `tcg` with a note that it says nothing about KVM latency.
//! Readiness is the worker's `READY` line on the console.

pub mod cpio;
pub mod detect;
pub mod image;
pub mod qemu;
pub mod qmp;
mod sys;

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use detect::{detect_accel, detect_accel_with, Accel, AccelDecision, DetectOptions};
pub use image::{build_guest_image, GuestImage, ImageOptions, KernelFlavour};
pub use qemu::{Machine, VM_NAME_PREFIX};

use crate::deploy::{
    DeployError, Deployment, DeploymentKind, GrantedFacts, LinkKind, SchedPolicy, WorkerExit, WorkerHandle, WorkerSpec,
};

/// Where per-VM state (QMP and control sockets, QEMU's stderr, owner pid) lives.
pub const STATE_DIR: &str = "/run/cranlab/kvm";

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// What [`detect_accel`] decides.
    #[default]
    Auto,
    /// TCG even where KVM works.
    Tcg,
    /// Hardware KVM or fail (`Unavailable`).
    Kvm,
}

/// Settings of the kvm deployment.
#[derive(Debug, Clone)]
pub struct KvmOptions {
    /// Guest image (kernel flavour, cache directory, host tools).
    pub image: ImageOptions,
    /// Accelerator choice.
    pub accel: AccelChoice,
    /// Machine; `None`: microvm when this QEMU has it, else q35.
    pub machine: Option<Machine>,
    /// Per-VM state directory.
    pub state_dir: PathBuf,
    /// Detection settings.
    pub detect: DetectOptions,
    /// QEMU CPU model (`-cpu`); `None`: `host` under KVM, `max` under TCG.
    /// The default comes from the environment variable `CRANLAB_KVM_CPU`
    /// when set (e.g. `qemu64` to keep a TCG guest off emulated AVX).
    pub cpu_model: Option<String>,
}

impl Default for KvmOptions {
    fn default() -> Self {
        KvmOptions {
            image: ImageOptions::default(),
            accel: AccelChoice::Auto,
            machine: None,
            state_dir: STATE_DIR.into(),
            detect: DetectOptions::default(),
            cpu_model: std::env::var("CRANLAB_KVM_CPU").ok().filter(|s| !s.is_empty()),
        }
    }
}

/// Runs the worker in a QEMU guest.
#[derive(Debug, Clone, Default)]
pub struct KvmDeployment {
    opts: KvmOptions,
}

impl KvmDeployment {
    /// A kvm deployment with default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// A kvm deployment with `opts`.
    pub fn with_options(opts: KvmOptions) -> Self {
        KvmDeployment { opts }
    }

    /// The options.
    pub fn options(&self) -> &KvmOptions {
        &self.opts
    }

    fn decide(&self) -> Result<AccelDecision, DeployError> {
        let mut d = detect_accel_with(&self.opts.detect)?;
        match self.opts.accel {
            AccelChoice::Auto => {}
            AccelChoice::Tcg => {
                if d.accel == Accel::Kvm {
                    d.reasons = vec!["TCG was asked for although hardware KVM works here".into()];
                }
                d.accel = Accel::Tcg;
            }
            AccelChoice::Kvm => {
                if d.accel != Accel::Kvm {
                    return Err(DeployError::Unavailable { deployment: "kvm", reason: d.reasons.join("; ") });
                }
            }
        }
        Ok(d)
    }
}

/// Last `n` lines of a text, joined with ` | `.
pub(crate) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn step(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DeployError {
    let what = what.into();
    move |e| DeployError::step(what, e)
}

/// Host CPUs this process may use (the online set seen by the scheduler).
fn host_cpus() -> Vec<usize> {
    sys::get_affinity(0).unwrap_or_else(|_| (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect())
}

/// A line of the worker's own output announcing readiness (the init's own
/// lines are excluded).
pub fn is_ready_line(l: &str) -> bool {
    let t = l.trim_start();
    l.contains("READY") && !t.starts_with("cranlab-init:") && !t.starts_with("CRANLAB-")
}

/// What the guest init read back about the worker (`CRANLAB-GRANTED` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestGranted {
    /// `SCHED_FIFO:80`, `SCHED_OTHER`, …
    pub sched: String,
    /// Guest CPU list as the guest kernel prints it.
    pub cpus: String,
    /// Locked memory, kB.
    pub vmlck_kb: u64,
    /// The guest kernel's clocksource, where the init reported it.
    pub clocksource: Option<String>,
}

/// Parses `CRANLAB-GRANTED policy_prio=1:80 cpus=1 vmlck_kb=1234 clocksource=tsc`.
pub fn parse_granted(log: &str) -> Option<GuestGranted> {
    let l = log.lines().find_map(|l| l.trim().strip_prefix("CRANLAB-GRANTED "))?;
    let mut sched = None;
    let mut cpus = String::new();
    let mut vmlck_kb = 0;
    let mut clocksource = None;
    for kv in l.split_whitespace() {
        match kv.split_once('=')? {
            ("policy_prio", v) => {
                let (p, prio) = v.split_once(':')?;
                sched = Some(match p {
                    "0" => "SCHED_OTHER".to_string(),
                    "1" => format!("SCHED_FIFO:{prio}"),
                    "2" => format!("SCHED_RR:{prio}"),
                    "3" => "SCHED_BATCH".into(),
                    "5" => "SCHED_IDLE".into(),
                    o => format!("policy {o}"),
                });
            }
            ("cpus", v) => cpus = v.to_string(),
            ("vmlck_kb", v) => vmlck_kb = v.parse().unwrap_or(0),
            ("clocksource", v) if v != "unknown" => clocksource = Some(v.to_string()),
            _ => {}
        }
    }
    Some(GuestGranted { sched: sched?, cpus, vmlck_kb, clocksource })
}

/// The worker's exit code reported by the init (`CRANLAB-EXIT n`).
pub fn parse_exit(log: &str) -> Option<i32> {
    log.lines().rev().find_map(|l| l.trim().strip_prefix("CRANLAB-EXIT ")?.trim().parse().ok())
}

fn check_vm_name(name: &str) -> Result<(), DeployError> {
    let ok = name.starts_with(VM_NAME_PREFIX)
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DeployError::step(
            format!("check vm name {name:?}"),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "must start with cranlab- and use only [A-Za-z0-9_-], at most 64 chars"),
        ))
    }
}

impl Deployment for KvmDeployment {
    fn kind(&self) -> DeploymentKind {
        DeploymentKind::Kvm
    }

    fn link_kind(&self) -> LinkKind {
        LinkKind::Tap
    }

    fn launch(&self, spec: &WorkerSpec) -> Result<Box<dyn WorkerHandle>, DeployError> {
        check_vm_name(&spec.name)?;
        if spec.cpus.is_empty() {
            return Err(DeployError::step("choose worker cores", std::io::Error::other("WorkerSpec.cpus is empty")));
        }
        let decision = self.decide()?;
        let image = build_guest_image(&self.opts.image, Some(&spec.program))
            .map_err(|e| DeployError::step(format!("build guest image for {}", spec.program.display()), e))?;
        let machine = match self.opts.machine {
            Some(m) => m,
            None if qemu::has_microvm(&decision.qemu) => Machine::Microvm,
            None => Machine::Q35,
        };
        let mut notes = decision.notes();
        if machine == Machine::Q35 {
            notes.push(if self.opts.machine.is_some() {
                "the guest runs on q35 (asked for)".into()
            } else {
                "this QEMU has no microvm machine; the guest runs on q35".into()
            });
        }
        if let Some(m) = &self.opts.cpu_model {
            notes.push(format!("guest CPU model {m} (asked for)"));
        }
        let (vcpu_count, worker_vcpus, housekeeping_vcpus) = qemu::vcpu_layout(&spec.cpus);
        let hk_vcpus = housekeeping_vcpus.clone();
        let iface = spec.link.inner_name.clone();
        let args: Vec<String> = crate::bare::expand_args(&spec.args, &iface)
            .into_iter()
            .map(|a| {
                a.into_string()
                    .map_err(|a| DeployError::step("pass worker arguments to the guest", std::io::Error::other(format!("{a:?} is not utf-8"))))
            })
            .collect::<Result<_, _>>()?;
        let sched = match spec.sched {
            SchedPolicy::Fifo(p) => format!("fifo:{p}"),
            SchedPolicy::Other => "other".into(),
        };
        let tsc_khz = match decision.accel {
            Accel::Tcg => qemu::host_tsc_khz(&fs::read_to_string("/proc/cpuinfo").unwrap_or_default()),
            Accel::Kvm => None,
        };
        let features = &image.kernel.features;
        let append = qemu::GuestCmdline { worker_vcpus: worker_vcpus.clone(), housekeeping_vcpus: housekeeping_vcpus.clone(), sched: sched.clone(), ifname: iface.clone(), args, tsc_khz, probe: false, addr: spec.link.addr }
            .render(features)
            .map_err(|e| DeployError::step("build guest kernel command line", e))?;
        if !features.no_hz_full {
            notes.push(format!("guest kernel {} lacks CONFIG_NO_HZ_FULL: the worker vCPU keeps its tick", image.kernel.release));
        }
        if !features.rcu_nocb {
            notes.push(format!("guest kernel {} lacks CONFIG_RCU_NOCB_CPU: RCU callbacks run on the worker vCPU", image.kernel.release));
        }
        let vhost = decision.accel == Accel::Kvm && Path::new("/dev/vhost-net").exists();
        if !vhost {
            notes.push(if decision.accel == Accel::Kvm {
                "/dev/vhost-net missing: virtio-net is served by QEMU's main loop (modprobe vhost_net)".into()
            } else {
                "virtio-net is served by QEMU's main loop (no vhost under TCG)".into()
            });
        }

        let state = self.opts.state_dir.join(&spec.name);
        let _ = fs::remove_dir_all(&state);
        fs::create_dir_all(&state).map_err(step(format!("create vm state dir {}", state.display())))?;
        let mut guard = StateGuard { dir: state.clone(), armed: true };
        fs::write(state.join("owner"), std::process::id().to_string()).map_err(step("write vm owner file"))?;
        File::create(&spec.log).map_err(step(format!("create console log {}", spec.log.display())))?;
        let memory_mib = (spec.memory_bytes / (1 << 20)).max(128);
        let cfg = qemu::QemuConfig {
            name: spec.name.clone(),
            accel: decision.accel,
            machine,
            kernel: image.kernel.kernel.clone(),
            initramfs: image.initramfs.clone(),
            append,
            memory_mib,
            vcpus: vcpu_count,
            serial_log: spec.log.clone(),
            qmp_socket: state.join("qmp.sock"),
            ctl_socket: state.join("ctl.sock"),
            nic: Some(qemu::TapNic { ifname: spec.link.ifname.clone(), mac: spec.link.mac, vhost }),
            paused: true,
            cpu_model: self.opts.cpu_model.clone(),
        };
        fs::write(state.join("cmdline"), format!("{} {}\n", decision.qemu.display(), cfg.args().iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")))
            .map_err(step("write vm cmdline file"))?;
        let stderr = File::create(state.join("qemu.stderr")).map_err(step("create qemu stderr file"))?;
        let netns: Option<OwnedFd> = match &spec.link.netns {
            Some(ns) => Some(
                crate::net::open_netns(ns)
                    .map_err(|e| DeployError::step(format!("open network namespace {ns} for qemu"), e))?
                    .into(),
            ),
            None => None,
        };
        let mut cmd = Command::new(&decision.qemu);
        cmd.args(cfg.args()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(stderr));
        sys::prepare_child(&mut cmd, netns.as_ref().map(|f| f.as_raw_fd()));
        let started = Instant::now();
        let child = spawn_from_keeper(cmd).map_err(step(format!("start {}", decision.qemu.display())))?;
        drop(netns);
        let facts = GrantedFacts {
            deployment: "kvm".into(),
            virtualization: decision.label().into(),
            ..GrantedFacts::default()
        };
        guard.armed = false;
        if worker_vcpus != spec.cpus {
            notes.push(format!("the worker runs on guest vCPUs {worker_vcpus:?} (host cores {:?}): worker flags naming host cores mean other cores in the guest", spec.cpus));
        }
        let mut h = KvmHandle { child, state, log: spec.log.clone(), qmp: None, ctl: None, facts, done: None, name: spec.name.clone() };

        // Pin before the guest runs, then let it go.
        let pinned = match h.pin_and_start(spec, &worker_vcpus) {
            Ok(p) => p,
            Err(e) => {
                let detail = h.diagnostics();
                h.kill_now();
                return Err(DeployError::step(format!("start vm {}", spec.name), std::io::Error::other(format!("{e}; {detail}"))));
            }
        };
        notes.extend(pinned.notes);
        h.wait_ready(spec, started)?;
        h.facts.start_to_ready_ns = Some(started.elapsed().as_nanos() as u64);
        let (host_sched, sched_notes) = h.set_vcpu_sched(spec, &pinned.worker_tids);
        notes.extend(sched_notes);

        // What the guest kernel granted: asked for now that the worker has
        // set itself up (its own --fifo/--mlock come before its READY).
        let granted = h.ask_granted(Duration::from_secs(15));
        h.facts.cpus = pinned.host_cpus.clone();
        match granted {
            Some(g) => {
                h.facts.sched = g.sched.clone();
                h.facts.mlocked = g.vmlck_kb > 0;
                notes.push(format!(
                    "guest: worker {} on guest cpus {} (housekeeping vCPUs {:?}), VmLck {} kB, guest kernel {} {}",
                    g.sched,
                    g.cpus,
                    hk_vcpus,
                    g.vmlck_kb,
                    image.kernel.release,
                    if features.preempt_rt { "PREEMPT_RT" } else { "not PREEMPT_RT" }
                ));
                if let SchedPolicy::Fifo(p) = spec.sched {
                    if g.sched != format!("SCHED_FIFO:{p}") {
                        notes.push(format!("SCHED_FIFO:{p} was asked for the worker but the guest kernel reports {}", g.sched));
                    }
                }
                match g.clocksource.as_deref() {
                    Some(cs) if cs.contains("jiffies") => notes.push(format!(
                        "the guest's clocksource is {cs} (one tick of resolution): what the guest times itself (processing, wake-up, Ta4 margins) is coarse; the host-side turnaround is not"
                    )),
                    Some(cs) => notes.push(format!("guest clocksource {cs}")),
                    None => {}
                }
                if spec.mlock && g.vmlck_kb == 0 {
                    notes.push("mlockall was asked but the worker has no locked memory in the guest (VmLck 0)".into());
                }
            }
            None => {
                h.facts.sched = "unknown".into();
                notes.push("the guest init did not report the worker's scheduling (no CRANLAB-GRANTED line within 15 s)".into());
            }
        }
        if host_sched != h.facts.sched {
            notes.push(format!("the guest worker runs {} but its vCPU thread(s) on the host run {host_sched}", h.facts.sched));
        }
        h.facts.notes = notes;
        Ok(Box::new(h))
    }
}

/// Spawns `cmd` from one long-lived thread of this process.
///
/// QEMU is armed with `PR_SET_PDEATHSIG`, which fires when the *thread* that
/// forked it exits, not the process. Callers launch guests from short-lived
/// threads; forking from a thread that lives as long as the process makes
/// the signal mean "cranlab died".
pub(crate) fn spawn_from_keeper(cmd: Command) -> std::io::Result<Child> {
    use std::sync::mpsc;
    use std::sync::{Mutex, OnceLock};
    type Req = (Command, mpsc::Sender<std::io::Result<Child>>);
    static KEEPER: OnceLock<Option<Mutex<mpsc::Sender<Req>>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Req>();
        std::thread::Builder::new()
            .name("cranlab-qemu-keeper".into())
            .spawn(move || {
                // The sender lives in a static: this loop never ends.
                for (mut c, reply) in rx {
                    let _ = reply.send(c.spawn());
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let Some(keeper) = keeper else {
        // No thread could be made: spawn here (the death signal then follows this thread).
        let mut cmd = cmd;
        return cmd.spawn();
    };
    let tx = keeper.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (rtx, rrx) = mpsc::channel();
    tx.send((cmd, rtx)).map_err(|_| std::io::Error::other("qemu keeper thread is gone"))?;
    rrx.recv().map_err(|_| std::io::Error::other("qemu keeper thread is gone"))?
}

/// Removes a VM state directory unless disarmed.
struct StateGuard {
    dir: PathBuf,
    armed: bool,
}

impl Drop for StateGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

struct Pinned {
    host_cpus: Vec<usize>,
    worker_tids: Vec<(i32, usize)>,
    notes: Vec<String>,
}

/// A worker running in a guest started by [`KvmDeployment`].
#[derive(Debug)]
pub struct KvmHandle {
    child: Child,
    state: PathBuf,
    log: PathBuf,
    qmp: Option<qmp::Qmp>,
    ctl: Option<UnixStream>,
    facts: GrantedFacts,
    done: Option<WorkerExit>,
    name: String,
}

impl KvmHandle {
    fn pin_and_start(&mut self, spec: &WorkerSpec, worker_vcpus: &[usize]) -> Result<Pinned, String> {
        // QEMU creates its sockets at start-up; if it dies first (tap busy,
        // bad option), say so at once instead of waiting for a socket.
        let sock = self.state.join("qmp.sock");
        let t = Instant::now();
        while !sock.exists() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.done = Some(self.exit_from(st));
                return Err(format!("qemu exited ({st}) at start-up"));
            }
            if t.elapsed() > Duration::from_secs(15) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut q = qmp::Qmp::connect(&sock, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let vcpus = q.vcpu_threads().map_err(|e| e.to_string())?;
        let pid = self.child.id() as i32;
        let mut notes = Vec::new();
        let all = host_cpus();
        let mut housekeeping: Vec<usize> = all.iter().copied().filter(|c| !spec.cpus.contains(c)).collect();
        if housekeeping.is_empty() {
            notes.push("no host core left for housekeeping: QEMU's other threads share the worker cores".into());
            housekeeping = all.clone();
        }
        let worker_tids: Vec<(i32, usize)> = vcpus
            .iter()
            .filter_map(|v| {
                let i = worker_vcpus.iter().position(|w| *w == v.cpu_index)?;
                Some((v.thread_id, spec.cpus[i]))
            })
            .collect();
        if worker_tids.len() != spec.cpus.len() {
            return Err(format!("query-cpus-fast reported vCPUs {:?}, the worker's are {worker_vcpus:?}", vcpus.iter().map(|v| v.cpu_index).collect::<Vec<_>>()));
        }
        // Every other thread of QEMU (main loop, vCPU 0, I/O, RCU) to the housekeeping cores.
        for t in fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| format!("list qemu threads: {e}"))? {
            let Some(tid) = t.ok().and_then(|t| t.file_name().to_str()?.parse::<i32>().ok()) else { continue };
            if worker_tids.iter().any(|(w, _)| *w == tid) {
                continue;
            }
            if let Err(e) = sys::set_affinity(tid, &housekeeping) {
                notes.push(format!("pin qemu thread {tid} to cores {housekeeping:?}: {e}"));
            }
        }
        let mut host_cpus = Vec::new();
        for (tid, core) in &worker_tids {
            sys::set_affinity(*tid, &[*core]).map_err(|e| format!("pin vCPU thread {tid} to core {core}: {e}"))?;
            host_cpus.extend(sys::get_affinity(*tid).unwrap_or_default());
        }
        host_cpus.sort_unstable();
        host_cpus.dedup();
        // Held open for the guest's whole life: the guest's reads on its
        // control port see EOF while nobody is connected.
        self.ctl = UnixStream::connect(self.state.join("ctl.sock")).ok();
        q.execute("cont", None).map_err(|e| e.to_string())?;
        self.qmp = Some(q);
        Ok(Pinned { host_cpus, worker_tids, notes })
    }

    /// Gives the worker vCPU threads the worker's policy (after boot: a
    /// booting guest needs no real-time priority, and a busy real-time thread
    /// of someone else on that core would otherwise stall the boot at SMP
    /// bring-up). Returns the policies read back and notes.
    fn set_vcpu_sched(&self, spec: &WorkerSpec, worker_tids: &[(i32, usize)]) -> (String, Vec<String>) {
        let prio = match spec.sched {
            SchedPolicy::Fifo(p) => Some(i32::from(p)),
            SchedPolicy::Other => None,
        };
        let mut notes = Vec::new();
        let mut scheds = Vec::new();
        for (tid, _) in worker_tids {
            if let Err(e) = sys::set_sched(*tid, prio) {
                notes.push(format!("set {} on vCPU thread {tid}: {e}", prio.map_or("SCHED_OTHER".into(), |p| format!("SCHED_FIFO:{p}"))));
            }
            let aff = sys::get_affinity(*tid).unwrap_or_default();
            let s = sys::read_sched(*tid);
            notes.push(format!("host: worker vCPU thread {tid} on cores {aff:?}, {s}"));
            scheds.push(s);
        }
        scheds.dedup();
        (scheds.join(","), notes)
    }

    /// Asks the init for its `CRANLAB-GRANTED` line and waits for it.
    fn ask_granted(&mut self, timeout: Duration) -> Option<GuestGranted> {
        let s = self.ctl.as_mut()?;
        s.write_all(b"granted\n").ok()?;
        let t = Instant::now();
        loop {
            if let Some(g) = parse_granted(&fs::read_to_string(&self.log).unwrap_or_default()) {
                return Some(g);
            }
            if t.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_ready(&mut self, spec: &WorkerSpec, started: Instant) -> Result<(), DeployError> {
        loop {
            let seen = fs::read_to_string(&self.log).unwrap_or_default();
            if seen.lines().any(is_ready_line) {
                return Ok(());
            }
            match self.try_wait()? {
                WorkerExit::Running => {}
                exit => {
                    let detail = format!("guest ended ({exit:?}) before READY: {}", self.diagnostics());
                    self.cleanup();
                    return Err(DeployError::NotReady { name: spec.name.clone(), waited: started.elapsed(), detail });
                }
            }
            if started.elapsed() > spec.ready_timeout {
                let detail = format!("no READY line on the console: {}", self.diagnostics());
                self.kill_now();
                return Err(DeployError::NotReady { name: spec.name.clone(), waited: started.elapsed(), detail });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn diagnostics(&self) -> String {
        let console = fs::read_to_string(&self.log).unwrap_or_default();
        let err = fs::read_to_string(self.state.join("qemu.stderr")).unwrap_or_default();
        format!("console: {}; qemu: {}", tail(&console, 6), tail(&err, 3))
    }

    fn kill_now(&mut self) {
        if self.done.is_none() {
            let _ = self.child.kill();
            if let Ok(st) = self.child.wait() {
                self.done = Some(self.exit_from(st));
            }
        }
        self.cleanup();
    }

    fn exit_from(&self, st: std::process::ExitStatus) -> WorkerExit {
        if let Some(code) = parse_exit(&fs::read_to_string(&self.log).unwrap_or_default()) {
            return WorkerExit::Exited(code);
        }
        crate::bare::exit_of(st)
    }

    fn cleanup(&mut self) {
        self.qmp = None;
        self.ctl = None;
        let _ = fs::remove_dir_all(&self.state);
    }

    fn wait_exit(&mut self, d: Duration) -> Result<Option<WorkerExit>, DeployError> {
        let t = Instant::now();
        loop {
            match self.try_wait()? {
                WorkerExit::Running if t.elapsed() < d => std::thread::sleep(Duration::from_millis(20)),
                WorkerExit::Running => return Ok(None),
                e => return Ok(Some(e)),
            }
        }
    }

    /// The VM name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl WorkerHandle for KvmHandle {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn facts(&self) -> &GrantedFacts {
        &self.facts
    }

    fn try_wait(&mut self) -> Result<WorkerExit, DeployError> {
        if let Some(e) = &self.done {
            return Ok(e.clone());
        }
        match self.child.try_wait().map_err(step(format!("wait for qemu of {}", self.name)))? {
            None => Ok(WorkerExit::Running),
            Some(st) => {
                let e = self.exit_from(st);
                self.done = Some(e.clone());
                self.cleanup();
                Ok(e)
            }
        }
    }

    fn stop(&mut self, grace: Duration) -> Result<WorkerExit, DeployError> {
        if let Some(e) = &self.done {
            return Ok(e.clone());
        }
        // 1. SIGTERM to the worker through the control port; the init powers off after it.
        if self.ctl.is_none() {
            self.ctl = UnixStream::connect(self.state.join("ctl.sock")).ok();
        }
        if let Some(s) = self.ctl.as_mut() {
            let _ = s.write_all(b"stop\n");
        }
        if let Some(e) = self.wait_exit(grace)? {
            return Ok(e);
        }
        // 2. QMP quit.
        if let Some(q) = self.qmp.as_mut() {
            let _ = q.execute("quit", None);
        }
        if let Some(e) = self.wait_exit(Duration::from_secs(2))? {
            return Ok(e);
        }
        // 3. SIGKILL.
        let _ = sys::kill(self.child.id() as i32, libc::SIGKILL);
        let st = self.child.wait().map_err(step(format!("reap qemu of {}", self.name)))?;
        let e = self.exit_from(st);
        self.done = Some(e.clone());
        self.cleanup();
        Ok(e)
    }

    /// QEMU's own migration to a file (`migrate` to `exec:cat > FILE`): the
    /// guest's whole RAM and device state, restorable with `-incoming`. The
    /// guest pauses while it is written and runs on afterwards.
    fn snapshot(&mut self, dir: &Path) -> Result<crate::deploy::Snapshot, DeployError> {
        fs::create_dir_all(dir).map_err(step(format!("create {}", dir.display())))?;
        let file = dir.join(format!("{}.migration", self.name));
        let q = self.qmp.as_mut().ok_or_else(|| DeployError::step(format!("snapshot {}", self.name), QmpMissing))?;
        let qerr = |what: &str, e: qmp::QmpError| DeployError::step(format!("snapshot {}: {what}", self.name), e);
        // `exec:` works on every QEMU (the `file:` protocol needs 8.2; Debian 12 has 7.2).
        let quoted = file.display().to_string().replace('\'', "'\\''");
        let uri = format!("exec:cat > '{quoted}'");
        q.execute("migrate", Some(serde_json::json!({ "uri": uri }))).map_err(|e| qerr("migrate", e))?;
        let t = Instant::now();
        loop {
            let st = q.execute("query-migrate", None).map_err(|e| qerr("query-migrate", e))?;
            match st.get("status").and_then(|v| v.as_str()).unwrap_or("") {
                "completed" => break,
                "failed" | "cancelled" => {
                    return Err(DeployError::step(format!("snapshot {}", self.name), QmpStatus(st.to_string())));
                }
                _ if t.elapsed() > Duration::from_secs(120) => {
                    return Err(DeployError::step(format!("snapshot {}", self.name), QmpStatus("not completed after 120 s".into())));
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        // Migration leaves the source paused (postmigrate); the guest goes on.
        q.execute("cont", None).map_err(|e| qerr("cont", e))?;
        let bytes = fs::metadata(&file).map_err(step(format!("stat {}", file.display())))?.len();
        Ok(crate::deploy::Snapshot {
            files: vec![file],
            bytes,
            what: "QEMU migration stream to a file (RAM and device state; restorable with -incoming)".into(),
        })
    }
}

/// The QMP connection is gone (the guest ended or was never pinned).
#[derive(Debug, thiserror::Error)]
#[error("no qmp connection")]
struct QmpMissing;

/// A migration that did not complete.
#[derive(Debug, thiserror::Error)]
#[error("migration status {0}")]
struct QmpStatus(String);

impl Drop for KvmHandle {
    fn drop(&mut self) {
        if self.done.is_none() {
            if let Some(q) = self.qmp.as_mut() {
                let _ = q.execute("quit", None);
            }
            if !matches!(self.wait_exit(Duration::from_millis(500)), Ok(Some(_))) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        self.cleanup();
    }
}

/// A cranlab QEMU found in /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CranlabVm {
    /// QEMU's pid.
    pub pid: i32,
    /// Its `-name` (without `,debug-threads=…`).
    pub name: String,
    /// Its parent pid.
    pub ppid: i32,
}

/// The VM name of a QEMU command line (NUL-separated, as in /proc/PID/cmdline)
/// when it is a cranlab one.
pub fn cranlab_vm_name(cmdline: &[u8]) -> Option<String> {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let prog = String::from_utf8_lossy(args.first()?);
    if !prog.rsplit('/').next()?.starts_with("qemu-system") {
        return None;
    }
    let i = args.iter().position(|a| *a == b"-name")?;
    let v = String::from_utf8_lossy(args.get(i + 1)?);
    let name = v.split(',').next()?.strip_prefix("guest=").map(str::to_string).unwrap_or_else(|| v.split(',').next().unwrap_or("").to_string());
    name.starts_with(VM_NAME_PREFIX).then_some(name)
}

/// Lists running cranlab QEMUs (`-name cranlab-…`) under `proc_root`.
pub fn list_vms(proc_root: &Path) -> Vec<CranlabVm> {
    let Ok(d) = fs::read_dir(proc_root) else { return Vec::new() };
    d.filter_map(|e| {
        let e = e.ok()?;
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let name = cranlab_vm_name(&fs::read(e.path().join("cmdline")).ok()?)?;
        let stat = fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        Some(CranlabVm { pid, name, ppid })
    })
    .collect()
}

fn pid_alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes what killed runs left: cranlab QEMUs whose owner is gone (all of
/// them with `all`) are killed, and their state directories under
/// [`STATE_DIR`] removed. Returns one line per thing removed.
pub fn sweep(all: bool) -> Result<Vec<String>, DeployError> {
    sweep_in(Path::new("/proc"), Path::new(STATE_DIR), all)
}

/// [`sweep`] with explicit roots.
pub fn sweep_in(proc_root: &Path, state_dir: &Path, all: bool) -> Result<Vec<String>, DeployError> {
    let me = std::process::id() as i32;
    let owner_of = |name: &str| -> Option<i32> { fs::read_to_string(state_dir.join(name).join("owner")).ok()?.trim().parse().ok() };
    let mut done = Vec::new();
    for vm in list_vms(proc_root) {
        let owner = owner_of(&vm.name).unwrap_or(vm.ppid);
        let orphan = owner != me && (!pid_alive(owner) || vm.ppid == 1);
        if !(all || orphan) {
            continue;
        }
        if sys::kill(vm.pid, libc::SIGKILL).map_err(step(format!("kill qemu {} ({})", vm.pid, vm.name)))? {
            let t = Instant::now();
            while pid_alive(vm.pid) && t.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(10));
            }
            done.push(format!("killed qemu {} ({})", vm.pid, vm.name));
        }
        if fs::remove_dir_all(state_dir.join(&vm.name)).is_ok() {
            done.push(format!("removed {}", state_dir.join(&vm.name).display()));
        }
    }
    if let Ok(d) = fs::read_dir(state_dir) {
        for e in d.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(VM_NAME_PREFIX) {
                continue;
            }
            let owner = owner_of(&name);
            let stale = all || owner.is_none_or(|o| o != me && !pid_alive(o));
            if stale && fs::remove_dir_all(e.path()).is_ok() {
                done.push(format!("removed {}", e.path().display()));
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines_are_the_workers_not_the_inits() {
        assert!(is_ready_line("READY iface=fh0"));
        assert!(is_ready_line("[bbu-sim] READY"));
        assert!(!is_ready_line("cranlab-init: starting worker"));
        assert!(!is_ready_line("CRANLAB-PROBE-OK"));
        assert!(!is_ready_line("[    1.2] virtio_net virtio0 eth0: renamed"));
    }

    #[test]
    fn granted_and_exit_lines_are_parsed() {
        let log = "x\nCRANLAB-GRANTED policy_prio=1:80 cpus=1 vmlck_kb=2048\nSUMMARY {}\nCRANLAB-EXIT 3\n";
        assert_eq!(parse_granted(log), Some(GuestGranted { sched: "SCHED_FIFO:80".into(), cpus: "1".into(), vmlck_kb: 2048, clocksource: None }));
        let g = parse_granted("CRANLAB-GRANTED policy_prio=1:80 cpus=1 vmlck_kb=0 clocksource=refined-jiffies").unwrap();
        assert_eq!(g.clocksource.as_deref(), Some("refined-jiffies"));
        assert_eq!(parse_granted("CRANLAB-GRANTED policy_prio=1:80 cpus=1 vmlck_kb=0 clocksource=unknown").unwrap().clocksource, None);
        assert_eq!(parse_granted("CRANLAB-GRANTED policy_prio=0:0 cpus=1 vmlck_kb=0").unwrap().sched, "SCHED_OTHER");
        assert_eq!(parse_granted("nothing"), None);
        assert_eq!(parse_exit(log), Some(3));
        assert_eq!(parse_exit("CRANLAB-EXIT x"), None);
    }

    #[test]
    fn cranlab_qemus_are_recognised_by_name() {
        let c = b"/usr/bin/qemu-system-x86_64\0-name\0cranlab-w0,debug-threads=on\0-M\0microvm\0";
        assert_eq!(cranlab_vm_name(c).as_deref(), Some("cranlab-w0"));
        assert_eq!(cranlab_vm_name(b"qemu-system-x86_64\0-name\0guest=cranlab-x,debug-threads=on\0").as_deref(), Some("cranlab-x"));
        assert_eq!(cranlab_vm_name(b"/usr/bin/qemu-system-x86_64\0-name\0other\0"), None);
        assert_eq!(cranlab_vm_name(b"/bin/sleep\0-name\0cranlab-w0\0"), None);
        assert_eq!(cranlab_vm_name(b"/usr/bin/qemu-system-x86_64\0-M\0q35\0"), None);
    }

    #[test]
    fn vm_names_are_checked() {
        assert!(check_vm_name("cranlab-w0").is_ok());
        assert!(check_vm_name("w0").is_err());
        assert!(check_vm_name("cranlab-../x").is_err());
    }

    #[test]
    fn sweep_removes_stale_state_dirs_only() {
        let d = std::env::temp_dir().join(format!("cranlab-kvm-sweep-{}", std::process::id()));
        let proc_root = d.join("proc");
        fs::create_dir_all(&proc_root).unwrap();
        let st = d.join("state");
        for (n, owner) in [("cranlab-dead", "999999999"), ("cranlab-live", &std::process::id().to_string()), ("cranlab-noowner", "")] {
            fs::create_dir_all(st.join(n)).unwrap();
            if !owner.is_empty() {
                fs::write(st.join(n).join("owner"), owner).unwrap();
            }
        }
        fs::create_dir_all(st.join("other")).unwrap();
        let done = sweep_in(&proc_root, &st, false).unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(!st.join("cranlab-dead").exists() && !st.join("cranlab-noowner").exists());
        assert!(st.join("cranlab-live").exists() && st.join("other").exists());
        sweep_in(&proc_root, &st, true).unwrap();
        assert!(!st.join("cranlab-live").exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
