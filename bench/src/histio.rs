//! Reading and writing the histogram files of a results directory: the
//! `.hgrm` percentile distributions, the `.hlog` interval logs and the
//! summaries in `results.json`. Reports (report.md now, report.html later)
//! read results through this module only.
//!
//! ## `.hgrm`
//! The text form HdrHistogram's `outputPercentileDistribution` writes (and
//! `HistogramLogProcessor`, and every HdrHistogram plotter reads): values in
//! microseconds (value unit scaling ratio 1000 on nanosecond histograms), five
//! percentile ticks per half distance, then the mean / max / bucket footer.
//!
//! ## Signed values (Ta4 margins)
//! HdrHistogram holds non-negative values only. A signed metric is kept as
//! two histograms ([`SignedHist`]): `non_negative` holds margins ≥ 0 as they
//! are, `negative` holds the magnitude of margins < 0. Its summary is computed
//! over the combined signed distribution; on disk it is two `.hgrm` files,
//! `<metric>.hgrm` (the margins ≥ 0) and `<metric>.neg.hgrm` (the magnitudes
//! of the negative ones, i.e. how late late packets were).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::results::{Results, Summary};

/// Errors reading or writing histogram files.
#[derive(Debug, thiserror::Error)]
pub enum HistIoError {
    /// File I/O failed.
    #[error("{what} {path}: {err}")]
    Io {
        /// `read` / `write`.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        err: std::io::Error,
    },
    /// A file's content could not be understood.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HistIoError + 'a {
    move |err| HistIoError::Io { what, path: path.display().to_string(), err }
}

/// A new nanosecond histogram: 3 significant digits, auto-resizing.
pub fn new_hist() -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    h.auto(true);
    h
}

/// Percentile summary of a histogram (all zero when empty).
pub fn summarize(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    let q = |x: f64| h.value_at_quantile(x) as i64;
    Summary {
        count: h.len(),
        min: h.min() as i64,
        p50: q(0.5),
        p99: q(0.99),
        p999: q(0.999),
        p9999: q(0.9999),
        p99999: q(0.99999),
        max: h.max() as i64,
    }
}

/// A signed metric kept as two histograms (see the module docs).
#[derive(Debug, Clone)]
pub struct SignedHist {
    /// Values ≥ 0.
    pub non_negative: Histogram<u64>,
    /// Magnitudes of values < 0.
    pub negative: Histogram<u64>,
}

impl Default for SignedHist {
    fn default() -> Self {
        SignedHist { non_negative: new_hist(), negative: new_hist() }
    }
}

impl SignedHist {
    /// Records one signed value.
    pub fn record(&mut self, v: i64) {
        if v >= 0 {
            let _ = self.non_negative.record(v as u64);
        } else {
            let _ = self.negative.record(v.unsigned_abs());
        }
    }

    /// Adds another signed histogram.
    pub fn add(&mut self, o: &SignedHist) {
        let _ = self.non_negative.add(&o.non_negative);
        let _ = self.negative.add(&o.negative);
    }

    /// Samples in both halves.
    pub fn len(&self) -> u64 {
        self.non_negative.len() + self.negative.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value at quantile `q` of the combined signed distribution.
    pub fn value_at_quantile(&self, q: f64) -> i64 {
        let n = self.len();
        let nneg = self.negative.len();
        if n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        if rank <= nneg {
            // Ascending signed order walks the negative magnitudes downwards.
            let r = nneg - rank + 1;
            -(self.negative.value_at_quantile(r as f64 / nneg as f64) as i64)
        } else {
            let r = rank - nneg;
            self.non_negative.value_at_quantile(r as f64 / self.non_negative.len() as f64) as i64
        }
    }

    /// Percentile summary over the signed values.
    pub fn summarize(&self) -> Summary {
        if self.is_empty() {
            return Summary::default();
        }
        let min = if !self.negative.is_empty() {
            -(self.negative.max() as i64)
        } else {
            self.non_negative.min() as i64
        };
        let max = if !self.non_negative.is_empty() {
            self.non_negative.max() as i64
        } else {
            -(self.negative.min() as i64)
        };
        let q = |x| self.value_at_quantile(x);
        Summary { count: self.len(), min, p50: q(0.5), p99: q(0.99), p999: q(0.999), p9999: q(0.9999), p99999: q(0.99999), max }
    }
}

/// Renders a histogram in HdrHistogram's percentile distribution text form,
/// exactly as `outputPercentileDistribution(out, 5, scaling)` writes it.
pub fn format_hgrm(h: &Histogram<u64>, value_scale: f64) -> String {
    let sig = h.sigfig() as usize;
    let mut s = String::new();
    let _ = write!(s, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / value_scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(s, "{value:>12.sig$} {q:>2.12} {total:>10} {:>14.2}", 1.0 / (1.0 - q));
            } else {
                let _ = writeln!(s, "{value:>12.sig$} {q:>2.12} {total:>10}");
            }
        }
    }
    let (mean, sd, max) = if h.is_empty() { (0.0, 0.0, 0.0) } else { (h.mean(), h.stdev(), h.max() as f64) };
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.sig$}, StdDeviation   = {:>12.sig$}]",
        mean / value_scale,
        sd / value_scale
    );
    let _ = writeln!(s, "#[Max     = {:>12.sig$}, Total count    = {:>12}]", max / value_scale, h.len());
    let _ = writeln!(s, "#[Buckets = {:>12}, SubBuckets     = {:>12}]", h.buckets(), sub_bucket_count(h.sigfig()));
    s
}

/// HdrHistogram's sub-bucket count for a precision: the power of two at or
/// above 2·10^sigfig.
fn sub_bucket_count(sigfig: u8) -> u64 {
    (2 * 10u64.pow(u32::from(sigfig))).next_power_of_two()
}

/// Writes `h` (ns) as a `.hgrm` file in microseconds.
pub fn write_hgrm(path: &Path, h: &Histogram<u64>) -> Result<(), HistIoError> {
    std::fs::write(path, format_hgrm(h, 1000.0)).map_err(io_err("write", path))
}

/// One row of a `.hgrm` file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgrmRow {
    /// Value in the file's unit (µs for cranlab's files).
    pub value: f64,
    /// Quantile 0..=1.
    pub quantile: f64,
    /// Samples at or below the value.
    pub total_count: u64,
}

/// Reads the rows of a `.hgrm` file (footer and header skipped).
pub fn read_hgrm(path: &Path) -> Result<Vec<HgrmRow>, HistIoError> {
    let text = std::fs::read_to_string(path).map_err(io_err("read", path))?;
    parse_hgrm(&text).map_err(|reason| HistIoError::Parse { path: path.display().to_string(), reason })
}

/// Parses the rows of `.hgrm` text.
pub fn parse_hgrm(text: &str) -> Result<Vec<HgrmRow>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with("Value") {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        if f.len() < 3 {
            return Err(format!("line {}: expected value, percentile, total count", i + 1));
        }
        let bad = |what: &str| format!("line {}: bad {what}", i + 1);
        rows.push(HgrmRow {
            value: f[0].parse().map_err(|_| bad("value"))?,
            quantile: f[1].parse().map_err(|_| bad("percentile"))?,
            total_count: f[2].parse().map_err(|_| bad("total count"))?,
        });
    }
    Ok(rows)
}

/// One interval of an interval log.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Metric tag (the metric's name in results.json).
    pub tag: String,
    /// Start, relative to the log's start time.
    pub start: Duration,
    /// Interval length.
    pub duration: Duration,
    /// The interval's histogram (ns).
    pub hist: Histogram<u64>,
}

/// Writes an HdrHistogram interval log (format version 1.3, V2 deflate
/// compressed histograms, tags = metric names, max column in µs).
pub fn write_hlog(path: &Path, start_epoch: Duration, intervals: &[Interval], comment: &str) -> Result<(), HistIoError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut head = String::new();
    for c in comment.lines() {
        let _ = writeln!(head, "#{c}");
    }
    let _ = writeln!(head, "#[Histogram log format version 1.3]");
    let secs = start_epoch.as_secs_f64();
    let _ = writeln!(head, "#[StartTime: {secs:.3} (seconds since epoch)]");
    let _ = writeln!(head, "#[BaseTime: {secs:.3} (seconds since epoch)]");
    let _ = writeln!(head, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"");
    buf.extend_from_slice(head.as_bytes());
    let mut ser = V2DeflateSerializer::new();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut buf, &mut ser)
            .map_err(io_err("write", path))?;
        for iv in intervals {
            let tag = Tag::new(&iv.tag);
            w.write_histogram(&iv.hist, iv.start, iv.duration, tag).map_err(|e| HistIoError::Parse {
                path: path.display().to_string(),
                reason: format!("serialise interval {}: {e}", iv.tag),
            })?;
        }
    }
    std::fs::write(path, buf).map_err(io_err("write", path))
}

/// Reads the intervals of an interval log.
pub fn read_hlog(path: &Path) -> Result<Vec<Interval>, HistIoError> {
    let data = std::fs::read(path).map_err(io_err("read", path))?;
    let perr = |reason: String| HistIoError::Parse { path: path.display().to_string(), reason };
    let mut out = Vec::new();
    let mut de = Deserializer::new();
    for e in IntervalLogIterator::new(&data) {
        match e.map_err(|e| perr(format!("{e:?}")))? {
            LogEntry::Interval(ih) => {
                let bytes = decode_b64(ih.encoded_histogram()).map_err(perr)?;
                let hist: Histogram<u64> =
                    de.deserialize(&mut &bytes[..]).map_err(|e| perr(format!("decode histogram: {e:?}")))?;
                out.push(Interval {
                    tag: ih.tag().map(|t| t.as_str().to_string()).unwrap_or_default(),
                    start: ih.start_timestamp(),
                    duration: ih.duration(),
                    hist,
                });
            }
            LogEntry::StartTime(_) | LogEntry::BaseTime(_) => {}
        }
    }
    Ok(out)
}

/// Serialises a histogram as V2-deflate + base64 (HdrHistogram's usual
/// compressed form, as in interval logs).
pub fn encode_hist(h: &Histogram<u64>) -> String {
    use base64::Engine;
    let mut v = Vec::new();
    let _ = hdrhistogram::serialization::Serializer::serialize(&mut V2DeflateSerializer::new(), h, &mut v);
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn decode_b64(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|e| format!("base64: {e}"))
}

/// Decodes a histogram written by [`encode_hist`] (or any V2 / V2-deflate
/// base64 histogram).
pub fn decode_hist(s: &str) -> Result<Histogram<u64>, String> {
    let bytes = decode_b64(s)?;
    Deserializer::new().deserialize(&mut &bytes[..]).map_err(|e| format!("decode histogram: {e:?}"))
}

/// Reads `DIR/results.json`.
pub fn read_results(dir: &Path) -> Result<Results, HistIoError> {
    let p = dir.join("results.json");
    let text = std::fs::read_to_string(&p).map_err(io_err("read", &p))?;
    serde_json::from_str(&text).map_err(|e| HistIoError::Parse { path: p.display().to_string(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_has_the_standard_layout_and_reads_back() {
        let mut h = new_hist();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = format_hgrm(&h, 1000.0);
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines.next().unwrap(), "");
        let first = lines.next().unwrap();
        assert_eq!(first, "       1.000 0.000000000000          1           1.00");
        assert!(text.contains("#[Max     =    10002.431, Total count    =        10000]"), "{text}");
        assert!(text.contains("#[Buckets = "), "{text}");
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
        let rows = parse_hgrm(&text).unwrap();
        let last = rows.last().unwrap();
        assert_eq!(last.quantile, 1.0);
        assert_eq!(last.total_count, 10_000);
        assert!(rows.windows(2).all(|w| w[0].quantile <= w[1].quantile && w[0].total_count <= w[1].total_count));
        // The last row carries no 1/(1-p) column.
        assert_eq!(text.lines().find(|l| l.contains("1.000000000000")).unwrap().split_whitespace().count(), 3);
    }

    #[test]
    fn signed_summary_orders_negatives_first() {
        let mut s = SignedHist::default();
        for v in [-300i64, -200, -100, 10, 20, 30, 40, 50, 60, 70] {
            s.record(v);
        }
        let m = s.summarize();
        assert_eq!(m.count, 10);
        assert_eq!(m.min, -300);
        assert_eq!(m.max, 70);
        assert_eq!(s.value_at_quantile(0.1), -300);
        assert_eq!(s.value_at_quantile(0.3), -100);
        assert_eq!(m.p50, 20);
        assert_eq!(s.value_at_quantile(0.0), -300);
        let mut only_late = SignedHist::default();
        only_late.record(-5);
        assert_eq!(only_late.summarize().max, -5);
        assert_eq!(SignedHist::default().summarize(), Summary::default());
    }

    #[test]
    fn hlog_round_trips() {
        let dir = std::env::temp_dir().join(format!("cranlab-hlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut a = new_hist();
        a.record(12_345).unwrap();
        let mut b = new_hist();
        b.record(99_000).unwrap();
        b.record(1_000).unwrap();
        let ivs = vec![
            Interval { tag: "slot_turnaround_ns".into(), start: Duration::from_secs(0), duration: Duration::from_secs(1), hist: a },
            Interval { tag: "slot_turnaround_ns".into(), start: Duration::from_secs(1), duration: Duration::from_secs(1), hist: b },
        ];
        let p = dir.join("x.hlog");
        write_hlog(&p, Duration::from_secs(1_700_000_000), &ivs, "cranlab test").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("#[Histogram log format version 1.3]"));
        assert!(text.contains("Tag=slot_turnaround_ns,"));
        let back = read_hlog(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].hist.len(), 2);
        assert_eq!(back[1].tag, "slot_turnaround_ns");
        assert_eq!(back[1].start, Duration::from_secs(1));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn encoded_hist_round_trips() {
        let mut h = new_hist();
        h.record(42).unwrap();
        assert_eq!(decode_hist(&encode_hist(&h)).unwrap().len(), 1);
        assert!(decode_hist("not base64!").is_err());
    }
}
