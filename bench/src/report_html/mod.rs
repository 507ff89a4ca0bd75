//! `report.html` and its SVG plots, rendered from a results directory.
//!
//! Everything is read back from the files a run wrote (`results.json`, the
//! `.hgrm` percentile files and the `.hlog` interval logs), so `cranlab
//! report DIR` can re-render an old run. The page is self-contained: inline
//! SVG, inline CSS, no scripts, no network.

mod plots;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::histio::HistIoError;
use crate::results::{Results, RunResult, Summary, METRICS};

/// Errors from rendering a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A results, percentile or interval-log file could not be read.
    #[error(transparent)]
    Hist(#[from] HistIoError),
    /// A file could not be read.
    #[error("read {path}: {err}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// A file could not be written.
    #[error("write {path}: {err}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// A file's content is not what a cranlab run writes.
    #[error("parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Drawing a plot failed.
    #[error("plot {name}: {reason}")]
    Plot {
        /// Plot file name.
        name: String,
        /// What failed.
        reason: String,
    },
}

/// What was rendered.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The HTML page.
    pub html: PathBuf,
    /// The SVG files written beside it.
    pub svgs: Vec<PathBuf>,
}

/// Human title of a metric.
fn metric_title(m: &str) -> &str {
    match m {
        "slot_turnaround_ns" => "Slot turnaround (rrh-sim clock, from the scheduled send of the last UL symbol)",
        "worker_processing_ns" => "Worker processing (last symbol arrival to end of processing)",
        "wakeup_ns" => "Worker wake-up lateness (cyclictest-like)",
        "one_way_ns" => "One-way fronthaul (shared clock only)",
        "ta4_margin_ns" => "Ta4 margin (to the end of the receive window; negative = late)",
        "pacing_lateness_ns" => "Generator pacing lateness",
        other => other,
    }
}

/// Label of a run in plots and tables: deployment, plus the virtualization
/// when it is emulation, so TCG figures can never pass for KVM.
pub fn run_label(r: &RunResult) -> String {
    if r.deployment == "kvm" && r.virtualization != "kvm" {
        format!("kvm ({} emulation)", if r.virtualization.is_empty() { "unknown" } else { &r.virtualization })
    } else {
        r.deployment.clone()
    }
}

/// Everything degraded, emulated, skipped or not granted, one sentence each.
pub fn caveats(res: &Results) -> Vec<String> {
    let mut out = Vec::new();
    let h = &res.host;
    if !h.preemption.contains("PREEMPT_RT") {
        out.push(format!("Kernel is not PREEMPT_RT (preemption: {}).", if h.preemption.is_empty() { "unknown" } else { &h.preemption }));
    }
    if h.isolated_cpus.is_empty() {
        out.push(format!("No isolated cores (isolcpus/nohz_full absent); isolation used: {}.", if h.isolation.is_empty() { "none" } else { &h.isolation }));
    }
    if !h.sched_fifo_granted {
        out.push("SCHED_FIFO was not granted to the simulators: figures are SCHED_OTHER figures.".into());
    }
    for n in &h.notes {
        out.push(n.clone());
    }
    for r in &res.runs {
        let label = run_label(r);
        if r.deployment == "kvm" && r.virtualization != "kvm" {
            out.push(format!("The {label} run is emulation (TCG): it says nothing about KVM latency."));
        }
        if let Some(reason) = r.transport_detail.get("fallback_reason").and_then(|v| v.as_str()) {
            out.push(format!("{label}: transport fell back to {}: {reason}", r.transport));
        }
        if let Some(s) = r.granted.get("sched").and_then(|v| v.as_str()) {
            if !s.starts_with("SCHED_FIFO") {
                out.push(format!("{label}: worker ran as {s}, not SCHED_FIFO."));
            }
        }
        if let Some(notes) = r.granted.get("notes").and_then(|v| v.as_array()) {
            for n in notes.iter().filter_map(|n| n.as_str()) {
                out.push(format!("{label}: {n}"));
            }
        }
        for n in &r.notes {
            out.push(format!("{label}: {n}"));
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn us(ns: i64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn ratio(v: i64, base: i64) -> String {
    if base == 0 {
        "–".into()
    } else {
        format!("{:.2}×", v as f64 / base as f64)
    }
}

fn pct_cols(s: &Summary) -> [i64; 7] {
    [s.min, s.p50, s.p99, s.p999, s.p9999, s.p99999, s.max]
}

/// Renders `dir/report.html` and `dir/plots/*.svg` from the files in `dir`.
pub fn render(dir: &Path) -> Result<Rendered, ReportError> {
    let res = crate::histio::read_results(dir)?;
    let plot_dir = dir.join("plots");
    std::fs::create_dir_all(&plot_dir).map_err(|e| ReportError::Write { path: plot_dir.clone(), err: e })?;
    let mut svgs = Vec::new();
    let mut html = String::new();
    let title = format!("cranlab report — {}", esc(&res.started_at));
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>\
body{{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}}\
table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #bbb;padding:2px 6px;text-align:right}}\
th{{background:#eee}}td:first-child,th:first-child{{text-align:left}}\
.caveats{{background:#fff4d6;border:1px solid #e0b84c;padding:0.5em 1em}}.fig{{margin:1em 0}}\
</style></head><body><h1>{title}</h1>\n"
    );
    let _ = writeln!(html, "<p>Revision <code>{}</code>. Results: <code>results.json</code>; percentile files (<code>.hgrm</code>) and interval logs (<code>.hlog</code>) beside it. All latencies in µs.</p>", esc(&res.git_revision));

    let cav = caveats(&res);
    if !cav.is_empty() {
        html.push_str("<div class=\"caveats\"><h2>What this host and run did not provide</h2><ul>");
        for c in &cav {
            let _ = write!(html, "<li>{}</li>", esc(c));
        }
        html.push_str("</ul></div>\n");
    }

    // Counts table.
    html.push_str("<h2>Runs</h2><table><tr><th>run</th><th>transport</th><th>slots</th><th>deadline misses</th><th>budget µs</th><th>late replies</th><th>lost replies</th><th>bit errors</th><th>bits checked</th><th>lost pkts</th><th>malformed</th><th>dup</th><th>out of order</th><th>early</th><th>on time</th><th>late</th></tr>\n");
    for r in &res.runs {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&run_label(r)),
            esc(&r.transport),
            r.slots,
            r.deadline_misses,
            us(r.slot_budget_ns as i64),
            r.late_replies,
            r.lost_replies,
            r.bit_errors,
            r.bits_checked,
            r.lost_packets,
            r.malformed_packets,
            r.duplicate_packets,
            r.out_of_order_packets,
            r.early_packets,
            r.on_time_packets,
            r.late_packets
        );
    }
    html.push_str("</table>\n");

    let bare = res.runs.iter().find(|r| r.deployment == "bare");
    let mut metrics: Vec<String> = METRICS.iter().map(|s| s.to_string()).collect();
    metrics.push("pacing_lateness_ns".into());
    for m in &metrics {
        let runs: Vec<&RunResult> = res.runs.iter().filter(|r| r.metrics.contains_key(m.as_str())).collect();
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(html, "<h2>{}</h2>", esc(metric_title(m)));
        html.push_str("<table><tr><th>run</th><th>count</th><th>min</th><th>p50</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>p99.999</th><th>max</th>");
        if bare.is_some() {
            html.push_str("<th>p50 / bare</th><th>p99 / bare</th><th>p99.9 / bare</th><th>max / bare</th>");
        }
        html.push_str("</tr>\n");
        for r in &runs {
            let s = r.metrics[m.as_str()];
            let _ = write!(html, "<tr><td>{}</td><td>{}</td>", esc(&run_label(r)), s.count);
            for v in pct_cols(&s) {
                let _ = write!(html, "<td>{}</td>", us(v));
            }
            if let Some(b) = bare.and_then(|b| b.metrics.get(m.as_str())) {
                for (v, bv) in [(s.p50, b.p50), (s.p99, b.p99), (s.p999, b.p999), (s.max, b.max)] {
                    let _ = write!(html, "<td>{}</td>", ratio(v, bv));
                }
            } else if bare.is_some() {
                html.push_str("<td>–</td><td>–</td><td>–</td><td>–</td>");
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table>\n");
        let deadline = if m == "slot_turnaround_ns" {
            runs.iter().map(|r| r.slot_budget_ns).find(|&b| b > 0).map(|b| b as f64 / 1000.0)
        } else if m == "ta4_margin_ns" {
            Some(0.0)
        } else {
            None
        };
        if let Some(svg) = plots::percentile_plot(dir, &plot_dir, m, metric_title(m), &runs, deadline)? {
            embed(&mut html, &svg)?;
            svgs.push(svg);
        }
        if m == "slot_turnaround_ns" || m == "worker_processing_ns" || m == "wakeup_ns" {
            for r in &runs {
                if let Some(svg) = plots::histogram_plot(dir, &plot_dir, m, r)? {
                    embed(&mut html, &svg)?;
                    svgs.push(svg);
                }
            }
        }
        if let Some(svg) = plots::maxima_plot(dir, &plot_dir, m, &runs)? {
            embed(&mut html, &svg)?;
            svgs.push(svg);
        }
    }

    // Host facts.
    html.push_str("<h2>Host</h2><table>");
    let host = serde_json::to_value(&res.host).unwrap_or_default();
    if let Some(obj) = host.as_object() {
        for (k, v) in obj {
            let val = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(html, "<tr><td>{}</td><td style=\"text-align:left\">{}</td></tr>", esc(k), esc(&val));
        }
    }
    html.push_str("</table>\n<h2>Scenario</h2><pre>");
    html.push_str(&esc(&serde_json::to_string_pretty(&res.scenario).unwrap_or_default()));
    html.push_str("</pre></body></html>\n");

    let out = dir.join("report.html");
    std::fs::write(&out, html).map_err(|e| ReportError::Write { path: out.clone(), err: e })?;
    Ok(Rendered { html: out, svgs })
}

fn embed(html: &mut String, svg: &Path) -> Result<(), ReportError> {
    let text = std::fs::read_to_string(svg).map_err(|e| ReportError::Read { path: svg.to_path_buf(), err: e })?;
    html.push_str("<div class=\"fig\">");
    html.push_str(&text);
    html.push_str("</div>\n");
    Ok(())
}
