//! Scenario files: the cell, its timing windows and how to run it.
//!
//! ```toml
//! [cell]    # fronthaul::cell::CellConfig
//! [timing]  # fronthaul::timing::TimingConfig
//! [run]     # RunConfig below
//! ```
//! Unknown fields are refused everywhere; an error names the field by its
//! path (`run.duration_s`) and the line. Command-line flags override file
//! fields ([`Overrides`]).

use std::path::{Path, PathBuf};

use fronthaul::cell::CellConfig;
use fronthaul::timing::TimingConfig;
use rt_runtime::deploy::DeploymentKind;
use serde::{Deserialize, Serialize};

/// Errors loading a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("read scenario {path}: {err}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        err: std::io::Error,
    },
    /// The file is not valid for the schema.
    #[error("scenario {path}: field {field}: {message}")]
    Field {
        /// The file.
        path: String,
        /// Path of the offending field, e.g. `run.duration_s` (`.` = the file).
        field: String,
        /// The parser's message, with the line.
        message: String,
    },
}

/// Which transport the fronthaul uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TransportChoice {
    /// AF_XDP sockets (XDP redirect); falls back to AF_PACKET where it cannot attach.
    #[default]
    Afxdp,
    /// AF_PACKET raw sockets.
    #[value(name = "af_packet")]
    AfPacket,
    /// AF_PACKET driven by io_uring.
    #[value(name = "af_packet_uring")]
    AfPacketUring,
    /// In-memory rings between threads (no kernel networking; no privileges).
    Mem,
}

impl TransportChoice {
    /// Name as written in results and on the worker's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportChoice::Afxdp => "afxdp",
            TransportChoice::AfPacket => "af_packet",
            TransportChoice::AfPacketUring => "af_packet_uring",
            TransportChoice::Mem => "mem",
        }
    }
}

pub use bbu_sim::worker::PollMode;

/// The `[run]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Total measured time in seconds, split evenly over rounds and deployments.
    pub duration_s: f64,
    /// Deployments to compare, interleaved in rounds.
    pub deployments: Vec<DeploymentKind>,
    /// Fronthaul transport.
    pub transport: TransportChoice,
    /// Rounds: each deployment runs once per round (A B A B ...).
    pub rounds: u32,
    /// Core of the worker.
    pub worker_cpu: usize,
    /// Core of the rrh-sim.
    pub rrh_cpu: usize,
    /// SCHED_FIFO priority of the worker (1..=99); 0 runs it SCHED_OTHER.
    pub rt_priority: u8,
    /// SCHED_FIFO priority of the rrh-sim (1..=99); 0 runs it SCHED_OTHER.
    pub rrh_priority: u8,
    /// How the worker waits for packets.
    pub poll: PollMode,
    /// Lock the worker's memory (mlockall).
    pub mlock: bool,
    /// Where the worker core is not isolated (isolcpus/nohz_full), shield it
    /// for the run: other tasks to a housekeeping cpuset, IRQs steered away,
    /// all restored afterwards (`rt_runtime::isolate`).
    pub shield: bool,
    /// Memory limit of a container / guest RAM, MiB.
    pub memory_mib: u64,
    /// Seconds to wait for a worker to print READY (a TCG guest boots in seconds).
    pub ready_timeout_s: f64,
    /// Length of one interval in the `.hlog`, ms.
    pub hlog_interval_ms: u64,
    /// Worker binary; default: `bbu-sim` next to the cranlab binary.
    pub worker: Option<PathBuf>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            duration_s: 10.0,
            deployments: vec![DeploymentKind::Bare],
            transport: TransportChoice::Afxdp,
            rounds: 1,
            worker_cpu: 1,
            rrh_cpu: 0,
            rt_priority: 80,
            rrh_priority: 70,
            poll: PollMode::Block,
            mlock: true,
            shield: true,
            memory_mib: 512,
            ready_timeout_s: 60.0,
            hlog_interval_ms: 1000,
            worker: None,
        }
    }
}

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// The cell.
    pub cell: CellConfig,
    /// Timing windows and budget.
    pub timing: TimingConfig,
    /// How to run it.
    pub run: RunConfig,
}

/// Command-line overrides of `[run]` fields.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--duration`.
    pub duration_s: Option<f64>,
    /// `--deployments`.
    pub deployments: Option<Vec<DeploymentKind>>,
    /// `--transport`.
    pub transport: Option<TransportChoice>,
    /// `--rounds`.
    pub rounds: Option<u32>,
    /// `--worker`.
    pub worker: Option<PathBuf>,
    /// `--poll`.
    pub poll: Option<PollMode>,
}

impl Scenario {
    /// Parses scenario text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let de = toml::Deserializer::new(text);
        let s: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            ScenarioError::Field { path: path.to_string(), field, message: e.into_inner().to_string().trim().replace('\n', " ") }
        })?;
        s.validate(path)?;
        Ok(s)
    }

    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| ScenarioError::Read { path: path.display().to_string(), err })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Applies flag overrides, then checks the result again.
    pub fn apply(&mut self, o: &Overrides, path: &str) -> Result<(), ScenarioError> {
        if let Some(d) = o.duration_s {
            self.run.duration_s = d;
        }
        if let Some(d) = &o.deployments {
            self.run.deployments = d.clone();
        }
        if let Some(t) = o.transport {
            self.run.transport = t;
        }
        if let Some(r) = o.rounds {
            self.run.rounds = r;
        }
        if let Some(w) = &o.worker {
            self.run.worker = Some(w.clone());
        }
        if let Some(p) = o.poll {
            self.run.poll = p;
        }
        self.validate(path)
    }

    /// Checks relations the types cannot express.
    pub fn validate(&self, path: &str) -> Result<(), ScenarioError> {
        let bad = |field: &str, message: String| ScenarioError::Field { path: path.to_string(), field: field.into(), message };
        self.cell.validate().map_err(|e| bad("cell", e.to_string()))?;
        self.timing.validate().map_err(|e| bad("timing", e.to_string()))?;
        let r = &self.run;
        if !(r.duration_s.is_finite() && r.duration_s > 0.0 && r.duration_s <= 86_400.0) {
            return Err(bad("run.duration_s", format!("{} is out of range (0, 86400]", r.duration_s)));
        }
        if r.deployments.is_empty() {
            return Err(bad("run.deployments", "at least one deployment is needed".into()));
        }
        for (i, d) in r.deployments.iter().enumerate() {
            if r.deployments[..i].contains(d) {
                return Err(bad("run.deployments", format!("{} is listed twice", d.as_str())));
            }
        }
        if r.rounds == 0 || r.rounds > 1000 {
            return Err(bad("run.rounds", format!("{} is out of range 1..=1000", r.rounds)));
        }
        if r.rt_priority > 99 {
            return Err(bad("run.rt_priority", format!("{} is out of range 0..=99", r.rt_priority)));
        }
        if r.rrh_priority > 99 {
            return Err(bad("run.rrh_priority", format!("{} is out of range 0..=99", r.rrh_priority)));
        }
        if r.worker_cpu == r.rrh_cpu {
            return Err(bad("run.worker_cpu", format!("the worker and the rrh-sim both on cpu {}; give them different cores", r.rrh_cpu)));
        }
        if !(r.ready_timeout_s.is_finite() && r.ready_timeout_s > 0.0) {
            return Err(bad("run.ready_timeout_s", format!("{} must be positive", r.ready_timeout_s)));
        }
        if r.hlog_interval_ms == 0 {
            return Err(bad("run.hlog_interval_ms", "must be positive".into()));
        }
        if r.memory_mib < 16 {
            return Err(bad("run.memory_mib", format!("{} MiB is too small for a worker", r.memory_mib)));
        }
        Ok(())
    }

    /// Slot duration for the cell's numerology, ns.
    pub fn slot_ns(&self) -> u64 {
        1_000_000 >> self.cell.mu
    }
}

/// Parses `bare,container,kvm`.
pub fn parse_deployments(s: &str) -> Result<Vec<DeploymentKind>, String> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| match x.trim() {
            "bare" => Ok(DeploymentKind::Bare),
            "container" => Ok(DeploymentKind::Container),
            "kvm" => Ok(DeploymentKind::Kvm),
            o => Err(format!("unknown deployment {o:?} (bare, container, kvm)")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
    }

    #[test]
    fn shipped_scenarios_load() {
        let d = Scenario::load(&repo_file("scenarios/default.toml")).unwrap();
        assert_eq!((d.cell.mu, d.cell.prbs, d.cell.antennas, d.cell.layers), (1, 51, 2, 1));
        let l = Scenario::load(&repo_file("scenarios/lab-100mhz-4t4r.toml")).unwrap();
        assert_eq!((l.cell.prbs, l.cell.antennas, l.cell.layers), (273, 4, 4));
    }

    #[test]
    fn unknown_and_mistyped_fields_are_named() {
        let e = Scenario::parse("[run]\nduraton_s = 3\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("duraton_s") && e.contains("x.toml"), "{e}");
        let e = Scenario::parse("[run]\nduration_s = \"long\"\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("run.duration_s"), "{e}");
        let e = Scenario::parse("[cell]\nprbs = 51\nmodulation = \"qam1024\"\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("cell.modulation"), "{e}");
        let e = Scenario::parse("[run]\ndeployments = [\"vm\"]\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("run.deployments"), "{e}");
        let e = Scenario::parse("[cell]\nmu = 7\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("cell") && e.contains("mu"), "{e}");
        let e = Scenario::parse("[run]\nworker_cpu = 0\nrrh_cpu = 0\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("run.worker_cpu"), "{e}");
    }

    #[test]
    fn flags_override_file_fields() {
        let mut s = Scenario::parse("[run]\nduration_s = 3\nrounds = 2\n", "x").unwrap();
        s.apply(
            &Overrides { duration_s: Some(1.5), transport: Some(TransportChoice::Mem), ..Overrides::default() },
            "x",
        )
        .unwrap();
        assert_eq!((s.run.duration_s, s.run.rounds, s.run.transport), (1.5, 2, TransportChoice::Mem));
        assert!(s.apply(&Overrides { rounds: Some(0), ..Overrides::default() }, "x").is_err());
        assert_eq!(parse_deployments("bare,kvm").unwrap(), vec![DeploymentKind::Bare, DeploymentKind::Kvm]);
        assert!(parse_deployments("bare,vm").is_err());
    }
}
