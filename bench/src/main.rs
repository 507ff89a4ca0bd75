//! `cranlab`: run experiments, write results and reports.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use bench::run::{RunError, RunRequest};
use bench::scenario::{parse_deployments, Overrides, PollMode, Scenario, TransportChoice};
use clap::{Parser, Subcommand};
use rt_runtime::deploy::DeploymentKind;

/// The default scenario, built in for `cranlab run` without a file.
const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/default.toml");

#[derive(Parser)]
#[command(name = "cranlab", version = bench::GIT_REVISION, about = "BBU workers on bare metal, in containers and in KVM guests: real-time latency side by side")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario and write results.json, .hgrm, .hlog and report.md into DIR.
    Run {
        /// Scenario file (default: the built-in scenarios/default.toml).
        scenario: Option<PathBuf>,
        /// Results directory.
        #[arg(long)]
        out: PathBuf,
        /// Total measured seconds (split over rounds and deployments).
        #[arg(long)]
        duration: Option<f64>,
        /// Deployments to compare, e.g. bare,container,kvm.
        #[arg(long)]
        deployments: Option<String>,
        /// Fronthaul transport.
        #[arg(long, value_enum)]
        transport: Option<TransportChoice>,
        /// Rounds of interleaving (A B A B ...).
        #[arg(long)]
        rounds: Option<u32>,
        /// Worker poll mode.
        #[arg(long, value_enum)]
        poll: Option<PollMode>,
        /// Worker binary (default: bbu-sim next to cranlab).
        #[arg(long)]
        worker: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Check whether this host is ready for real-time BBU workers.
    HostCheck {
        /// Cores the workers need.
        #[arg(long, default_value_t = 1)]
        cpus: usize,
        /// Treat warnings as failures.
        #[arg(long)]
        strict: bool,
    },
    /// Render DIR/report.html and DIR/plots/*.svg from a results directory.
    Report {
        /// Results directory written by `cranlab run`.
        dir: PathBuf,
    },
    /// Reproduce the 2016 container-vs-VM whitepaper table on this host.
    Whitepaper {
        /// Output directory (whitepaper.json, whitepaper.md, guest logs).
        #[arg(long)]
        out: PathBuf,
        /// Instances per launch test.
        #[arg(long, default_value_t = 15)]
        count: usize,
        /// Seconds of the CPU workload per platform.
        #[arg(long, default_value_t = 5.0)]
        prime_seconds: f64,
        /// MiB per array of the memory-bandwidth workload.
        #[arg(long, default_value_t = 64)]
        mbw_mib: usize,
        /// Seconds of each network workload (TCP stream, request/response).
        #[arg(long, default_value_t = 5.0)]
        net_seconds: f64,
    },
    /// Remove what killed runs left (network namespaces, links, cgroups).
    Cleanup {
        /// Also remove cranlab-named objects whose owner cannot be told.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cranlab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Run { scenario, out, duration, deployments, transport, rounds, poll, worker, no_progress } => {
            let (mut s, path) = match &scenario {
                Some(p) => (Scenario::load(p)?, p.display().to_string()),
                None => (Scenario::parse(DEFAULT_SCENARIO, "scenarios/default.toml")?, "scenarios/default.toml (built in)".to_string()),
            };
            let deployments: Option<Vec<DeploymentKind>> =
                deployments.map(|d| parse_deployments(&d)).transpose().map_err(|e| anyhow::anyhow!("--deployments: {e}"))?;
            s.apply(&Overrides { duration_s: duration, deployments, transport, rounds, worker, poll }, &path)?;
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                // A second signal exits at once (the next run's sweep cleans up).
                signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone()).context("install signal handler")?;
                signal_hook::flag::register(sig, stop.clone()).context("install signal handler")?;
            }
            let req = RunRequest {
                scenario: s,
                scenario_path: path,
                out,
                progress: !no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                stop,
            };
            match bench::run::run(&req) {
                Ok(o) => {
                    for r in &o.results.runs {
                        println!(
                            "{:>9}: {} slots, {} deadline misses, {} bit errors, {} lost packets, slot turnaround p50 {} µs p99.9 {} µs max {} µs ({})",
                            r.deployment,
                            r.slots,
                            r.deadline_misses,
                            r.bit_errors,
                            r.lost_packets,
                            us(r, "slot_turnaround_ns", |s| s.p50),
                            us(r, "slot_turnaround_ns", |s| s.p999),
                            us(r, "slot_turnaround_ns", |s| s.max),
                            r.transport
                        );
                    }
                    println!("report: {}", o.report.display());
                    let html = bench::report_html::render(&req.out).context("render report.html")?;
                    println!("report: {}", html.html.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(RunError::Interrupted) => {
                    eprintln!("cranlab: interrupted: stopped the run and removed what it created");
                    Ok(ExitCode::from(130))
                }
                Err(e) => Err(e.into()),
            }
        }
        Cmd::Report { dir } => {
            let r = bench::report_html::render(&dir)?;
            println!("report: {} ({} plots)", r.html.display(), r.svgs.len());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Whitepaper { out, count, prime_seconds, mbw_mib, net_seconds } => {
            if count == 0 {
                anyhow::bail!("--count: must be at least 1");
            }
            if !(prime_seconds.is_finite() && prime_seconds > 0.0) {
                anyhow::bail!("--prime-seconds: must be a positive number of seconds");
            }
            if !(net_seconds.is_finite() && net_seconds > 0.0) {
                anyhow::bail!("--net-seconds: must be a positive number of seconds");
            }
            let opt = bench::whitepaper::Options {
                count,
                out,
                prime_seconds,
                mbw_mib: mbw_mib.max(1),
                net_seconds,
                ready_timeout: std::time::Duration::from_secs(180),
                proc_root: "/proc".into(),
                stop: bench::whitepaper::Stop::default(),
            };
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                // A second signal exits at once (the next run's sweep cleans up).
                signal_hook::flag::register_conditional_shutdown(sig, 130, opt.stop.0.clone()).context("install signal handler")?;
                signal_hook::flag::register(sig, opt.stop.0.clone()).context("install signal handler")?;
            }
            let r = match bench::whitepaper::run_on_host(&opt, &|s| eprintln!("cranlab whitepaper: {s}")) {
                Ok(r) => r,
                Err(bench::whitepaper::WpError::Interrupted) => {
                    eprintln!("cranlab: interrupted: stopped the benchmarks and removed what they created");
                    return Ok(ExitCode::from(130));
                }
                Err(e) => return Err(e.into()),
            };
            println!("{}", r.table);
            println!("whitepaper: {}", opt.out.join("whitepaper.md").display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::HostCheck { cpus, strict } => {
            use rt_runtime::host::{check, exit_code, render, CheckRequest, Roots};
            // cpu 0 stays for the host and the rrh-sim; the workers take the next ones.
            let items = check(&CheckRequest { worker_cpus: (1..=cpus).collect(), roots: Roots::default() });
            print!("{}", render(&items));
            Ok(ExitCode::from(exit_code(&items, strict) as u8))
        }
        Cmd::Cleanup { all } => {
            if !bench::run::is_root() {
                anyhow::bail!("cleanup needs root (network namespaces and cgroups are root's)");
            }
            // The plain sweep is owner-aware and safe beside a live run;
            // --all is not, so it needs the run lock.
            let _lock = if all {
                let Some(l) = bench::sweep::RunLock::try_acquire() else {
                    anyhow::bail!("a cranlab run is in progress (it holds {}); let it finish or stop it first", bench::sweep::LOCK_PATH);
                };
                Some(l)
            } else {
                None
            };
            let r = bench::sweep::sweep(all);
            for l in &r.removed {
                println!("{l}");
            }
            for l in &r.errors {
                eprintln!("cranlab: cleanup: {l}");
            }
            if r.removed.is_empty() && r.errors.is_empty() {
                println!("nothing to clean up");
            }
            Ok(if r.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn us(r: &bench::results::RunResult, m: &str, f: fn(&bench::results::Summary) -> i64) -> String {
    r.metrics.get(m).map(|s| format!("{:.1}", f(s) as f64 / 1000.0)).unwrap_or_else(|| "–".into())
}
