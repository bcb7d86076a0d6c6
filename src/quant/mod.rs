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
//! - [`tables`]: the NF4 code and bnb's 8-bit dynamic map.
//! - [`QuantizedWeight`]: the GPU buffers (frozen: never a `Var`).
//!
//! Formats and buffers only: the kernels that quantize, dequantize and
//! multiply on the GPU, and the tape function `qlinear`, are
//! `ops/qmatmul/` (one layer up); this module imports nothing above `tensor`.

pub mod int8;
pub mod nf4;
pub mod tables;
mod weight;

use anyhow::{ensure, Result};
use std::sync::Arc;

use crate::device::Gpu;

pub use int8::Int8Host;
pub use nf4::Nf4Host;
pub use weight::{Int8Weight, Nf4Weight, QuantBytes, NF4_PAIRS};

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
}
