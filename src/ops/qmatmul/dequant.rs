//! The dequantizers' shared driver: `y = dequantize(W)` for rows `[lo, hi)`
//! of a quantized W [n, k], written to the first `(hi - lo)·k` elements of an
//! f32 tensor, bit-exact with bitsandbytes (`int8_vectorwise_dequant`,
//! `dequantize_4bit`). Each format has a scalar entry and a vec4-store entry
//! over whole groups; this file splits the rows into binding-sized ranges and
//! picks the entry per range.

use anyhow::{ensure, Result};

use super::format::QgemmWeight;
use crate::kernel::{groups_1d, Bind, Kernel};
use crate::tensor::{DType, Tensor};

/// The dequantized f32 weight [n, k], written in chunks when it is larger
/// than one binding.
pub fn dequantize<W: QgemmWeight + ?Sized>(w: &W) -> Result<Tensor> {
    let kernel = w.kernel();
    let (n, k) = kernel.dims;
    let y = Tensor::empty(kernel.gpu, &[n, k], DType::F32)?;
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

/// A format's quantizer / dequantizer params (`QuantParams` in its shader),
/// whose first four words are `count, base, src_off, dst_off` in every
/// format (the `params_layouts` test checks them against the shaders).
pub(super) trait QuantParams: bytemuck::Pod {
    /// These params for `count` elements from weight element `base`, stored
    /// at `dst_off` (the residual offset in the bound output range).
    fn at(self, count: usize, base: usize, dst_off: u32) -> Self {
        self.with_head(count, base, (3, dst_off))
    }

    /// These params for a quantizer pass over `count` items from item `base`,
    /// reading its source at the residual offset `src_off`.
    fn reading(self, count: usize, base: usize, src_off: u32) -> Self {
        self.with_head(count, base, (2, src_off))
    }

    /// Sets `count`, `base` and one offset word (2: src_off, 3: dst_off).
    fn with_head(mut self, count: usize, base: usize, (word, off): (usize, u32)) -> Self {
        let words: &mut [u32] = bytemuck::cast_slice_mut(std::slice::from_mut(&mut self));
        words[0] = count as u32;
        words[1] = base as u32;
        words[word] = off;
        self
    }
}

/// The input check every GPU quantizer (`what`) starts with.
pub(super) fn check_quantize_input(w: &Tensor, what: &str) -> Result<()> {
    ensure!(
        w.dtype() == DType::F32,
        "{what} needs an f32 weight, got {w:?}"
    );
    Ok(())
}

/// A format's two dequantizing entries and when each applies.
pub(super) struct RowDequantizer<P> {
    /// (entry, elements per invocation): the scalar entry, then the one that
    /// stores whole `group`-element groups as vec4s.
    pub entries: [(&'static str, usize); 2],
    /// (align, group): the first element must be a multiple of `align`.
    pub align_group: (usize, usize),
    /// The format's own condition for the vec4-store entry.
    pub vec_ok: bool,
    /// The params every dispatch shares.
    pub fixed: P,
}

/// Rows `[lo, hi)` of a weight `[n, k]`, dequantized into the first
/// `(hi - lo)·k` elements of `y` by the format's two entries `d`: in each
/// binding-sized range, the whole groups through the vec4-store entry where
/// y's range starts 16-byte aligned and `d.vec_ok`, the rest through the
/// scalar one.
pub(super) fn dequantize_rows_with<W: QgemmWeight + ?Sized, P: QuantParams>(
    w: &W,
    d: RowDequantizer<P>,
    y: &Tensor,
    (lo, hi): (usize, usize),
) -> Result<()> {
    let kernel = w.kernel();
    let (n, k) = kernel.dims;
    let (align, group) = d.align_group;
    let (first, end) = (lo * k, hi * k);
    ensure!(
        y.dtype() == DType::F32
            && lo <= hi
            && hi <= n
            && first.is_multiple_of(align)
            && y.numel() >= end - first,
        "{} rows {lo}..{hi} of [{n}, {k}] into {y:?}",
        kernel.dequantize
    );
    let run = |vec: bool, yb: Bind, dst_off: u32, base: usize, count: usize| {
        let (entry, per) = d.entries[vec as usize];
        let mut binds = vec![yb];
        binds.extend_from_slice(&kernel.binds);
        let p = d.fixed.at(count, base, dst_off);
        run_items(
            (kernel.shader, entry),
            &p,
            &binds,
            count.div_ceil(per),
            kernel.gpu,
        )
    };
    for (a, b) in binding_ranges(y.gpu(), end - first, 64) {
        let mut at = a;
        let whole = (b - a) / group * group;
        let (yb, off) = y.bind_elems(16, a, a + whole);
        if d.vec_ok && whole > 0 && off % 4 == 0 && (first + a) % group == 0 {
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
