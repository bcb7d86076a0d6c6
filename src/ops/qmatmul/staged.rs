//! The staged path of the quantized matmuls (CPU adapters):
//!
//! ```text
//! for each panel P = W[r0..r1, :]:   stage = dequantize(P)      (≤ STAGE_ELEMS f32)
//!     forward:  C[:, r0..r1]  = A · stageᵀ (+ bias)
//!     backward: C            += A[:, r0..r1] · stage
//! ```
//! Exact to f32 rounding of the same dequantized weight as the fused kernels.
//! The weight is dequantized panel by panel into a scratch buffer of at most
//! [`STAGE_ELEMS`] floats (~4 MiB, never the whole f32 weight), each panel
//! multiplied by the adapter's f32 matmul as soon as it is staged: on CPU
//! adapters "memory bandwidth" is a cache, and decoding once per panel beats
//! decoding inside a kernel whose barriers and workgroup memory llvmpipe
//! emulates (llama.cpp's large-batch CUDA path works the same way).

use anyhow::Result;

use super::format::{Operands, QgemmWeight};
use crate::ops::matmul::{gemm_staged, MatmulVariant};
use crate::tensor::{DType, Tensor};

/// Scratch floats of one staged panel (4 MiB): a few panels for a GPT-2
/// MLP weight, and far below the f32 size of the weights it serves.
pub const STAGE_ELEMS: usize = 1 << 20;

/// W's rows in panels of at most [`STAGE_ELEMS`] floats (whole multiples of
/// 64 rows, balanced), each dequantized and then multiplied by the f32 matmul
/// (`ops::matmul::gemm_staged`). The operands are checked by the caller.
pub(super) fn staged<W: QgemmWeight + ?Sized>(w: &W, op: Operands) -> Result<()> {
    let (wn, wk) = w.dims();
    let gpu = op.a.gpu();
    let per_panel = (STAGE_ELEMS / wk.max(1)).max(64) / 64 * 64;
    let rows = wn
        .div_ceil(wn.div_ceil(per_panel))
        .next_multiple_of(64)
        .min(wn);
    let panel = Tensor::empty(gpu, &[rows * wk], DType::F32)?;
    let m = op.a.rows();
    let (n, k) = if op.backward { (wk, wn) } else { (wn, wk) };
    gemm_staged(
        MatmulVariant::Auto,
        (op.c, op.a, &panel),
        op.bias,
        !op.backward,
        (m, n, k),
        rows,
        op.lr,
        &|t: &Tensor, lo: usize, hi: usize| w.dequantize_rows(t, lo, hi),
    )
}
