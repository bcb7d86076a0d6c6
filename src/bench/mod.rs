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
mod generate_cases;
mod lora_cases;
mod ppo_case;
mod quant_cases;

use anyhow::Result;
use std::sync::Arc;

use crate::device::Gpu;

use case::row;
pub use case::{median_ms, time_run, Case, Ceilings, Prepare, Row, Run, Work};
pub use cases::cases;

/// Runs the ceilings then every case (or those whose op starts with one of
/// `only`), printing a table or JSON lines.
/// With `ppo`, only the ceilings and the PPO-step rows ([`ppo_case`]) run.
pub fn run(gpu: &Arc<Gpu>, quick: bool, json: bool, only: &[String], ppo: bool) -> Result<()> {
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
            if let (Some(t), Some(d), Some(s), Some(b)) = (
                r.tokens_per_s,
                r.dispatches_per_token,
                r.submits_per_token,
                r.bytes_read_per_token,
            ) {
                println!(
                    "{:<22} {t:.2} tokens/s; per token {d:.0} dispatches, {s:.1} submits, {b:.0} bytes read",
                    ""
                );
            }
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
    if ppo {
        for r in ppo_case::ppo_rows(gpu, quick, &ceil)? {
            emit(&r);
        }
        return Ok(());
    }
    let selected = |c: &Case| only.is_empty() || only.iter().any(|o| c.op.starts_with(o.as_str()));
    for case in cases(quick).into_iter().filter(selected) {
        let ms = median_ms(gpu, &case, runs)?;
        emit(&row(&case, ms, &ceil));
    }
    if only.is_empty() || only.iter().any(|o| "generate".starts_with(o.as_str())) {
        for r in generate_cases::generate_rows(gpu, quick, &ceil)? {
            emit(&r);
        }
    }
    Ok(())
}
