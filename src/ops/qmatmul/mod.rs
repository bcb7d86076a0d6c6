//! qmatmul: matmuls against a frozen quantized weight W [N, K] (int8 or NF4,
//! bitsandbytes' layouts, see [`crate::quant`]), decoding the codes inside
//! the kernels so the f32 weight is never materialised whole:
//!
//! ```text
//! forward:   y [.., N]  = x [.., K] · Wᵀ (+ bias) (+ s·U·Vᵀ)
//! backward:  dx [.., K] = dy [.., N] · W         (+ s·U·Vᵀ)
//! ```
//! Forward saves nothing (the weight is frozen, so the backward needs only dy
//! and W); [`qlinear`] puts the product on the tape with gradients for x and
//! the bias only. The optional `s·U·Vᵀ` is the LoRA epilogue (QLoRA, see
//! [`crate::ops::lora`]), added before the one store on every path.
//!
//! One API for both formats: the functions here take any [`QgemmWeight`]
//! ([`crate::quant::Int8Weight`], [`crate::quant::Nf4Weight`], or a
//! [`QuantizedWeight`] holding either), which tells the drivers its shader,
//! entries, bindings and row dequantizer.
//!
//! Files: `path.rs` (entry points and [`QgemmPath`]), `gemm.rs` (fused tiled
//! kernels of `common/qgemm.wgsl`, shared by both shaders), `gemv.rs` (NF4's
//! single row), `staged.rs` (dequantized panels through the f32 matmul),
//! `dequant.rs` ([`dequantize`]), `int8.rs` / `nf4.rs` (the formats and
//! their GPU quantizers), `tape.rs` ([`qlinear`]).

use anyhow::Result;

mod dequant;
mod format;
mod gemm;
mod gemv;
mod int8;
mod nf4;
mod path;
mod staged;
mod tape;

pub use dequant::{dequantize, dequantize_into};
pub use format::{QgemmKernel, QgemmWeight};
pub use gemm::{QgemmParams, MAX_REDUCTION, WG_COLS, WG_ROWS};
pub use int8::{int8_quantize, Int8QuantParams};
pub use nf4::{nf4_quantize, Nf4QuantParams};
pub use path::{
    qmatmul_backward, qmatmul_backward_into, qmatmul_forward, qmatmul_forward_into, QgemmPath,
};
pub use staged::STAGE_ELEMS;
pub use tape::qlinear;

use crate::quant::{QuantFormat, QuantizedWeight};
use crate::tensor::Tensor;

/// Quantizes an f32 [n, k] tensor on the GPU (the same codes as the host
/// quantizers, [`QuantizedWeight::from_host`]).
pub fn quantize(w: &Tensor, format: QuantFormat) -> Result<QuantizedWeight> {
    Ok(match format {
        QuantFormat::Int8 => QuantizedWeight::Int8(int8_quantize(w)?),
        QuantFormat::Nf4 => QuantizedWeight::Nf4(nf4_quantize(w)?),
    })
}
