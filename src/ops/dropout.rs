//! dropout: `y = x · mask / (1 - p)` elementwise over f32 tensors of any shape,
//! with `mask` Bernoulli(1 - p) drawn from a counter-based RNG (Philox-4x32-10,
//! `shaders/common/philox.wgsl`).
//!
//! **The mask is never stored.** Element `g` (flat index) is kept iff word
//! `g % 4` of `philox4x32((g / 4, 0, offset_lo, offset_hi), (seed_lo, seed_hi))`
//! is `>= round(p · 2^32)`. It depends only on `(seed, offset, g)`: not on the
//! workgroup size, the dispatch split or the device, so the backward
//! (`dx = dy · mask / (1 - p)`) regenerates exactly the forward's mask. Forward
//! saves nothing but `(p, seed, offset)`.
//!
//! Use a distinct `(seed, offset)` per dropout site and step (e.g. the step as
//! the seed and the site index as the offset); equal pairs give equal masks.
//! `p = 0` is the identity (every element kept, scale 1, bit-exact).
//!
//! Kernels: `shaders/dropout.wgsl` (`dropout_forward`, `dropout_backward`, the
//! same map on `x` or `dy`). Tensors larger than one binding are chunked.

use anyhow::{ensure, Result};

use crate::kernel::{elem_chunks, groups_1d, Kernel};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Mirrors `DropoutParams` in `shaders/dropout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DropoutParams {
    /// First flat element index of this chunk (inclusive).
    pub lo: u32,
    /// End of this chunk (exclusive).
    pub hi: u32,
    /// Element `lo` sits at index `base` of the chunk's bindings.
    pub base: u32,
    /// Keep iff the random word is `>= threshold` (= round(p · 2^32)).
    pub threshold: u32,
    /// `1 / (1 - p)`.
    pub scale: f32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub offset_lo: u32,
    pub offset_hi: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// The drop threshold on a uniform u32 for drop probability `p`.
pub fn dropout_threshold(p: f32) -> u32 {
    ((p as f64) * 4294967296.0).round().min(u32::MAX as f64) as u32
}

fn run(
    entry: &'static str,
    src: &Tensor,
    dst: &Tensor,
    p: f32,
    seed: u64,
    offset: u64,
) -> Result<()> {
    ensure!(
        (0.0..1.0).contains(&p),
        "dropout probability must be in [0, 1), got {p}"
    );
    ensure!(
        src.dtype() == DType::F32 && dst.dtype() == DType::F32 && src.numel() == dst.numel(),
        "{entry}: {:?} into {:?}",
        src,
        dst
    );
    ensure!(
        !src.same_storage(dst),
        "{entry}: the output must not alias the input"
    );
    ensure!(
        src.numel() <= u32::MAX as usize,
        "{entry}: more than 2^32 elements"
    );
    let gpu = src.gpu();
    let scale = (1.0 / (1.0 - p as f64)) as f32;
    if src.numel() == 0 {
        return Ok(());
    }
    for (lo, hi) in elem_chunks(gpu, src.numel()) {
        let (sb, base) = src.bind_elems(1, lo, hi);
        let (db, base2) = dst.bind_elems(2, lo, hi);
        debug_assert_eq!(base, base2);
        let params = DropoutParams {
            lo: lo as u32,
            hi: hi as u32,
            base,
            threshold: dropout_threshold(p),
            scale,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            offset_lo: offset as u32,
            offset_hi: (offset >> 32) as u32,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        };
        let counters = ((hi as u32 - 1) >> 2) - (lo as u32 >> 2) + 1;
        gpu.dispatch(
            &Kernel::new("dropout", entry),
            &params,
            &[sb, db],
            groups_1d(gpu, counters.div_ceil(64)),
        )?;
    }
    Ok(())
}

/// `y = x · mask / (1 - p)`, a new tensor of x's shape.
pub fn dropout_forward(x: &Tensor, p: f32, seed: u64, offset: u64) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    dropout_forward_into(x, &y, p, seed, offset)?;
    Ok(y)
}

/// `y = x · mask / (1 - p)` into an existing tensor with x's element count.
pub fn dropout_forward_into(x: &Tensor, y: &Tensor, p: f32, seed: u64, offset: u64) -> Result<()> {
    run("dropout_forward", x, y, p, seed, offset)
}

/// `dx = dy · mask / (1 - p)` with the mask of the forward that used the same
/// `(p, seed, offset)`; a new tensor of dy's shape.
pub fn dropout_backward(dy: &Tensor, p: f32, seed: u64, offset: u64) -> Result<Tensor> {
    let dx = Tensor::empty(dy.gpu(), dy.shape(), DType::F32)?;
    dropout_backward_into(dy, &dx, p, seed, offset)?;
    Ok(dx)
}

/// [`dropout_backward`] into an existing tensor with dy's element count.
pub fn dropout_backward_into(
    dy: &Tensor,
    dx: &Tensor,
    p: f32,
    seed: u64,
    offset: u64,
) -> Result<()> {
    run("dropout_backward", dy, dx, p, seed, offset)
}

/// Records dropout on the tape. The backward keeps only `(p, seed, offset)`.
pub fn dropout(tape: &Tape, x: &Var, p: f32, seed: u64, offset: u64) -> Result<Var> {
    let y = dropout_forward(x.tensor(), p, seed, offset)?;
    Ok(tape.record("dropout", &[x], y, move |dy, _needs| {
        Ok(vec![Some(dropout_backward(dy, p, seed, offset)?)])
    }))
}
