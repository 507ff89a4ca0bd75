//! The SVG plots: percentile distributions in "nines", per-deployment
//! histograms with a logarithmic count axis, and per-interval maxima over time.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::{run_label, ReportError};
use crate::histio::{read_hgrm, read_hlog, HgrmRow, Interval};
use crate::results::RunResult;

const W: u32 = 900;
const H: u32 = 420;

fn colour(i: usize, r: &RunResult) -> RGBColor {
    match r.deployment.as_str() {
        "bare" => RGBColor(31, 119, 180),
        "container" => RGBColor(44, 160, 44),
        "kvm" => RGBColor(214, 39, 40),
        _ => [RGBColor(148, 103, 189), RGBColor(140, 86, 75), RGBColor(127, 127, 127)][i % 3],
    }
}

fn perr(name: &str, e: impl std::fmt::Display) -> ReportError {
    ReportError::Plot { name: name.to_string(), reason: e.to_string() }
}

/// Draws the legend at `pos` and writes the SVG.
fn finish<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    pos: SeriesLabelPosition,
    name: &str,
) -> Result<(), ReportError>
where
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| perr(name, e))?;
    root.present().map_err(|e| perr(name, e))
}

/// Label of a "nines" axis position: x = 1/(1-p).
fn nines_label(x: &f64) -> String {
    if *x <= 1.0 {
        return "0%".into();
    }
    let p = 100.0 * (1.0 - 1.0 / x);
    let digits = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{p:.digits$}%")
}

/// Tick positions of a "nines" axis: 0 %, 90 %, 99 %, ... up to `x_max`.
fn nines_ticks(x_max: f64) -> Vec<f64> {
    let mut v = vec![1.0];
    let mut x = 10.0;
    while x <= x_max {
        v.push(x);
        x *= 10.0;
    }
    v
}

/// The `.hlog` intervals of one metric of one run.
fn intervals_of(dir: &Path, r: &RunResult, metric: &str) -> Result<Vec<Interval>, ReportError> {
    let Some(rel) = r.files.get("hlog") else { return Ok(Vec::new()) };
    Ok(read_hlog(&dir.join(rel))?.into_iter().filter(|i| i.tag == metric).collect())
}

/// (value µs, count) steps of a `.hgrm` file: the samples between one row and
/// the previous one, placed at the row's value.
fn steps(rows: &[HgrmRow]) -> Vec<(f64, u64)> {
    let mut prev = 0;
    let mut out = Vec::new();
    for row in rows {
        if row.total_count > prev {
            out.push((row.value, row.total_count - prev));
            prev = row.total_count;
        }
    }
    out
}

/// Percentile rows of a run's metric. Signed metrics (the Ta4 margin) are
/// written as two files, values ≥ 0 and the magnitudes of negative ones
/// (`<metric>.neg`); they are merged back into one signed distribution.
fn metric_rows(dir: &Path, r: &RunResult, metric: &str) -> Result<Option<Vec<HgrmRow>>, ReportError> {
    let Some(rel) = r.files.get(metric) else { return Ok(None) };
    let pos = read_hgrm(&dir.join(rel))?;
    let Some(neg_rel) = r.files.get(&format!("{metric}.neg")) else { return Ok(Some(pos)) };
    let neg = read_hgrm(&dir.join(neg_rel))?;
    let mut pts: Vec<(f64, u64)> = steps(&neg).into_iter().map(|(v, c)| (-v, c)).collect();
    pts.extend(steps(&pos));
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = pts.iter().map(|p| p.1).sum();
    let mut acc = 0;
    Ok(Some(
        pts.into_iter()
            .map(|(value, c)| {
                acc += c;
                HgrmRow { value, quantile: acc as f64 / total.max(1) as f64, total_count: acc }
            })
            .collect(),
    ))
}

/// Percentile distribution of `metric`, every run overlaid, deadline drawn.
pub fn percentile_plot(
    dir: &Path,
    plot_dir: &Path,
    metric: &str,
    title: &str,
    runs: &[&RunResult],
    deadline_us: Option<f64>,
) -> Result<Option<PathBuf>, ReportError> {
    let mut series = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let Some(rows) = metric_rows(dir, r, metric)? else { continue };
        let total = rows.last().map(|x| x.total_count).unwrap_or(0).max(1) as f64;
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .map(|row| {
                let x = if row.quantile >= 1.0 { total } else { (1.0 / (1.0 - row.quantile)).min(total) };
                (x.max(1.0), row.value)
            })
            .collect();
        if !pts.is_empty() {
            series.push((i, *r, pts));
        }
    }
    if series.is_empty() {
        return Ok(None);
    }
    // Deployments whose latencies differ by orders of magnitude (an emulated
    // guest next to bare metal) share the plot on a log10 value axis; signed
    // metrics stay linear.
    let lo = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(f64::INFINITY, f64::min);
    let hi = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(f64::NEG_INFINITY, f64::max);
    let log_y = lo >= 0.0 && hi / lo.max(0.1) > 1000.0;
    let ty = |v: f64| if log_y { v.max(0.1).log10() } else { v };
    for s in series.iter_mut() {
        for p in s.2.iter_mut() {
            p.1 = ty(p.1);
        }
    }
    let deadline_us = deadline_us.map(|d| (d, ty(d)));
    let x_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.0)).fold(10.0f64, f64::max) * 1.5;
    let mut y_min = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(f64::INFINITY, f64::min).min(if log_y { ty(lo) } else { 0.0 });
    let mut y_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(f64::NEG_INFINITY, f64::max);
    if let Some((_, d)) = deadline_us {
        y_max = y_max.max(d);
        y_min = y_min.min(d);
    }
    let y_max = if y_max <= y_min { y_min + 1.0 } else { y_max + (y_max - y_min) * 0.08 };
    let name = format!("percentiles-{metric}.svg");
    let path = plot_dir.join(&name);
    {
        let root = SVGBackend::new(&path, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&name, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{title} — percentile distribution"), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((1f64..x_max).log_scale().with_key_points(nines_ticks(x_max)), y_min..y_max)
            .map_err(|e| perr(&name, e))?;
        chart
            .configure_mesh()
            .x_desc("percentile (log scale of 1/(1-p))")
            .y_desc(if log_y { "µs (log scale)" } else { "µs" })
            .x_label_formatter(&nines_label)
            .y_label_formatter(&|v: &f64| {
                let x = if log_y { 10f64.powf(*v) } else { *v };
                if x.abs() >= 10.0 || x == 0.0 {
                    format!("{x:.0}")
                } else {
                    format!("{x:.1}")
                }
            })
            .draw()
            .map_err(|e| perr(&name, e))?;
        for (i, r, pts) in &series {
            let c = colour(*i, r);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(|e| perr(&name, e))?
                .label(run_label(r))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        }
        if let Some((raw, d)) = deadline_us {
            let label = if metric == "ta4_margin_ns" { "window end (0)".to_string() } else { format!("deadline {raw:.0} µs") };
            chart
                .draw_series(LineSeries::new(vec![(1.0, d), (x_max, d)], BLACK.stroke_width(1)))
                .map_err(|e| perr(&name, e))?
                .label(label)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        }
        finish(&mut chart, &root, SeriesLabelPosition::UpperLeft, &name)?;
    }
    Ok(Some(path))
}

/// Bins (lower edge µs, count) of a run's metric: from the interval log when
/// it has the metric, else from the percentile file's count steps.
fn bins(dir: &Path, r: &RunResult, metric: &str, nbins: usize) -> Result<Vec<(f64, u64)>, ReportError> {
    let ivs = intervals_of(dir, r, metric)?;
    let mut values: Vec<(f64, u64)> = Vec::new();
    if !ivs.is_empty() {
        let mut all: Histogram<u64> = Histogram::new(3).map_err(|e| perr(metric, e))?;
        for iv in &ivs {
            all.add(&iv.hist).map_err(|e| perr(metric, e))?;
        }
        values.extend(all.iter_recorded().map(|v| (v.value_iterated_to() as f64 / 1000.0, v.count_at_value())));
    } else if let Some(rows) = metric_rows(dir, r, metric)? {
        values = steps(&rows);
    }
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let lo = values.iter().map(|v| v.0).fold(f64::INFINITY, f64::min).min(0.0);
    let hi = values.iter().map(|v| v.0).fold(f64::NEG_INFINITY, f64::max);
    let width = ((hi - lo) / nbins as f64).max(1e-3);
    let mut out: Vec<(f64, u64)> = (0..nbins).map(|b| (lo + b as f64 * width, 0)).collect();
    for (v, c) in values {
        let b = (((v - lo) / width) as usize).min(nbins - 1);
        out[b].1 += c;
    }
    Ok(out)
}

/// Latency histogram of one run with a logarithmic count axis (OSADL style).
pub fn histogram_plot(dir: &Path, plot_dir: &Path, metric: &str, r: &RunResult) -> Result<Option<PathBuf>, ReportError> {
    let b = bins(dir, r, metric, 100)?;
    if b.is_empty() {
        return Ok(None);
    }
    let width = if b.len() > 1 { b[1].0 - b[0].0 } else { 1.0 };
    let x_lo = b[0].0;
    let x_hi = b[b.len() - 1].0 + width;
    let c_max = b.iter().map(|x| x.1).max().unwrap_or(1).max(1) as f64;
    let label = run_label(r);
    let name = format!("histogram-{}-{metric}.svg", r.deployment);
    let path = plot_dir.join(&name);
    {
        let root = SVGBackend::new(&path, (W, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&name, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{label}: {metric} histogram (log count)"), ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(x_lo..x_hi, (0.8f64..c_max * 2.0).log_scale())
            .map_err(|e| perr(&name, e))?;
        chart.configure_mesh().x_desc("µs").y_desc("samples").draw().map_err(|e| perr(&name, e))?;
        let c = colour(0, r);
        chart
            .draw_series(
                b.iter().filter(|x| x.1 > 0).map(|&(lo, n)| Rectangle::new([(lo, 0.8), (lo + width, n as f64)], c.filled())),
            )
            .map_err(|e| perr(&name, e))?;
        root.present().map_err(|e| perr(&name, e))?;
    }
    Ok(Some(path))
}

/// Maximum per interval over the run, every run overlaid, from the `.hlog`.
pub fn maxima_plot(dir: &Path, plot_dir: &Path, metric: &str, runs: &[&RunResult]) -> Result<Option<PathBuf>, ReportError> {
    let mut series = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let ivs = intervals_of(dir, r, metric)?;
        if ivs.is_empty() {
            continue;
        }
        let pts: Vec<(f64, f64)> = ivs.iter().map(|iv| (iv.start.as_secs_f64(), iv.hist.max() as f64 / 1000.0)).collect();
        series.push((i, *r, pts));
    }
    if series.is_empty() {
        return Ok(None);
    }
    let t_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.0)).fold(1.0f64, f64::max) * 1.05;
    let y_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(1.0f64, f64::max) * 1.1;
    let name = format!("maxima-{metric}.svg");
    let path = plot_dir.join(&name);
    {
        let root = SVGBackend::new(&path, (W, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&name, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{metric}: maximum per interval over time"), ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..t_max, 0f64..y_max)
            .map_err(|e| perr(&name, e))?;
        chart.configure_mesh().x_desc("seconds into the run").y_desc("max µs").draw().map_err(|e| perr(&name, e))?;
        for (i, r, pts) in &series {
            let c = colour(*i, r);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(1)).point_size(2))
                .map_err(|e| perr(&name, e))?
                .label(run_label(r))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        }
        finish(&mut chart, &root, SeriesLabelPosition::UpperRight, &name)?;
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::nines_label;

    #[test]
    fn nines_axis_labels() {
        assert_eq!(nines_label(&1.0), "0%");
        assert_eq!(nines_label(&10.0), "90%");
        assert_eq!(nines_label(&100.0), "99%");
        assert_eq!(nines_label(&1000.0), "99.9%");
        assert_eq!(nines_label(&100000.0), "99.999%");
    }
}
