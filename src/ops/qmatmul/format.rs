//! [`QgemmWeight`]: what the quantized-matmul drivers need of a weight
//! format, implemented by [`Int8Weight`](crate::quant::Int8Weight) and
//! [`Nf4Weight`](crate::quant::Nf4Weight) (in `int8.rs` / `nf4.rs`) and by
//! [`QuantizedWeight`], which hands each call to the format it holds.
//!
//! Every format's shader includes `common/qgemm.wgsl` and differs only in how
//! a weight tile is decoded, so a format is: its shader and entries, the
//! buffers it binds at 5.., one run-time constant, and a row dequantizer
//! (the staged path's panels and `dequantize`). The drivers take it with the
//! [`Operands`] of one product.

use anyhow::Result;
use std::sync::Arc;

use crate::device::Gpu;
use crate::kernel::Bind;
use crate::ops::lora::epilogue::LowRank;
use crate::quant::QuantizedWeight;
use crate::tensor::Tensor;

/// A format's kernels and bindings for one weight W [n, k].
pub struct QgemmKernel<'a> {
    /// (n, k): output and input features.
    pub dims: (usize, usize),
    /// The device that holds the weight.
    pub gpu: &'a Arc<Gpu>,
    /// The shader, e.g. `qmatmul_nf4`; it also names the format in errors.
    pub shader: &'static str,
    /// The fused kernels' entries: [forward, backward].
    pub entries: [&'static str; 2],
    /// The single-row forward kernel, where the format has one (it needs
    /// K % 64 == 0).
    pub gemv: Option<&'static str>,
    /// The scalar dequantizer's entry (it names the dequantizer in errors).
    pub dequantize: &'static str,
    /// The weight's buffers (bindings 5 and up of every entry).
    pub binds: Vec<Bind<'a>>,
    /// The format's run-time constant of the fused kernels.
    pub qscale: f32,
}

/// One product's operands: `C = A · Wᵀ (+ bias)` (forward, A = x [.., K])
/// or `C = A · W` (`backward`, A = dy [.., N]) into `c`, plus an optional
/// low-rank term `scale·U·Vᵀ` over C `[rows, cols]` (the LoRA epilogue).
#[derive(Clone, Copy)]
pub(super) struct Operands<'a> {
    pub backward: bool,
    pub c: &'a Tensor,
    pub a: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub lr: Option<LowRank<'a>>,
}

/// A frozen quantized weight W [n, k] the qmatmul drivers can run.
pub trait QgemmWeight {
    /// The format's kernels and this weight's bindings.
    fn kernel(&self) -> QgemmKernel<'_>;

    /// Rows `[lo, hi)` of the dequantized weight into the first `(hi - lo)·k`
    /// elements of `y` (a staged matmul's panel); `lo·k` must be a multiple of
    /// the format's alignment (4 for int8, 32 for NF4).
    fn dequantize_rows(&self, y: &Tensor, lo: usize, hi: usize) -> Result<()>;

    /// (n, k): output and input features.
    fn dims(&self) -> (usize, usize) {
        self.kernel().dims
    }
}

/// The format's view of a weight: the one place that matches on it.
fn format_of(w: &QuantizedWeight) -> &dyn QgemmWeight {
    match w {
        QuantizedWeight::Int8(w) => w,
        QuantizedWeight::Nf4(w) => w,
    }
}

impl QgemmWeight for QuantizedWeight {
    fn kernel(&self) -> QgemmKernel<'_> {
        format_of(self).kernel()
    }

    fn dequantize_rows(&self, y: &Tensor, lo: usize, hi: usize) -> Result<()> {
        format_of(self).dequantize_rows(y, lo, hi)
    }
}
