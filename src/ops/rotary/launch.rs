//! Launching one rotation: a [B, T, H, D] view of each operand (strided
//! inside a fused QKV projection, or contiguous), the entry and its form,
//! and the token chunks that keep each binding under the device's limit.

use anyhow::{ensure, Result};

use super::{RotaryParams, RotaryTable};
use crate::kernel::{as_vec4, groups_1d, Kernel};
use crate::ops::embedding::row_chunks;
use crate::tensor::{DType, Tensor};

/// A [B, T, H, D] view of a tensor: tokens lie `token_stride` elements
/// apart, heads `head_stride` apart, starting at element `offset` (q or k
/// inside a fused QKV projection, or a plain contiguous tensor).
#[derive(Clone, Copy, Debug)]
pub(super) struct View {
    pub(super) token_stride: usize,
    pub(super) head_stride: usize,
    pub(super) offset: usize,
}

impl View {
    pub(super) fn contiguous([_, _, h, d]: [usize; 4]) -> View {
        View {
            token_stride: h * d,
            head_stride: d,
            offset: 0,
        }
    }

    /// Fails unless every element of `shape` under this view lies in `t`.
    fn check(&self, what: &str, t: &Tensor, [b, tt, h, d]: [usize; 4]) -> Result<()> {
        ensure!(t.dtype() == DType::F32, "rotary: {what} must be f32");
        let bt = b * tt;
        let (_, last) = self.span(0, bt.max(1), h.max(1), d);
        ensure!(
            self.head_stride >= d && self.token_stride >= (h.max(1) - 1) * self.head_stride + d,
            "rotary: {what} strides (token {}, head {}) overlap for H = {h}, D = {d}",
            self.token_stride,
            self.head_stride
        );
        ensure!(
            bt == 0 || last <= t.numel(),
            "rotary: {what} {:?} too small for [{b}, {tt}, {h}, {d}] at strides (token {}, head {}), offset {}",
            t.shape(),
            self.token_stride,
            self.head_stride,
            self.offset
        );
        Ok(())
    }

    /// Elements `[lo, hi)` that tokens `t0..t1` span.
    fn span(&self, t0: usize, t1: usize, h: usize, d: usize) -> (usize, usize) {
        let lo = self.offset + t0 * self.token_stride;
        (
            lo,
            lo + (t1 - t0 - 1) * self.token_stride + (h - 1) * self.head_stride + d,
        )
    }
}

/// How the vec4 entries share out the work (the shader's ROW_LOOP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RotaryForm {
    /// [`RotaryForm::PerRow`] on CPU adapters, else [`RotaryForm::PerQuad`].
    #[default]
    Auto,
    /// One invocation per four dims of a head (GPUs).
    PerQuad,
    /// One invocation per (token, head), its quads in turn: no lane runs
    /// both the rotation and the pass-through copy under a mask.
    PerRow,
}

/// Runs one entry over `shape`, from the view `xv` of `x` into the view `ov`
/// of `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    form: RotaryForm,
    rotation: Rotation,
    shape: [usize; 4],
    (out, ov): (&Tensor, View),
    (x, xv): (&Tensor, View),
    positions: &Tensor,
    table: &RotaryTable,
) -> Result<()> {
    let [b, t, h, d] = shape;
    ensure!(
        positions.dtype() == DType::I32 && positions.numel() == b * t,
        "rotary: positions must be i32 [B, T] = [{b}, {t}], got {:?} {}",
        positions.shape(),
        positions.dtype().name()
    );
    ensure!(
        d == table.head_dim,
        "rotary: head dim {d} but the table was built for {}",
        table.head_dim
    );
    xv.check("x", x, shape)?;
    ov.check("out", out, shape)?;
    let bt = b * t;
    let w = d - table.rot_dim / 2;
    if bt == 0 || h == 0 || w == 0 {
        return Ok(());
    }
    let gpu = x.gpu();
    // Four dims per invocation when the rotated half, D and both views come
    // in whole aligned vec4s.
    let quad = |v: &View| {
        [v.token_stride, v.head_stride, v.offset]
            .iter()
            .all(|x| x % 4 == 0)
    };
    let quads = table.rot_dim.is_multiple_of(8) && d.is_multiple_of(4) && quad(&xv) && quad(&ov);
    let per = if quads { 4 } else { 1 };
    let per_row = quads
        && match form {
            RotaryForm::Auto => gpu.is_cpu(),
            f => f == RotaryForm::PerRow,
        };
    let row_loop = [("ROW_LOOP", 1.0)];
    let kernel = Kernel::new("rotary", rotation.entry(quads));
    let kernel = if per_row {
        kernel.with(&row_loop)
    } else {
        kernel
    };
    let widest = xv.token_stride.max(ov.token_stride);
    for (t0, t1) in row_chunks(gpu, bt, widest, 1)? {
        let (x_lo, x_hi) = xv.span(t0, t1, h, d);
        let (o_lo, o_hi) = ov.span(t0, t1, h, d);
        let (x_b, x_off) = x.bind_elems(1, x_lo, x_hi);
        let (pos_b, pos_off) = positions.bind_elems(2, t0, t1);
        let (out_b, out_off) = out.bind_elems(4, o_lo, o_hi);
        let rows = ((t1 - t0) * h) as u32;
        let params = RotaryParams {
            rows,
            heads: h as u32,
            d: d as u32,
            rot_half: (table.rot_dim / 2) as u32,
            x_stride: xv.token_stride as u32,
            x_off,
            out_off,
            pos_off,
            max_pos: table.max_positions as u32,
            x_head_stride: xv.head_stride as u32,
            out_stride: ov.token_stride as u32,
            out_head_stride: ov.head_stride as u32,
        };
        let table_b = table.cos_sin.bind(3);
        let binds = [x_b, pos_b, table_b, out_b];
        let quad_binds = [as_vec4(x_b, 5), as_vec4(table_b, 6), as_vec4(out_b, 7)];
        let invocations = if per_row {
            rows
        } else {
            rows * (w / per) as u32
        };
        gpu.dispatch(
            &kernel,
            &params,
            &[&binds[..], &quad_binds[..]].concat(),
            groups_1d(gpu, invocations.div_ceil(256)),
        )?;
    }
    Ok(())
}

/// Which way to rotate: R (the forward) or Rᵀ (the backward, `dx = Rᵀ dy`).
/// The two passes differ only in the kernel's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    Forward,
    Backward,
}

impl Rotation {
    /// The kernel entry: one dim per invocation, or four (`quads`).
    fn entry(self, quads: bool) -> &'static str {
        match (self, quads) {
            (Rotation::Forward, false) => "rotary_forward",
            (Rotation::Backward, false) => "rotary_backward",
            (Rotation::Forward, true) => "rotary_forward4",
            (Rotation::Backward, true) => "rotary_backward4",
        }
    }
}
