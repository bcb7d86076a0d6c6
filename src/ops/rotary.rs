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

mod launch;
mod scaling;
mod slice;
use launch::{run, View};
pub use launch::{RotaryForm, Rotation};
pub use scaling::RopeScaling;
pub use slice::{rotary_slice, rotary_slice_backward, rotary_slice_forward};

use crate::device::Gpu;
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

fn shape4(x: &Tensor) -> Result<[usize; 4]> {
    let s = x.shape();
    ensure!(s.len() == 4, "rotary: expected [B, T, H, D], got {s:?}");
    Ok([s[0], s[1], s[2], s[3]])
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
