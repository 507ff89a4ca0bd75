//! The platforms of the whitepaper table: bare processes and container
//! runtimes started as processes (`rt-runtime run`, `crun run`, `runc run` on
//! one bundle), and QEMU guests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rt_runtime::net::IfAddr;

use super::{Instance, Kind, Platform, Stop, WpError};

/// A child process whose stdout lines are read on a thread.
pub struct ProcessInstance {
    what: String,
    stop: Stop,
    stderr_log: Option<PathBuf>,
    bundle: Option<PathBuf>,
    make: Box<dyn Fn() -> Command + Send>,
    cleanup: Box<dyn Fn() + Send>,
    child: Option<Child>,
    lines: Option<Receiver<String>>,
}

impl ProcessInstance {
    /// Starts `make()`; `cleanup` runs after the process has ended (e.g.
    /// `crun delete -f ID`).
    pub fn start(what: String, stop: Stop, make: Box<dyn Fn() -> Command + Send>, cleanup: Box<dyn Fn() + Send>) -> Result<ProcessInstance, WpError> {
        Self::start_with(what, stop, None, None, make, cleanup)
    }

    /// Like [`ProcessInstance::start`], with stderr kept in `stderr_log` (its
    /// last line explains an early exit) and `bundle` as the snapshot source.
    pub fn start_with(
        what: String,
        stop: Stop,
        stderr_log: Option<PathBuf>,
        bundle: Option<PathBuf>,
        make: Box<dyn Fn() -> Command + Send>,
        cleanup: Box<dyn Fn() + Send>,
    ) -> Result<ProcessInstance, WpError> {
        let mut p = ProcessInstance {
            what,
            stop,
            stderr_log,
            bundle,
            make,
            cleanup,
            child: None,
            lines: None,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<(), WpError> {
        let mut cmd = (self.make)();
        let stderr = match &self.stderr_log {
            Some(p) => std::fs::File::create(p).map(Stdio::from).unwrap_or_else(|_| Stdio::null()),
            None => Stdio::null(),
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = cmd.spawn().map_err(|e| WpError::step(format!("start {}", self.what), e))?;
        let out = child.stdout.take().ok_or_else(|| WpError::step(format!("start {}", self.what), "no stdout pipe"))?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        self.lines = Some(rx);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM first so a runtime in the foreground forwards it and
            // removes its container; then make sure.
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.lines = None;
        (self.cleanup)();
    }
}

impl Instance for ProcessInstance {
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, WpError> {
        let rx = self.lines.as_ref().ok_or_else(|| WpError::step(format!("wait for {prefix} from {}", self.what), "not running"))?;
        let deadline = Instant::now() + timeout;
        loop {
            if self.stop.requested() {
                return Err(WpError::Interrupted);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) if left.is_zero() => {
                    return Err(WpError::step(format!("wait for {prefix} from {}", self.what), format!("nothing after {timeout:?}")))
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    let why = self
                        .stderr_log
                        .as_ref()
                        .and_then(|p| std::fs::read_to_string(p).ok())
                        .map(|s| s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").to_string())
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "no error output".into());
                    return Err(WpError::step(format!("wait for {prefix} from {}", self.what), format!("it exited first: {why}")));
                }
            }
        }
    }

    fn reboot(&mut self) -> Result<(), WpError> {
        self.kill();
        self.spawn()
    }

    fn snapshot(&mut self, dir: &Path) -> Result<(u64, String), WpError> {
        let bundle = self.bundle.as_ref().ok_or_else(|| WpError::step(format!("snapshot {}", self.what), "this platform has no snapshot"))?;
        let bytes = copy_tree(bundle, &dir.join("bundle")).map_err(|e| WpError::step(format!("snapshot {} to {}", self.what, dir.display()), e))?;
        Ok((bytes, "copy of the bundle (config.json + rootfs); no process state (CRIU not used)".into()))
    }

    fn stop(&mut self) {
        self.kill();
    }

    fn root_pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }
}

impl Drop for ProcessInstance {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
    }
}

/// Copies a directory tree (files, directories, symlinks); returns the bytes copied.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut bytes = 0;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type()?;
        if t.is_dir() {
            bytes += copy_tree(&src, &dst)?;
        } else if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if t.is_file() {
            bytes += std::fs::copy(&src, &dst)?;
        }
    }
    Ok(bytes)
}

/// The workload as a plain host process.
pub struct Bare {
    /// Path of `cranlab-workload`.
    pub workload: PathBuf,
    /// Set when the run is interrupted.
    pub stop: Stop,
}

impl Bare {
    fn process(&self, what: String, netns: Option<String>, args: &[&str]) -> Result<ProcessInstance, WpError> {
        let bin = self.workload.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        ProcessInstance::start(
            what,
            self.stop.clone(),
            Box::new(move || match &netns {
                // `ip netns exec` enters the namespace and execs: same pid.
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns]).arg(&bin).args(&args);
                    c
                }
                None => {
                    let mut c = Command::new(&bin);
                    c.args(&args);
                    c
                }
            }),
            Box::new(|| {}),
        )
    }
}

impl Platform for Bare {
    fn name(&self) -> String {
        "bare".into()
    }
    fn kind(&self) -> Kind {
        Kind::Bare
    }
    fn start(&self, id: usize, args: &[&str]) -> Result<Box<dyn Instance>, WpError> {
        Ok(Box::new(self.process(format!("bare workload {id}"), None, args)?))
    }
    fn start_networked(&self, id: usize, args: &[&str]) -> Result<(Box<dyn Instance>, NetPath), WpError> {
        let (path, server_ns) = NetPath::veth(&self.workload, &self.stop)?;
        let inst = self.process(format!("bare workload {id} in {server_ns}"), Some(server_ns), args)?;
        Ok((Box::new(inst), path))
    }
}

/// The client's side of a network path to a workload server: a namespace
/// on the far end of the server's veth pair or tap, and the server's address.
/// Dropping it removes the namespaces and links it made.
pub struct NetPath {
    /// Namespace the client runs in.
    pub client_netns: String,
    /// The server's address.
    pub server: std::net::Ipv4Addr,
    /// What the path is, for the table's notes.
    pub what: String,
    workload: PathBuf,
    stop: Stop,
    // Field order is drop order: links before namespaces.
    _link: Option<rt_runtime::net::FronthaulLink>,
    _netns: Vec<rt_runtime::net::Netns>,
}

/// Client end of every whitepaper network path (a /30 inside cranlab's own
/// namespaces, so it cannot meet the host's addresses).
pub const CLIENT_ADDR: IfAddr = IfAddr { ip: std::net::Ipv4Addr::new(10, 213, 0, 1), prefix: 30 };
/// The server's end.
pub const SERVER_ADDR: IfAddr = IfAddr { ip: std::net::Ipv4Addr::new(10, 213, 0, 2), prefix: 30 };

impl NetPath {
    /// Two namespaces joined by a veth pair, addressed; returns the path and
    /// the server's namespace (for a bare process or a container to join).
    pub fn veth(workload: &Path, stop: &Stop) -> Result<(NetPath, String), WpError> {
        use rt_runtime::net;
        let step = |what: &str| {
            let what = what.to_string();
            move |e: net::NetError| WpError::step(format!("network path: {what}"), e)
        };
        let client = net::Netns::create(&net::owned_netns_name("wpc")).map_err(step("create the client's namespace"))?;
        let server = net::Netns::create(&net::owned_netns_name("wps")).map_err(step("create the server's namespace"))?;
        let link = net::veth_pair(&net::short_tag(), client.name(), server.name(), 1500).map_err(step("create the veth pair"))?;
        net::add_addr(Some(client.name()), link.rrh.name(), CLIENT_ADDR).map_err(step("address the client's end"))?;
        let w = link.worker.as_ref().map(|l| l.name().to_string()).unwrap_or_default();
        net::add_addr(Some(server.name()), &w, SERVER_ADDR).map_err(step("address the server's end"))?;
        let server_ns = server.name().to_string();
        let path = NetPath {
            client_netns: client.name().to_string(),
            server: SERVER_ADDR.ip,
            what: "veth pair between two network namespaces".into(),
            workload: workload.to_path_buf(),
            stop: stop.clone(),
            _link: Some(link),
            _netns: vec![client, server],
        };
        Ok((path, server_ns))
    }

    /// Runs `cranlab-workload ARGS` in the client's namespace until its
    /// `RESULT` line.
    pub fn run_client(&self, args: &[&str], timeout: Duration) -> Result<crate::workload::WorkloadResult, WpError> {
        let client = Bare { workload: self.workload.clone(), stop: self.stop.clone() };
        let mut inst = client.process(format!("network client in {}", self.client_netns), Some(self.client_netns.clone()), args)?;
        let r = super::result_of(&mut inst, "network client", timeout);
        inst.stop();
        r
    }
}

/// A container runtime started as a foreground process on one bundle per
/// workload: `rt-runtime run --bundle B ID`, `crun run -b B ID`, `runc run -b B ID`.
pub struct ContainerRuntime {
    /// Name in the table (`rt-runtime`, `crun`, `runc`).
    pub name: String,
    /// The runtime binary.
    pub binary: PathBuf,
    /// Path of `cranlab-workload` on the host (copied into each bundle).
    pub workload: PathBuf,
    /// Where bundles are built.
    pub bundles: PathBuf,
    /// Set when the run is interrupted.
    pub stop: Stop,
}

impl ContainerRuntime {
    fn bundle_for(&self, args: &[&str], netns: Option<&str>) -> Result<PathBuf, WpError> {
        let mut key = args.join("-").replace(['/', ' '], "_");
        if let Some(ns) = netns {
            key = format!("{key}-in-{ns}");
        }
        let dir = self.bundles.join(key);
        if dir.join("config.json").exists() {
            return Ok(dir);
        }
        let mut spec = rt_runtime::container::bundle::BundleSpec::worker(&self.workload, args.iter().map(|s| s.to_string()).collect());
        // The whitepaper compares lifecycle costs, not real-time behaviour: a
        // plain SCHED_OTHER process, so every runtime can run the bundle.
        spec.sched = rt_runtime::deploy::SchedPolicy::Other;
        spec.memory_bytes = Some(512 << 20);
        spec.hostname = "cranlab-wp".into();
        spec.netns_path = netns.map(rt_runtime::net::netns_path);
        rt_runtime::container::bundle::build_bundle(&dir, &spec).map_err(|e| WpError::step(format!("build bundle {}", dir.display()), e))?;
        Ok(dir)
    }
}

impl Platform for ContainerRuntime {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn kind(&self) -> Kind {
        Kind::Container
    }
    fn start(&self, id: usize, args: &[&str]) -> Result<Box<dyn Instance>, WpError> {
        Ok(Box::new(self.start_in(id, args, None)?))
    }
    fn start_networked(&self, id: usize, args: &[&str]) -> Result<(Box<dyn Instance>, NetPath), WpError> {
        let (mut path, server_ns) = NetPath::veth(&self.workload, &self.stop)?;
        let inst = self.start_in(id, args, Some(&server_ns))?;
        path.what = format!("veth pair, server in a {} container joined to the far namespace", self.name);
        Ok((Box::new(inst), path))
    }
}

impl ContainerRuntime {
    fn start_in(&self, id: usize, args: &[&str], netns: Option<&str>) -> Result<ProcessInstance, WpError> {
        let bundle = self.bundle_for(args, netns)?;
        let cid = format!("cranlab-wp-{}-{id}", self.name);
        let (bin, bin2) = (self.binary.clone(), self.binary.clone());
        let (c1, c2) = (cid.clone(), cid.clone());
        let rt = self.name == "rt-runtime";
        // A killed earlier run may have left the id behind.
        let _ = Command::new(&self.binary).args(if rt { vec!["delete", &cid] } else { vec!["delete", "-f", &cid] }).stderr(Stdio::null()).status();
        let inst = ProcessInstance::start_with(
            format!("{} container {cid}", self.name),
            self.stop.clone(),
            Some(self.bundles.join(format!("{cid}.stderr"))),
            Some(bundle.clone()),
            Box::new(move || {
                let mut c = Command::new(&bin);
                c.arg("run").arg(if rt { "--bundle" } else { "-b" }).arg(&bundle).arg(&c1);
                c
            }),
            Box::new(move || {
                let mut c = Command::new(&bin2);
                if rt {
                    c.args(["delete", &c2]);
                } else {
                    c.args(["delete", "-f", &c2]);
                }
                let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
            }),
        )?;
        Ok(inst)
    }
}

/// The workload in QEMU guests started by the kvm deployment (hardware KVM
/// where the host has it, TCG labelled as such otherwise), each with a tap of
/// its own in one cranlab network namespace.
pub struct Vm {
    /// The deployment (its detection decides kvm or tcg).
    pub deployment: std::sync::Arc<rt_runtime::kvm::KvmDeployment>,
    /// Path of `cranlab-workload` on the host.
    pub workload: PathBuf,
    /// Namespace holding the taps.
    pub netns: std::sync::Arc<rt_runtime::net::Netns>,
    /// Logs and state.
    pub work_dir: PathBuf,
    /// Guest RAM, bytes.
    pub memory_bytes: u64,
    /// Label: `qemu-kvm` or `qemu-tcg`.
    pub label: String,
    /// Set when the run is interrupted.
    pub stop: Stop,
}

type Launch = std::thread::JoinHandle<Result<Box<dyn rt_runtime::deploy::WorkerHandle>, WpError>>;

/// One guest.
pub struct VmInstance {
    spec: rt_runtime::deploy::WorkerSpec,
    deployment: std::sync::Arc<rt_runtime::kvm::KvmDeployment>,
    pending: Option<Launch>,
    handle: Option<Box<dyn rt_runtime::deploy::WorkerHandle>>,
    /// The guest's tap (removed on drop).
    tap: rt_runtime::net::FronthaulLink,
    seen: usize,
    stop: Stop,
}

impl VmInstance {
    fn launch(&mut self) {
        let (d, spec) = (self.deployment.clone(), self.spec.clone());
        let _ = std::fs::remove_file(&spec.log);
        self.seen = 0;
        self.pending = Some(std::thread::spawn(move || {
            use rt_runtime::deploy::Deployment as _;
            d.launch(&spec).map_err(|e| WpError::step(format!("boot guest {}", spec.name), e))
        }));
    }
}

impl Instance for VmInstance {
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, WpError> {
        if let Some(p) = self.pending.take() {
            while !p.is_finished() {
                if self.stop.requested() {
                    self.pending = Some(p);
                    return Err(WpError::Interrupted);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let h = p.join().map_err(|_| WpError::step(format!("boot guest {}", self.spec.name), "launch thread panicked"))??;
            self.handle = Some(h);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if self.stop.requested() {
                return Err(WpError::Interrupted);
            }
            let text = std::fs::read_to_string(&self.spec.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate().skip(self.seen) {
                if let Some(pos) = l.find(prefix) {
                    // The worker's lines may be preceded by console noise.
                    self.seen = i + 1;
                    return Ok(l[pos..].to_string());
                }
                if l.starts_with("CRANLAB-EXIT") {
                    // The guest's init reports the workload's exit status; say
                    // why with the last kernel message before it.
                    let why = lines[..i].iter().rev().find(|x| x.contains("Out of memory") || x.contains("Killed")).copied().unwrap_or("");
                    return Err(WpError::step(
                        format!("wait for {prefix} from guest {}", self.spec.name),
                        format!("the workload ended first ({}){}{}", l.trim(), if why.is_empty() { "" } else { ": " }, why.trim()),
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err(WpError::step(format!("wait for {prefix} from guest {}", self.spec.name), format!("nothing after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn reboot(&mut self) -> Result<(), WpError> {
        self.stop();
        self.launch();
        Ok(())
    }

    fn snapshot(&mut self, dir: &Path) -> Result<(u64, String), WpError> {
        let name = self.spec.name.clone();
        let h = self.handle.as_mut().ok_or_else(|| WpError::step(format!("snapshot guest {name}"), "not running"))?;
        let s = h.snapshot(dir).map_err(|e| WpError::step(format!("snapshot guest {name}"), e))?;
        Ok((s.bytes, s.what))
    }

    fn stop(&mut self) {
        if let Some(p) = self.pending.take() {
            // Interrupted while the guest boots: end its QEMU so the launch
            // returns now instead of at its ready timeout.
            while self.stop.requested() && !p.is_finished() {
                let me = std::process::id() as i32;
                for vm in rt_runtime::kvm::list_vms(Path::new("/proc")) {
                    if vm.name == self.spec.name && vm.ppid == me {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(vm.pid), nix::sys::signal::Signal::SIGTERM);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(Ok(h)) = p.join() {
                self.handle = Some(h);
            }
        }
        if let Some(mut h) = self.handle.take() {
            let _ = h.stop(Duration::from_secs(2));
        }
    }

    fn root_pid(&self) -> Option<i32> {
        self.qemu_pid()
    }
}

impl VmInstance {
    fn qemu_pid(&self) -> Option<i32> {
        self.handle.as_ref().map(|h| h.pid())
    }
}

impl Drop for VmInstance {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Platform for Vm {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn kind(&self) -> Kind {
        Kind::Vm
    }
    fn start(&self, id: usize, args: &[&str]) -> Result<Box<dyn Instance>, WpError> {
        Ok(Box::new(self.start_with(id, args, None)?))
    }
    fn start_networked(&self, id: usize, args: &[&str]) -> Result<(Box<dyn Instance>, NetPath), WpError> {
        let inst = self.start_with(id, args, Some(SERVER_ADDR))?;
        let tap = inst.tap.rrh.name().to_string();
        rt_runtime::net::add_addr(Some(self.netns.name()), &tap, CLIENT_ADDR)
            .map_err(|e| WpError::step(format!("network path: address tap {tap}"), e))?;
        let path = NetPath {
            client_netns: self.netns.name().to_string(),
            server: SERVER_ADDR.ip,
            what: format!("tap {tap} to the guest's virtio-net"),
            workload: self.workload.clone(),
            stop: self.stop.clone(),
            _link: None,
            _netns: Vec::new(),
        };
        Ok((Box::new(inst), path))
    }
}

impl Vm {
    fn start_with(&self, id: usize, args: &[&str], guest_addr: Option<IfAddr>) -> Result<VmInstance, WpError> {
        std::fs::create_dir_all(&self.work_dir).map_err(|e| WpError::step(format!("create {}", self.work_dir.display()), e))?;
        let tag = format!("wp{id}");
        let tap = rt_runtime::net::tap(&tag, self.netns.name(), 1500).map_err(|e| WpError::step(format!("create tap for guest {id}"), e))?;
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let name = format!("cranlab-wp-vm-{id}");
        let spec = rt_runtime::deploy::WorkerSpec {
            name: name.clone(),
            program: self.workload.clone(),
            args: args.iter().map(std::ffi::OsString::from).collect(),
            cpus: vec![id % ncpu],
            sched: rt_runtime::deploy::SchedPolicy::Other,
            mlock: false,
            link: rt_runtime::deploy::WorkerLink {
                netns: Some(self.netns.name().to_string()),
                ifname: tap.rrh.name().to_string(),
                inner_name: "eth0".into(),
                mac: tap.worker_mac,
                addr: guest_addr,
            },
            memory_bytes: self.memory_bytes,
            log: self.work_dir.join(format!("{name}.log")),
            work_dir: self.work_dir.join(&name),
            ready_timeout: Duration::from_secs(120),
        };
        let mut inst = VmInstance { spec, deployment: self.deployment.clone(), pending: None, handle: None, tap, seen: 0, stop: self.stop.clone() };
        inst.launch();
        Ok(inst)
    }
}
