//! `report.md`: the runs side by side, percentiles as columns, ratios to
//! bare per percentile, the counters, and a plain account of what the host
//! did and did not provide. Rendered from [`Results`] alone, so an old
//! `results.json` can be re-rendered.

use std::fmt::Write as _;

use crate::results::{Results, RunResult, Summary, METRICS};

/// Human title of a metric.
pub fn metric_title(m: &str) -> &'static str {
    match m {
        "slot_turnaround_ns" => "Slot turnaround (rrh-sim clock: scheduled tx of last UL symbol → slot-done reply)",
        "worker_processing_ns" => "Worker processing (last symbol of the slot received → slot processed)",
        "wakeup_ns" => "Worker wake-up lateness (cyclictest-like)",
        "one_way_ns" => "One-way fronthaul (rrh-sim tx → worker rx, shared CLOCK_MONOTONIC)",
        "ta4_margin_ns" => "Ta4 margin (end of the symbol's receive window − arrival; negative = late)",
        "pacing_lateness_ns" => "Generator pacing lateness (rrh-sim's own transmit vs schedule)",
        _ => "other metric",
    }
}

fn us(v: i64) -> String {
    format!("{:.1}", v as f64 / 1000.0)
}

fn label(r: &RunResult) -> String {
    if r.deployment == "kvm" && r.virtualization == "tcg" {
        "kvm (TCG emulation, not KVM)".into()
    } else {
        r.deployment.clone()
    }
}

/// Picks one percentile out of a summary.
type Pick = fn(&Summary) -> i64;

const COLS: [(&str, Pick); 7] = [
    ("min", |s| s.min),
    ("p50", |s| s.p50),
    ("p99", |s| s.p99),
    ("p99.9", |s| s.p999),
    ("p99.99", |s| s.p9999),
    ("p99.999", |s| s.p99999),
    ("max", |s| s.max),
];

/// Smallest sample count that supports a percentile: p99.999 needs 100 000
/// samples to be more than the maximum.
fn supported(count: u64, col: &str) -> bool {
    let need = match col {
        "p99" => 100,
        "p99.9" => 1_000,
        "p99.99" => 10_000,
        "p99.999" => 100_000,
        _ => 1,
    };
    count >= need
}

/// Renders report.md.
pub fn render(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# cranlab report\n");
    let _ = writeln!(s, "- started: {}", r.started_at);
    let _ = writeln!(s, "- cranlab revision: `{}`", r.git_revision);
    let cell = r.scenario.get("cell");
    if let Some(c) = cell {
        let g = |k: &str| c.get(k).map(|v| v.to_string().trim_matches('"').to_string()).unwrap_or_default();
        let _ = writeln!(
            s,
            "- cell: µ = {}, {} PRB, {} antennas, {} layer(s), {}, {}-bit {}",
            g("mu"),
            g("prbs"),
            g("antennas"),
            g("layers"),
            g("modulation"),
            g("iq_width"),
            g("compression")
        );
    }
    if let Some(run) = r.scenario.get("run") {
        let _ = writeln!(
            s,
            "- run: {} s over {} round(s), deployments {}, transport asked {}, worker cpu {}, rrh-sim cpu {}, poll {}",
            run.get("duration_s").map(|v| v.to_string()).unwrap_or_default(),
            run.get("rounds").map(|v| v.to_string()).unwrap_or_default(),
            run.get("deployments").map(|v| v.to_string()).unwrap_or_default(),
            run.get("transport").map(|v| v.to_string()).unwrap_or_default(),
            run.get("worker_cpu").map(|v| v.to_string()).unwrap_or_default(),
            run.get("rrh_cpu").map(|v| v.to_string()).unwrap_or_default(),
            run.get("poll").map(|v| v.to_string()).unwrap_or_default(),
        );
    }
    let _ = writeln!(
        s,
        "\nAll latencies in µs. A percentile shown in *italics* has fewer samples than it needs to be more than \
         the maximum of a smaller run (p99.9 needs 1 000, p99.999 needs 100 000).\n"
    );

    // Counters.
    let _ = writeln!(s, "## Slots, deadlines and packets\n");
    let _ = writeln!(
        s,
        "| deployment | transport | rounds | slots | deadline misses | late replies | lost replies | bit errors / bits checked | lost pkts | malformed | duplicate | out of order | early / on time / late pkts | generator late symbols |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for run in &r.runs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} / {} / {} | {} |",
            label(run),
            run.transport,
            run.rounds,
            run.slots,
            run.deadline_misses,
            run.late_replies,
            run.lost_replies,
            run.bit_errors,
            run.bits_checked,
            run.lost_packets,
            run.malformed_packets,
            run.duplicate_packets,
            run.out_of_order_packets,
            run.early_packets,
            run.on_time_packets,
            run.late_packets,
            run.generator_late_symbols
        );
    }
    if let Some(b) = r.runs.first() {
        let _ = writeln!(s, "\nSlot budget: {} µs (a slot whose reply takes longer, or never comes, is a deadline miss).", us(b.slot_budget_ns as i64));
    }

    // Metrics, one table each.
    let mut metrics: Vec<&str> = METRICS.to_vec();
    metrics.push("pacing_lateness_ns");
    for m in metrics {
        if !r.runs.iter().any(|run| run.metrics.contains_key(m)) {
            continue;
        }
        let _ = writeln!(s, "\n## {}\n", metric_title(m));
        let _ = write!(s, "| deployment | samples |");
        for (c, _) in COLS {
            let _ = write!(s, " {c} |");
        }
        let _ = writeln!(s, "\n|---|---|{}", "---|".repeat(COLS.len()));
        for run in &r.runs {
            match run.metrics.get(m) {
                Some(sum) => {
                    let _ = write!(s, "| {} | {} |", label(run), sum.count);
                    for (c, f) in COLS {
                        if sum.count == 0 {
                            let _ = write!(s, " – |");
                        } else if supported(sum.count, c) {
                            let _ = write!(s, " {} |", us(f(sum)));
                        } else {
                            let _ = write!(s, " *{}* |", us(f(sum)));
                        }
                    }
                    let _ = writeln!(s);
                }
                None => {
                    let why = if m == "one_way_ns" && run.deployment == "kvm" {
                        "not measured: the guest does not share the host's clock"
                    } else {
                        "not reported"
                    };
                    let _ = writeln!(s, "| {} | {why} |{}", label(run), " |".repeat(COLS.len()));
                }
            }
        }
        // Ratios to bare.
        let bare = r.runs.iter().find(|x| x.deployment == "bare").and_then(|x| x.metrics.get(m));
        if let Some(b) = bare {
            let others: Vec<&RunResult> = r.runs.iter().filter(|x| x.deployment != "bare" && x.metrics.contains_key(m)).collect();
            if !others.is_empty() && m != "ta4_margin_ns" {
                let _ = writeln!(s, "\nRatio to bare, per percentile:\n");
                let _ = write!(s, "| ratio |");
                for (c, _) in COLS {
                    let _ = write!(s, " {c} |");
                }
                let _ = writeln!(s, "\n|---|{}", "---|".repeat(COLS.len()));
                for o in others {
                    let os = &o.metrics[m];
                    let _ = write!(s, "| {}/bare |", label(o));
                    for (_, f) in COLS {
                        let (a, bv) = (f(os), f(b));
                        if bv > 0 && os.count > 0 {
                            let _ = write!(s, " {:.2} |", a as f64 / bv as f64);
                        } else {
                            let _ = write!(s, " – |");
                        }
                    }
                    let _ = writeln!(s);
                }
            }
        }
    }

    // Files.
    let _ = writeln!(s, "\n## Files\n");
    for run in &r.runs {
        let files: Vec<String> = run.files.values().map(|f| format!("`{f}`")).collect();
        let _ = writeln!(s, "- {}: {}", label(run), files.join(", "));
    }

    // What the host gave.
    let _ = writeln!(s, "\n## What the host did and did not provide\n");
    let h = &r.host;
    let _ = writeln!(s, "- kernel {} ({}), {} online CPU(s), {}", h.kernel_release, h.preemption, h.cpus_online, h.cpu_model);
    let _ = writeln!(s, "- cgroups: {}; isolation of the worker core: {}", h.cgroup_version, h.isolation);
    let _ = writeln!(
        s,
        "- isolated CPUs: {}; nohz_full CPUs: {}",
        if h.isolated_cpus.is_empty() { "none".to_string() } else { format!("{:?}", h.isolated_cpus) },
        if h.nohz_full_cpus.is_empty() { "none".to_string() } else { format!("{:?}", h.nohz_full_cpus) }
    );
    let _ = writeln!(
        s,
        "- SCHED_FIFO for the simulators: {}",
        if h.sched_fifo_granted { "granted" } else { "NOT granted (SCHED_OTHER: figures are not real-time figures)" }
    );
    match h.sched_rt_runtime_us {
        Some(-1) => {
            let _ = writeln!(s, "- RT throttling: off");
        }
        Some(v) => {
            let _ = writeln!(
                s,
                "- RT throttling: on ({v} µs of every {} µs for real-time tasks)",
                h.sched_rt_period_us.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            );
        }
        None => {}
    }
    if let Some(g) = &h.governor {
        let _ = writeln!(s, "- frequency governor: {g}");
    }
    if let Some(smt) = h.smt_active {
        let _ = writeln!(s, "- SMT: {}", if smt { "active" } else { "off" });
    }
    if let Some(c) = &h.clocksource {
        let _ = writeln!(s, "- clocksource: {c}");
    }
    for n in &h.notes {
        let _ = writeln!(s, "- {n}");
    }
    for run in &r.runs {
        let mut lines: Vec<String> = Vec::new();
        if run.deployment == "kvm" && run.virtualization == "tcg" {
            lines.push("ran under TCG emulation: its figures say nothing about KVM latency".into());
        }
        if let Some(fb) = run.transport_detail.get("fallback_reason").and_then(|v| v.as_str()) {
            lines.push(format!("transport fell back to {}: {fb}", run.transport));
        }
        if let Some(sched) = run.granted.get("sched").and_then(|v| v.as_str()) {
            lines.push(format!("worker scheduling read back from the kernel: {sched}"));
        }
        if let Some(cpus) = run.granted.get("cpus") {
            lines.push(format!("worker affinity: {cpus}"));
        }
        if let Some(m) = run.granted.get("mlocked").and_then(|v| v.as_bool()) {
            lines.push(format!("worker memory locked: {}", if m { "yes" } else { "no" }));
        }
        if let Some(notes) = run.granted.get("notes").and_then(|v| v.as_array()) {
            lines.extend(notes.iter().filter_map(|n| n.as_str().map(str::to_string)));
        }
        lines.extend(run.notes.iter().cloned());
        if !lines.is_empty() {
            let _ = writeln!(s, "\n{}:\n", label(run));
            for l in lines {
                let _ = writeln!(s, "- {l}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{HostFacts, SCHEMA};

    fn sum(p50: i64, count: u64) -> Summary {
        Summary { count, min: p50 / 2, p50, p99: p50 * 2, p999: p50 * 3, p9999: p50 * 4, p99999: p50 * 5, max: p50 * 6 }
    }

    #[test]
    fn ratios_and_host_facts_are_shown() {
        let mut bare = RunResult { deployment: "bare".into(), virtualization: "none".into(), transport: "afxdp".into(), ..Default::default() };
        bare.metrics.insert("slot_turnaround_ns".into(), sum(100_000, 20_000));
        bare.metrics.insert("one_way_ns".into(), sum(4_000, 20_000));
        let mut kvm = RunResult { deployment: "kvm".into(), virtualization: "tcg".into(), transport: "af_packet".into(), ..Default::default() };
        kvm.metrics.insert("slot_turnaround_ns".into(), sum(250_000, 500));
        kvm.transport_detail = serde_json::json!({"fallback_reason": "xdp attach refused"});
        let r = Results {
            schema: SCHEMA.into(),
            git_revision: "abc".into(),
            started_at: "now".into(),
            scenario: serde_json::json!({}),
            host: HostFacts { sched_fifo_granted: false, sched_rt_runtime_us: Some(950000), ..Default::default() },
            runs: vec![bare, kvm],
        };
        let md = render(&r);
        assert!(md.contains("| kvm (TCG emulation, not KVM)/bare | 2.50 | 2.50 |"), "{md}");
        assert!(md.contains("not measured: the guest does not share the host's clock"), "{md}");
        assert!(md.contains("SCHED_FIFO for the simulators: NOT granted"), "{md}");
        assert!(md.contains("transport fell back to af_packet: xdp attach refused"), "{md}");
        assert!(md.contains("TCG emulation: its figures say nothing about KVM latency"), "{md}");
        // 500 samples cannot support p99.9.
        assert!(md.contains("| *750.0* |"), "{md}");
    }
}
