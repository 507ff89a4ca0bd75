//! Reading HdrHistogram's percentile-distribution text (`.hgrm`) and interval
//! logs (`.hlog`) back for plotting.

use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use super::ReportError;

/// One row of a `.hgrm` file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PercentileRow {
    /// Value in the file's unit (µs for cranlab's files).
    pub value: f64,
    /// Percentile as a fraction 0..=1.
    pub percentile: f64,
    /// Samples at or below `value`.
    pub total_count: u64,
}

/// Parses the rows of a percentile-distribution file; comment and header
/// lines are skipped, the `1/(1-Percentile)` column is recomputed by callers.
pub fn parse_hgrm(text: &str) -> Result<Vec<PercentileRow>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with("Value") {
            continue;
        }
        let cols: Vec<&str> = t.split_whitespace().collect();
        if cols.len() < 3 {
            return Err(format!("line {}: expected value, percentile and count", n + 1));
        }
        let value: f64 = cols[0].parse().map_err(|_| format!("line {}: bad value {:?}", n + 1, cols[0]))?;
        let percentile: f64 = cols[1].parse().map_err(|_| format!("line {}: bad percentile {:?}", n + 1, cols[1]))?;
        let total_count: u64 = cols[2].parse().map_err(|_| format!("line {}: bad count {:?}", n + 1, cols[2]))?;
        if !(0.0..=1.0).contains(&percentile) {
            return Err(format!("line {}: percentile {percentile} outside 0..=1", n + 1));
        }
        rows.push(PercentileRow { value, percentile, total_count });
    }
    Ok(rows)
}

/// Reads a `.hgrm` file.
pub fn read_hgrm(path: &Path) -> Result<Vec<PercentileRow>, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::Read { path: path.to_path_buf(), source: e })?;
    parse_hgrm(&text).map_err(|reason| ReportError::Parse { path: path.to_path_buf(), reason })
}

/// One interval of an interval log.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Tag of the interval (the metric name), if any.
    pub tag: Option<String>,
    /// Seconds since the log's start.
    pub start_s: f64,
    /// The interval's histogram (values as recorded, ns).
    pub hist: Histogram<u64>,
}

/// Reads every interval of a `.hlog` file.
pub fn read_hlog(path: &Path) -> Result<Vec<Interval>, ReportError> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::Read { path: path.to_path_buf(), source: e })?;
    let bad = |reason: String| ReportError::Parse { path: path.to_path_buf(), reason };
    let mut out = Vec::new();
    let mut de = Deserializer::new();
    let mut first: Option<f64> = None;
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| bad(format!("interval log: {e:?}")))?;
        if let LogEntry::Interval(ilh) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(ilh.encoded_histogram())
                .map_err(|e| bad(format!("interval histogram base64: {e}")))?;
            let hist: Histogram<u64> =
                de.deserialize(&mut Cursor::new(raw)).map_err(|e| bad(format!("interval histogram: {e:?}")))?;
            let start = ilh.start_timestamp().as_secs_f64();
            let base = *first.get_or_insert(start);
            out.push(Interval { tag: ilh.tag().map(|t| t.as_str().to_string()), start_s: start - base, hist });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hdrhistogram_percentile_text() {
        let text = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n      12.000 0.000000000000          1           1.00\n      15.500 0.500000000000         50           2.00\n      99.000 1.000000000000        100\n#[Mean    =       20.000, StdDeviation   =        5.000]\n";
        let rows = parse_hgrm(text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1], PercentileRow { value: 15.5, percentile: 0.5, total_count: 50 });
    }

    #[test]
    fn rejects_garbage_with_the_line() {
        let e = parse_hgrm("  1.0 0.5 x\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        assert!(parse_hgrm("1.0 1.5 3\n").unwrap_err().contains("outside"));
    }
}
