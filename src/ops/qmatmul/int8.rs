//! The int8 format on the GPU (bitsandbytes' vector-wise layout: codes plus
//! one absmax per output row, see [`crate::quant::int8`]):
//!
//! ```text
//! stats[n] = max_k |W[n, k]|      code = round_half_even(W · 127 / stats[n])
//! W[n, k] ≈ code · stats[n] · (1/127)
//! ```
//! Its [`QgemmWeight`] (the fused kernels' entries and bindings, the row
//! dequantizer) and the GPU quantizer, all in `shaders/qmatmul_int8.wgsl`.
//! Weight-only: activations stay f32 (the LLM.int8 outlier decomposition is
//! not implemented).

use anyhow::Result;

use super::dequant::{
    binding_ranges, check_quantize_input, dequantize_rows_with, run_items, QuantParams,
    RowDequantizer,
};
use super::format::{QgemmKernel, QgemmWeight};
use crate::quant::int8::INV_127;
use crate::quant::Int8Weight;
use crate::tensor::Tensor;

const SHADER: &str = "qmatmul_int8";

/// Mirrors `QuantParams` in `qmatmul_int8.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Int8QuantParams {
    pub count: u32,
    pub base: u32,
    pub src_off: u32,
    pub dst_off: u32,
    pub numel: u32,
    pub k: u32,
    pub inv127: f32,
    pub _pad0: u32,
}

impl QuantParams for Int8QuantParams {}

impl QgemmWeight for Int8Weight {
    fn kernel(&self) -> QgemmKernel<'_> {
        QgemmKernel {
            dims: (self.n, self.k),
            gpu: self.codes.gpu(),
            shader: SHADER,
            entries: ["qmatmul_int8_forward", "qmatmul_int8_backward"],
            gemv: None,
            dequantize: "int8_dequantize",
            binds: vec![self.codes.bind(5), self.stats.bind(6)],
            qscale: INV_127,
        }
    }

    /// `lo·K` must be a multiple of 4.
    fn dequantize_rows(&self, y: &Tensor, lo: usize, hi: usize) -> Result<()> {
        let d = RowDequantizer {
            entries: [("int8_dequantize", 4), ("int8_dequantize_vec4", 16)],
            align_group: (4, 16),
            // The vec4 entry's 16 elements span at most two rows when K >= 16.
            vec_ok: self.k >= 16,
            fixed: Int8QuantParams {
                numel: (self.n * self.k) as u32,
                k: self.k as u32,
                inv127: INV_127,
                ..Default::default()
            },
        };
        dequantize_rows_with(self, d, y, (lo, hi))
    }
}

/// Quantizes an f32 weight [N, K] on the GPU (same codes and stats as
/// [`Int8Host::quantize`](crate::quant::Int8Host::quantize)).
pub fn int8_quantize(w: &Tensor) -> Result<Int8Weight> {
    check_quantize_input(w, "int8_quantize")?;
    let gpu = w.gpu();
    let (n, k) = (w.rows(), w.cols());
    let q = Int8Weight::alloc(gpu, n, k)?;
    let base = Int8QuantParams {
        numel: (n * k) as u32,
        k: k as u32,
        inv127: INV_127,
        ..Default::default()
    };
    // Row statistics, in chunks of whole rows.
    for (r0, r1) in binding_ranges(gpu, n * k, k)
        .into_iter()
        .map(|(lo, hi)| (lo / k, hi.div_ceil(k)))
    {
        let (xb, off) = w.bind_elems(1, r0 * k, r1 * k);
        let p = base.reading(r1 - r0, r0, off);
        let binds = [xb, q.stats.bind(13)];
        run_items((SHADER, "int8_row_absmax"), &p, &binds, r1 - r0, gpu)?;
    }
    for (lo, hi) in binding_ranges(gpu, n * k, 64) {
        let (xb, off) = w.bind_elems(1, lo, hi);
        let p = base.reading(hi - lo, lo, off);
        let binds = [xb, q.codes.bind(12), q.stats.bind(13)];
        run_items(
            (SHADER, "int8_quantize"),
            &p,
            &binds,
            (hi - lo).div_ceil(4),
            gpu,
        )?;
    }
    Ok(q)
}
