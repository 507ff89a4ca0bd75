//! Capture mode: N slots of a cell's traffic written as a pcap of raw
//! Ethernet frames (EtherType 0xAEFE) stamped with the time each frame is due.
//!
//! Per slot and eAxC (one per antenna, RU port = antenna index) the capture
//! holds one C-plane message (section type 1, one section covering every PRB
//! and all 14 symbols) followed by the U-plane: every symbol of every eAxC
//! split into MTU-sized packets by a [`SymbolPlan`]. SEQ_ID counts per eAxC
//! and per plane. IQ comes from the seeded [`TrafficModel`]; nothing is
//! synthesised here.
//!
//! Timestamps come from the NR symbol clock (epoch = SFN 0, subframe 0, slot
//! 0 at t = 0): a slot's C-plane is stamped with the start of the slot, a
//! symbol's U-plane packets with the end of the symbol — the earliest instant
//! a radio head holds the whole symbol — so the file is in time order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use fronthaul::cell::{CellConfig, CellError, Modulation};
use fronthaul::ecpri::{Eaxc, EthHeader, RtcHeader};
use fronthaul::numerology::SymbolClock;
use fronthaul::oran::{AppHeader, CPlaneHeader, CSection, UdCompHdr};
use fronthaul::packetize::{SymbolPlan, UPlaneFields};
use fronthaul::pcap::{PcapError, PcapSink};
use fronthaul::traffic::TrafficModel;
use fronthaul::{FhError, FrameBuilder};

/// MAC address the capture uses for the radio head (locally administered).
pub const RU_MAC: [u8; 6] = [0x02, 0xc7, 0x1a, 0xb0, 0x00, 0x01];
/// MAC address the capture uses for the BBU (locally administered).
pub const DU_MAC: [u8; 6] = [0x02, 0xc7, 0x1a, 0xb0, 0x00, 0x02];
/// sectionId shared by each slot's C-plane section and its U-plane sections.
pub const SECTION_ID: u16 = 1;
/// Top-level tables a scenario file may hold.
pub const SCENARIO_TABLES: [&str; 3] = ["cell", "timing", "run"];

/// What can go wrong producing a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The scenario file could not be read.
    #[error("read scenario {path}: {error}")]
    ReadScenario {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The scenario file is not valid TOML or a field is wrong.
    #[error("scenario {path}: {msg}")]
    Scenario {
        /// The file.
        path: String,
        /// The parser's message (names the field).
        msg: String,
    },
    /// The cell is invalid (after flags are applied).
    #[error(transparent)]
    Cell(#[from] CellError),
    /// `--slots` is zero.
    #[error("slots: must be at least 1")]
    NoSlots,
    /// The codec refused a field.
    #[error("encode frame: {0}")]
    Codec(FhError),
    /// Writing the pcap failed.
    #[error("write {path}: {error}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        error: PcapError,
    },
    /// Creating, flushing or renaming the output failed.
    #[error("{op} {path}: {error}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

// A plain `From`, not `#[from]`: `#[from]` would also make the cause a
// `source`, and the Display above already prints it.
impl From<FhError> for CaptureError {
    fn from(e: FhError) -> Self {
        CaptureError::Codec(e)
    }
}

/// Parses a scenario file's text: `[cell]` becomes the cell (defaults for
/// missing fields, unknown fields rejected); `[timing]` and `[run]` are
/// accepted and ignored here; any other top-level key is an error.
pub fn parse_scenario(text: &str, path: &str) -> Result<CellConfig, CaptureError> {
    let err = |msg: String| CaptureError::Scenario { path: path.to_string(), msg };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| err(e.to_string().trim_end().to_string()))?;
    for key in table.keys() {
        if !SCENARIO_TABLES.contains(&key.as_str()) {
            return Err(err(format!("unknown top-level key `{key}` (expected tables: cell, timing, run)")));
        }
    }
    for key in ["timing", "run"] {
        if let Some(v) = table.get(key) {
            if !v.is_table() {
                return Err(err(format!("`{key}` must be a table")));
            }
        }
    }
    match table.get("cell") {
        None => Ok(CellConfig::default()),
        Some(v) => {
            let t = v.as_table().ok_or_else(|| err("`cell` must be a table".into()))?;
            t.clone().try_into::<CellConfig>().map_err(|e| err(format!("[cell]: {}", e.to_string().trim_end())))
        }
    }
}

/// Reads and parses a scenario file (see [`parse_scenario`]).
pub fn load_scenario(path: &Path) -> Result<CellConfig, CaptureError> {
    let text = std::fs::read_to_string(path).map_err(|error| CaptureError::ReadScenario { path: path.to_path_buf(), error })?;
    parse_scenario(&text, &path.display().to_string())
}

/// Command-line overrides of `[cell]` fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellOverrides {
    /// `--mu`.
    pub mu: Option<u8>,
    /// `--prbs`.
    pub prbs: Option<u16>,
    /// `--antennas`.
    pub antennas: Option<u8>,
    /// `--layers`.
    pub layers: Option<u8>,
    /// `--modulation`.
    pub modulation: Option<Modulation>,
    /// `--iq-width`.
    pub iq_width: Option<u8>,
    /// `--mtu`.
    pub mtu: Option<u16>,
    /// `--seed`.
    pub seed: Option<u64>,
}

impl CellOverrides {
    /// Applies the flags that were given, then validates the cell.
    pub fn apply(&self, mut cell: CellConfig) -> Result<CellConfig, CellError> {
        if let Some(v) = self.mu {
            cell.mu = v;
        }
        if let Some(v) = self.prbs {
            cell.prbs = v;
        }
        if let Some(v) = self.antennas {
            cell.antennas = v;
        }
        if let Some(v) = self.layers {
            cell.layers = v;
        }
        if let Some(v) = self.modulation {
            cell.modulation = v;
        }
        if let Some(v) = self.iq_width {
            cell.iq_width = v;
        }
        if let Some(v) = self.mtu {
            cell.mtu = v;
        }
        if let Some(v) = self.seed {
            cell.seed = v;
        }
        cell.validate()?;
        Ok(cell)
    }
}

/// Counts of what a capture holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureStats {
    /// Slots written.
    pub slots: u64,
    /// C-plane frames.
    pub cplane_frames: u64,
    /// U-plane frames.
    pub uplane_frames: u64,
    /// Bytes of all frames.
    pub bytes: u64,
    /// U-plane packets per symbol per eAxC.
    pub packets_per_symbol: usize,
}

/// Writes `slots` slots of `cell`'s traffic to `sink` (`out` names the
/// destination in errors).
pub fn write_capture<W: Write>(cell: &CellConfig, slots: u64, sink: &mut PcapSink<W>, out: &Path) -> Result<CaptureStats, CaptureError> {
    generate(cell, slots, &mut |ts, f| sink.write_frame(ts, f)).map_err(|(err, _)| match err {
        CaptureError::Write { error, .. } => CaptureError::Write { path: out.to_path_buf(), error },
        other => other,
    })
}

/// A frame consumer: `(due ns, frame)`.
type Emit<'a> = dyn FnMut(u64, &[u8]) -> Result<(), PcapError> + 'a;

/// Generates the frames; an error is flagged `true` when the consumer failed.
fn generate(cell: &CellConfig, slots: u64, emit: &mut Emit<'_>) -> Result<CaptureStats, (CaptureError, bool)> {
    let e = |x: CaptureError| (x, false);
    cell.validate().map_err(|x| e(x.into()))?;
    if slots == 0 {
        return Err(e(CaptureError::NoSlots));
    }
    let model = TrafficModel::new(cell).map_err(|x| e(x.into()))?;
    let plan = SymbolPlan::from_cell(cell).map_err(|x| e(x.into()))?;
    let clock = SymbolClock::new(cell.mu, 0).map_err(|x| e(x.into()))?;
    let ants = usize::from(cell.antennas);
    let eaxcs: Vec<u16> = (0..cell.antennas)
        .map(|a| Eaxc { ru_port: a, ..Eaxc::default() }.to_u16(cell.eaxc_split))
        .collect::<Result<_, _>>()
        .map_err(|x| e(x.into()))?;
    let mut seq_c = vec![0u8; ants];
    let mut seq_u = vec![0u8; ants];
    let ul_eth = EthHeader { dst: DU_MAC, src: RU_MAC, vlan_tci: None };
    let c_eth = EthHeader { dst: RU_MAC, src: DU_MAC, vlan_tci: None };
    let (u_eth, c_eth) = match cell.direction {
        fronthaul::cell::Direction::Uplink => (ul_eth, c_eth),
        fronthaul::cell::Direction::Downlink => (c_eth, c_eth),
    };
    let ud = UdCompHdr { iq_width: cell.iq_width, compression: cell.compression }.to_byte().map_err(|x| e(x.into()))?;
    let mut buf = vec![0u8; plan.max_frame_len().max(256)];
    let mut st = CaptureStats { packets_per_symbol: plan.len(), ..CaptureStats::default() };
    let mut put = |ts: u64, frame: &[u8], st: &mut CaptureStats| -> Result<(), (CaptureError, bool)> {
        emit(ts, frame).map_err(|x| (CaptureError::Write { path: PathBuf::new(), error: x }, true))?;
        st.bytes += frame.len() as u64;
        Ok(())
    };
    for slot in 0..slots {
        let start = clock.slot_symbol(slot, 0);
        let t = start.time;
        for (a, &eaxc) in eaxcs.iter().enumerate() {
            let app = AppHeader::new(cell.direction, t.frame_id, t.subframe, t.slot, 0);
            let ch = CPlaneHeader { num_sections: 1, section_type: 1, ud_comp_hdr: ud, type3: None };
            let mut b = FrameBuilder::cplane(&mut buf, &c_eth, &RtcHeader::new(eaxc, seq_c[a]), &app, cell.mu, &ch).map_err(|x| e(x.into()))?;
            b.push_csection(&CSection {
                section_id: SECTION_ID,
                rb: false,
                sym_inc: false,
                start_prb: 0,
                num_prb: cell.prbs,
                re_mask: 0xfff,
                num_symbol: 14,
                beam_id: 0,
                frequency_offset: 0,
            })
            .map_err(|x| e(x.into()))?;
            let n = b.finish(&[]).map_err(|x| e(x.into()))?;
            put(start.due_ns, &buf[..n], &mut st)?;
            st.cplane_frames += 1;
            seq_c[a] = seq_c[a].wrapping_add(1);
        }
        for sym in 0..14u8 {
            let due = clock.symbol(slot * 14 + u64::from(sym) + 1).due_ns;
            let app = AppHeader::new(cell.direction, t.frame_id, t.subframe, t.slot, sym);
            for (a, &eaxc) in eaxcs.iter().enumerate() {
                let iq = model.symbol_iq(slot, sym, a as u8);
                for k in 0..plan.len() {
                    let f = UPlaneFields { eth: u_eth, rtc: RtcHeader::new(eaxc, seq_u[a]), app, mu: cell.mu, section_id: SECTION_ID };
                    let n = plan.write_packet(k, &f, iq, &[], &mut buf).map_err(|x| e(x.into()))?;
                    put(due, &buf[..n], &mut st)?;
                    st.uplane_frames += 1;
                    seq_u[a] = seq_u[a].wrapping_add(1);
                }
            }
        }
        st.slots += 1;
    }
    Ok(st)
}

/// Writes the capture to `path` atomically: into a temporary file next to it
/// that is renamed on success and removed on any error, so a failed run
/// leaves no output file behind.
pub fn capture_to_file(path: &Path, cell: &CellConfig, slots: u64) -> Result<CaptureStats, CaptureError> {
    // Check everything that does not need the file first.
    cell.validate()?;
    if slots == 0 {
        return Err(CaptureError::NoSlots);
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "capture".into());
    let tmp = dir.join(format!(".{name}.cranlab-tmp.{}", std::process::id()));
    let io = |op, error| CaptureError::Io { op, path: tmp.clone(), error };
    let file = File::create(&tmp).map_err(|error| CaptureError::Io { op: "create", path: tmp.clone(), error })?;
    let result = (|| {
        let mut sink = PcapSink::new(BufWriter::new(file)).map_err(|error| CaptureError::Write { path: path.to_path_buf(), error })?;
        let st = generate(cell, slots, &mut |ts, f| sink.write_frame(ts, f)).map_err(|(err, is_write)| match err {
            CaptureError::Write { error, .. } if is_write => CaptureError::Write { path: path.to_path_buf(), error },
            other => other,
        })?;
        let mut w = sink.into_inner();
        w.flush().map_err(|s| io("flush", s))?;
        w.get_ref().sync_all().map_err(|s| io("sync", s))?;
        Ok(st)
    })();
    match result {
        Ok(st) => {
            std::fs::rename(&tmp, path).map_err(|error| {
                let _ = std::fs::remove_file(&tmp);
                CaptureError::Io { op: "rename to", path: path.to_path_buf(), error }
            })?;
            Ok(st)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The eAxC ids (packed) a cell's capture uses, in antenna order.
pub fn eaxc_ids(cell: &CellConfig) -> Result<Vec<u16>, FhError> {
    (0..cell.antennas).map(|a| Eaxc { ru_port: a, ..Eaxc::default() }.to_u16(cell.eaxc_split)).collect()
}
