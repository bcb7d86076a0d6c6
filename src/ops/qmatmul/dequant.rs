//! The dequantizers' shared driver: `y = dequantize(W)` for rows `[lo, hi)`
//! of a quantized W [n, k], written to the first `(hi - lo)·k` elements of an
//! f32 tensor, bit-exact with bitsandbytes (`int8_vectorwise_dequant`,
//! `dequantize_4bit`). Each format has a scalar entry and a vec4-store entry
//! over whole groups; this file splits the rows into binding-sized ranges and
//! picks the entry per range, the format's `run` dispatches it.

use anyhow::{ensure, Result};

use super::format::QgemmWeight;
use crate::kernel::{groups_1d, Bind, Kernel};
use crate::tensor::{DType, Tensor};

/// The dequantized f32 weight [n, k], written in chunks when it is larger
/// than one binding.
pub fn dequantize<W: QgemmWeight + ?Sized>(w: &W) -> Result<Tensor> {
    let (n, k) = w.dims();
    let y = Tensor::empty(w.gpu(), &[n, k], DType::F32)?;
    dequantize_into(&y, w)?;
    Ok(y)
}

/// [`dequantize`] into an existing f32 tensor of n·k elements.
pub fn dequantize_into<W: QgemmWeight + ?Sized>(y: &Tensor, w: &W) -> Result<()> {
    let (n, k) = w.dims();
    ensure!(
        y.dtype() == DType::F32 && y.numel() == n * k,
        "{} into {y:?} for [{n}, {k}]",
        w.kernel().dequantize
    );
    w.dequantize_rows(y, 0, n)
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

/// One dispatch of a quantizer or dequantizer entry of `shader`: 64 items
/// per workgroup.
pub(super) fn run_items<P: bytemuck::Pod>(
    (shader, entry): (&'static str, &'static str),
    params: &P,
    binds: &[Bind],
    items: usize,
    gpu: &crate::Gpu,
) -> Result<()> {
    let groups = groups_1d(gpu, items.div_ceil(64) as u32);
    gpu.dispatch(&Kernel::new(shader, entry), params, binds, groups)
}
