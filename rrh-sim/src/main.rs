//! `rrh-sim`: the radio-head simulator.
//!
//! Capture mode: `rrh-sim --pcap FILE --slots N [--scenario FILE.toml]
//! [--mu --prbs --antennas --layers --modulation --iq-width --mtu --seed]`
//! writes N slots of the cell's traffic as a pcap (see `rrh_sim::capture`).
//! Flags override the scenario's `[cell]` table.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use fronthaul::cell::{CellConfig, Modulation};
use rrh_sim::capture::{self, CellOverrides};

/// Radio-head simulator: writes a cell's eCPRI/O-RAN 7.2x traffic as a pcap.
#[derive(Debug, Parser)]
#[command(name = "rrh-sim", version)]
struct Args {
    /// Write a capture to FILE (raw Ethernet frames, ns timestamps).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Number of slots to write.
    #[arg(long, value_name = "N")]
    slots: Option<u64>,
    /// Scenario file (TOML: [cell], [timing], [run]); flags override [cell].
    #[arg(long, value_name = "FILE.toml")]
    scenario: Option<PathBuf>,
    /// Numerology µ (0..=3).
    #[arg(long)]
    mu: Option<u8>,
    /// PRBs of the carrier (1..=275).
    #[arg(long)]
    prbs: Option<u16>,
    /// Receive antennas, one eAxC each.
    #[arg(long)]
    antennas: Option<u8>,
    /// Spatial layers (1..=4, at most the antennas).
    #[arg(long)]
    layers: Option<u8>,
    /// Modulation: qpsk, qam16, qam64, qam256.
    #[arg(long)]
    modulation: Option<String>,
    /// IQ (BFP mantissa) width in bits, 1..=16.
    #[arg(long = "iq-width")]
    iq_width: Option<u8>,
    /// Ethernet MTU (576..=9000).
    #[arg(long)]
    mtu: Option<u16>,
    /// Seed of the traffic model.
    #[arg(long)]
    seed: Option<u64>,
}

fn run(args: Args) -> anyhow::Result<()> {
    let Some(path) = args.pcap else {
        bail!("no mode given: pass --pcap FILE --slots N to write a capture");
    };
    let Some(slots) = args.slots else {
        bail!("--slots: required with --pcap");
    };
    let base = match &args.scenario {
        Some(p) => capture::load_scenario(p)?,
        None => CellConfig::default(),
    };
    let modulation = match &args.modulation {
        Some(m) => Some(m.parse::<Modulation>().context("--modulation")?),
        None => None,
    };
    let ov = CellOverrides {
        mu: args.mu,
        prbs: args.prbs,
        antennas: args.antennas,
        layers: args.layers,
        modulation,
        iq_width: args.iq_width,
        mtu: args.mtu,
        seed: args.seed,
    };
    let cell = ov.apply(base)?;
    let st = capture::capture_to_file(&path, &cell, slots)?;
    println!(
        "wrote {}: {} slots, {} c-plane + {} u-plane frames ({} per symbol per eAxC), {} bytes; cell {}",
        path.display(),
        st.slots,
        st.cplane_frames,
        st.uplane_frames,
        st.packets_per_symbol,
        st.bytes,
        cell.to_spec()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rrh-sim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
