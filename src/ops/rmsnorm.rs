//! rmsnorm over the last dim C of `x` [N, C] (any leading shape, N = B·T
//! rows), as transformers' `LlamaRMSNorm` computes it in float32:
//! `y = w · (x / sqrt(mean_c(x²) + eps))` with weight w [C] and `eps`
//! (`rms_norm_eps`). Forward returns y (x's shape) and saves rstd [N] =
//! 1/sqrt(mean(x²) + eps); backward returns dx and dw (summed over rows).
//! Like the f32 reference, a row with mean(x²) past f32's range (|x| ≳ 1e19)
//! overflows to rstd = 0.
//!
//! Kernels: `shaders/rmsnorm.wgsl`: one invocation per row (the row layout of
//! `layernorm.wgsl`), and dw from per-block partial sums plus a final
//! per-column reduce (race-free, no float atomics). Rows are processed in
//! chunks that fit one storage binding.

use anyhow::{ensure, Result};

use crate::device::Gpu;
use crate::kernel::{groups_1d, Kernel};
use crate::ops::embedding::row_chunks;
use crate::ops::layernorm::{
    check_backward_inputs, check_f32, column_sums, empty_f32_if, params, LayerNormParams,
};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Mirrors `RmsNormParams` in `shaders/rmsnorm.wgsl`: the layernorm params
/// (rows, cols, eps, x_base, r_base and the weight-gradient blocks blk0,
/// blk_rows, nblk), as both ops chunk rows and sum dw the same way.
pub type RmsNormParams = LayerNormParams;

/// Forward results: `y` has x's shape, `rstd` is [N].
pub struct RmsNormOutput {
    pub y: Tensor,
    pub rstd: Tensor,
}

const ROW_WG: u32 = 32;

/// Which row kernel: the forward, or the dx part of the backward.
enum Pass<'a> {
    Forward {
        y: &'a Tensor,
        rstd: &'a Tensor,
        eps: f32,
    },
    Backward {
        dy: &'a Tensor,
        dx: &'a Tensor,
        rstd: &'a Tensor,
    },
}

/// Runs one row kernel over every row chunk of x.
fn run(x: &Tensor, w: &Tensor, pass: Pass) -> Result<()> {
    let (n, c) = (x.rows(), x.cols());
    let gpu = x.gpu();
    if n == 0 || c == 0 {
        return Ok(());
    }
    for (r0, r1) in row_chunks(gpu, n, c, 1)? {
        let (xb, x_base) = x.bind_elems(1, r0 * c, r1 * c);
        let rows = (r1 - r0) as u32;
        let (entry, eps, binds, r_base) = match pass {
            Pass::Forward { y, rstd, eps } => {
                let (rb, r_base) = rstd.bind_elems(4, r0, r1);
                let binds = vec![xb, w.bind(2), y.bind_elems(3, r0 * c, r1 * c).0, rb];
                ("rmsnorm_forward", eps, binds, r_base)
            }
            Pass::Backward { dy, dx, rstd } => {
                let (rb, r_base) = rstd.bind_elems(7, r0, r1);
                let binds = vec![
                    xb,
                    w.bind(2),
                    dy.bind_elems(5, r0 * c, r1 * c).0,
                    dx.bind_elems(6, r0 * c, r1 * c).0,
                    rb,
                ];
                ("rmsnorm_backward", 0.0, binds, r_base)
            }
        };
        gpu.dispatch(
            &Kernel::new("rmsnorm", entry),
            &params(r1 - r0, c, eps, x_base, r_base),
            &binds,
            groups_1d(gpu, rows.div_ceil(ROW_WG)),
        )?;
    }
    Ok(())
}

/// `rmsnorm(x; w, eps)`: new y (x's shape) and rstd [N].
pub fn rmsnorm_forward(x: &Tensor, w: &Tensor, eps: f32) -> Result<RmsNormOutput> {
    let gpu = x.gpu();
    let out = RmsNormOutput {
        y: Tensor::empty(gpu, x.shape(), DType::F32)?,
        rstd: Tensor::empty(gpu, &[x.rows()], DType::F32)?,
    };
    rmsnorm_forward_into(x, w, eps, &out)?;
    Ok(out)
}

/// Forward into existing tensors (`y` with x's element count, `rstd` with N).
pub fn rmsnorm_forward_into(x: &Tensor, w: &Tensor, eps: f32, out: &RmsNormOutput) -> Result<()> {
    let (n, c) = (x.rows(), x.cols());
    check_f32("rmsnorm", "x", x, n * c)?;
    check_f32("rmsnorm", "weight", w, c)?;
    check_f32("rmsnorm", "y", &out.y, n * c)?;
    check_f32("rmsnorm", "rstd", &out.rstd, n)?;
    ensure!(
        !out.y.same_storage(x) && !out.rstd.same_storage(x),
        "rmsnorm: outputs must not alias x"
    );
    run(
        x,
        w,
        Pass::Forward {
            y: &out.y,
            rstd: &out.rstd,
            eps,
        },
    )
}

/// Backward: `(dx, dw)`, each only when asked for (`want_dx`, `want_dw`).
pub fn rmsnorm_backward(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    want_dx: bool,
    want_dw: bool,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let gpu = x.gpu();
    let dx = empty_f32_if(want_dx, gpu, x.shape())?;
    let dw = empty_f32_if(want_dw, gpu, &[x.cols()])?;
    rmsnorm_backward_into(dy, x, w, rstd, dx.as_ref(), dw.as_ref())?;
    Ok((dx, dw))
}

/// Backward into existing tensors: `dx` (x's element count) and/or `dw` ([C]).
pub fn rmsnorm_backward_into(
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    dx: Option<&Tensor>,
    dw: Option<&Tensor>,
) -> Result<()> {
    let c = x.cols();
    check_backward_inputs("rmsnorm", dy, x, w, &[("rstd", rstd)], dx)?;
    if let Some(dx) = dx {
        run(x, w, Pass::Backward { dy, dx, rstd })?;
    }
    if let Some(dw) = dw {
        check_f32("rmsnorm", "dweight", dw, c)?;
        weight_grad(x.gpu(), dy, x, rstd, dw)?;
    }
    Ok(())
}

/// dw: per-(block of rows, column) partial sums, then one sum per column.
fn weight_grad(
    gpu: &std::sync::Arc<Gpu>,
    dy: &Tensor,
    x: &Tensor,
    rstd: &Tensor,
    dw: &Tensor,
) -> Result<()> {
    let (n, c) = (x.rows(), x.cols());
    if c == 0 {
        return Ok(());
    }
    let chunks = row_chunks(gpu, n, c, 1)?;
    let chunk_inputs = |r0: usize, r1: usize| {
        let (xb, x_base) = x.bind_elems(1, r0 * c, r1 * c);
        let (rb, r_base) = rstd.bind_elems(7, r0, r1);
        (
            vec![xb, dy.bind_elems(5, r0 * c, r1 * c).0, rb],
            x_base,
            r_base,
        )
    };
    let entries = ["rmsnorm_backward_weight_partial", "rmsnorm_backward_weight"];
    column_sums(
        gpu,
        ("rmsnorm", entries),
        &chunks,
        c,
        &[(8, 9, dw)],
        chunk_inputs,
    )
}

/// Records `rmsnorm(x; w, eps)` on the tape. The backward keeps x, w and the
/// saved rstd, and computes only the gradients that are needed.
pub fn rmsnorm(tape: &Tape, x: &Var, w: &Var, eps: f32) -> Result<Var> {
    let c = x.tensor().cols();
    ensure!(
        w.tensor().numel() == c,
        "rmsnorm: weight {:?} for x {:?}",
        w.shape(),
        x.shape()
    );
    let out = rmsnorm_forward(x.tensor(), w.tensor(), eps)?;
    let (xs, ws, rstd) = (x.tensor().clone(), w.tensor().clone(), out.rstd);
    let w_shape = w.shape().to_vec();
    Ok(tape.record("rmsnorm", &[x, w], out.y, move |dy, needs| {
        let (dx, dw) = rmsnorm_backward(dy, &xs, &ws, &rstd, needs[0], needs[1])?;
        Ok(vec![dx, dw.map(|t| t.reshape(&w_shape)).transpose()?])
    }))
}
