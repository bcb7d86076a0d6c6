//! Frozen quantized weights: int8 (vector-wise) and NF4 with double
//! quantization, both in bitsandbytes' layouts, with matmuls that decode the
//! codes inside the kernel and never materialise the f32 weight.
//!
//! Layout decision: weights are quantized in the `nn.Linear` layout W [N = out,
//! K = in], flattened row-major, as bnb's Linear4bit / Linear8bitLt do. GPT-2's
//! Conv1D weights are [in, out]: pass [`WeightLayout::InOut`] and they are
//! transposed before quantizing. The kernels compute `y = x · Wᵀ (+ bias)`.
//!
//! - [`nf4`] / [`int8`]: host quantizers and dequantizers (bit-exact with bnb).
//! - [`QuantizedWeight`]: the GPU buffers; [`qlinear`] puts one on the tape,
//!   with gradients for x and the bias only (the weight is not a `Var`).
//! - kernels: `ops::qmatmul_nf4`, `ops::qmatmul_int8`.

pub(crate) mod gemm;
pub mod int8;
pub mod nf4;
mod qlinear;
pub mod tables;
mod weight;

use anyhow::{ensure, Result};
use std::sync::Arc;

use crate::device::Gpu;
use crate::ops::lora::LowRank;
use crate::ops::{qmatmul_int8, qmatmul_nf4};
use crate::tensor::Tensor;

pub use gemm::{QgemmParams, QgemmPath};
pub use int8::Int8Host;
pub use nf4::Nf4Host;
pub use qlinear::qlinear;
pub use weight::{Int8Weight, Nf4Weight, QuantBytes};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantFormat {
    /// int8 codes, one absmax per output row (LLM.int8 weights, no outliers).
    Int8,
    /// NF4, blocks of 64, double-quantized absmax (QLoRA).
    Nf4,
}

/// How a host matrix is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// [N = out, K = in], row-major (nn.Linear).
    OutIn,
    /// [K = in, N = out], row-major (GPT-2's Conv1D).
    InOut,
}

/// The weight in [N, K] row-major order.
pub fn to_out_in(w: &[f32], n: usize, k: usize, layout: WeightLayout) -> Result<Vec<f32>> {
    ensure!(
        w.len() == n * k,
        "weight of {} values for [{n}, {k}]",
        w.len()
    );
    Ok(match layout {
        WeightLayout::OutIn => w.to_vec(),
        WeightLayout::InOut => {
            let mut t = vec![0.0; n * k];
            for (i, row) in w.chunks(n).enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    t[j * k + i] = v;
                }
            }
            t
        }
    })
}

/// A frozen quantized weight W [n, k] on the GPU. Cloning shares the buffers.
#[derive(Clone)]
pub enum QuantizedWeight {
    Int8(Int8Weight),
    Nf4(Nf4Weight),
}

impl QuantizedWeight {
    /// Quantizes a host [n, k] (nn.Linear layout) weight on the host and uploads it.
    pub fn from_host(
        gpu: &Arc<Gpu>,
        w: &[f32],
        n: usize,
        k: usize,
        format: QuantFormat,
    ) -> Result<QuantizedWeight> {
        Ok(match format {
            QuantFormat::Int8 => {
                QuantizedWeight::Int8(Int8Weight::from_host(gpu, &Int8Host::quantize(w, n, k)?)?)
            }
            QuantFormat::Nf4 => {
                QuantizedWeight::Nf4(Nf4Weight::from_host(gpu, &Nf4Host::quantize(w, n, k)?)?)
            }
        })
    }

    /// [`QuantizedWeight::from_host`] for a matrix in either layout.
    pub fn from_host_layout(
        gpu: &Arc<Gpu>,
        w: &[f32],
        n: usize,
        k: usize,
        layout: WeightLayout,
        format: QuantFormat,
    ) -> Result<QuantizedWeight> {
        QuantizedWeight::from_host(gpu, &to_out_in(w, n, k, layout)?, n, k, format)
    }

    /// Quantizes an f32 [n, k] tensor on the GPU (same codes as the host).
    pub fn quantize(w: &Tensor, format: QuantFormat) -> Result<QuantizedWeight> {
        Ok(match format {
            QuantFormat::Int8 => QuantizedWeight::Int8(qmatmul_int8::int8_quantize(w)?),
            QuantFormat::Nf4 => QuantizedWeight::Nf4(qmatmul_nf4::nf4_quantize(w)?),
        })
    }

    pub fn format(&self) -> QuantFormat {
        match self {
            QuantizedWeight::Int8(_) => QuantFormat::Int8,
            QuantizedWeight::Nf4(_) => QuantFormat::Nf4,
        }
    }

    /// (n, k): output and input features.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            QuantizedWeight::Int8(w) => w.shape(),
            QuantizedWeight::Nf4(w) => w.shape(),
        }
    }

    /// The dequantized [n, k] weight computed on the host from the GPU buffers.
    pub fn dequantize_host(&self) -> Result<Vec<f32>> {
        Ok(match self {
            QuantizedWeight::Int8(w) => w.to_host()?.dequantize(),
            QuantizedWeight::Nf4(w) => w.to_host()?.dequantize(),
        })
    }

    /// The dequantized [n, k] weight as a new f32 tensor (GPU kernel; chunked
    /// when it exceeds one binding).
    pub fn dequantize(&self) -> Result<Tensor> {
        match self {
            QuantizedWeight::Int8(w) => qmatmul_int8::int8_dequantize(w),
            QuantizedWeight::Nf4(w) => qmatmul_nf4::nf4_dequantize(w),
        }
    }

    pub fn bytes(&self) -> QuantBytes {
        match self {
            QuantizedWeight::Int8(w) => w.bytes(),
            QuantizedWeight::Nf4(w) => w.bytes(),
        }
    }

    /// Device bytes per weight element, all components included.
    pub fn bytes_per_param(&self) -> f64 {
        let (n, k) = self.shape();
        self.bytes().total() as f64 / (n * k) as f64
    }

    /// `y = x · Wᵀ (+ bias)` for x [.., k] (GEMV kernel for one NF4 row).
    pub fn forward(&self, x: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        match self {
            QuantizedWeight::Int8(w) => qmatmul_int8::qmatmul_int8_forward(x, w, bias),
            QuantizedWeight::Nf4(w) => qmatmul_nf4::qmatmul_nf4_forward(x, w, bias),
        }
    }

    /// `dx = dy · W` for dy [.., n].
    pub fn backward(&self, dy: &Tensor) -> Result<Tensor> {
        match self {
            QuantizedWeight::Int8(w) => qmatmul_int8::qmatmul_int8_backward(dy, w),
            QuantizedWeight::Nf4(w) => qmatmul_nf4::qmatmul_nf4_backward(dy, w),
        }
    }

    /// [`QuantizedWeight::forward`] into `y`, plus an optional low-rank term
    /// over y (the LoRA epilogue, same pass). `path` picks the kernel.
    pub fn forward_into(
        &self,
        path: QgemmPath,
        y: &Tensor,
        x: &Tensor,
        bias: Option<&Tensor>,
        lr: Option<&LowRank>,
    ) -> Result<()> {
        match self {
            QuantizedWeight::Int8(w) => {
                qmatmul_int8::qmatmul_int8_forward_into(path, y, x, w, bias, lr)
            }
            QuantizedWeight::Nf4(w) => {
                qmatmul_nf4::qmatmul_nf4_forward_into(path, y, x, w, bias, lr)
            }
        }
    }

    /// [`QuantizedWeight::backward`] into `dx`, plus an optional low-rank
    /// term over dx (the LoRA epilogue, same pass); `path` picks the general
    /// kernel (`Gemv` means `Auto`).
    pub fn backward_into(
        &self,
        path: QgemmPath,
        dx: &Tensor,
        dy: &Tensor,
        lr: Option<&LowRank>,
    ) -> Result<()> {
        match self {
            QuantizedWeight::Int8(w) => {
                qmatmul_int8::qmatmul_int8_backward_into(path, dx, dy, w, lr)
            }
            QuantizedWeight::Nf4(w) => qmatmul_nf4::qmatmul_nf4_backward_into(path, dx, dy, w, lr),
        }
    }
}
