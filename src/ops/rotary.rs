//! rotary: GPT-NeoX rotary position embedding (`rotate_half` convention, the
//! pair of dim i is i + rot_dim/2; not the interleaved GPT-J layout).
//!
//! Shapes: `x` f32 [B, T, H, D], `positions` i32 [B, T] (left-padded batches
//! start real tokens at position 0; pads may hold any position: they are
//! clamped into the table), `out` f32 [B, T, H, D]. Only the first
//! `rot_dim = int(D · rotary_pct)` dims rotate (Pythia: 0.25), the rest pass
//! through. Forward saves nothing but the positions tensor and the table;
//! backward is the transposed rotation `dx = Rᵀ dy`.
//!
//! Angles match transformers' float32 `GPTNeoXRotaryEmbedding`:
//! `inv_freq[i] = 1 / base^((2i as f32) / rot_dim)` computed in f32 (f32
//! division, f32 `powf`, f32 reciprocal), `angle = (pos as f32) · inv_freq[i]`
//! rounded once to f32 (torch's K=1 matmul), and cos/sin of that f32 angle.
//! The cos/sin come from a host table ([`RotaryTable`]) computed in f64 and
//! rounded to f32, i.e. correctly rounded, where torch's f32 `cos` is within
//! about an ulp; GPU `sin`/`cos` builtins are not used because they lose
//! accuracy for large angles (positions up to thousands of radians).
//!
//! Llama uses the same rotate_half layout over the full head dim (rotary_pct
//! 1, `head_dim` possibly given explicitly in its config), with `rope_theta`
//! and optional `rope_scaling` ([`RopeScaling`], `rotary/scaling.rs`), which
//! only changes the inverse frequencies: [`RotaryTable::new_scaled`].

use anyhow::{ensure, Result};
use std::sync::Arc;

mod scaling;
mod slice;
pub use scaling::RopeScaling;
pub use slice::{rotary_slice, rotary_slice_backward, rotary_slice_forward};

use crate::device::Gpu;
use crate::kernel::{as_vec4, groups_1d, Kernel};
use crate::ops::embedding::row_chunks;
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RotaryParams {
    pub rows: u32,
    pub heads: u32,
    pub d: u32,
    pub rot_half: u32,
    pub x_stride: u32,
    pub x_off: u32,
    pub out_off: u32,
    pub pos_off: u32,
    pub max_pos: u32,
    pub x_head_stride: u32,
    pub out_stride: u32,
    pub out_head_stride: u32,
}

/// cos/sin of every (position, frequency) for one head size and base.
#[derive(Clone, Debug)]
pub struct RotaryTable {
    pub head_dim: usize,
    pub rot_dim: usize,
    pub base: f32,
    pub max_positions: usize,
    /// The f32 inverse frequencies the table was built from (rot_dim/2).
    pub inv_freq: Vec<f32>,
    /// f32 [P, rot_dim]: per position rot_dim/2 cosines then rot_dim/2 sines.
    pub cos_sin: Tensor,
}

impl RotaryTable {
    /// `rot_dim = int(head_dim · rotary_pct)` as transformers computes it;
    /// positions in `[0, max_positions)` are exact, others are clamped.
    pub fn new(
        gpu: &Arc<Gpu>,
        head_dim: usize,
        rotary_pct: f64,
        base: f32,
        max_positions: usize,
    ) -> Result<RotaryTable> {
        Self::new_scaled(
            gpu,
            head_dim,
            rotary_pct,
            base as f64,
            &RopeScaling::Default,
            max_positions,
        )
    }

    /// [`new`](Self::new) with a `rope_scaling` type and an f64 `rope_theta`.
    /// A `dynamic` table is computed for sequence length `max_positions`
    /// (build it for max position + 1 of the sequence, as transformers does).
    pub fn new_scaled(
        gpu: &Arc<Gpu>,
        head_dim: usize,
        rotary_pct: f64,
        base: f64,
        scaling: &RopeScaling,
        max_positions: usize,
    ) -> Result<RotaryTable> {
        let rot_dim = (head_dim as f64 * rotary_pct) as usize;
        ensure!(
            rot_dim.is_multiple_of(2) && rot_dim <= head_dim,
            "rotary: rot_dim {rot_dim} (head_dim {head_dim} x rotary_pct {rotary_pct}) must be even and at most head_dim"
        );
        ensure!(
            max_positions >= 1,
            "rotary: max_positions must be at least 1"
        );
        ensure!(
            base > 1.0 && base.is_finite(),
            "rotary: rope_theta {base} must be a finite number above 1"
        );
        scaling.validate()?;
        let inv = scaling.inv_freq(rot_dim, base, max_positions);
        let half = rot_dim / 2;
        let mut data = vec![0f32; max_positions * rot_dim];
        for (pos, row) in data
            .chunks_mut(rot_dim.max(1))
            .enumerate()
            .take(max_positions)
        {
            for (i, &f) in inv.iter().enumerate() {
                let a = Self::angle(pos as i32, f) as f64;
                row[i] = a.cos() as f32;
                row[half + i] = a.sin() as f32;
            }
        }
        ensure!(
            (data.len() * 4) as u64 <= gpu.max_binding(),
            "rotary: a table of {max_positions} positions x {rot_dim} does not fit one binding"
        );
        let cos_sin = Tensor::from_f32(gpu, &[max_positions, rot_dim], &data)?;
        Ok(RotaryTable {
            head_dim,
            rot_dim,
            base: base as f32,
            max_positions,
            inv_freq: inv,
            cos_sin,
        })
    }

    /// `1 / base^((2i as f32) / rot_dim)` in f32, i < rot_dim/2 (transformers).
    pub fn inv_freq(rot_dim: usize, base: f32) -> Vec<f32> {
        RopeScaling::Default.inv_freq(rot_dim, base as f64, 0)
    }

    /// The f32 angle for a position and an f32 inverse frequency.
    pub fn angle(pos: i32, inv_freq: f32) -> f32 {
        pos as f32 * inv_freq
    }
}

/// A [B, T, H, D] view of a tensor: tokens lie `token_stride` elements
/// apart, heads `head_stride` apart, starting at element `offset` (q or k
/// inside a fused QKV projection, or a plain contiguous tensor).
#[derive(Clone, Copy, Debug)]
struct View {
    token_stride: usize,
    head_stride: usize,
    offset: usize,
}

impl View {
    fn contiguous([_, _, h, d]: [usize; 4]) -> View {
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
fn run(
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

fn shape4(x: &Tensor) -> Result<[usize; 4]> {
    let s = x.shape();
    ensure!(s.len() == 4, "rotary: expected [B, T, H, D], got {s:?}");
    Ok([s[0], s[1], s[2], s[3]])
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

/// Rotates contiguous `x` [B, T, H, D] at `positions` [B, T].
pub fn rotary_forward(x: &Tensor, positions: &Tensor, table: &RotaryTable) -> Result<Tensor> {
    rotated(Rotation::Forward, x, positions, table)
}

/// dx = Rᵀ dy for contiguous `dy` [B, T, H, D].
pub fn rotary_backward(dy: &Tensor, positions: &Tensor, table: &RotaryTable) -> Result<Tensor> {
    rotated(Rotation::Backward, dy, positions, table)
}

/// A new f32 tensor of x's shape holding `x` rotated by `rotation`.
fn rotated(
    rotation: Rotation,
    x: &Tensor,
    positions: &Tensor,
    table: &RotaryTable,
) -> Result<Tensor> {
    let out = Tensor::empty(x.gpu(), &shape4(x)?, DType::F32)?;
    rotary_into(rotation, &out, x, positions, table)?;
    Ok(out)
}

/// [`rotary_forward`] or [`rotary_backward`] of contiguous `x` into a
/// caller-allocated f32 `out` of x's size.
pub fn rotary_into(
    rotation: Rotation,
    out: &Tensor,
    x: &Tensor,
    positions: &Tensor,
    table: &RotaryTable,
) -> Result<()> {
    rotary_into_with(RotaryForm::Auto, rotation, out, x, positions, table)
}

/// [`rotary_into`] in a chosen [`RotaryForm`] (tests compare the forms).
pub fn rotary_into_with(
    form: RotaryForm,
    rotation: Rotation,
    out: &Tensor,
    x: &Tensor,
    positions: &Tensor,
    table: &RotaryTable,
) -> Result<()> {
    let shape = shape4(x)?;
    ensure!(
        out.numel() == x.numel(),
        "rotary: out {:?} for x {:?}",
        out.shape(),
        x.shape()
    );
    let view = View::contiguous(shape);
    run(
        form,
        rotation,
        shape,
        (out, view),
        (x, view),
        positions,
        table,
    )
}

/// Tape version of [`rotary_forward`].
pub fn rotary(tape: &Tape, x: &Var, positions: &Tensor, table: &RotaryTable) -> Result<Var> {
    let out = rotary_forward(x.tensor(), positions, table)?;
    let positions = positions.clone();
    let table = table.clone();
    Ok(tape.record("rotary", &[x], out, move |dy, _| {
        Ok(vec![Some(rotary_backward(dy, &positions, &table)?)])
    }))
}
