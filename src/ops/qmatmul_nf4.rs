//! qmatmul_nf4: `y = x · Wᵀ (+ bias)` and `dx = dy · W` against a frozen NF4
//! weight (bitsandbytes layout, double-quantized absmax), decoding the 4-bit
//! codes and block scales inside the kernel; plus the GPU quantizer and
//! dequantizer of the format.
//!
//! Shapes: W [N, K] (nn.Linear layout, see [`crate::quant`]); x [.., K] →
//! y [.., N]; bias [N]; dy [.., N] → dx [.., K]. Forward saves nothing (the
//! weight is frozen, so the backward needs only dy and W).
//!
//! Kernels (`shaders/qmatmul_nf4.wgsl`), picked by [`QgemmPath`]: a single
//! row with K % 64 == 0 goes to `qmatmul_nf4_gemv` (one invocation per
//! output, streaming ~0.52 bytes per weight); more rows run fused on GPUs
//! (`common/qgemm.wgsl`, shared with qmatmul_int8: a weight tile decoded once
//! per workgroup into workgroup memory, then register-blocked mat4 FMAs) and
//! staged on CPU adapters (`nf4_dequantize_vec4` fills a bounded panel of
//! the weight, the f32 matmul consumes it; see [`crate::quant::gemm`]). All
//! of them take the LoRA epilogue (`lr`: `+ scale·U·Vᵀ` added before the one
//! store; see [`crate::ops::lora`]). Activations larger than one binding are
//! split by rows, reductions longer than 65,536 into accumulating dispatches
//! (fused) or panels (staged); the packed codes must fit one binding.

use anyhow::{bail, ensure, Result};

use crate::kernel::{groups_1d, Bind, Kernel};
use crate::ops::lora::epilogue::LowRank;
use crate::quant::gemm::{
    binding_ranges, check_lowrank, dequantize_rows_by, lora_binds, out_shape, qgemm, QgemmPath,
    QgemmWeight,
};
use crate::quant::nf4::{ABSMAX_BLOCK, NF4_BLOCK, SUM_GROUP};
use crate::quant::tables::{dynamic_lut, dynamic_map};
use crate::quant::Nf4Weight;
use crate::tensor::{DType, Tensor};

pub use crate::quant::QgemmParams;

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

/// `y = x · Wᵀ (+ bias)` with the kernel chosen for the shape.
pub fn qmatmul_nf4_forward(x: &Tensor, w: &Nf4Weight, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), &out_shape(x, w.n), DType::F32)?;
    qmatmul_nf4_forward_into(QgemmPath::Auto, &y, x, w, bias, None)?;
    Ok(y)
}

/// [`qmatmul_nf4_forward`] into an existing `y` with a chosen kernel, plus
/// an optional low-rank term over y `[rows, N]` (LoRA: U = x·Aᵀ, V = B).
pub fn qmatmul_nf4_forward_into(
    path: QgemmPath,
    y: &Tensor,
    x: &Tensor,
    w: &Nf4Weight,
    bias: Option<&Tensor>,
    lr: Option<&LowRank>,
) -> Result<()> {
    let gemv_ok = x.rows() == 1 && w.k.is_multiple_of(NF4_BLOCK);
    match path {
        QgemmPath::Gemv if !gemv_ok => bail!(
            "qmatmul_nf4_gemv needs one row and K % 64 == 0 (x {x:?}, W [{}, {}])",
            w.n,
            w.k
        ),
        QgemmPath::Gemv | QgemmPath::Auto if gemv_ok => gemv(y, x, w, bias, lr),
        _ => qgemm(path, &qgemm_weight(w), false, y, x, bias, lr),
    }
}

/// The shared driver's view of an NF4 weight.
fn qgemm_weight(w: &Nf4Weight) -> QgemmWeight<'_> {
    QgemmWeight {
        shader: SHADER,
        entries: ["qmatmul_nf4_forward", "qmatmul_nf4_backward"],
        dims: (w.n, w.k),
        binds: w.binds(),
        qscale: 0.0,
        dequantize_rows: Box::new(move |t, lo, hi| nf4_dequantize_rows(t, w, lo, hi)),
    }
}

/// `dx = dy · W` for dy [.., N].
pub fn qmatmul_nf4_backward(dy: &Tensor, w: &Nf4Weight) -> Result<Tensor> {
    let dx = Tensor::empty(dy.gpu(), &out_shape(dy, w.k), DType::F32)?;
    qmatmul_nf4_backward_into(QgemmPath::Auto, &dx, dy, w, None)?;
    Ok(dx)
}

/// [`qmatmul_nf4_backward`] into an existing `dx`, plus an optional low-rank
/// term over dx `[rows, K]` (LoRA: U = s·dy·B, V = A read as `[r, K]`);
/// `path` picks the general kernel (`Gemv` means `Auto` here).
pub fn qmatmul_nf4_backward_into(
    path: QgemmPath,
    dx: &Tensor,
    dy: &Tensor,
    w: &Nf4Weight,
    lr: Option<&LowRank>,
) -> Result<()> {
    qgemm(path, &qgemm_weight(w), true, dx, dy, None, lr)
}

fn gemv(
    y: &Tensor,
    x: &Tensor,
    w: &Nf4Weight,
    bias: Option<&Tensor>,
    lr: Option<&LowRank>,
) -> Result<()> {
    ensure!(
        x.dtype() == DType::F32 && x.cols() == w.k && y.shape() == out_shape(x, w.n),
        "qmatmul_nf4_gemv: x {x:?}, y {y:?} for a [{}, {}] weight",
        w.n,
        w.k
    );
    if let Some(b) = bias {
        ensure!(
            b.dtype() == DType::F32 && b.shape() == [w.n],
            "qmatmul_nf4: bias {b:?} for N = {}",
            w.n
        );
    }
    ensure!(
        x.bytes().max(y.bytes()) <= x.gpu().max_binding(),
        "qmatmul_nf4_gemv: x {x:?} or y {y:?} exceeds one storage binding ({} bytes)",
        x.gpu().max_binding()
    );
    if let Some(l) = lr {
        check_lowrank("qmatmul_nf4_gemv", l, 1, w.n)?;
    }
    let gpu = x.gpu();
    let (lbinds, lora, consts) = lora_binds(lr, x.bind(2));
    let params = QgemmParams {
        m: 1,
        cols: w.n as u32,
        r0: 0,
        r1: w.k as u32,
        wn: w.n as u32,
        wk: w.k as u32,
        ldx: w.k as u32,
        has_bias: bias.is_some() as u32,
        lora,
        ..Default::default()
    };
    let mut binds = vec![x.bind(2), bias.unwrap_or(x).bind(3), y.bind(4)];
    binds.extend(w.binds());
    binds.extend(lbinds);
    let groups = groups_1d(gpu, w.n.div_ceil(64) as u32);
    gpu.dispatch(
        &Kernel::new(SHADER, "qmatmul_nf4_gemv").with(&consts),
        &params,
        &binds,
        groups,
    )
}

fn run(
    entry: &'static str,
    params: &Nf4QuantParams,
    binds: &[Bind],
    items: usize,
    gpu: &crate::Gpu,
) -> Result<()> {
    let groups = groups_1d(gpu, items.div_ceil(64) as u32);
    gpu.dispatch(&Kernel::new(SHADER, entry), params, binds, groups)
}

/// Quantizes an f32 weight [N, K] (any rank: rows × last dim) to NF4 on the
/// GPU: the same codes, absmax codes, absmax2 and offset as
/// [`Nf4Host::quantize`](crate::quant::Nf4Host::quantize). The weight may
/// exceed one binding (it is read in chunks).
pub fn nf4_quantize(w: &Tensor) -> Result<Nf4Weight> {
    ensure!(
        w.dtype() == DType::F32,
        "nf4_quantize needs an f32 weight, got {w:?}"
    );
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
        let p = Nf4QuantParams {
            count: count as u32,
            base: (lo / NF4_BLOCK) as u32,
            src_off: off,
            ..base
        };
        run(
            "nf4_quantize",
            &p,
            &[xb, absmax.bind(4), q.codes.bind(12)],
            count,
            gpu,
        )?;
    }
    let mut sum = absmax.clone();
    while sum.numel() > 1 {
        let next = Tensor::empty(gpu, &[sum.numel().div_ceil(SUM_GROUP)], DType::F32)?;
        let p = Nf4QuantParams {
            count: next.numel() as u32,
            base: sum.numel() as u32,
            ..base
        };
        run(
            "nf4_absmax_sum",
            &p,
            &[sum.bind(1), next.bind(4)],
            next.numel(),
            gpu,
        )?;
        sum = next;
    }
    let lut: Vec<i32> = bytemuck::cast_slice(&dynamic_lut(&code8)).to_vec();
    let lut = Tensor::from_i32(gpu, &[lut.len()], &lut)?;
    let stats = q.binds()[4];
    let nb2 = nb.div_ceil(ABSMAX_BLOCK);
    let p = Nf4QuantParams {
        count: nb2 as u32,
        ..base
    };
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
    run("nf4_absmax_quantize", &p, &binds, nb2, gpu)?;
    Ok(q)
}

/// The dequantized f32 weight [N, K] (bit-exact with bnb's
/// `dequantize_4bit`); written in chunks when larger than one binding.
pub fn nf4_dequantize(w: &Nf4Weight) -> Result<Tensor> {
    let y = Tensor::empty(w.codes.gpu(), &[w.n, w.k], DType::F32)?;
    nf4_dequantize_into(&y, w)?;
    Ok(y)
}

/// [`nf4_dequantize`] into an existing f32 tensor of N·K elements.
pub fn nf4_dequantize_into(y: &Tensor, w: &Nf4Weight) -> Result<()> {
    ensure!(
        y.dtype() == DType::F32 && y.numel() == w.n * w.k,
        "nf4_dequantize into {y:?} for [{}, {}]",
        w.n,
        w.k
    );
    nf4_dequantize_rows(y, w, 0, w.n)
}

/// Rows `[lo, hi)` of the dequantized weight into the first `(hi - lo)·K`
/// elements of `y` (a staged matmul's panel); `lo·K` must be a multiple of 32.
pub fn nf4_dequantize_rows(y: &Tensor, w: &Nf4Weight, lo: usize, hi: usize) -> Result<()> {
    let gpu = w.codes.gpu();
    let fixed = Nf4QuantParams {
        numel: (w.n * w.k) as u32,
        blocks: w.blocks() as u32,
        ..Default::default()
    };
    let (shape, rows) = ((w.n, w.k), (lo, hi));
    dequantize_rows_by(
        "nf4_dequantize",
        y,
        shape,
        rows,
        (32, 32),
        true,
        &|vec, yb, dst_off, base, count| {
            let p = Nf4QuantParams {
                count: count as u32,
                base: base as u32,
                dst_off,
                ..fixed
            };
            let mut binds = vec![yb];
            binds.extend(w.binds());
            let entry = if vec {
                "nf4_dequantize_vec4"
            } else {
                "nf4_dequantize"
            };
            run(entry, &p, &binds, count.div_ceil(32), gpu)
        },
    )
}
