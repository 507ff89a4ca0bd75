//! The `results.json` schema (`cranlab.results/1`). Part of the product:
//! reports, CI jobs and users read it, so fields are only ever added.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Schema tag written into every results file.
pub const SCHEMA: &str = "cranlab.results/1";

/// Names of the metrics every run carries (keys of [`RunResult::metrics`]).
pub const METRICS: [&str; 5] = ["slot_turnaround_ns", "worker_processing_ns", "wakeup_ns", "one_way_ns", "ta4_margin_ns"];

/// A whole `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// `git describe --always --dirty` of the tree that built cranlab.
    pub git_revision: String,
    /// UTC time the run started, RFC 3339.
    pub started_at: String,
    /// The scenario as run (after flag overrides).
    pub scenario: serde_json::Value,
    /// What the host provided.
    pub host: HostFacts,
    /// One entry per deployment (and round, when interleaved runs are kept apart).
    pub runs: Vec<RunResult>,
}

/// Facts about the host, recorded so a result is never read as more than it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct HostFacts {
    /// `uname -r`.
    pub kernel_release: String,
    /// `PREEMPT_RT`, `PREEMPT_DYNAMIC (full)`, `voluntary`, ...
    pub preemption: String,
    /// `/proc/cmdline`.
    pub cmdline: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Online CPU count.
    pub cpus_online: usize,
    /// `/sys/devices/system/cpu/isolated`, parsed.
    pub isolated_cpus: Vec<usize>,
    /// `/sys/devices/system/cpu/nohz_full`, parsed.
    pub nohz_full_cpus: Vec<usize>,
    /// Core the rrh-sim ran on.
    pub rrh_cpu: Option<usize>,
    /// Cores the workers ran on.
    pub worker_cpus: Vec<usize>,
    /// Whether SCHED_FIFO was granted to the simulators.
    pub sched_fifo_granted: bool,
    /// `/proc/sys/kernel/sched_rt_runtime_us` (-1 = throttling off).
    pub sched_rt_runtime_us: Option<i64>,
    /// `/proc/sys/kernel/sched_rt_period_us`.
    pub sched_rt_period_us: Option<i64>,
    /// `v1`, `v2` or `hybrid`.
    pub cgroup_version: String,
    /// How the worker core was isolated: `isolcpus`, `cpuset-shield`, `none`.
    pub isolation: String,
    /// Frequency governor of the worker core, if cpufreq exists.
    pub governor: Option<String>,
    /// Whether SMT is active.
    pub smt_active: Option<bool>,
    /// Clocksource in use.
    pub clocksource: Option<String>,
    /// Anything degraded or not granted, one plain sentence each.
    pub notes: Vec<String>,
    /// Everything `rt_runtime::host` gathered (IRQs, per-CPU facts, probes).
    pub detail: serde_json::Value,
}

/// Percentile summary of one histogram, in ns (signed: Ta4 margins can be negative).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Samples recorded.
    pub count: u64,
    /// Smallest value.
    pub min: i64,
    /// Median.
    pub p50: i64,
    /// 99th percentile.
    pub p99: i64,
    /// 99.9th percentile.
    pub p999: i64,
    /// 99.99th percentile.
    pub p9999: i64,
    /// 99.999th percentile.
    pub p99999: i64,
    /// Largest value.
    pub max: i64,
}

/// One deployment's run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RunResult {
    /// `bare`, `container` or `kvm`.
    pub deployment: String,
    /// `kvm`, `tcg` or `none` (bare / container).
    pub virtualization: String,
    /// Transport used on the wire: `afxdp`, `af_packet`, `af_packet_uring`, `mem`.
    pub transport: String,
    /// Transport details: XDP mode obtained, kernel XDP statistics, fallback reason.
    pub transport_detail: serde_json::Value,
    /// Rounds this run object merges (interleaved A B A B ...).
    pub rounds: u32,
    /// Slots the generator scheduled.
    pub slots: u64,
    /// Slots whose turnaround exceeded the budget, or whose reply never came.
    pub deadline_misses: u64,
    /// Slot budget in ns used for `deadline_misses`.
    pub slot_budget_ns: u64,
    /// Replies that came after the budget.
    pub late_replies: u64,
    /// Replies that never came.
    pub lost_replies: u64,
    /// Bit errors the worker counted against the known transmitted data.
    pub bit_errors: u64,
    /// Bits the worker checked.
    pub bits_checked: u64,
    /// U-plane packets sent but not received by the worker.
    pub lost_packets: u64,
    /// Packets the worker could not decode.
    pub malformed_packets: u64,
    /// Packets seen twice.
    pub duplicate_packets: u64,
    /// Packets out of sequence order.
    pub out_of_order_packets: u64,
    /// U-plane packets before the Ta4 window opened.
    pub early_packets: u64,
    /// U-plane packets inside the Ta4 window.
    pub on_time_packets: u64,
    /// U-plane packets after the Ta4 window closed.
    pub late_packets: u64,
    /// Generator pacing lateness exceeded a symbol (the generator fell behind).
    pub generator_late_symbols: u64,
    /// What the host granted to this worker (rt-runtime's GrantedFacts).
    pub granted: serde_json::Value,
    /// Metric name (see [`METRICS`], plus `pacing_lateness_ns`) → summary.
    /// A metric that is not valid for the deployment (one-way for kvm) is absent.
    pub metrics: BTreeMap<String, Summary>,
    /// Ta4 margin per eAxC id.
    pub ta4_margin_per_eaxc_ns: BTreeMap<String, Summary>,
    /// Files written for this run, relative to the results directory:
    /// metric name → `.hgrm`, and `hlog` → the interval log.
    pub files: BTreeMap<String, String>,
    /// Worker exit status and anything else that went wrong, in plain words.
    pub notes: Vec<String>,
}
