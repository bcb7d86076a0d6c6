//! The general-M driver of the quantized matmuls, shared by every format:
//!
//! ```text
//! forward:   C [M, N] = A · Wᵀ (+ bias)     A = x  [M, K]
//! backward:  C [M, K] = A · W               A = dy [M, N]
//! (+ scale·U·Vᵀ over C, the LoRA epilogue, in the same pass)
//! ```
//! W [N, K] is decoded from its codes inside the kernel. Checks the operands,
//! then runs the tiled dequantizing kernels of `common/qgemm.wgsl` (fused:
//! each weight tile is decoded into workgroup memory inside the matmul, so on
//! real GPUs the weight crosses the memory bus once, as 4 or 8 bits) or hands
//! the product to the staged path (`staged.rs`). Activations larger than one
//! binding are split by rows, reductions longer than [`MAX_REDUCTION`] into
//! accumulating dispatches.

use anyhow::{bail, ensure, Result};

use super::format::{Operands, QgemmWeight};
use super::staged::staged;
use crate::kernel::{Bind, Kernel};
use crate::ops::lora::epilogue::{dummy_binds, LoraEpilogueParams, LowRank};
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

/// The product `op` against the quantized `w`, after checking its operands:
/// the staged path when `staged_path`, the fused kernels otherwise.
pub(super) fn qgemm<W: QgemmWeight + ?Sized>(staged_path: bool, w: &W, op: Operands) -> Result<()> {
    let (backward, y, a, bias, lr) = (op.backward, op.c, op.a, op.bias, op.lr.as_ref());
    let kernel = w.kernel();
    let entry = kernel.entries[backward as usize];
    let (wn, wk) = kernel.dims;
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
    if staged_path {
        return staged(w, op);
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
            let k = Kernel::new(kernel.shader, entry).with(&consts);
            let mut binds = vec![xb, x4, bb, yb];
            binds.extend_from_slice(&kernel.binds);
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
                qscale: kernel.qscale,
                lora,
                ..Default::default()
            };
            let groups = [col_groups as u32, (m1 - m0).div_ceil(wg_rows) as u32, 1];
            gpu.dispatch(&k, &params, &binds, groups)?;
            r0 = r1;
        }
        m0 = m1;
    }
    Ok(())
}
