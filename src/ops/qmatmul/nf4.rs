//! The NF4 format on the GPU (bitsandbytes layout, double-quantized absmax,
//! see [`crate::quant::nf4`]):
//!
//! ```text
//! W[e] ≈ NF4[code[e]] · absmax[e / 64]
//! absmax[b] = code8[absmax_q[b]] · absmax2[b / 256] + offset
//! ```
//! Its [`QgemmWeight`] (the fused kernels' entries and bindings, the
//! single-row GEMV, the row dequantizer) and the GPU quantizer, all in
//! `shaders/qmatmul_nf4.wgsl`. The weight may exceed one binding when it is
//! quantized (it is read in chunks); the packed codes must fit one.

use anyhow::Result;

use super::dequant::{
    binding_ranges, check_quantize_input, dequantize_rows_with, run_items, QuantParams,
    RowDequantizer,
};
use super::format::{QgemmKernel, QgemmWeight};
use crate::kernel::Bind;
use crate::quant::nf4::{ABSMAX_BLOCK, NF4_BLOCK, SUM_GROUP};
use crate::quant::tables::{dynamic_lut, dynamic_map};
use crate::quant::{Nf4Weight, NF4_PAIRS};
use crate::tensor::{DType, Tensor};

const SHADER: &str = "qmatmul_nf4";

/// Mirrors `QuantParams` in `qmatmul_nf4.wgsl` (quantize / dequantize entries).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Nf4QuantParams {
    pub count: u32,
    pub base: u32,
    pub src_off: u32,
    pub dst_off: u32,
    pub numel: u32,
    pub blocks: u32,
    pub zero: u32,
    pub _pad0: u32,
}

/// Bindings 5.. of `qmatmul_nf4.wgsl`: codes, codes4, absmax_q, pairs, stats.
fn binds(w: &Nf4Weight) -> Vec<Bind<'_>> {
    let t = w.tables.buffer();
    let split = NF4_PAIRS as u64 * 4;
    vec![
        w.codes.bind(5),
        w.codes.bind(6),
        w.absmax_q.bind(7),
        Bind {
            binding: 8,
            buffer: t,
            offset: 0,
            size: split,
        },
        Bind {
            binding: 9,
            buffer: t,
            offset: split,
            size: w.tables.bytes() - split,
        },
    ]
}

impl QuantParams for Nf4QuantParams {}

impl QgemmWeight for Nf4Weight {
    fn kernel(&self) -> QgemmKernel<'_> {
        QgemmKernel {
            dims: (self.n, self.k),
            gpu: self.codes.gpu(),
            shader: SHADER,
            entries: ["qmatmul_nf4_forward", "qmatmul_nf4_backward"],
            gemv: Some("qmatmul_nf4_gemv"),
            dequantize: "nf4_dequantize",
            binds: binds(self),
            qscale: 0.0,
        }
    }

    /// `lo·K` must be a multiple of 32.
    fn dequantize_rows(&self, y: &Tensor, lo: usize, hi: usize) -> Result<()> {
        let d = RowDequantizer {
            entries: [("nf4_dequantize", 32), ("nf4_dequantize_vec4", 32)],
            align_group: (32, 32),
            vec_ok: true,
            fixed: Nf4QuantParams {
                numel: (self.n * self.k) as u32,
                blocks: self.blocks() as u32,
                ..Default::default()
            },
        };
        dequantize_rows_with(self, d, y, (lo, hi))
    }
}

/// Quantizes an f32 weight [N, K] (any rank: rows × last dim) to NF4 on the
/// GPU: the same codes, absmax codes, absmax2 and offset as
/// [`Nf4Host::quantize`](crate::quant::Nf4Host::quantize). The weight may
/// exceed one binding (it is read in chunks).
pub fn nf4_quantize(w: &Tensor) -> Result<Nf4Weight> {
    check_quantize_input(w, "nf4_quantize")?;
    let gpu = w.gpu();
    let code8 = dynamic_map();
    let q = Nf4Weight::alloc(gpu, w.rows(), w.cols(), &code8)?;
    let numel = w.numel();
    let nb = q.blocks();
    let base = Nf4QuantParams {
        numel: numel as u32,
        blocks: nb as u32,
        ..Default::default()
    };
    let absmax = Tensor::empty(gpu, &[nb], DType::F32)?;
    for (lo, hi) in binding_ranges(gpu, numel, NF4_BLOCK) {
        let (xb, off) = w.bind_elems(1, lo, hi);
        let count = (hi - lo).div_ceil(NF4_BLOCK);
        let p = base.reading(count, lo / NF4_BLOCK, off);
        let binds = [xb, absmax.bind(4), q.codes.bind(12)];
        run_items((SHADER, "nf4_quantize"), &p, &binds, count, gpu)?;
    }
    let mut sum = absmax.clone();
    while sum.numel() > 1 {
        let next = Tensor::empty(gpu, &[sum.numel().div_ceil(SUM_GROUP)], DType::F32)?;
        let p = base.reading(next.numel(), sum.numel(), 0);
        let binds = [sum.bind(1), next.bind(4)];
        run_items((SHADER, "nf4_absmax_sum"), &p, &binds, next.numel(), gpu)?;
        sum = next;
    }
    let lut: Vec<i32> = bytemuck::cast_slice(&dynamic_lut(&code8)).to_vec();
    let lut = Tensor::from_i32(gpu, &[lut.len()], &lut)?;
    let stats = binds(&q)[4];
    let nb2 = nb.div_ceil(ABSMAX_BLOCK);
    let p = base.reading(nb2, 0, 0);
    let binds = [
        absmax.bind(1),
        sum.bind(3),
        lut.bind(13),
        q.absmax_q.bind(14),
        Bind {
            binding: 15,
            ..stats
        },
    ];
    run_items((SHADER, "nf4_absmax_quantize"), &p, &binds, nb2, gpu)?;
    Ok(q)
}
