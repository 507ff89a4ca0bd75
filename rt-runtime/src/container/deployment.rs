//! [`ContainerDeployment`]: the worker in a container made by this runtime.
//!
//! `launch` builds the worker bundle for the [`WorkerSpec`] under
//! `work_dir/<name>-bundle`, starts the container (cgroup `cranlab/<name>`,
//! new pid/mount/net/uts/ipc/cgroup namespaces, the worker end of the veth
//! moved in and renamed to `inner_name`), waits for `READY` in the log and
//! reads back what the kernel granted. `stop` and drop kill the worker and
//! remove the cgroup, the bundle and (with the namespace) the moved link.
//!
//! The worker carries `PR_SET_PDEATHSIG(SIGKILL)`: it dies with the
//! *thread* that launched it (as the bare deployment's worker does), so call
//! `launch` from a thread that outlives the run (the orchestrator's main
//! thread), not from a short-lived helper thread.
//!
//! The worker holds only CAP_NET_RAW and CAP_IPC_LOCK (see
//! [`super::bundle::WORKER_CAPS`]); no CAP_NET_ADMIN, CAP_BPF or
//! CAP_SYS_ADMIN. With `--transport afxdp` in the worker's arguments the
//! privileged AF_XDP set-up happens here: the container's network namespace
//! is created first (`cranlab-<name>` under /run/netns), the link is moved
//! in and renamed, [`pktio::afxdp::XskHandoff::prepare`] loads and attaches
//! the XDP program and binds the sockets inside it, and the container joins
//! that namespace and inherits the socket and UMEM descriptors (announced in
//! `CRANLAB_XSK`). Otherwise the runtime moves the link into the
//! container's fresh namespace and the worker opens its own AF_PACKET
//! socket (CAP_NET_RAW).

use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{build_bundle, Bundle, BundleSpec, Container, Exit, StartOptions};
use crate::deploy::{DeployError, Deployment, DeploymentKind, GrantedFacts, LinkKind, WorkerExit, WorkerHandle, WorkerSpec};

/// Runs workers in containers started by rt-runtime.
#[derive(Debug, Clone, Default)]
pub struct ContainerDeployment {
    /// Cgroup filesystem root (`None`: `/sys/fs/cgroup`).
    pub cgroup_root: Option<PathBuf>,
    /// Keep the bundle directory after the worker stops (for inspection).
    pub keep_bundle: bool,
}

impl ContainerDeployment {
    /// A container deployment with the defaults.
    pub fn new() -> Self {
        ContainerDeployment::default()
    }
}

fn exit_of(e: Exit) -> WorkerExit {
    match e {
        Exit::Code(c) => WorkerExit::Exited(c),
        Exit::Signal(s) => WorkerExit::Signaled(s),
    }
}

impl Deployment for ContainerDeployment {
    fn kind(&self) -> DeploymentKind {
        DeploymentKind::Container
    }

    fn link_kind(&self) -> LinkKind {
        LinkKind::Veth
    }

    fn launch(&self, spec: &WorkerSpec) -> Result<Box<dyn WorkerHandle>, DeployError> {
        let bundle_dir = spec.work_dir.join(format!("{}-bundle", spec.name));
        std::fs::create_dir_all(&bundle_dir).map_err(|e| DeployError::step(format!("create bundle directory {}", bundle_dir.display()), e))?;
        let mut h = ContainerHandle {
            container: None,
            facts: GrantedFacts { deployment: "container".into(), virtualization: "none".into(), ..GrantedFacts::default() },
            bundle_dir: bundle_dir.clone(),
            keep_bundle: self.keep_bundle,
            done: None,
            afxdp: None,
            netns: None,
        };
        let mut bspec = BundleSpec::for_worker(spec);
        let mut keep_fds = Vec::new();
        // The link goes into a namespace the runtime prepares itself where the
        // worker needs more than a bare link: AF_XDP sockets made outside the
        // container, or an address for the TCP benchmarks.
        if wants_afxdp(&spec.args) || spec.link.addr.is_some() {
            let ns = prepare_netns(spec)?;
            bspec.net_devices.clear();
            bspec.netns_path = Some(crate::net::netns_path(ns.name()));
            h.netns = Some(ns);
        }
        if let (true, Some(ns)) = (wants_afxdp(&spec.args), &h.netns) {
            let handoff = prepare_afxdp(spec, ns)?;
            bspec.env.push(format!("{}={}", pktio::afxdp::HANDOFF_ENV, handoff.encode()));
            keep_fds = handoff.child_fds();
            h.facts.notes.push(format!("AF_XDP prepared by the runtime ({:?}) and handed to the worker as descriptors {keep_fds:?}", handoff.mode()));
            h.afxdp = Some(handoff);
        }
        build_bundle(&bundle_dir, &bspec).map_err(|e| DeployError::step("build worker bundle", e))?;
        let bundle = Bundle::load(&bundle_dir).map_err(|e| DeployError::step(format!("read bundle {}", bundle_dir.display()), e))?;
        let log = File::create(&spec.log).map_err(|e| DeployError::step(format!("create worker log {}", spec.log.display()), e))?;
        let opts = StartOptions {
            log: Some(log),
            stdin_null: true,
            links_netns: spec.link.netns.as_deref().map(crate::net::netns_path),
            keep_raw_fds: keep_fds,
            cgroup_root: self.cgroup_root.clone(),
            ..StartOptions::default()
        };
        let started = Instant::now();
        let c = Container::start(&bundle, &spec.name, opts).map_err(|e| DeployError::step(format!("start container {}", spec.name), e))?;
        h.facts.cgroup = c.cgroup().map(|g| g.describe());
        h.facts.notes.extend(c.notes().iter().cloned());
        h.container = Some(c);
        crate::bare::wait_ready(&mut h, spec, started)?;
        h.facts.start_to_ready_ns = Some(started.elapsed().as_nanos() as u64);
        let pid = h.pid();
        crate::bare::read_back(&mut h.facts, spec, pid);
        h.facts.notes.push(format!(
            "container capabilities: {} only; fronthaul link {} inside the container",
            super::bundle::WORKER_CAPS.join(","),
            spec.link.inner_name
        ));
        Ok(Box::new(h))
    }
}

/// Whether the worker's arguments ask for the AF_XDP transport.
pub fn wants_afxdp(args: &[std::ffi::OsString]) -> bool {
    let a: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    a.windows(2).any(|w| w[0] == "--transport" && w[1] == "afxdp") || a.iter().any(|x| x == "--transport=afxdp")
}

/// Creates the container's network namespace, moves the link in (renamed to
/// `inner_name`), sets it up and gives it the spec's address, if any.
fn prepare_netns(spec: &WorkerSpec) -> Result<crate::net::Netns, DeployError> {
    let ns = crate::net::Netns::create(&spec.name).map_err(|e| DeployError::step("create the container's network namespace", e))?;
    let mut args: Vec<String> = Vec::new();
    if let Some(src) = &spec.link.netns {
        args.extend(["-n".into(), src.clone()]);
    }
    args.extend(["link", "set", "dev", &spec.link.ifname, "netns", ns.name(), "name", &spec.link.inner_name].map(String::from));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::net::ip(&format!("move {} into {}", spec.link.ifname, ns.name()), &argv).map_err(|e| DeployError::step("move the fronthaul link", e))?;
    crate::net::ip("set the fronthaul link up", &["-n", ns.name(), "link", "set", &spec.link.inner_name, "up"])
        .map_err(|e| DeployError::step("set the fronthaul link up", e))?;
    if let Some(a) = spec.link.addr {
        crate::net::add_addr(Some(ns.name()), &spec.link.inner_name, a).map_err(|e| DeployError::step("address the worker's link", e))?;
    }
    Ok(ns)
}

/// Prepares the AF_XDP sockets on the link in the container's namespace `ns`.
fn prepare_afxdp(spec: &WorkerSpec, ns: &crate::net::Netns) -> Result<pktio::afxdp::XskHandoff, DeployError> {
    let inner = spec.link.inner_name.clone();
    let path = crate::net::netns_path(ns.name()).to_string_lossy().into_owned();
    let handoff = pktio::in_netns(&path, move || pktio::afxdp::XskHandoff::prepare(&inner, &pktio::afxdp::XdpConfig::default()))
        .map_err(|e| DeployError::step(format!("prepare AF_XDP on {} for the container", spec.link.inner_name), e))?;
    handoff.set_inheritable(true).map_err(|e| DeployError::step("pass AF_XDP descriptors", e))?;
    Ok(handoff)
}

/// A worker started by [`ContainerDeployment`].
#[derive(Debug)]
pub struct ContainerHandle {
    container: Option<Container>,
    facts: GrantedFacts,
    bundle_dir: PathBuf,
    keep_bundle: bool,
    done: Option<WorkerExit>,
    /// The AF_XDP hand-off (holds the XDP program); dropped before `netns`.
    afxdp: Option<pktio::afxdp::XskHandoff>,
    /// The namespace the runtime prepared for the link, if it did.
    netns: Option<crate::net::Netns>,
}

impl ContainerHandle {
    fn teardown(&mut self) -> Result<(), DeployError> {
        let r = match self.container.take() {
            Some(c) => c.destroy().map(|_| ()).map_err(|e| DeployError::step("remove container", e)),
            None => Ok(()),
        };
        // Program and sockets go before the namespace that holds the link.
        self.afxdp = None;
        self.netns = None;
        if !self.keep_bundle && self.bundle_dir.exists() {
            let _ = std::fs::remove_dir_all(&self.bundle_dir);
        }
        r
    }
}

impl WorkerHandle for ContainerHandle {
    fn pid(&self) -> i32 {
        self.container.as_ref().map(|c| c.pid()).unwrap_or(0)
    }

    fn facts(&self) -> &GrantedFacts {
        &self.facts
    }

    fn try_wait(&mut self) -> Result<WorkerExit, DeployError> {
        if let Some(d) = &self.done {
            return Ok(d.clone());
        }
        let Some(c) = self.container.as_mut() else { return Ok(WorkerExit::Exited(-1)) };
        match c.try_wait().map_err(|e| DeployError::step("wait for worker", e))? {
            Some(e) => {
                let e = exit_of(e);
                self.done = Some(e.clone());
                Ok(e)
            }
            None => Ok(WorkerExit::Running),
        }
    }

    fn stop(&mut self, grace: Duration) -> Result<WorkerExit, DeployError> {
        let exit = match self.container.as_mut() {
            Some(c) => exit_of(c.stop(grace).map_err(|e| DeployError::step("stop worker", e))?),
            None => self.done.clone().unwrap_or(WorkerExit::Exited(-1)),
        };
        self.done = Some(exit.clone());
        self.teardown()?;
        Ok(exit)
    }
}

impl Drop for ContainerHandle {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
