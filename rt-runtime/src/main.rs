//! `rt-runtime`: run OCI bundles with real-time settings applied or refused.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// A minimal OCI runtime for real-time BBU workers.
#[derive(Parser)]
#[command(name = "rt-runtime", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create and run a container in the foreground (like `crun run -b`);
    /// the exit status is the container's (128 + signal if killed).
    Run {
        /// Bundle directory (config.json + rootfs).
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Container id.
        id: String,
    },
    /// Remove what a killed `run` left of container ID (process, cgroup, state).
    Delete {
        /// Container id.
        id: String,
    },
    /// Print what rt-runtime supports, in the OCI `features` JSON form.
    Features,
    /// Check a bundle's config.json without running it.
    Check {
        /// Bundle directory.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Build the minimal worker bundle (used by scripts/build-bundle.sh).
    Bundle {
        /// Output directory.
        out: PathBuf,
        /// Worker binary (statically linked preferred).
        #[arg(long)]
        program: PathBuf,
        /// Cores for the cpuset; the process is pinned to the first.
        #[arg(long, value_delimiter = ',')]
        cpus: Vec<usize>,
        /// SCHED_FIFO priority (0: SCHED_OTHER).
        #[arg(long, default_value_t = 80)]
        fifo: u8,
        /// Memory limit in MiB.
        #[arg(long, default_value_t = 256)]
        memory_mib: u64,
        /// RT runtime in µs per 1 s period (default: the cgroup module assigns one and says so).
        #[arg(long)]
        rt_runtime_us: Option<i64>,
        /// Arguments for the worker (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() {
    // Before any thread exists: SIGCHLD and forwarded signals stay blocked
    // and are taken synchronously by `run`, so a fast exit is never missed.
    if let Err(e) = rt_runtime::container::sys::host::block_signals() {
        eprintln!("rt-runtime: block signals: {e}");
        std::process::exit(125);
    }
    match real_main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("rt-runtime: {e:#}");
            std::process::exit(125);
        }
    }
}

fn real_main() -> anyhow::Result<i32> {
    use rt_runtime::container as c;
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { bundle, id } => Ok(c::run_foreground(&bundle, &id)?),
        Cmd::Delete { id } => {
            c::delete(&id)?;
            Ok(0)
        }
        Cmd::Features => {
            println!("{}", serde_json::to_string_pretty(&c::features())?);
            Ok(0)
        }
        Cmd::Check { bundle } => {
            let b = c::Bundle::load(&bundle).with_context(|| format!("bundle {}", bundle.display()))?;
            let p = c::oci::plan(&b, "check", &c::HostInfo::detect(), &c::PlanOptions::default())
                .with_context(|| format!("bundle {}", bundle.display()))?;
            println!("ok: {} mount steps, cgroup {}, exec {}", p.fs_ops.len(), p.cgroup_name, p.exec.to_string_lossy());
            Ok(0)
        }
        Cmd::Bundle { out, program, cpus, fifo, memory_mib, rt_runtime_us, args } => {
            let mut s = c::BundleSpec::worker(&program, args);
            s.pin_cpu = cpus.first().copied();
            s.cpus = cpus;
            s.sched = if fifo == 0 { rt_runtime::deploy::SchedPolicy::Other } else { rt_runtime::deploy::SchedPolicy::Fifo(fifo) };
            s.memory_bytes = Some(memory_mib << 20);
            s.rt_runtime_us = rt_runtime_us;
            let dir = c::build_bundle(&out, &s)?;
            println!("{}", dir.display());
            Ok(0)
        }
    }
}
