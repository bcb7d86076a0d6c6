//! The entry points of the quantized matmuls and the choice of kernel:
//!
//! ```text
//! forward:   y [.., N] = x [.., K] · Wᵀ (+ bias)
//! backward:  dx [.., K] = dy [.., N] · W
//! ```
//! for any [`QgemmWeight`] W [N, K]. Three kernels, all exact to f32 rounding
//! of the same dequantized weight ([`QgemmPath`]): the format's single-row
//! GEMV (`gemv.rs`), the fused tiled kernels (`gemm.rs`) and the staged path
//! (`staged.rs`). The `_into` forms add an optional low-rank term over the
//! output in the same pass (the LoRA epilogue, see [`crate::ops::lora`]).

use anyhow::{bail, Result};

use super::format::{Operands, QgemmWeight};
use super::gemm::{out_shape, qgemm};
use super::gemv::{gemv, GEMV_K};
use crate::ops::lora::epilogue::LowRank;
use crate::tensor::{DType, Tensor};

/// Which kernel runs a quantized product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QgemmPath {
    /// NF4's GEMV for one row when K % 64 == 0 (forward); otherwise staged on
    /// CPU adapters and fused elsewhere.
    #[default]
    Auto,
    /// The tiled dequantizing kernels (`common/qgemm.wgsl`).
    Fused,
    /// Dequantized panels of the weight through the f32 matmul.
    Staged,
    /// NF4's single-row kernel (forward only; one row, K % 64 == 0).
    Gemv,
}

impl QgemmPath {
    /// Whether the general-M kernel this path means on `gpu` is the staged
    /// one (the caller runs a GEMV where it applies; elsewhere `Gemv` means
    /// `Auto`).
    fn staged(self, gpu: &crate::Gpu) -> bool {
        match self {
            QgemmPath::Auto | QgemmPath::Gemv if gpu.is_cpu() => true,
            QgemmPath::Staged => true,
            _ => false,
        }
    }
}

/// `y = x · Wᵀ (+ bias)` for x [.., K], with the kernel chosen for the shape.
pub fn qmatmul_forward<W: QgemmWeight + ?Sized>(
    x: &Tensor,
    w: &W,
    bias: Option<&Tensor>,
) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), &out_shape(x, w.dims().0), DType::F32)?;
    qmatmul_forward_into(QgemmPath::Auto, &y, x, w, bias, None)?;
    Ok(y)
}

/// [`qmatmul_forward`] into an existing `y`, by the kernel `path` picks,
/// plus an optional low-rank term over y `[rows, N]` (LoRA: U = x·Aᵀ, V = B).
/// `Gemv` fails where the format has a GEMV that does not apply, and means
/// `Auto` for a format without one.
pub fn qmatmul_forward_into<W: QgemmWeight + ?Sized>(
    path: QgemmPath,
    y: &Tensor,
    x: &Tensor,
    w: &W,
    bias: Option<&Tensor>,
    lr: Option<&LowRank>,
) -> Result<()> {
    let kernel = w.kernel();
    let (n, k) = kernel.dims;
    let gemv_ok = x.rows() == 1 && k.is_multiple_of(GEMV_K);
    let op = Operands {
        backward: false,
        c: y,
        a: x,
        bias,
        lr: lr.copied(),
    };
    match (path, kernel.gemv) {
        (QgemmPath::Gemv, Some(e)) if !gemv_ok => {
            bail!("{e} needs one row and K % 64 == 0 (x {x:?}, W [{n}, {k}])")
        }
        (QgemmPath::Gemv | QgemmPath::Auto, Some(e)) if gemv_ok => gemv(e, w, op),
        _ => qgemm(path.staged(x.gpu()), w, op),
    }
}

/// `dx = dy · W` for dy [.., N].
pub fn qmatmul_backward<W: QgemmWeight + ?Sized>(dy: &Tensor, w: &W) -> Result<Tensor> {
    let dx = Tensor::empty(dy.gpu(), &out_shape(dy, w.dims().1), DType::F32)?;
    qmatmul_backward_into(QgemmPath::Auto, &dx, dy, w, None)?;
    Ok(dx)
}

/// [`qmatmul_backward`] into an existing `dx`, plus an optional low-rank
/// term over dx `[rows, K]` (LoRA: U = s·dy·B, V = A read as `[r, K]`);
/// `path` picks the general kernel (`Gemv` means `Auto` here).
pub fn qmatmul_backward_into<W: QgemmWeight + ?Sized>(
    path: QgemmPath,
    dx: &Tensor,
    dy: &Tensor,
    w: &W,
    lr: Option<&LowRank>,
) -> Result<()> {
    let op = Operands {
        backward: true,
        c: dx,
        a: dy,
        bias: None,
        lr: lr.copied(),
    };
    qgemm(path.staged(dy.gpu()), w, op)
}
