//! One benchmark case (an op at one shape, with inputs prepared from a seed),
//! its timing, and the report row that compares it with the ceilings.

use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;

use crate::device::Gpu;

/// What one run of a case does: floating-point work or memory traffic.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    Flops(f64),
    Bytes(f64),
}

/// A prepared run: inputs are already uploaded; calling it records the kernels.
pub type Run = Box<dyn FnMut() -> Result<()>>;

/// Builds a case's [`Run`] on fresh inputs drawn from the seed.
pub type Prepare = Box<dyn Fn(&Arc<Gpu>, u64) -> Result<Run>>;

/// One benchmark: an op at one shape. `prepare` builds fresh inputs.
pub struct Case {
    pub op: &'static str,
    pub shape: String,
    pub work: Work,
    pub prepare: Prepare,
}

/// One measured line of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    pub op: String,
    pub shape: String,
    pub ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gbps: Option<f64>,
    pub pct_of_ceiling: f64,
    /// Generation rows only: per decode step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatches_per_token: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submits_per_token: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_read_per_token: Option<f64>,
}

/// Milliseconds of one call of `run`, from the device idle to the device idle.
pub fn time_run(gpu: &Gpu, run: &mut Run) -> Result<f64> {
    time_calls(gpu, run, 1)
}

/// Milliseconds per call over `calls` calls of `run` submitted back to back,
/// from the device idle to the device idle.
pub fn time_calls(gpu: &Gpu, run: &mut Run, calls: usize) -> Result<f64> {
    gpu.sync()?;
    let t0 = Instant::now();
    for _ in 0..calls {
        run()?;
    }
    gpu.sync()?;
    Ok(t0.elapsed().as_secs_f64() * 1e3 / calls as f64)
}

/// A sample lasts at least this long: on a fast GPU one call of a fraction
/// of a millisecond would mostly time the submit and the wait (an H200 read
/// the same 1024³ matmul as 0.37 and 1.3 ms in one run), while on a CPU
/// adapter most cases are longer and keep one call per sample.
const MIN_SAMPLE_MS: f64 = 5.0;
const MAX_CALLS: usize = 64;

/// Median time per call of `runs` samples after one warm-up, each sample on
/// fresh inputs and of as many calls as [`MIN_SAMPLE_MS`] asks for.
pub fn median_ms(gpu: &Arc<Gpu>, case: &Case, runs: usize) -> Result<f64> {
    let mut warm = (case.prepare)(gpu, 0)?;
    let warm_ms = time_run(gpu, &mut warm)?;
    drop(warm);
    let calls = ((MIN_SAMPLE_MS / warm_ms.max(1e-3)).ceil() as usize).clamp(1, MAX_CALLS);
    let mut times = Vec::with_capacity(runs);
    for seed in 1..=runs as u64 {
        let mut run = (case.prepare)(gpu, seed)?;
        times.push(time_calls(gpu, &mut run, calls)?);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The two ceilings, in GFLOP/s and GB/s.
pub struct Ceilings {
    pub gflops: f64,
    pub gbps: f64,
}

pub(super) fn row(case: &Case, ms: f64, ceil: &Ceilings) -> Row {
    let (gflops, gbps, pct) = match case.work {
        Work::Flops(f) => {
            let g = f / ms / 1e6;
            (Some(g), None, 100.0 * g / ceil.gflops)
        }
        Work::Bytes(b) => {
            let g = b / ms / 1e6;
            (None, Some(g), 100.0 * g / ceil.gbps)
        }
    };
    Row {
        op: case.op.to_string(),
        shape: case.shape.clone(),
        ms,
        gflops,
        gbps,
        pct_of_ceiling: pct,
        tokens_per_s: None,
        dispatches_per_token: None,
        submits_per_token: None,
        bytes_read_per_token: None,
    }
}
