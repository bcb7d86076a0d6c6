//! head_slice: take q, k or v out of a fused QKV projection.
//!
//! Shapes: x [..., S] viewed as [R, S]; output [..., H, D] viewed as [R, H·D]
//! with `out[r, h·D + d] = x[r, base + h·head_stride + d]`. The two layouts it
//! exists for: GPT-2's `c_attn` (`[q | k | v]`, head_stride = D) and GPT-NeoX's
//! `query_key_value` (per-head `[q k v]`, head_stride = 3D), see
//! [`QkvLayout`]. Forward saves nothing; backward scatters into a zeroed dx.

use anyhow::{ensure, Result};

use crate::kernel::{as_vec4, groups_1d, Kernel};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct HeadSliceParams {
    pub rows: u32,
    pub row_stride: u32,
    pub heads: u32,
    pub head_dim: u32,
    pub base: u32,
    pub head_stride: u32,
    pub _pad: [u32; 2],
}

/// How a fused QKV projection orders its outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkvLayout {
    /// `[q | k | v]`, each block split into heads (GPT-2 `c_attn`).
    Blocked,
    /// Per head `[q, k, v]` (GPT-NeoX `query_key_value`).
    PerHead,
}

/// Which third of the projection: 0 = q, 1 = k, 2 = v.
#[derive(Clone, Copy, Debug)]
pub struct Slice {
    pub layout: QkvLayout,
    pub which: u32,
    pub heads: usize,
    pub head_dim: usize,
}

impl Slice {
    /// Where the slice lies in a row of the fused projection: the column of
    /// its head 0, dim 0, and the columns between consecutive heads.
    pub fn columns(&self) -> (usize, usize) {
        let (which, h, d) = (self.which as usize, self.heads, self.head_dim);
        match self.layout {
            QkvLayout::Blocked => (which * h * d, d),
            QkvLayout::PerHead => (which * d, 3 * d),
        }
    }

    fn params(&self, rows: usize, row_stride: usize) -> HeadSliceParams {
        let (base, head_stride) = self.columns();
        HeadSliceParams {
            rows: rows as u32,
            row_stride: row_stride as u32,
            heads: self.heads as u32,
            head_dim: self.head_dim as u32,
            base: base as u32,
            head_stride: head_stride as u32,
            _pad: [0; 2],
        }
    }
}

/// `forward` picks the entry; four elements per invocation when every
/// stride and offset is a multiple of 4.
fn run(forward: bool, src: &Tensor, dst: &Tensor, p: &HeadSliceParams) -> Result<()> {
    let gpu = src.gpu();
    let n = p.rows * p.heads * p.head_dim;
    let quads = [p.head_dim, p.base, p.head_stride, p.row_stride]
        .iter()
        .all(|x| x % 4 == 0);
    let (entry, per) = match (forward, quads) {
        (true, false) => ("head_slice_forward", 1),
        (false, false) => ("head_slice_backward", 1),
        (true, true) => ("head_slice_forward4", 4),
        (false, true) => ("head_slice_backward4", 4),
    };
    let (sb, db) = (src.bind(1), dst.bind(2));
    gpu.dispatch(
        &Kernel::new("head_slice", entry),
        p,
        &[sb, db, as_vec4(sb, 3), as_vec4(db, 4)],
        groups_1d(gpu, (n / per).div_ceil(256)),
    )
}

fn check(x: &Tensor, s: &Slice) -> Result<(usize, usize)> {
    let width = 3 * s.heads * s.head_dim;
    ensure!(
        x.dtype() == DType::F32 && x.cols() == width,
        "head_slice: {x:?} is not a fused QKV of width {width}"
    );
    Ok((x.rows(), x.cols()))
}

/// x [..., 3·H·D] → [..., H, D].
pub fn head_slice_forward(x: &Tensor, s: &Slice) -> Result<Tensor> {
    let (rows, stride) = check(x, s)?;
    let mut shape = x.shape()[..x.shape().len() - 1].to_vec();
    shape.extend([s.heads, s.head_dim]);
    let out = Tensor::empty(x.gpu(), &shape, DType::F32)?;
    run(true, x, &out, &s.params(rows, stride))?;
    Ok(out)
}

/// dout [..., H, D] → dx shaped like `x_shape`, zero outside the slice.
pub fn head_slice_backward(dout: &Tensor, x_shape: &[usize], s: &Slice) -> Result<Tensor> {
    let dx = Tensor::zeros(dout.gpu(), x_shape, DType::F32)?;
    let (rows, stride) = check(&dx, s)?;
    run(false, dout, &dx, &s.params(rows, stride))?;
    Ok(dx)
}

pub fn head_slice(tape: &Tape, x: &Var, s: Slice) -> Result<Var> {
    let out = head_slice_forward(x.tensor(), &s)?;
    let shape = x.shape().to_vec();
    Ok(tape.record("head_slice", &[x], out, move |dy, _| {
        Ok(vec![Some(head_slice_backward(dy, &shape, &s)?)])
    }))
}

/// q, k and v of a fused projection, each [..., H, D].
pub fn split_qkv(
    tape: &Tape,
    x: &Var,
    layout: QkvLayout,
    heads: usize,
    head_dim: usize,
) -> Result<[Var; 3]> {
    let part = |which| {
        head_slice(
            tape,
            x,
            Slice {
                layout,
                which,
                heads,
                head_dim,
            },
        )
    };
    Ok([part(0)?, part(1)?, part(2)?])
}
