//! The base product under a LoRA adapter, `x·op(W)`, in any storage format:
//! an f32 weight on the matmul kernels, or a frozen int8 / NF4 weight on the
//! dequantizing kernels. Every kernel here takes the LoRA epilogue, so the
//! fused op in [`super`] is one mechanism for all of them.

use anyhow::{bail, ensure, Result};

use super::epilogue::LowRank;
use crate::ops::matmul::{matmul_backward_with, matmul_into, matmul_lowrank_into, MatmulVariant};
use crate::ops::qmatmul::{qmatmul_backward_into, qmatmul_forward_into, QgemmPath};
use crate::quant::QuantizedWeight;
use crate::tensor::{DType, Tensor};

/// The weight of a LoRA linear. Cloning shares the buffers.
#[derive(Clone)]
pub enum LoraBase {
    /// f32 W `[K, N]` (GPT-2 Conv1D) or `[N, K]` with `trans_b` (`nn.Linear`).
    Dense { w: Tensor, trans_b: bool },
    /// A frozen quantized W `[N, K]` (int8 or NF4); `path` picks the kernel
    /// ([`QgemmPath`]). It never gets a gradient.
    Quantized { w: QuantizedWeight, path: QgemmPath },
}

impl LoraBase {
    /// An f32 weight in either layout.
    pub fn dense(w: &Tensor, trans_b: bool) -> LoraBase {
        LoraBase::Dense {
            w: w.clone(),
            trans_b,
        }
    }

    /// A quantized weight with the kernel chosen for the shape.
    pub fn quantized(w: &QuantizedWeight) -> LoraBase {
        LoraBase::Quantized {
            w: w.clone(),
            path: QgemmPath::Auto,
        }
    }

    /// (K inputs, N outputs), after checking an f32 weight is a matrix.
    pub fn in_out(&self) -> Result<(usize, usize)> {
        match self {
            LoraBase::Dense { w, trans_b } => {
                ensure!(
                    w.dtype() == DType::F32 && w.shape().len() == 2,
                    "lora: the base weight {w:?} must be an f32 matrix"
                );
                let s = w.shape();
                Ok(if *trans_b { (s[1], s[0]) } else { (s[0], s[1]) })
            }
            LoraBase::Quantized { w, .. } => {
                let (n, k) = w.shape();
                Ok((k, n))
            }
        }
    }

    /// `y = x2·op(W) (+ bias) (+ lr)` into `y [M, N]` in one pass, or added
    /// to what `y` holds with `accumulate` (f32 bases only).
    pub(crate) fn forward_into(
        &self,
        variant: MatmulVariant,
        y: &Tensor,
        x2: &Tensor,
        bias: Option<&Tensor>,
        lr: Option<&LowRank>,
        accumulate: bool,
    ) -> Result<()> {
        match (self, lr) {
            (LoraBase::Dense { w, trans_b }, Some(lr)) => {
                matmul_lowrank_into(variant, y, x2, w, bias, false, *trans_b, accumulate, lr)
            }
            (LoraBase::Dense { w, trans_b }, None) => {
                matmul_into(variant, y, x2, w, bias, false, *trans_b, accumulate)
            }
            (LoraBase::Quantized { .. }, _) if accumulate => {
                bail!("lora: a quantized base does not accumulate into its output")
            }
            (LoraBase::Quantized { w, path }, lr) => {
                qmatmul_forward_into(*path, y, x2, w, bias, lr)
            }
        }
    }

    /// `dx = dy2·op(W)ᵀ (+ lr)` into `dx [M, K]` in one pass.
    pub(crate) fn input_grad_into(
        &self,
        variant: MatmulVariant,
        dx: &Tensor,
        dy2: &Tensor,
        lr: Option<&LowRank>,
    ) -> Result<()> {
        match (self, lr) {
            (LoraBase::Dense { w, trans_b }, Some(lr)) => {
                matmul_lowrank_into(variant, dx, dy2, w, None, false, !*trans_b, false, lr)
            }
            (LoraBase::Dense { w, trans_b }, None) => {
                matmul_into(variant, dx, dy2, w, None, false, !*trans_b, false)
            }
            (LoraBase::Quantized { w, path }, lr) => qmatmul_backward_into(*path, dx, dy2, w, lr),
        }
    }

    /// dW of an f32 base (`x2ᵀ·dy2` in W's layout); a quantized base is frozen.
    pub(crate) fn weight_grad(
        &self,
        variant: MatmulVariant,
        dy2: &Tensor,
        x2: &Tensor,
    ) -> Result<Tensor> {
        match self {
            LoraBase::Dense { w, trans_b } => {
                let want = [false, true, false];
                let g = matmul_backward_with(variant, dy2, x2, w, false, *trans_b, want)?;
                Ok(g.db.expect("asked for dB"))
            }
            LoraBase::Quantized { .. } => bail!("a quantized LoRA base is frozen: it has no dW"),
        }
    }
}
