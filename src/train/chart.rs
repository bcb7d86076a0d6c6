//! The end-of-run chart: one SVG with a panel per key metric (reward, KL,
//! losses: whichever keys the trainer names), read from the metrics log,
//! over whole-step ticks in distinct colours.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

use super::metrics::MetricsLog;

const PANEL_W: u32 = 720;
const PANEL_H: u32 = 220;

/// Matplotlib's "tab10" colours: distinct and readable on white.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The x range of steps `lo..=hi`, widened by one step on each side when
/// it is a single step; plotters then puts its ticks on whole steps.
fn step_range(pts: &[(f64, f64)]) -> std::ops::Range<i64> {
    let lo = pts.iter().map(|p| p.0 as i64).min().unwrap_or(0);
    let hi = pts.iter().map(|p| p.0 as i64).max().unwrap_or(0);
    if lo == hi {
        lo - 1..hi + 1
    } else {
        lo..hi
    }
}

/// (min, max) of `v`, widened so a flat or single-point series still has a range.
fn padded_range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let pad = ((hi - lo) * 0.05)
        .max(hi.abs().max(lo.abs()) * 1e-3)
        .max(1e-9);
    (lo - pad, hi + pad)
}

/// Draws `keys` from `log` into `path` (SVG), one panel per key that has at
/// least one finite value, in order; keys never logged are left out.
/// Returns the path, or None when no key had data (no file written).
pub fn write_chart(
    log: &MetricsLog,
    keys: &[&str],
    path: &Path,
    title: &str,
) -> Result<Option<PathBuf>> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = keys
        .iter()
        .map(|k| {
            let pts: Vec<(f64, f64)> = log
                .series(k)
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            (*k, pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let height = PANEL_H * series.len() as u32 + 40;
    // Drawn into memory, then written atomically: never half an SVG.
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PANEL_W, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root = root
            .titled(title, ("sans-serif", 20))
            .map_err(|e| err(&e))?;
        let panels = root.split_evenly((series.len(), 1));
        for (i, ((key, pts), area)) in series.iter().zip(panels.iter()).enumerate() {
            let (y0, y1) = padded_range(pts.iter().map(|p| p.1));
            let mut chart = ChartBuilder::on(area)
                .caption(*key, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(64)
                .build_cartesian_2d(step_range(pts), y0..y1)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc("step")
                .x_labels(10)
                .y_label_formatter(&|v| super::progress::fmt_value(*v))
                .bold_line_style(RGBColor(225, 225, 225))
                .light_line_style(TRANSPARENT)
                .draw()
                .map_err(|e| err(&e))?;
            let colour = COLOURS[i % COLOURS.len()];
            let steps: Vec<(i64, f64)> = pts.iter().map(|&(x, y)| (x as i64, y)).collect();
            chart
                .draw_series(LineSeries::new(
                    steps.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| err(&e))?;
            if steps.len() <= 20 {
                // Few points (eval rows, short runs): mark each, so a lone
                // point shows and sparse ones read as measurements.
                chart
                    .draw_series(steps.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                    .map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
    }
    crate::models::checkpoint::write_atomic(path, svg.as_bytes())?;
    Ok(Some(path.to_path_buf()))
}
