//! The deployment seam: one [`WorkerSpec`], three ways to run it.
//!
//! `bench` builds a [`WorkerSpec`] and hands it to a [`Deployment`]; the
//! deployment starts the worker with the real-time settings asked for, gets
//! the fronthaul link to it, and returns a [`WorkerHandle`] that reports what
//! the host actually granted and tears everything down on drop.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which deployment a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentKind {
    /// A plain process, pinned, SCHED_FIFO, mlockall.
    Bare,
    /// The same process in namespaces and cgroups of its own.
    Container,
    /// The worker inside a QEMU guest (hardware KVM, or TCG labelled as such).
    Kvm,
}

impl DeploymentKind {
    /// Lowercase name used on the command line and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Bare => "bare",
            DeploymentKind::Container => "container",
            DeploymentKind::Kvm => "kvm",
        }
    }
}

/// Kind of link the deployment wants on its side of the fronthaul.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A veth pair: the deployment takes the worker end.
    Veth,
    /// A tap device the deployment hands to QEMU (virtio-net in the guest).
    Tap,
}

/// Scheduling policy requested for the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedPolicy {
    /// SCHED_FIFO at this priority (1..=99).
    Fifo(u8),
    /// SCHED_OTHER (for hosts that refuse real-time, always labelled).
    Other,
}

/// The link the orchestrator created for the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLink {
    /// Network namespace the link's worker end is in now (`None`: the host's).
    pub netns: Option<String>,
    /// Name of the worker end (veth peer or tap) in that namespace.
    pub ifname: String,
    /// Name the interface must have where the worker sees it (inside a
    /// container or guest); bare keeps `ifname`.
    pub inner_name: String,
    /// MAC address of the worker end (guests copy it to their virtio-net).
    pub mac: [u8; 6],
    /// IPv4 address the worker's interface gets, for TCP benchmarks over the
    /// same path (`None`: layer 2 only, as the fronthaul needs).
    pub addr: Option<crate::net::IfAddr>,
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Unique, `cranlab`-prefixed name (cgroup, netns, container id, VM name).
    pub name: String,
    /// The worker binary on the host (statically linked for container/kvm).
    pub program: PathBuf,
    /// Its arguments. The literal `{iface}` is replaced by the interface
    /// name the worker sees.
    pub args: Vec<OsString>,
    /// Cores the worker may run on; its main thread is pinned to the first.
    pub cpus: Vec<usize>,
    /// Scheduling policy.
    pub sched: SchedPolicy,
    /// Lock all memory (mlockall) before the worker starts its loop.
    pub mlock: bool,
    /// The fronthaul link.
    pub link: WorkerLink,
    /// Memory limit for container / guest RAM, bytes.
    pub memory_bytes: u64,
    /// File receiving the worker's stdout and stderr (guest serial console for kvm).
    pub log: PathBuf,
    /// Directory the deployment may use for its files (bundle, images, state).
    pub work_dir: PathBuf,
    /// How long to wait for the worker to report ready.
    pub ready_timeout: Duration,
}

/// What the host actually granted to this worker; copied into results.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GrantedFacts {
    /// `bare`, `container` or `kvm`.
    pub deployment: String,
    /// For kvm: `kvm` (hardware) or `tcg` (emulation); `none` otherwise.
    pub virtualization: String,
    /// Policy in force for the worker's main thread, read back from the kernel
    /// (`SCHED_FIFO:80`, `SCHED_OTHER`).
    pub sched: String,
    /// CPU affinity read back from the kernel.
    pub cpus: Vec<usize>,
    /// Whether mlockall succeeded.
    pub mlocked: bool,
    /// Cgroup path(s) the worker runs in.
    pub cgroup: Option<String>,
    /// Launch to ready time in ns (process exec, container start, VM boot).
    pub start_to_ready_ns: Option<u64>,
    /// Anything degraded or not granted, one plain sentence each.
    pub notes: Vec<String>,
}

/// Errors from launching or tearing down a worker.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A step of the launch failed; `step` names it.
    #[error("{step}: {err}")]
    Step {
        /// What was being done, e.g. `move veth cranlab-w0 into netns`.
        step: String,
        /// The cause.
        err: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The worker did not become ready in time.
    #[error("worker {name} not ready after {waited:?}: {detail}")]
    NotReady {
        /// Worker name.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// Last lines of its log, or what was seen.
        detail: String,
    },
    /// The host lacks something this deployment needs.
    #[error("deployment {deployment} unavailable: {reason}")]
    Unavailable {
        /// Which deployment.
        deployment: &'static str,
        /// Why, with the fix where known.
        reason: String,
    },
}

impl DeployError {
    /// Wraps any error as a named step.
    pub fn step(step: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        DeployError::Step { step: step.into(), err: Box::new(e) }
    }
}

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerExit {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Still running (only from `try_wait`).
    Running,
}

/// A running worker. Dropping it kills the worker and removes everything the
/// deployment created for it.
pub trait WorkerHandle: Send {
    /// Host pid of the worker process (QEMU's pid for kvm).
    fn pid(&self) -> i32;
    /// What the host granted.
    fn facts(&self) -> &GrantedFacts;
    /// Non-blocking check whether the worker has ended.
    fn try_wait(&mut self) -> Result<WorkerExit, DeployError>;
    /// Asks the worker to stop (SIGTERM / guest power-off), waits up to
    /// `grace`, then kills it; returns how it ended.
    fn stop(&mut self, grace: Duration) -> Result<WorkerExit, DeployError>;

    /// Writes a restorable image of the running worker into `dir` and leaves
    /// it running. Deployments without one say so.
    fn snapshot(&mut self, dir: &std::path::Path) -> Result<Snapshot, DeployError> {
        let _ = dir;
        Err(DeployError::Unavailable { deployment: "snapshot", reason: "this deployment has no snapshot".into() })
    }
}

/// A snapshot written by [`WorkerHandle::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
    /// What the image holds, in one sentence.
    pub what: String,
}

/// One way of running a worker.
pub trait Deployment {
    /// Which one this is.
    fn kind(&self) -> DeploymentKind;
    /// Link the orchestrator must create for it.
    fn link_kind(&self) -> LinkKind;
    /// Starts the worker and waits until it reports ready (it prints a line
    /// containing `READY` on stdout / the serial console).
    fn launch(&self, spec: &WorkerSpec) -> Result<Box<dyn WorkerHandle>, DeployError>;
}
