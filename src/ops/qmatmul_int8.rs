//! qmatmul_int8: `y = x · Wᵀ (+ bias)` and `dx = dy · W` against a frozen
//! int8 weight (bitsandbytes' vector-wise layout: codes plus one absmax per
//! output row), dequantizing inside the kernel; plus the GPU quantizer and
//! dequantizer of the format. Weight-only: activations stay f32 (the LLM.int8
//! outlier decomposition is not implemented).
//!
//! Shapes: W [N, K] (nn.Linear layout); x [.., K] → y [.., N]; bias [N];
//! dy [.., N] → dx [.., K]. Forward saves nothing. The fused kernels are
//! `common/qgemm.wgsl`, shared with qmatmul_nf4; CPU adapters run staged
//! (`int8_dequantize_vec4` panels through the f32 matmul), as [`QgemmPath`]
//! and [`crate::quant::gemm`] explain. Every path takes the LoRA epilogue
//! (`lr`: `+ scale·U·Vᵀ` before the one store, see [`crate::ops::lora`]).

use anyhow::{ensure, Result};

use crate::kernel::{groups_1d, Bind, Kernel};
use crate::ops::lora::epilogue::LowRank;
use crate::quant::gemm::{
    binding_ranges, dequantize_rows_by, out_shape, qgemm, QgemmPath, QgemmWeight,
};
use crate::quant::int8::INV_127;
use crate::quant::Int8Weight;
use crate::tensor::{DType, Tensor};

pub use crate::quant::QgemmParams;

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

/// `y = x · Wᵀ (+ bias)` for x [.., K].
pub fn qmatmul_int8_forward(x: &Tensor, w: &Int8Weight, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), &out_shape(x, w.n), DType::F32)?;
    qmatmul_int8_forward_into(QgemmPath::Auto, &y, x, w, bias, None)?;
    Ok(y)
}

/// [`qmatmul_int8_forward`] into an existing `y`, plus an optional low-rank
/// term over y `[rows, N]` (LoRA: U = x·Aᵀ, V = B); `path` picks the kernel
/// (`Gemv` is NF4's and means `Auto` here).
pub fn qmatmul_int8_forward_into(
    path: QgemmPath,
    y: &Tensor,
    x: &Tensor,
    w: &Int8Weight,
    bias: Option<&Tensor>,
    lr: Option<&LowRank>,
) -> Result<()> {
    qgemm(path, &qgemm_weight(w), false, y, x, bias, lr)
}

/// The shared driver's view of an int8 weight.
fn qgemm_weight(w: &Int8Weight) -> QgemmWeight<'_> {
    QgemmWeight {
        shader: SHADER,
        entries: ["qmatmul_int8_forward", "qmatmul_int8_backward"],
        dims: (w.n, w.k),
        binds: w.binds(),
        qscale: INV_127,
        dequantize_rows: Box::new(move |t, lo, hi| int8_dequantize_rows(t, w, lo, hi)),
    }
}

/// `dx = dy · W` for dy [.., N].
pub fn qmatmul_int8_backward(dy: &Tensor, w: &Int8Weight) -> Result<Tensor> {
    let dx = Tensor::empty(dy.gpu(), &out_shape(dy, w.k), DType::F32)?;
    qmatmul_int8_backward_into(QgemmPath::Auto, &dx, dy, w, None)?;
    Ok(dx)
}

/// [`qmatmul_int8_backward`] into an existing `dx`, plus an optional low-rank
/// term over dx `[rows, K]` (LoRA: U = s·dy·B, V = A read as `[r, K]`).
pub fn qmatmul_int8_backward_into(
    path: QgemmPath,
    dx: &Tensor,
    dy: &Tensor,
    w: &Int8Weight,
    lr: Option<&LowRank>,
) -> Result<()> {
    qgemm(path, &qgemm_weight(w), true, dx, dy, None, lr)
}

fn run(
    entry: &'static str,
    params: &Int8QuantParams,
    binds: &[Bind],
    items: usize,
    gpu: &crate::Gpu,
) -> Result<()> {
    let groups = groups_1d(gpu, items.div_ceil(64) as u32);
    gpu.dispatch(&Kernel::new(SHADER, entry), params, binds, groups)
}

/// Quantizes an f32 weight [N, K] on the GPU (same codes and stats as
/// [`Int8Host::quantize`](crate::quant::Int8Host::quantize)).
pub fn int8_quantize(w: &Tensor) -> Result<Int8Weight> {
    ensure!(
        w.dtype() == DType::F32,
        "int8_quantize needs an f32 weight, got {w:?}"
    );
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
        let p = Int8QuantParams {
            count: (r1 - r0) as u32,
            base: r0 as u32,
            src_off: off,
            ..base
        };
        run("int8_row_absmax", &p, &[xb, q.stats.bind(13)], r1 - r0, gpu)?;
    }
    for (lo, hi) in binding_ranges(gpu, n * k, 64) {
        let (xb, off) = w.bind_elems(1, lo, hi);
        let p = Int8QuantParams {
            count: (hi - lo) as u32,
            base: lo as u32,
            src_off: off,
            ..base
        };
        run(
            "int8_quantize",
            &p,
            &[xb, q.codes.bind(12), q.stats.bind(13)],
            (hi - lo).div_ceil(4),
            gpu,
        )?;
    }
    Ok(q)
}

/// The dequantized f32 weight [N, K] (bit-exact with bnb's
/// `int8_vectorwise_dequant`), in chunks when larger than one binding.
pub fn int8_dequantize(w: &Int8Weight) -> Result<Tensor> {
    let y = Tensor::empty(w.codes.gpu(), &[w.n, w.k], DType::F32)?;
    int8_dequantize_into(&y, w)?;
    Ok(y)
}

/// [`int8_dequantize`] into an existing f32 tensor of N·K elements.
pub fn int8_dequantize_into(y: &Tensor, w: &Int8Weight) -> Result<()> {
    ensure!(
        y.dtype() == DType::F32 && y.numel() == w.n * w.k,
        "int8_dequantize into {y:?} for [{}, {}]",
        w.n,
        w.k
    );
    int8_dequantize_rows(y, w, 0, w.n)
}

/// Rows `[lo, hi)` of the dequantized weight into the first `(hi - lo)·K`
/// elements of `y` (a staged matmul's panel); `lo·K` must be a multiple of 4.
pub fn int8_dequantize_rows(y: &Tensor, w: &Int8Weight, lo: usize, hi: usize) -> Result<()> {
    let gpu = w.codes.gpu();
    let fixed = Int8QuantParams {
        numel: (w.n * w.k) as u32,
        k: w.k as u32,
        inv127: INV_127,
        ..Default::default()
    };
    // The vec4 entry's 16 elements span at most two rows when K >= 16.
    let (shape, rows) = ((w.n, w.k), (lo, hi));
    dequantize_rows_by(
        "int8_dequantize",
        y,
        shape,
        rows,
        (4, 16),
        w.k >= 16,
        &|vec, yb, dst_off, base, count| {
            let p = Int8QuantParams {
                count: count as u32,
                base: base as u32,
                dst_off,
                ..fixed
            };
            let mut binds = vec![yb];
            binds.extend(w.binds());
            let (entry, per) = if vec {
                ("int8_dequantize_vec4", 16)
            } else {
                ("int8_dequantize", 4)
            };
            run(entry, &p, &binds, count.div_ceil(per), gpu)
        },
    )
}
