//! The single-row forward of a quantized matmul (NF4's `qmatmul_nf4_gemv`):
//!
//! ```text
//! y [1, N] = x [1, K] · Wᵀ (+ bias) (+ scale·U·Vᵀ)      K % 64 == 0
//! ```
//! One invocation per output, streaming the packed weight once (~0.52 bytes
//! per NF4 weight); no workgroup memory, no barriers. Takes the LoRA epilogue
//! like every path. x and y must each fit one binding.

use anyhow::{ensure, Result};

use super::format::{Operands, QgemmWeight};
use super::gemm::{check_lowrank, lora_binds, out_shape, QgemmParams};
use crate::kernel::{groups_1d, Kernel};
use crate::tensor::DType;

/// The GEMV reads each row of W in whole blocks of this many elements (NF4's
/// block): it needs K % GEMV_K == 0.
pub(super) const GEMV_K: usize = 64;

/// The forward `op` (`y = x · Wᵀ (+ bias)`) for one row, by the format's
/// GEMV `entry`.
pub(super) fn gemv<W: QgemmWeight + ?Sized>(
    entry: &'static str,
    w: &W,
    op: Operands,
) -> Result<()> {
    let (y, x, bias, lr) = (op.c, op.a, op.bias, op.lr.as_ref());
    let kernel = w.kernel();
    let (n, k) = kernel.dims;
    ensure!(
        x.dtype() == DType::F32 && x.cols() == k && y.shape() == out_shape(x, n),
        "{entry}: x {x:?}, y {y:?} for a [{n}, {k}] weight"
    );
    if let Some(b) = bias {
        ensure!(
            b.dtype() == DType::F32 && b.shape() == [n],
            "{}: bias {b:?} for N = {n}",
            kernel.shader
        );
    }
    ensure!(
        x.bytes().max(y.bytes()) <= x.gpu().max_binding(),
        "{entry}: x {x:?} or y {y:?} exceeds one storage binding ({} bytes)",
        x.gpu().max_binding()
    );
    if let Some(l) = lr {
        check_lowrank(entry, l, 1, n)?;
    }
    let gpu = x.gpu();
    let (lbinds, lora, consts) = lora_binds(lr, x.bind(2));
    let params = QgemmParams {
        m: 1,
        cols: n as u32,
        r0: 0,
        r1: k as u32,
        wn: n as u32,
        wk: k as u32,
        ldx: k as u32,
        has_bias: bias.is_some() as u32,
        lora,
        ..Default::default()
    };
    let mut binds = vec![x.bind(2), bias.unwrap_or(x).bind(3), y.bind(4)];
    binds.extend(kernel.binds);
    binds.extend(lbinds);
    let groups = groups_1d(gpu, n.div_ceil(64) as u32);
    gpu.dispatch(
        &Kernel::new(kernel.shader, entry).with(&consts),
        &params,
        &binds,
        groups,
    )
}
