//! The unfused attention baseline (`shaders/attention_naive.wgsl`): scores
//! into a [B, H, Tq, Tk] buffer, a row softmax, then P·V. Same shapes, mask
//! and options as the flash kernels of [`super`]; any head dim.

use anyhow::{ensure, Result};

use super::{empty, params, AttnInputs, AttnOptions, WG};
use crate::kernel::{groups_1d, Kernel};
use crate::tensor::Tensor;

/// The unfused baseline (benchmarks, reference): scores into a [B, H, Tq, Tk]
/// buffer, row softmax, then P·V. Forward only; any head dim.
pub fn attention_naive_forward(x: AttnInputs, opts: &AttnOptions) -> Result<Tensor> {
    let out = empty(x.q.gpu(), x.q.shape())?;
    attention_naive_forward_into(x, opts, &out)?;
    Ok(out)
}

/// [`attention_naive_forward`] into a caller-allocated `out`.
pub fn attention_naive_forward_into(x: AttnInputs, opts: &AttnOptions, out: &Tensor) -> Result<()> {
    let p = params(x, opts, false)?;
    let q = x.q;
    ensure!(
        out.shape() == q.shape(),
        "attention_naive: out {out:?} vs q {q:?}"
    );
    let gpu = q.gpu();
    let n_scores = p.batch as u64 * p.heads as u64 * p.tq as u64 * p.tk as u64;
    ensure!(
        n_scores * 4 <= gpu.max_binding() && n_scores < u32::MAX as u64,
        "attention_naive_forward: {n_scores} scores exceed one binding"
    );
    let scores = empty(gpu, &[n_scores as usize])?;
    let mut binds = x.binds().to_vec();
    binds.extend([out.bind(5), scores.bind(12)]);
    let kernel = |entry| Kernel::new("attention_naive", entry);
    let rows = p.batch * p.heads * p.tq;
    let groups = |n: u32| groups_1d(gpu, n.div_ceil(WG));
    gpu.dispatch(
        &kernel("attention_naive_scores"),
        &p,
        &binds,
        groups(n_scores as u32),
    )?;
    gpu.dispatch(&kernel("attention_naive_softmax"), &p, &binds, groups(rows))?;
    gpu.dispatch(
        &kernel("attention_naive_pv"),
        &p,
        &binds,
        groups(rows * p.d),
    )
}
