//! The dispatch driver shared by `qmatmul_int8` and `qmatmul_nf4`: both
//! shaders include `common/qgemm.wgsl` and differ only in how a weight tile
//! is decoded, so the host side (shapes, chunking, reduction splits, the
//! choice of kernel) is one mechanism too.
//!
//! Two ways to run a product, both exact to f32 rounding of the same
//! dequantized weight, chosen per adapter ([`QgemmPath`]):
//! - **fused**: the tiled kernels of `common/qgemm.wgsl` decode each weight
//!   tile into workgroup memory inside the matmul (real GPUs: the weight
//!   crosses the memory bus once, as 4 or 8 bits);
//! - **staged**: the weight is dequantized panel by panel into a scratch
//!   buffer of at most [`STAGE_ELEMS`] floats (~4 MiB, never the whole f32
//!   weight), each panel multiplied by the adapter's f32 matmul as soon as it
//!   is staged (CPU adapters, where "memory bandwidth" is a cache and decoding
//!   once per panel beats decoding inside a kernel whose barriers and
//!   workgroup memory llvmpipe emulates; llama.cpp's large-batch CUDA path
//!   works the same way).

use anyhow::{bail, ensure, Result};

use crate::kernel::{Bind, Kernel};
use crate::ops::lora::epilogue::{dummy_binds, LoraEpilogueParams, LowRank};
use crate::ops::matmul::{gemm_staged, MatmulVariant};
use crate::tensor::{DType, Tensor};

/// Mirrors `QgemmParams` in `shaders/common/qgemm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct QgemmParams {
    pub m: u32,
    pub cols: u32,
    pub r0: u32,
    pub r1: u32,
    pub wn: u32,
    pub wk: u32,
    pub ldx: u32,
    pub x_off: u32,
    pub y_off: u32,
    pub has_bias: u32,
    pub accumulate: u32,
    pub zero: u32,
    pub qscale: f32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
    /// The LoRA epilogue's part (zero when the pipeline has none).
    pub lora: LoraEpilogueParams,
}

/// Rows and columns of C one workgroup covers (see the shader): (forward, backward).
pub const WG_ROWS: [usize; 2] = [256, 128];
pub const WG_COLS: [usize; 2] = [16, 8];
/// Reduction steps per dispatch: keeps every invocation far below llvmpipe's
/// 65535-iteration limit (25 iterations per 64 steps).
pub const MAX_REDUCTION: usize = 65536;

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
    /// The general-M kernel this path means on `gpu` (the caller runs NF4's
    /// GEMV where it applies; elsewhere `Gemv` means `Auto`).
    fn general(self, gpu: &crate::Gpu) -> QgemmPath {
        match self {
            QgemmPath::Auto | QgemmPath::Gemv if gpu.is_cpu() => QgemmPath::Staged,
            QgemmPath::Staged => QgemmPath::Staged,
            _ => QgemmPath::Fused,
        }
    }
}

/// Scratch floats of one staged panel (4 MiB): a few panels for a GPT-2
/// MLP weight, and far below the f32 size of the weights it serves.
pub const STAGE_ELEMS: usize = 1 << 20;

/// Writes a weight's rows `[lo, hi)`, dequantized, to the start of a tensor.
pub(crate) type DequantRows<'a> = dyn Fn(&Tensor, usize, usize) -> Result<()> + 'a;

/// What the shared driver needs of one quantized weight W [wn, wk].
pub(crate) struct QgemmWeight<'a> {
    pub shader: &'static str,
    /// The fused kernels' entries: [forward, backward].
    pub entries: [&'static str; 2],
    pub dims: (usize, usize),
    /// The weight's buffers (bindings 5 and up of the fused kernels).
    pub binds: Vec<Bind<'a>>,
    /// The format's run-time constant of the fused kernels.
    pub qscale: f32,
    /// Writes W's rows `[lo, hi)`, dequantized, to the start of a tensor.
    pub dequantize_rows: Box<DequantRows<'a>>,
}

/// The output shape of a qgemm: `a`'s shape with the last dim replaced.
pub(crate) fn out_shape(a: &Tensor, cols: usize) -> Vec<usize> {
    let mut shape = a.shape().to_vec();
    match shape.last_mut() {
        Some(c) => *c = cols,
        None => shape.push(cols),
    }
    shape
}

/// Bindings 10 and 11, params and override constants of the LoRA epilogue for
/// one dispatch: the term (already shifted to the dispatch's rows), or dummy
/// ranges (`fallback`, a read-only range of the dispatch) and LORA = false.
pub(crate) fn lora_binds<'t>(
    lr: Option<&LowRank<'t>>,
    fallback: Bind<'t>,
) -> ([Bind<'t>; 2], LoraEpilogueParams, Vec<(&'static str, f64)>) {
    match lr {
        Some(l) => {
            let (binds, params, consts) = l.bind();
            (binds, params, consts.to_vec())
        }
        None => (dummy_binds(fallback), Default::default(), Vec::new()),
    }
}

/// Checks that a low-rank term matches the output `[m, cols]` and that V fits
/// one binding (U is split with the output rows).
pub(crate) fn check_lowrank(entry: &str, lr: &LowRank, m: usize, cols: usize) -> Result<()> {
    ensure!(
        lr.dims() == (m, cols),
        "{entry}: LoRA term {:?} for an output of [{m}, {cols}]",
        lr.dims()
    );
    let max = lr.v.gpu().max_binding();
    ensure!(
        lr.v.bytes() + lr.v.gpu().binding_alignment() <= max,
        "{entry}: LoRA operand {:?} exceeds one storage binding ({max} bytes)",
        lr.v
    );
    Ok(())
}

/// `C = A · Wᵀ (+ bias)` (forward, A = x [.., K]) or `C = A · W` (backward,
/// A = dy [.., N]) into `y`, against the quantized `w`, by the general-M
/// kernel `path` means on this adapter. `lr` adds a low-rank term
/// `scale·U·Vᵀ` over C `[rows, cols]` in the same pass (the LoRA epilogue).
pub(crate) fn qgemm(
    path: QgemmPath,
    w: &QgemmWeight,
    backward: bool,
    y: &Tensor,
    a: &Tensor,
    bias: Option<&Tensor>,
    lr: Option<&LowRank>,
) -> Result<()> {
    let entry = w.entries[backward as usize];
    let (wn, wk) = w.dims;
    let (red, cols) = if backward { (wn, wk) } else { (wk, wn) };
    ensure!(
        a.dtype() == DType::F32 && !a.shape().is_empty() && a.cols() == red,
        "{entry}: input {a:?} must be f32 [.., {red}] for a [{wn}, {wk}] weight"
    );
    if let Some(b) = bias {
        ensure!(
            !backward && b.dtype() == DType::F32 && b.shape() == [cols],
            "{entry}: bias {b:?} must be f32 [{cols}]"
        );
    }
    let m = a.rows();
    ensure!(
        y.dtype() == DType::F32 && y.shape() == out_shape(a, cols),
        "{entry}: output {y:?}, expected f32 {:?}",
        out_shape(a, cols)
    );
    if let Some(l) = lr {
        check_lowrank(entry, l, m, cols)?;
    }
    let gpu = a.gpu();
    if m == 0 || cols == 0 {
        return Ok(());
    }
    if path.general(gpu) == QgemmPath::Staged {
        return staged(w, backward, y, a, bias, lr);
    }
    let (wg_rows, wg_cols) = (WG_ROWS[backward as usize], WG_COLS[backward as usize]);
    let col_groups = cols.div_ceil(wg_cols);
    ensure!(
        col_groups <= 65535,
        "{entry}: {cols} output columns exceed one dispatch's {} columns",
        65535 * wg_cols
    );
    // Rows per dispatch: each bound range (x, y, and the LoRA term's U) must
    // fit one binding after its start is rounded down to the alignment.
    let align = (gpu.binding_alignment() / 4) as usize;
    let maxb = ((gpu.max_binding() / 4) as usize).saturating_sub(align);
    let row_elems = red.max(cols).max(lr.map_or(0, |l| l.rank()));
    if row_elems > maxb {
        bail!(
            "{entry}: one row of {row_elems} f32 does not fit a storage binding ({} bytes)",
            gpu.max_binding()
        );
    }
    let rows_per = (maxb / row_elems).min(65535 * wg_rows).max(1);
    let mut m0 = 0;
    while m0 < m {
        let m1 = (m0 + rows_per).min(m);
        let (xb, x_off) = a.bind_elems(1, m0 * red, m1 * red);
        // The same range as vec4s: whole 16-byte units (pooled buffers come
        // in 256-byte multiples, so rounding up stays inside the buffer).
        let x4 = Bind {
            binding: 2,
            size: xb
                .size
                .next_multiple_of(16)
                .min(xb.buffer.size() - xb.offset),
            ..xb
        };
        let (yb, y_off) = y.bind_elems(4, m0 * cols, m1 * cols);
        let bb = match bias {
            Some(b) => b.bind(3),
            None => Bind { binding: 3, ..xb },
        };
        let vec_x = red % 4 == 0 && x_off % 4 == 0;
        let shifted = lr.map(|l| l.shifted(m0, 0, m1 - m0, cols));
        let mut r0 = 0;
        while r0 < red {
            let r1 = (r0 + MAX_REDUCTION).min(red);
            // The term joins the first dispatch of a split reduction only.
            let (lbinds, lora, lconsts) = lora_binds(shifted.as_ref().filter(|_| r0 == 0), xb);
            let mut consts = vec![("VEC_X", if vec_x { 1.0 } else { 0.0 })];
            consts.extend(lconsts);
            let kernel = Kernel::new(w.shader, entry).with(&consts);
            let mut binds = vec![xb, x4, bb, yb];
            binds.extend_from_slice(&w.binds);
            binds.extend(lbinds);
            let params = QgemmParams {
                m: (m1 - m0) as u32,
                cols: cols as u32,
                r0: r0 as u32,
                r1: r1 as u32,
                wn: wn as u32,
                wk: wk as u32,
                ldx: red as u32,
                x_off,
                y_off,
                has_bias: (bias.is_some() && r0 == 0) as u32,
                accumulate: (r0 > 0) as u32,
                qscale: w.qscale,
                lora,
                ..Default::default()
            };
            let groups = [col_groups as u32, (m1 - m0).div_ceil(wg_rows) as u32, 1];
            gpu.dispatch(&kernel, &params, &binds, groups)?;
            r0 = r1;
        }
        m0 = m1;
    }
    Ok(())
}

/// The staged path: W's rows in panels of at most [`STAGE_ELEMS`] floats
/// (whole multiples of 64 rows, balanced), each dequantized and then
/// multiplied by the f32 matmul (`ops::matmul::gemm_staged`).
fn staged(
    w: &QgemmWeight,
    backward: bool,
    y: &Tensor,
    a: &Tensor,
    bias: Option<&Tensor>,
    lr: Option<&LowRank>,
) -> Result<()> {
    let (wn, wk) = w.dims;
    let gpu = a.gpu();
    let per_panel = (STAGE_ELEMS / wk.max(1)).max(64) / 64 * 64;
    let rows = wn
        .div_ceil(wn.div_ceil(per_panel))
        .next_multiple_of(64)
        .min(wn);
    let panel = Tensor::empty(gpu, &[rows * wk], DType::F32)?;
    let (m, n, k) = if backward {
        (a.rows(), wk, wn)
    } else {
        (a.rows(), wn, wk)
    };
    gemm_staged(
        MatmulVariant::Auto,
        (y, a, &panel),
        bias,
        !backward,
        (m, n, k),
        rows,
        lr.copied(),
        &*w.dequantize_rows,
    )
}

/// Element ranges `[lo, hi)` covering `numel`, each at most one binding,
/// split on `unit` boundaries.
pub(crate) fn binding_ranges(gpu: &crate::Gpu, numel: usize, unit: usize) -> Vec<(usize, usize)> {
    let step = ((gpu.max_binding() / 4) as usize / unit * unit).max(unit);
    (0..numel)
        .step_by(step)
        .map(|lo| (lo, (lo + step).min(numel)))
        .collect()
}

/// One dispatch of a format's dequantizer: (the vec4-store entry?, y's
/// binding, its residual offset, the first weight element, the count).
pub(crate) type DequantRun<'a> = dyn Fn(bool, Bind, u32, usize, usize) -> Result<()> + 'a;

/// Rows `[lo, hi)` of a weight `[n, k]`, dequantized into the first
/// `(hi - lo)·k` elements of `y` by a format's two dequantizing entries (the
/// format's `what` names it in errors; its first element must be a multiple
/// of `align`): in each binding-sized range, the whole `group`-element
/// groups through the vec4-store entry where y's range starts 16-byte aligned
/// and `vec_ok` (the format's own condition), the rest through the scalar one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dequantize_rows_by(
    what: &str,
    y: &Tensor,
    (n, k): (usize, usize),
    (lo, hi): (usize, usize),
    (align, group): (usize, usize),
    vec_ok: bool,
    run: &DequantRun,
) -> Result<()> {
    let (first, end) = (lo * k, hi * k);
    ensure!(
        y.dtype() == DType::F32
            && lo <= hi
            && hi <= n
            && first.is_multiple_of(align)
            && y.numel() >= end - first,
        "{what} rows {lo}..{hi} of [{n}, {k}] into {y:?}"
    );
    for (a, b) in binding_ranges(y.gpu(), end - first, 64) {
        let mut at = a;
        let whole = (b - a) / group * group;
        let (yb, off) = y.bind_elems(16, a, a + whole);
        if vec_ok && whole > 0 && off % 4 == 0 && (first + a) % group == 0 {
            run(true, yb, off, first + a, whole)?;
            at += whole;
        }
        if at < b {
            let (yb, off) = y.bind_elems(4, at, b);
            run(false, yb, off, first + at, b - at)?;
        }
    }
    Ok(())
}
