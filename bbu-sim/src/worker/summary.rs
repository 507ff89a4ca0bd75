//! The worker's end-of-run summary (`SUMMARY {json}` on stdout) and the
//! histogram helpers the orchestrator uses to read it back: histograms are
//! serialised with HdrHistogram's V2 deflate format and base64 so they can
//! be merged across runs; the signed Ta4 margin is a pair of histograms.

use std::collections::BTreeMap;

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::rt::Granted;

/// Schema tag of [`WorkerSummary`].
pub const SUMMARY_SCHEMA: &str = "cranlab.worker-summary/1";
/// Prefix of the summary line on stdout.
pub const SUMMARY_PREFIX: &str = "SUMMARY ";
/// Prefix of the ready line on stdout.
pub const READY_PREFIX: &str = "READY";
/// Highest value the worker's histograms track (60 s); larger values saturate.
pub const HIST_MAX_NS: u64 = 60_000_000_000;

impl From<serde_json::Error> for SummaryError {
    fn from(e: serde_json::Error) -> Self {
        SummaryError::Json(e)
    }
}

/// Errors reading a summary back.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    /// The line is not `SUMMARY {json}`.
    #[error("worker summary: line does not start with \"SUMMARY \"")]
    NotSummary,
    /// The JSON does not parse.
    #[error("worker summary: {0}")]
    Json(serde_json::Error),
    /// A histogram's base64 does not decode.
    #[error("worker summary: histogram {name}: {reason}")]
    Histogram {
        /// Histogram name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// A new histogram with the worker's bounds (1 ns .. 60 s, 3 digits).
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("static histogram bounds are valid")
}

/// V2 deflate + base64 of a histogram.
pub fn encode_hist(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    // Serialising into a Vec cannot fail for a valid histogram.
    if V2DeflateSerializer::new().serialize(h, &mut buf).is_err() {
        buf.clear();
    }
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Inverse of [`encode_hist`].
pub fn decode_hist(name: &str, b64: &str) -> Result<Histogram<u64>, SummaryError> {
    let err = |reason: String| SummaryError::Histogram { name: name.to_string(), reason };
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| err(e.to_string()))?;
    Deserializer::new().deserialize(&mut bytes.as_slice()).map_err(|e| err(format!("{e:?}")))
}

/// A signed distribution (the Ta4 margin) kept as two HdrHistograms:
/// `on_time` holds margins ≥ 0 (value = margin), `late` holds margins < 0
/// (value = −margin).
#[derive(Debug, Clone)]
pub struct SignedHistogram {
    /// Margins ≥ 0, ns.
    pub on_time: Histogram<u64>,
    /// Magnitudes of negative margins, ns.
    pub late: Histogram<u64>,
}

impl Default for SignedHistogram {
    fn default() -> Self {
        SignedHistogram { on_time: new_hist(), late: new_hist() }
    }
}

/// Wire form of a [`SignedHistogram`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHistogramB64 {
    /// [`encode_hist`] of [`SignedHistogram::on_time`].
    pub on_time: String,
    /// [`encode_hist`] of [`SignedHistogram::late`].
    pub late: String,
}

impl SignedHistogram {
    /// Records a signed value.
    pub fn record(&mut self, v: i64) {
        if v >= 0 {
            self.on_time.saturating_record(v as u64);
        } else {
            self.late.saturating_record(v.unsigned_abs());
        }
    }

    /// Samples.
    pub fn count(&self) -> u64 {
        self.on_time.len() + self.late.len()
    }

    /// Smallest value (0 when empty).
    pub fn min(&self) -> i64 {
        if !self.late.is_empty() {
            -(self.late.max() as i64)
        } else if !self.on_time.is_empty() {
            self.on_time.min() as i64
        } else {
            0
        }
    }

    /// Largest value (0 when empty).
    pub fn max(&self) -> i64 {
        if !self.on_time.is_empty() {
            self.on_time.max() as i64
        } else if !self.late.is_empty() {
            -(self.late.min() as i64)
        } else {
            0
        }
    }

    /// The value at quantile `q` (0..=1) of the signed distribution.
    pub fn quantile(&self, q: f64) -> i64 {
        let n_late = self.late.len();
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil().max(1.0) as u64;
        if rank <= n_late {
            // The rank-th smallest signed value is the (n_late - rank + 1)-th smallest magnitude... from the top.
            let q_late = 1.0 - (rank - 1) as f64 / n_late as f64;
            -(self.late.value_at_quantile(q_late) as i64)
        } else {
            let n_on = self.on_time.len();
            let q_on = (rank - n_late) as f64 / n_on as f64;
            self.on_time.value_at_quantile(q_on) as i64
        }
    }

    /// Adds another signed histogram.
    pub fn add(&mut self, o: &SignedHistogram) {
        let _ = self.on_time.add(&o.on_time);
        let _ = self.late.add(&o.late);
    }

    /// Wire form.
    pub fn encode(&self) -> SignedHistogramB64 {
        SignedHistogramB64 { on_time: encode_hist(&self.on_time), late: encode_hist(&self.late) }
    }

    /// Inverse of [`SignedHistogram::encode`].
    pub fn decode(name: &str, b: &SignedHistogramB64) -> Result<SignedHistogram, SummaryError> {
        Ok(SignedHistogram { on_time: decode_hist(&format!("{name}.on_time"), &b.on_time)?, late: decode_hist(&format!("{name}.late"), &b.late)? })
    }
}

/// The worker's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerCounters {
    /// Frames delivered by the transport.
    pub rx_frames: u64,
    /// U-plane packets parsed.
    pub uplane_rx: u64,
    /// C-plane packets parsed.
    pub cplane_rx: u64,
    /// Frames that failed to parse as eCPRI/O-RAN (or carried bad ids).
    pub malformed: u64,
    /// Frames that are not eCPRI / not ours (ignored).
    pub foreign: u64,
    /// U-plane packets whose PRBs had already been received for the slot.
    pub duplicate: u64,
    /// Packets whose SEQ_ID is behind the expected one (reordered).
    pub out_of_order: u64,
    /// SEQ_ID jumps forward (packets missing or reordered), summed gap sizes.
    pub seq_gaps: u64,
    /// U-plane packets for a slot already processed (too late for assembly).
    pub stale: u64,
    /// U-plane packets before their Ta4 window.
    pub early: u64,
    /// U-plane packets inside their Ta4 window.
    pub on_time: u64,
    /// U-plane packets after their Ta4 window (deadline misses at symbol level).
    pub late: u64,
    /// U-plane packets not classified (received before the epoch was known).
    pub unclassified: u64,
    /// U-plane packets the rrh-sim sent but the worker never received
    /// (from the end-of-run message; absent without one).
    pub lost: Option<u64>,
    /// Slots processed.
    pub slots_processed: u64,
    /// Of those, processed before all PRBs arrived.
    pub slots_incomplete: u64,
    /// Replies sent.
    pub replies_sent: u64,
    /// Replies the transport refused.
    pub replies_failed: u64,
    /// Bits checked against the known data.
    pub bits_checked: u64,
    /// Bit errors.
    pub bit_errors: u64,
    /// PRBs missing at processing time (summed over slots).
    pub missing_prbs: u64,
    /// PRB payloads the pipeline rejected.
    pub ingest_errors: u64,
    /// Start-of-run messages seen.
    pub start_messages: u64,
    /// End-of-run messages seen.
    pub end_messages: u64,
}

/// The one-line summary a worker prints at the end: `SUMMARY {json}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerSummary {
    /// [`SUMMARY_SCHEMA`].
    pub schema: String,
    /// Transport name (`afxdp`, `af_packet`, `mem`, ...).
    pub transport: String,
    /// Transport details (XDP mode, kernel statistics).
    pub transport_detail: serde_json::Value,
    /// Receive mode: `busy` or `block`.
    pub poll: String,
    /// Whether the worker shares CLOCK_MONOTONIC with the rrh-sim.
    pub shared_clock: bool,
    /// Where the symbol-clock epoch came from: `start_message` (shared
    /// clock), `estimated` (earliest arrival over the warm-up slots) or
    /// `none` (no packet seen).
    pub epoch_source: String,
    /// Why the worker ended: `end_message`, `signal`, `max_seconds`, `peer_closed`.
    pub end_reason: String,
    /// Run id of the start/end messages (0 if none).
    pub run_id: u32,
    /// The start message's config hash differed from the worker's cell/timing.
    pub config_mismatch: bool,
    /// The cell spec the worker ran.
    pub cell: String,
    /// The timing spec the worker ran.
    pub timing: String,
    /// What the host granted (binary only; None in-process).
    pub granted: Option<Granted>,
    /// Counters.
    pub counters: WorkerCounters,
    /// Histograms ([`encode_hist`]): `processing_ns`, `wakeup_ns`, and
    /// `one_way_ns` (only with a shared clock).
    pub histograms: BTreeMap<String, String>,
    /// Signed Ta4 margin of every U-plane packet, ns (negative = late).
    pub ta4_margin_ns: SignedHistogramB64,
    /// The same per eAxC id (decimal PC_ID).
    pub ta4_margin_per_eaxc_ns: BTreeMap<String, SignedHistogramB64>,
}

impl WorkerSummary {
    /// The summary line: `SUMMARY {json}` (one line).
    pub fn to_line(&self) -> String {
        format!("{SUMMARY_PREFIX}{}", serde_json::to_string(self).unwrap_or_else(|_| "{}".into()))
    }

    /// Parses a `SUMMARY {json}` line (trailing whitespace and a leading
    /// console prefix before `SUMMARY ` are tolerated).
    pub fn from_line(line: &str) -> Result<WorkerSummary, SummaryError> {
        let at = line.find(SUMMARY_PREFIX).ok_or(SummaryError::NotSummary)?;
        Ok(serde_json::from_str(line[at + SUMMARY_PREFIX.len()..].trim())?)
    }

    /// Finds the last summary line in a log (e.g. a guest's serial console).
    pub fn from_log(log: &str) -> Result<WorkerSummary, SummaryError> {
        let line = log.lines().rev().find(|l| l.contains(SUMMARY_PREFIX)).ok_or(SummaryError::NotSummary)?;
        WorkerSummary::from_line(line)
    }

    /// Decodes a named histogram.
    pub fn histogram(&self, name: &str) -> Result<Option<Histogram<u64>>, SummaryError> {
        self.histograms.get(name).map(|b| decode_hist(name, b)).transpose()
    }

    /// Decodes the overall Ta4 margin.
    pub fn ta4_margin(&self) -> Result<SignedHistogram, SummaryError> {
        SignedHistogram::decode("ta4_margin_ns", &self.ta4_margin_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_histogram_quantiles() {
        let mut s = SignedHistogram::default();
        for v in [-300i64, -100, 0, 100, 200, 300, 400, 500, 600, 700] {
            s.record(v);
        }
        assert_eq!(s.count(), 10);
        assert_eq!(s.min(), -300);
        assert_eq!(s.max(), 700);
        assert_eq!(s.quantile(0.0), -300);
        assert_eq!(s.quantile(0.1), -300);
        assert_eq!(s.quantile(0.2), -100);
        assert_eq!(s.quantile(0.3), 0);
        assert_eq!(s.quantile(0.5), 200);
        assert_eq!(s.quantile(1.0), 700);
        let back = SignedHistogram::decode("x", &s.encode()).unwrap();
        assert_eq!(back.count(), 10);
        assert_eq!(back.quantile(0.2), -100);
    }

    #[test]
    fn summary_line_round_trips() {
        let mut h = new_hist();
        h.record(1234).unwrap();
        let mut sum = WorkerSummary { schema: SUMMARY_SCHEMA.into(), transport: "mem".into(), ..WorkerSummary::default() };
        sum.histograms.insert("processing_ns".into(), encode_hist(&h));
        sum.counters.lost = Some(0);
        let line = sum.to_line();
        assert!(!line.contains('\n'));
        let back = WorkerSummary::from_log(&format!("boot noise\n[  1.2] {line}\n")).unwrap();
        assert_eq!(back.counters, sum.counters);
        let h2 = back.histogram("processing_ns").unwrap().unwrap();
        assert_eq!(h2.len(), 1);
        assert_eq!(h2.max(), h.max());
        assert!(matches!(WorkerSummary::from_line("READY"), Err(SummaryError::NotSummary)));
        assert!(matches!(decode_hist("x", "!!!"), Err(SummaryError::Histogram { .. })));
    }
}
