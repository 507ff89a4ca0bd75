//! `cranlab-workload`: the workload the whitepaper benchmarks run on bare
//! metal, in containers and in guests. It prints `READY` when started and one
//! `RESULT {json}` line per finished workload.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};

use anyhow::{bail, Context, Result};
use bench::workload;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args.get(i + 1).with_context(|| format!("{name} needs a value"))?;
            v.parse().map_err(|_| anyhow::anyhow!("{name}: invalid value {v:?}"))
        }
        None => Ok(default),
    }
}

fn emit(r: &workload::WorkloadResult) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "RESULT {}", serde_json::to_string(r)?)?;
    out.flush()?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { bail!("usage: cranlab-workload idle|prime|mbw|net-serve|net-stream|net-rr [options]") };
    // The server listens before it says READY, so a client started on READY
    // finds the port open.
    let listener = match cmd.as_str() {
        "net-serve" => {
            let port: u16 = arg(&args, "--port", 5201)?;
            Some(TcpListener::bind(("0.0.0.0", port)).with_context(|| format!("bind tcp port {port}"))?)
        }
        _ => None,
    };
    println!("READY {cmd}");
    std::io::stdout().flush()?;
    match cmd.as_str() {
        // Stays up until SIGTERM/SIGINT: the launch and reboot benchmarks
        // time READY. Waited for explicitly, since as a container's pid 1 the
        // default action of SIGTERM would be to ignore it.
        "idle" => {
            use nix::sys::signal::{SigSet, Signal};
            let mut set = SigSet::empty();
            set.add(Signal::SIGTERM);
            set.add(Signal::SIGINT);
            set.thread_block().context("block SIGTERM/SIGINT")?;
            set.wait().context("wait for SIGTERM/SIGINT")?;
            Ok(())
        }
        "prime" => emit(&workload::prime(arg(&args, "--limit", 10_000)?, arg(&args, "--seconds", 5.0)?)),
        "mbw" => emit(&workload::mbw(arg(&args, "--mib", 64)?, arg(&args, "--reps", 5)?)),
        "net-serve" => match &listener {
            Some(l) => workload::net_serve(l, arg(&args, "--connections", 2)?).context("serve network workload"),
            None => bail!("net-serve: no listener"),
        },
        "net-stream" | "net-rr" => {
            let to: String = arg(&args, "--to", String::new())?;
            let addr: SocketAddr = to.parse().map_err(|_| anyhow::anyhow!("--to: {to:?} is not ADDRESS:PORT"))?;
            let secs: f64 = arg(&args, "--seconds", 5.0)?;
            if !(secs.is_finite() && secs > 0.0) {
                bail!("--seconds: must be a positive number of seconds");
            }
            let r = if cmd == "net-stream" { workload::net_stream(addr, secs) } else { workload::net_rr(addr, secs) };
            emit(&r.with_context(|| format!("{cmd} to {addr}"))?)
        }
        other => bail!("unknown workload {other:?} (idle, prime, mbw, net-serve, net-stream, net-rr)"),
    }
}
