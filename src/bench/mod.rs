//! `engine bench`: kernel timings against the adapter's own ceilings.
//!
//! First two kernels measure the ceilings ([`fma_peak`](ceiling) and
//! `copy_bandwidth`); every op is then reported in GFLOP/s or GB/s and as a
//! percentage of the matching ceiling. Each figure is the median of at least
//! five runs after a warm-up; every run gets freshly generated inputs (made
//! untimed) and is timed through completion (submit, then wait for the device).

mod case;
mod cases;
mod ceiling;
mod lora_cases;
mod quant_cases;

use anyhow::Result;
use std::sync::Arc;

use crate::device::Gpu;

use case::row;
pub use case::{median_ms, time_run, Case, Ceilings, Prepare, Row, Run, Work};
pub use cases::cases;

/// Runs the ceilings then every case (or those whose op starts with one of
/// `only`), printing a table or JSON lines.
pub fn run(gpu: &Arc<Gpu>, quick: bool, json: bool, only: &[String]) -> Result<()> {
    let adapter = format!("adapter: {}", gpu.describe());
    if json {
        eprintln!("{adapter}");
    } else {
        println!("{adapter}");
        println!(
            "{:<22} {:<22} {:>10} {:>14} {:>8}",
            "op", "shape", "ms", "rate", "% ceil"
        );
    }
    let runs = if quick { 5 } else { 9 };
    let emit = |r: &Row| {
        if json {
            println!("{}", serde_json::to_string(r).unwrap());
        } else {
            let rate = match (r.gflops, r.gbps) {
                (Some(g), _) => format!("{g:.2} GFLOP/s"),
                (_, Some(b)) => format!("{b:.2} GB/s"),
                _ => String::new(),
            };
            println!(
                "{:<22} {:<22} {:>10.3} {:>14} {:>7.1}%",
                r.op, r.shape, r.ms, rate, r.pct_of_ceiling
            );
        }
    };
    let mut ceil = Ceilings {
        gflops: 1.0,
        gbps: 1.0,
    };
    for case in ceiling::cases() {
        let ms = median_ms(gpu, &case, runs)?;
        let mut r = row(&case, ms, &ceil);
        match case.work {
            Work::Flops(_) => ceil.gflops = r.gflops.unwrap(),
            Work::Bytes(_) => ceil.gbps = r.gbps.unwrap(),
        }
        r.pct_of_ceiling = 100.0;
        emit(&r);
    }
    let selected = |c: &Case| only.is_empty() || only.iter().any(|o| c.op.starts_with(o.as_str()));
    for case in cases(quick).into_iter().filter(selected) {
        let ms = median_ms(gpu, &case, runs)?;
        emit(&row(&case, ms, &ceil));
    }
    Ok(())
}
