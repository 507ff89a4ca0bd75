//! `cranlab run`: sweep, set up the fronthaul, launch the worker through a
//! deployment, drive it with the rrh-sim, merge both sides, write the
//! results directory.
//!
//! Deployments are interleaved in rounds (A B A B …) with the duration split
//! evenly, so host drift lands on all of them. Every host object lives in a
//! guard that removes it on drop; a stop flag (SIGINT/SIGTERM) ends the
//! current segment early and unwinds through the guards.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rt_runtime::deploy::{
    DeployError, Deployment, DeploymentKind, GrantedFacts, LinkKind, SchedPolicy, WorkerExit, WorkerLink, WorkerSpec,
};
use rt_runtime::net;

use crate::histio::{self, Interval, SignedHist};
use crate::results::{HostFacts, Results, RunResult, SCHEMA};
use crate::scenario::{Scenario, TransportChoice};
use crate::sims::{self, RrhParams, RrhSide, WorkerSide};

/// Errors that end a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A set-up or tear-down step failed; `step` names it.
    #[error("{step}: {detail}")]
    Step {
        /// What was being done.
        step: String,
        /// What went wrong.
        detail: String,
    },
    /// The deployment cannot run on this host; the run goes on without it.
    #[error("deployment {deployment} unavailable: {reason}")]
    Unavailable {
        /// Which deployment.
        deployment: String,
        /// Why, with the fix where known.
        reason: String,
    },
    /// SIGINT / SIGTERM arrived; everything was cleaned up.
    #[error("interrupted: stopped and cleaned up")]
    Interrupted,
}

fn step(step: impl Into<String>, e: impl std::fmt::Display) -> RunError {
    RunError::Step { step: step.into(), detail: e.to_string() }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The scenario after flag overrides.
    pub scenario: Scenario,
    /// Where it came from (for messages).
    pub scenario_path: String,
    /// Results directory.
    pub out: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// Set by signal handlers: stop as soon as possible.
    pub stop: Arc<AtomicBool>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The results as written.
    pub results: Results,
    /// Path of report.md.
    pub report: PathBuf,
}

/// Console output: plain lines, routed around the progress bar.
pub struct Console {
    bar: Option<indicatif::ProgressBar>,
    progress: bool,
}

impl Console {
    fn new(progress: bool) -> Self {
        Console { bar: None, progress }
    }

    /// Prints one line.
    pub fn say(&self, msg: impl AsRef<str>) {
        match &self.bar {
            Some(b) => b.println(msg.as_ref()),
            None => eprintln!("{}", msg.as_ref()),
        }
    }

    fn start_bar(&mut self, total_slots: u64, label: String) {
        if !self.progress {
            return;
        }
        let b = indicatif::ProgressBar::new(total_slots);
        b.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} slots {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b.set_prefix(label);
        self.bar = Some(b);
    }

    fn end_bar(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// One deployment × one round.
struct Segment {
    rrh: RrhSide,
    worker: WorkerSide,
    granted: GrantedFacts,
    transport: String,
    transport_detail: serde_json::Value,
    notes: Vec<String>,
    offset: Duration,
}

/// Everything one deployment accumulated over its rounds.
struct Acc {
    kind: DeploymentKind,
    rounds: u32,
    rrh: RrhSide,
    worker: WorkerSide,
    granted: Option<GrantedFacts>,
    transport: String,
    transport_detail: serde_json::Value,
    notes: Vec<String>,
    intervals: Vec<Interval>,
    one_way_valid: bool,
}

impl Acc {
    fn new(kind: DeploymentKind) -> Self {
        Acc {
            kind,
            rounds: 0,
            rrh: RrhSide::default(),
            worker: WorkerSide::default(),
            granted: None,
            transport: String::new(),
            transport_detail: serde_json::Value::Null,
            notes: Vec::new(),
            intervals: Vec::new(),
            one_way_valid: kind != DeploymentKind::Kvm,
        }
    }

    fn merge(&mut self, s: Segment) {
        self.rounds += 1;
        let (a, b) = (&mut self.rrh, &s.rrh);
        a.slots += b.slots;
        a.deadline_misses += b.deadline_misses;
        a.late_replies += b.late_replies;
        a.lost_replies += b.lost_replies;
        a.generator_late_symbols += b.generator_late_symbols;
        a.uplane_sent += b.uplane_sent;
        a.reply_bits_checked += b.reply_bits_checked;
        a.reply_bit_errors += b.reply_bit_errors;
        let _ = a.turnaround.add(&b.turnaround);
        let _ = a.pacing.add(&b.pacing);
        let _ = a.processing.add(&b.processing);
        let _ = a.wakeup.add(&b.wakeup);
        a.fifo_granted = b.fifo_granted;
        for r in &b.refused {
            if !a.refused.contains(r) {
                a.refused.push(r.clone());
            }
        }
        for iv in &s.rrh.intervals {
            let mut iv = iv.clone();
            iv.start += s.offset;
            self.intervals.push(iv);
        }
        let (a, b) = (&mut self.worker, &s.worker);
        a.bit_errors += b.bit_errors;
        a.bits_checked += b.bits_checked;
        a.uplane_received += b.uplane_received;
        a.malformed += b.malformed;
        a.duplicate += b.duplicate;
        a.out_of_order += b.out_of_order;
        a.early += b.early;
        a.on_time += b.on_time;
        a.late += b.late;
        let _ = a.processing.add(&b.processing);
        let _ = a.wakeup.add(&b.wakeup);
        if let Some(ow) = &b.one_way {
            let h = a.one_way.get_or_insert_with(histio::new_hist);
            let _ = h.add(ow);
        }
        for (k, v) in &b.ta4 {
            a.ta4.entry(k.clone()).or_default().add(v);
        }
        self.granted = Some(s.granted);
        self.transport = s.transport;
        self.transport_detail = s.transport_detail;
        for n in s.notes {
            if !self.notes.contains(&n) {
                self.notes.push(n);
            }
        }
    }
}

/// Whether both ends of a segment (`transport_detail.worker` / `.rrh`) used `transport`.
fn both_ends_on(detail: &serde_json::Value, transport: &str) -> bool {
    detail.get("worker").and_then(|v| v.as_str()) == Some(transport) && detail.get("rrh").and_then(|v| v.as_str()) == Some(transport)
}

/// Is the caller root?
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Finds the worker binary: the scenario's / `--worker` path, else `bbu-sim`
/// next to the running executable (or one directory up, for test binaries
/// in `target/*/deps`).
pub fn find_worker(explicit: Option<&Path>) -> Result<PathBuf, RunError> {
    find_binary("bbu-sim", explicit, "cargo build --release -p bbu-sim")
}

/// Finds binary `name`: `explicit` when given, else next to the running
/// executable or one directory up. `build` is the command that builds it.
pub fn find_binary(name: &str, explicit: Option<&Path>, build: &str) -> Result<PathBuf, RunError> {
    let what = format!("find the {name} binary");
    if let Some(p) = explicit {
        return if p.is_file() { Ok(p.to_path_buf()) } else { Err(step(&what, format!("{} does not exist", p.display()))) };
    }
    let exe = std::env::current_exe().map_err(|e| step("find the running executable", e))?;
    let mut tried = Vec::new();
    let mut dir = exe.parent();
    for _ in 0..2 {
        if let Some(d) = dir {
            let c = d.join(name);
            if c.is_file() {
                return Ok(c);
            }
            tried.push(c.display().to_string());
            dir = d.parent();
        }
    }
    Err(step(&what, format!("{name} not found ({}); build it with `{build}`", tried.join(", "))))
}

/// RFC 3339 UTC time of `t`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The deployment object for a kind, or why it is not available here.
pub fn deployment_for(kind: DeploymentKind) -> Result<Box<dyn Deployment>, String> {
    match kind {
        DeploymentKind::Bare => Ok(Box::new(rt_runtime::bare::BareDeployment::new())),
        DeploymentKind::Container => Ok(Box::new(rt_runtime::container::ContainerDeployment::new())),
        DeploymentKind::Kvm => Ok(Box::new(rt_runtime::kvm::KvmDeployment::new())),
    }
}

/// Runs a scenario end to end and writes the results directory.
pub fn run(req: &RunRequest) -> Result<RunOutcome, RunError> {
    let s = &req.scenario;
    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut con = Console::new(req.progress);
    let root = is_root();
    let mut host: HostFacts = crate::host::gather();
    host.rrh_cpu = Some(s.run.rrh_cpu);
    host.worker_cpus = vec![s.run.worker_cpu];
    host.governor = crate::host::governor(s.run.worker_cpu);
    for c in [s.run.rrh_cpu, s.run.worker_cpu] {
        if c >= host.cpus_online.max(1) {
            return Err(step("check cores", format!("cpu {c} does not exist: this host has {} online", host.cpus_online)));
        }
    }

    // What runs, and how.
    let mem_path = !root || s.run.transport == TransportChoice::Mem;
    if !root {
        let msg = "not root: skipping network namespaces, the veth pair, AF_XDP / AF_PACKET and the container and kvm \
                   deployments (they need root); running the worker in a thread over the in-memory transport instead";
        con.say(format!("note: {msg}"));
        host.notes.push(msg.to_string());
    }
    let mut plan: Vec<(DeploymentKind, Box<dyn Deployment>)> = Vec::new();
    let mut skipped: Vec<(DeploymentKind, String)> = Vec::new();
    for &k in &s.run.deployments {
        if mem_path && k != DeploymentKind::Bare {
            let why = if !root {
                "needs root".to_string()
            } else {
                "the in-memory transport only runs the worker as a thread in cranlab".to_string()
            };
            skipped.push((k, why));
            continue;
        }
        match deployment_for(k) {
            Ok(d) => plan.push((k, d)),
            Err(why) => skipped.push((k, why)),
        }
    }
    for (k, why) in &skipped {
        con.say(format!("skipping deployment {}: {why}", k.as_str()));
        host.notes.push(format!("deployment {} skipped: {why}", k.as_str()));
    }
    if plan.is_empty() {
        return Err(step("choose deployments", "none of the requested deployments can run here"));
    }
    let worker_bin = if mem_path { None } else { Some(find_worker(s.run.worker.as_deref())?) };
    std::fs::create_dir_all(&req.out).map_err(|e| step(format!("create results directory {}", req.out.display()), e))?;

    let _lock = if root {
        let l = crate::sweep::RunLock::acquire(&con)?;
        let swept = crate::sweep::sweep(false);
        for line in &swept.removed {
            con.say(format!("swept leftover of a killed run: {line}"));
        }
        for line in &swept.errors {
            con.say(format!("warning: sweep: {line}"));
        }
        Some(l)
    } else {
        None
    };

    // Isolation: the host's isolated cores when the worker core is one of
    // them, else a shield for the run (restored on drop, journalled for a
    // crash). cranlab itself is admitted back to all cores so the workers it
    // starts can pin themselves to the shielded one.
    let _shield = if root && !mem_path && s.run.shield && !host.isolated_cpus.contains(&s.run.worker_cpu) {
        let applied = rt_runtime::cgroup::CgroupRoot::detect(Path::new("/sys/fs/cgroup"))
            .map_err(|e| e.to_string())
            .and_then(|cg| {
                rt_runtime::isolate::Shield::apply(
                    &cg,
                    &rt_runtime::host::Roots::default(),
                    &[s.run.worker_cpu],
                    Path::new(rt_runtime::isolate::DEFAULT_JOURNAL_DIR),
                )
                .map_err(|e| e.to_string())
            })
            .and_then(|sh| sh.admit(std::process::id() as i32).map(|()| sh).map_err(|e| e.to_string()));
        match applied {
            Ok(sh) => {
                let f = sh.report();
                host.isolation = f.mode.as_str().to_string();
                con.say(format!(
                    "shielded cpu {}: {} tasks moved to housekeeping ({} not movable), {} IRQs steered away ({} refused)",
                    s.run.worker_cpu, f.tasks_moved, f.tasks_not_movable, f.irqs_steered, f.irqs_refused
                ));
                for n in &f.notes {
                    host.notes.push(format!("shield: {n}"));
                }
                Some(sh)
            }
            Err(e) => {
                let msg = format!("worker core not shielded: {e}");
                con.say(format!("note: {msg}"));
                host.notes.push(msg);
                None
            }
        }
    } else {
        None
    };


    // The same transport in every deployment, or the comparison compares
    // transports. Bare and container both take AF_XDP (the container gets
    // sockets prepared by the runtime). Where one deployment's segment
    // cannot (the kvm guest's virtio-net, typically), every deployment of
    // the comparison switches to AF_PACKET: what was measured on AF_XDP is
    // discarded and measured again, and the results say why.
    let mut s_eff = s.clone();
    let mut run_fallback: Option<String> = None;
    let segments = u32::try_from(plan.len()).unwrap_or(1) * s.run.rounds;
    let seg_dur = Duration::from_secs_f64(s.run.duration_s / f64::from(segments));
    con.say(format!(
        "running {} for {:.1} s: {} round(s) × [{}], {:.2} s each, transport {}, cell {}",
        req.scenario_path,
        s.run.duration_s,
        s.run.rounds,
        plan.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(" "),
        seg_dur.as_secs_f64(),
        s.run.transport.as_str(),
        s.cell
    ));

    let rounds = s.run.rounds as usize;
    let mut done: Vec<Vec<Option<Segment>>> = (0..rounds).map(|_| (0..plan.len()).map(|_| None).collect()).collect();
    let mut unavailable: Vec<bool> = vec![false; plan.len()];
    loop {
        // The next segment to measure, in round-robin order.
        let next = (0..rounds).flat_map(|r| (0..plan.len()).map(move |i| (r, i))).find(|&(r, i)| !unavailable[i] && done[r][i].is_none());
        let Some((round, i)) = next else { break };
        let (kind, dep) = (&plan[i].0, &plan[i].1);
        let s = &s_eff;
        if req.stop.load(Ordering::Relaxed) {
            return Err(RunError::Interrupted);
        }
        let label = format!("{} {}/{}", kind.as_str(), round + 1, s.run.rounds);
        let total = (seg_dur.as_nanos() / u128::from(s.slot_ns())) as u64;
        con.start_bar(total, label);
        let offset = t0.elapsed();
        let round32 = u32::try_from(round).unwrap_or(u32::MAX);
        let r = if mem_path {
            mem_segment(s, seg_dur, &req.stop, &mut con)
        } else {
            net_segment(dep.as_ref(), s, seg_dur, &req.out, worker_bin.as_deref().unwrap_or(Path::new("")), round32, &req.stop, &mut con)
        };
        con.end_bar();
        let mut seg = match r {
            Err(RunError::Unavailable { deployment, reason }) if plan.len() > 1 => {
                con.say(format!("skipping deployment {deployment}: {reason}"));
                host.notes.push(format!("deployment {deployment} skipped: {reason}"));
                unavailable[i] = true;
                continue;
            }
            r => r?,
        };
        if req.stop.load(Ordering::Relaxed) {
            return Err(RunError::Interrupted);
        }
        seg.offset = offset;
        con.say(format!(
            "{} round {}: {} slots, {} deadline misses, {} bit errors, {} lost replies, transport {}",
            kind.as_str(),
            round + 1,
            seg.rrh.slots,
            seg.rrh.deadline_misses,
            seg.worker.bit_errors,
            seg.rrh.lost_replies,
            seg.transport
        ));
        if plan.len() > 1 && s.run.transport == TransportChoice::Afxdp && !both_ends_on(&seg.transport_detail, "afxdp") {
            let cause = seg.transport_detail.get("fallback_reason").and_then(|v| v.as_str()).unwrap_or("it fell back to AF_PACKET");
            let why = format!(
                "the {} deployment could not use AF_XDP ({cause}), so every deployment of this comparison uses AF_PACKET \
                 (one transport for all)",
                kind.as_str()
            );
            con.say(format!("note: {why}; measuring again on AF_PACKET what ran on AF_XDP"));
            s_eff.run.transport = TransportChoice::AfPacket;
            run_fallback = Some(why);
            for row in done.iter_mut() {
                for slot in row.iter_mut() {
                    if slot.as_ref().is_some_and(|g| !both_ends_on(&g.transport_detail, "af_packet")) {
                        *slot = None;
                    }
                }
            }
            if !both_ends_on(&seg.transport_detail, "af_packet") {
                continue;
            }
        }
        done[round][i] = Some(seg);
    }
    let s = &s_eff;
    let mut accs: Vec<Acc> = plan.iter().map(|(k, _)| Acc::new(*k)).collect();
    for row in done {
        for (i, seg) in row.into_iter().enumerate() {
            let Some(mut seg) = seg else { continue };
            if let (Some(fb), serde_json::Value::Object(d)) = (&run_fallback, &mut seg.transport_detail) {
                d.insert("requested".into(), "afxdp".into());
                d.insert("fallback_reason".into(), fb.clone().into());
            }
            accs[i].merge(seg);
        }
    }

    // The simulators' own real-time grant.
    host.sched_fifo_granted = accs.iter().all(|a| a.rrh.fifo_granted);
    for a in &accs {
        for r in &a.rrh.refused {
            let n = format!("rrh-sim: {r}");
            if !host.notes.contains(&n) {
                host.notes.push(n);
            }
        }
    }
    if !host.sched_fifo_granted {
        con.say("note: the rrh-sim did NOT get SCHED_FIFO: its figures are SCHED_OTHER figures");
    }

    let mut runs = Vec::new();
    for a in accs.iter().filter(|a| a.rounds > 0) {
        runs.push(write_run(a, s, &req.out, started)?);
    }
    let results = Results {
        schema: SCHEMA.into(),
        git_revision: crate::GIT_REVISION.into(),
        started_at: rfc3339(started),
        scenario: serde_json::to_value(&req.scenario).map_err(|e| step("serialise scenario", e))?,
        host,
        runs,
    };
    let json = serde_json::to_string_pretty(&results).map_err(|e| step("serialise results", e))?;
    let rp = req.out.join("results.json");
    std::fs::write(&rp, json + "\n").map_err(|e| step(format!("write {}", rp.display()), e))?;
    let report = req.out.join("report.md");
    std::fs::write(&report, crate::report::render(&results)).map_err(|e| step(format!("write {}", report.display()), e))?;
    Ok(RunOutcome { results, report })
}

/// Writes the `.hgrm` files and `.hlog` of one deployment, returns its run object.
fn write_run(a: &Acc, s: &Scenario, out: &Path, started: SystemTime) -> Result<RunResult, RunError> {
    let dep = a.kind.as_str();
    let granted = a.granted.clone().unwrap_or_default();
    let mut r = RunResult {
        deployment: dep.into(),
        virtualization: if granted.virtualization.is_empty() { "none".into() } else { granted.virtualization.clone() },
        transport: a.transport.clone(),
        transport_detail: a.transport_detail.clone(),
        rounds: a.rounds,
        slots: a.rrh.slots,
        deadline_misses: a.rrh.deadline_misses,
        slot_budget_ns: s.timing.budget_ns(s.slot_ns()),
        late_replies: a.rrh.late_replies,
        lost_replies: a.rrh.lost_replies,
        // The worker's own count; the sum carried in the replies when its
        // summary had none.
        bit_errors: if a.worker.bits_checked > 0 { a.worker.bit_errors } else { a.rrh.reply_bit_errors },
        bits_checked: if a.worker.bits_checked > 0 { a.worker.bits_checked } else { a.rrh.reply_bits_checked },
        lost_packets: a.rrh.uplane_sent.saturating_sub(a.worker.uplane_received),
        malformed_packets: a.worker.malformed,
        duplicate_packets: a.worker.duplicate,
        out_of_order_packets: a.worker.out_of_order,
        early_packets: a.worker.early,
        on_time_packets: a.worker.on_time,
        late_packets: a.worker.late,
        generator_late_symbols: a.rrh.generator_late_symbols,
        granted: serde_json::to_value(&granted).unwrap_or_default(),
        notes: a.notes.clone(),
        ..RunResult::default()
    };
    // Worker timings: from the replies (valid in every deployment) when they
    // carried any, else from the worker's own summary.
    let processing = if a.rrh.processing.is_empty() { &a.worker.processing } else { &a.rrh.processing };
    let wakeup = if a.rrh.wakeup.is_empty() { &a.worker.wakeup } else { &a.rrh.wakeup };
    let mut hists: Vec<(&str, &hdrhistogram::Histogram<u64>)> = vec![
        ("slot_turnaround_ns", &a.rrh.turnaround),
        ("worker_processing_ns", processing),
        ("wakeup_ns", wakeup),
        ("pacing_lateness_ns", &a.rrh.pacing),
    ];
    if a.one_way_valid {
        if let Some(ow) = &a.worker.one_way {
            hists.push(("one_way_ns", ow));
        }
    }
    for (name, h) in hists {
        let file = format!("{dep}.{name}.hgrm");
        histio::write_hgrm(&out.join(&file), h).map_err(|e| step("write histogram", e))?;
        r.metrics.insert(name.into(), histio::summarize(h));
        r.files.insert(name.into(), file);
    }
    let mut all_ta4 = SignedHist::default();
    for (eaxc, h) in &a.worker.ta4 {
        all_ta4.add(h);
        r.ta4_margin_per_eaxc_ns.insert(eaxc.clone(), h.summarize());
    }
    if !a.worker.ta4.is_empty() {
        for (suffix, h) in [("", &all_ta4.non_negative), (".neg", &all_ta4.negative)] {
            let file = format!("{dep}.ta4_margin_ns{suffix}.hgrm");
            histio::write_hgrm(&out.join(&file), h).map_err(|e| step("write histogram", e))?;
            r.files.insert(format!("ta4_margin_ns{suffix}"), file);
        }
        r.metrics.insert("ta4_margin_ns".into(), all_ta4.summarize());
    }
    let hlog = format!("{dep}.hlog");
    // Interval timestamps are relative to the run's start (rounds of other
    // deployments show as gaps).
    let start = started.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Segments measured again after a transport switch come later in time
    // than their round suggests: the log is in time order.
    let mut intervals = a.intervals.clone();
    intervals.sort_by_key(|iv| iv.start);
    histio::write_hlog(&out.join(&hlog), start, &intervals, &format!("cranlab {} deployment {dep}", crate::GIT_REVISION))
        .map_err(|e| step("write interval log", e))?;
    r.files.insert("hlog".into(), hlog);
    Ok(r)
}

/// The in-memory path: worker loop in a thread, rrh-sim on this thread's
/// helper, no kernel networking.
fn mem_segment(s: &Scenario, dur: Duration, stop: &Arc<AtomicBool>, con: &mut Console) -> Result<Segment, RunError> {
    let (mut rrh_io, mut w_io) = sims::mem_pair(s).map_err(|e| step("create the in-memory link", e))?;
    let wstop = Arc::new(AtomicBool::new(false));
    let params = RrhParams {
        scenario: s.clone(),
        duration: dur,
        dst_mac: [0x02, 0, 0, 0, 0, 2],
        src_mac: [0x02, 0, 0, 0, 0, 1],
        interval: Duration::from_millis(s.run.hlog_interval_ms),
        run_id: 1,
    };
    let bar = con.bar.clone();
    let (rrh, worker) = std::thread::scope(|sc| {
        let ws = wstop.clone();
        let sc2 = s.clone();
        // The worker end is borrowed, not moved: it must outlive the
        // worker's return (after the end-of-run message) until the rrh-sim
        // has sent its last repeats, or those would find the peer closed.
        let w_io = &mut w_io;
        let wt = sc.spawn(move || {
            let g = sims::rt_setup(Some(sc2.run.worker_cpu), (sc2.run.rt_priority > 0).then_some(i32::from(sc2.run.rt_priority)));
            (sims::run_worker(&sc2, w_io.as_mut(), &ws), g)
        });
        let rt = sc.spawn(|| {
            let g = sims::rt_setup(Some(s.run.rrh_cpu), (s.run.rrh_priority > 0).then_some(i32::from(s.run.rrh_priority)));
            let prog = |n: u64| {
                if let Some(b) = &bar {
                    b.set_position(n);
                }
            };
            let r = sims::run_rrh(&params, rrh_io.as_mut(), stop, &prog);
            (r, g)
        });
        let rrh = rt.join();
        // The worker ends on the rrh-sim's end-of-run message; this flag is
        // the backstop when the rrh-sim failed before sending it.
        let t = Instant::now();
        while !wt.is_finished() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        wstop.store(true, Ordering::Relaxed);
        (rrh, wt.join())
    });
    let (rrh, rg) = rrh.map_err(|_| step("rrh-sim thread", "panicked"))?;
    let (worker, wg) = worker.map_err(|_| step("worker thread", "panicked"))?;
    let mut rrh = rrh.map_err(|e| step("rrh-sim live loop", e))?;
    let mut worker = worker.map_err(|e| step("worker loop", e))?;
    rrh.fifo_granted = rg.fifo;
    rrh.refused.extend(rg.refused.iter().cloned());
    worker.transport = "mem".into();
    let granted = GrantedFacts {
        deployment: "bare".into(),
        virtualization: "none".into(),
        sched: wg.sched.clone(),
        cpus: wg.cpu.into_iter().collect(),
        mlocked: false,
        cgroup: None,
        start_to_ready_ns: None,
        notes: std::iter::once("worker ran as a thread inside cranlab over the in-memory transport (no kernel networking)".to_string())
            .chain(wg.refused.iter().map(|r| format!("worker thread: {r}")))
            .collect(),
    };
    Ok(Segment {
        rrh,
        transport: "mem".into(),
        transport_detail: serde_json::json!({ "requested": s.run.transport.as_str(), "rrh": "mem", "worker": "mem" }),
        worker,
        granted,
        notes: Vec::new(),
        offset: Duration::ZERO,
    })
}

/// The namespaces and link of one segment.
/// Fields drop in declaration order: the link, then the namespaces.
struct Fabric {
    worker_link: WorkerLink,
    link: net::FronthaulLink,
    wns: Option<net::Netns>,
    rns: net::Netns,
}

impl Fabric {
    /// Two namespaces and a veth pair (a tap in the rrh namespace for kvm).
    fn create(dep: &dyn Deployment, s: &Scenario) -> Result<Fabric, RunError> {
        let kind = dep.kind();
        let rns = net::Netns::create(&net::owned_netns_name("r")).map_err(|e| step("create the rrh-sim's network namespace", e))?;
        let tag = net::short_tag();
        let (wns, link) = match dep.link_kind() {
            LinkKind::Veth => {
                let w = net::Netns::create(&net::owned_netns_name("w")).map_err(|e| step("create the worker's network namespace", e))?;
                let l = net::veth_pair(&tag, rns.name(), w.name(), s.cell.mtu).map_err(|e| step("create the fronthaul veth pair", e))?;
                (Some(w), l)
            }
            LinkKind::Tap => (None, net::tap(&tag, rns.name(), s.cell.mtu).map_err(|e| step("create the fronthaul tap", e))?),
        };
        let worker_link = match (&wns, &link.worker) {
            (Some(w), Some(l)) => WorkerLink {
                netns: Some(w.name().to_string()),
                ifname: l.name().to_string(),
                inner_name: if kind == DeploymentKind::Bare { l.name().to_string() } else { "eth0".into() },
                mac: link.worker_mac,
                addr: None,
            },
            _ => WorkerLink {
                netns: Some(rns.name().to_string()),
                ifname: link.rrh.name().to_string(),
                inner_name: "eth0".into(),
                mac: link.worker_mac,
                addr: None,
            },
        };
        Ok(Fabric { rns, wns, link, worker_link })
    }
}

/// Whether a launch error means the worker's AF_XDP set-up failed (the
/// worker never got ready, or the runtime could not prepare the sockets it
/// hands into a container), so AF_PACKET is worth a try.
fn afxdp_failure(e: &DeployError) -> bool {
    match e {
        DeployError::NotReady { .. } => true,
        DeployError::Step { step, .. } => step.contains("AF_XDP"),
        DeployError::Unavailable { .. } => false,
    }
}

/// One deployment × round over a real link in namespaces of our own.
#[allow(clippy::too_many_arguments)]
fn net_segment(
    dep: &dyn Deployment,
    s: &Scenario,
    dur: Duration,
    out: &Path,
    worker_bin: &Path,
    round: u32,
    stop: &Arc<AtomicBool>,
    con: &mut Console,
) -> Result<Segment, RunError> {
    let kind = dep.kind();
    let shared_clock = kind != DeploymentKind::Kvm;
    let requested = s.run.transport.as_str();
    let mut notes = Vec::new();
    let mut fallback: Option<String> = None;
    let base = format!("{}-{}-r{}", net::PREFIX, kind.as_str(), round + 1);
    let mk_spec = |transport: &str, attempt: &str, worker_link: &WorkerLink| WorkerSpec {
        name: format!("{base}{}", attempt.replace('.', "-")),
        program: worker_bin.to_path_buf(),
        args: sims::worker_args(s, transport, shared_clock),
        cpus: vec![s.run.worker_cpu],
        sched: if s.run.rt_priority > 0 { SchedPolicy::Fifo(s.run.rt_priority) } else { SchedPolicy::Other },
        mlock: s.run.mlock,
        link: worker_link.clone(),
        memory_bytes: s.run.memory_mib << 20,
        log: out.join(format!("{}.round{}{attempt}.worker.log", kind.as_str(), round + 1)),
        work_dir: out.join(format!(".{}-work", kind.as_str())),
        ready_timeout: Duration::from_secs_f64(s.run.ready_timeout_s),
    };
    let _ = std::fs::create_dir_all(out.join(format!(".{}-work", kind.as_str())));
    let mut worker_transport = requested.to_string();
    let mut fab = Fabric::create(dep, s)?;
    let spec = mk_spec(&worker_transport, "", &fab.worker_link);
    let mut log_path = spec.log.clone();
    let mut handle = match dep.launch(&spec) {
        Ok(h) => h,
        Err(e) if worker_transport == "afxdp" && afxdp_failure(&e) => {
            let why = format!("worker could not use AF_XDP: {e}");
            con.say(format!("warning: {why}; falling back to AF_PACKET"));
            fallback = Some(why);
            worker_transport = "af_packet".into();
            // A failed AF_XDP set-up may have taken the link with it (the
            // container's namespace is removed on error): start afresh.
            drop(fab);
            fab = Fabric::create(dep, s)?;
            let spec = mk_spec("af_packet", ".fallback", &fab.worker_link);
            log_path = spec.log.clone();
            dep.launch(&spec).map_err(|e| step(format!("launch the {} worker", kind.as_str()), e))?
        }
        Err(DeployError::Unavailable { deployment, reason }) => {
            return Err(RunError::Unavailable { deployment: deployment.into(), reason })
        }
        Err(e) => return Err(step(format!("launch the {} worker", kind.as_str()), e)),
    };
    let Fabric { rns, wns, link, .. } = fab;
    let granted = handle.facts().clone();
    if granted.virtualization == "tcg" {
        con.say("note: the kvm worker runs under TCG emulation: its figures say nothing about KVM latency");
    }

    // The rrh-sim, on its own core, in its own namespace.
    let params = RrhParams {
        scenario: s.clone(),
        duration: dur,
        dst_mac: link.worker_mac,
        src_mac: link.rrh_mac,
        interval: Duration::from_millis(s.run.hlog_interval_ms),
        run_id: round * 4 + kind as u32 + 1,
    };
    let rrh_if = link.rrh.name().to_string();
    let rrh_ns = rns.name().to_string();
    let bar = con.bar.clone();
    let wt = worker_transport.clone();
    let rrh_res = std::thread::scope(|sc| {
        sc.spawn(|| -> Result<(RrhSide, String, Option<String>), RunError> {
            net::enter_netns(&rrh_ns).map_err(|e| step("enter the rrh-sim's network namespace", e))?;
            let g = sims::rt_setup(Some(s.run.rrh_cpu), (s.run.rrh_priority > 0).then_some(i32::from(s.run.rrh_priority)));
            let (mut io, used, fb) = match sims::open_io(&wt, &rrh_if) {
                Ok(io) => (io, wt.clone(), None),
                Err(e) if wt == "afxdp" => {
                    let why = format!("rrh-sim could not open AF_XDP on {rrh_if}: {e}");
                    let io = sims::open_io("af_packet", &rrh_if).map_err(|e| step(format!("open af_packet on {rrh_if}"), e))?;
                    (io, "af_packet".to_string(), Some(why))
                }
                Err(e) => return Err(step(format!("open {wt} on {rrh_if}"), e)),
            };
            let prog = |n: u64| {
                if let Some(b) = &bar {
                    b.set_position(n);
                }
            };
            let mut r = sims::run_rrh(&params, io.as_mut(), stop, &prog).map_err(|e| step("rrh-sim live loop", e))?;
            r.fifo_granted = g.fifo;
            r.refused = g.refused;
            r.io_detail = io.detail();
            Ok((r, used, fb))
        })
        .join()
    });
    let rrh_res = rrh_res.map_err(|_| step("rrh-sim thread", "panicked"))?;

    // The worker ends on the rrh-sim's end-of-run message.
    let grace = Duration::from_secs(5) + Duration::from_nanos(s.timing.lead_ns(s.slot_ns()));
    let t = Instant::now();
    let mut exit = WorkerExit::Running;
    while t.elapsed() < grace {
        exit = handle.try_wait().map_err(|e| step("wait for the worker", e))?;
        if exit != WorkerExit::Running || stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if exit == WorkerExit::Running {
        exit = handle.stop(Duration::from_secs(2)).map_err(|e| step("stop the worker", e))?;
        if !stop.load(Ordering::Relaxed) && rrh_res.is_ok() {
            notes.push(format!("worker did not end by itself after the end-of-run message; stopped it ({exit:?})"));
        }
    } else if exit != WorkerExit::Exited(0) {
        notes.push(format!("worker ended with {exit:?}"));
    }
    drop(handle);
    let (mut rrh, rrh_used, rrh_fb) = rrh_res?;
    let log = std::fs::read_to_string(&log_path).map_err(|e| step(format!("read worker log {}", log_path.display()), e))?;
    let line = log.lines().rev().find(|l| l.contains("SUMMARY "));
    let mut worker = match line {
        Some(l) => sims::parse_worker_summary(l).map_err(|e| step(format!("parse the worker's SUMMARY in {}", log_path.display()), e))?,
        None => {
            return Err(step(
                "read the worker's summary",
                format!("no SUMMARY line in {} (worker {exit:?}); last lines: {}", log_path.display(), rt_runtime::bare::tail(&log, 6)),
            ))
        }
    };
    if !shared_clock {
        worker.one_way = None;
    }
    if let Some(fb) = rrh_fb {
        con.say(format!("warning: {fb}; the rrh-sim end uses AF_PACKET"));
        fallback = Some(match fallback {
            Some(f) => format!("{f}; {fb}"),
            None => fb,
        });
    }
    let mut detail = serde_json::Map::new();
    detail.insert("requested".into(), requested.into());
    detail.insert("worker".into(), worker_transport.clone().into());
    detail.insert("rrh".into(), rrh_used.into());
    detail.insert("worker_io".into(), worker.io_detail.clone());
    detail.insert("rrh_io".into(), std::mem::take(&mut rrh.io_detail));
    if let Some(fb) = &fallback {
        detail.insert("fallback_reason".into(), fb.clone().into());
    }
    // The XDP attach mode of each AF_XDP end (native / generic, zero-copy /
    // copy), lifted out of the ends' details.
    let modes: serde_json::Map<String, serde_json::Value> = ["worker", "rrh"]
        .iter()
        .filter_map(|end| detail.get(&format!("{end}_io")).and_then(|io| io.get("mode")).map(|m| (end.to_string(), m.clone())))
        .collect();
    if !modes.is_empty() {
        detail.insert("xdp_mode".into(), serde_json::Value::Object(modes));
    }
    worker.transport = worker_transport.clone();
    drop(link);
    drop(wns);
    drop(rns);
    Ok(Segment {
        rrh,
        worker,
        granted,
        transport: worker_transport,
        transport_detail: serde_json::Value::Object(detail),
        notes,
        offset: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_civil_time() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_796_421_600)), "2026-12-04T22:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn missing_worker_binary_says_how_to_build_it() {
        let e = find_worker(Some(Path::new("/nonexistent/bbu-sim"))).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/bbu-sim"), "{e}");
    }
}
