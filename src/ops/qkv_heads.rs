//! qkv_heads: q, k and v out of a fused QKV projection in one pass, q and k
//! rotated (rotary, when a table is given), each into its own destination.
//! Inference only: the functions take and give [`Tensor`]s, never tape
//! [`Var`](crate::tape::Var)s, so it cannot join the tape; the layers use it
//! where no gradient is wanted, and training keeps `rotary_slice` and
//! `head_slice`, whose values it reproduces bit for bit.
//!
//! Shapes: `qkv` [B·T, 3·H·D] in a [`QkvLayout`]; `positions` i32 [B·T];
//! each destination a [`Dest`]: token (b, t), head h of its part starts at
//! `offset + b·seq_stride + (t·H + h)·D`, a contiguous [B, T, H, D] tensor
//! or rows `len .. len+T` of a [B, capacity, H, D] KV cache.
//!
//! Why: decoding one token ran two rotary passes and a head_slice per
//! layer, then copied each row's k and v into the cache (two copy commands
//! per row per layer). On llvmpipe each dispatch costs 45-90 µs whatever its
//! size; this is one dispatch and no copies.

use anyhow::{ensure, Result};

use crate::kernel::{as_vec4, groups_1d, Bind, Kernel};
use crate::ops::head_slice::{QkvLayout, Slice};
use crate::ops::rotary::RotaryTable;
use crate::tensor::{DType, Tensor};

/// Mirrors `QkvHeadsParams` in `shaders/qkv_heads.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct QkvHeadsParams {
    pub rows: u32,
    pub heads: u32,
    pub d: u32,
    pub rot_half: u32,
    pub seq: u32,
    pub x_stride: u32,
    pub x_head_stride: u32,
    pub x_off: u32,
    pub pos_off: u32,
    pub max_pos: u32,
    pub q_col: u32,
    pub k_col: u32,
    pub v_col: u32,
    pub q_off: u32,
    pub k_off: u32,
    pub v_off: u32,
    pub q_seq_stride: u32,
    pub k_seq_stride: u32,
    pub v_seq_stride: u32,
    pub _pad: u32,
}

/// The fused projection's shape: B sequences of T tokens, H heads of D.
#[derive(Clone, Copy, Debug)]
pub struct QkvShape {
    pub layout: QkvLayout,
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl QkvShape {
    /// Elements of one token's q, k or v (H·D).
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Column of part `which`'s head 0 in a token row, and the columns
    /// between its heads (head_slice's [`Slice::columns`]).
    fn columns(&self, which: u32) -> (usize, usize) {
        Slice {
            layout: self.layout,
            which,
            heads: self.heads,
            head_dim: self.head_dim,
        }
        .columns()
    }
}

/// Where one part goes: element `offset + b·seq_stride + (t·H + h)·D` of
/// `tensor` starts token (b, t), head h.
#[derive(Clone, Copy, Debug)]
pub struct Dest<'a> {
    pub tensor: &'a Tensor,
    pub offset: usize,
    pub seq_stride: usize,
}

impl<'a> Dest<'a> {
    /// A contiguous [B, T, H, D] tensor.
    pub fn contiguous(tensor: &'a Tensor, s: &QkvShape) -> Dest<'a> {
        Dest {
            tensor,
            offset: 0,
            seq_stride: s.seq * s.width(),
        }
    }

    fn check(&self, what: &str, s: &QkvShape) -> Result<()> {
        let t = self.tensor;
        ensure!(t.dtype() == DType::F32, "qkv_heads: {what} must be f32");
        let run = s.seq * s.width();
        ensure!(
            s.batch <= 1 || self.seq_stride >= run,
            "qkv_heads: {what}'s sequences ({} elements apart) overlap ({run} each)",
            self.seq_stride
        );
        let end = self.offset + s.batch.saturating_sub(1) * self.seq_stride + run;
        ensure!(
            s.batch == 0 || end <= t.numel(),
            "qkv_heads: {what} {:?} too small for {} sequences of {run} from element {} ({} apart)",
            t.shape(),
            s.batch,
            self.offset,
            self.seq_stride
        );
        Ok(())
    }

    /// Elements `[lo, hi)` that a chunk's tokens cover (rows of `width`).
    fn span(&self, c: &Chunk, width: usize) -> (usize, usize) {
        let lo = self.offset + c.b0 * self.seq_stride + c.t0 * width;
        (
            lo,
            lo + (c.b1 - c.b0 - 1) * self.seq_stride + (c.t1 - c.t0) * width,
        )
    }
}

/// Tokens `t0..t1` of sequences `b0..b1`: whole sequences (t0 = 0, t1 = T),
/// or part of one sequence when one alone does not fit a binding. Either
/// way its tokens are consecutive rows of qkv and positions.
struct Chunk {
    b0: usize,
    b1: usize,
    t0: usize,
    t1: usize,
}

impl Chunk {
    /// Its first token and its token count (b1 - b0 sequences of t1 - t0).
    fn tokens(&self, seq: usize) -> (usize, usize) {
        (
            self.b0 * seq + self.t0,
            (self.b1 - self.b0) * (self.t1 - self.t0),
        )
    }
}

/// q, k and v of `qkv` as new contiguous [B, T, H, D] tensors, q and k
/// rotated at `positions` when `rope` is given.
pub fn qkv_heads_forward(
    qkv: &Tensor,
    s: &QkvShape,
    positions: &Tensor,
    rope: Option<&RotaryTable>,
) -> Result<[Tensor; 3]> {
    let shape = [s.batch, s.seq, s.heads, s.head_dim];
    let new = || Tensor::empty(qkv.gpu(), &shape, DType::F32);
    let out = [new()?, new()?, new()?];
    let dest = |i: usize| Dest::contiguous(&out[i], s);
    qkv_heads_into(qkv, s, positions, rope, [dest(0), dest(1), dest(2)])?;
    Ok(out)
}

/// [`qkv_heads_forward`] into caller-given destinations (a KV cache).
pub fn qkv_heads_into(
    qkv: &Tensor,
    s: &QkvShape,
    positions: &Tensor,
    rope: Option<&RotaryTable>,
    dests: [Dest; 3],
) -> Result<()> {
    let (tokens, width) = (s.batch * s.seq, s.width());
    ensure!(
        qkv.dtype() == DType::F32 && qkv.numel() == tokens * 3 * width,
        "qkv_heads: {qkv:?} is not a fused QKV of {tokens} tokens x 3·{width}"
    );
    ensure!(
        positions.dtype() == DType::I32 && positions.numel() == tokens,
        "qkv_heads: positions must be i32 with {tokens} entries, got {positions:?}"
    );
    if let Some(t) = rope {
        ensure!(
            t.head_dim == s.head_dim,
            "qkv_heads: head dim {} but the rotary table was built for {}",
            s.head_dim,
            t.head_dim
        );
    }
    for (d, what) in dests.iter().zip(["q", "k", "v"]) {
        d.check(what, s)?;
    }
    if tokens == 0 || width == 0 {
        return Ok(());
    }
    let rot_half = rope.map_or(0, |t| t.rot_dim / 2);
    let cols = [0, 1, 2].map(|w| s.columns(w));
    let x_stride = 3 * width;
    let quads = s.head_dim.is_multiple_of(4)
        && rot_half.is_multiple_of(4)
        && x_stride.is_multiple_of(4)
        && cols.iter().all(|&(c, hs)| c % 4 == 0 && hs % 4 == 0)
        && dests
            .iter()
            .all(|d| d.offset % 4 == 0 && d.seq_stride % 4 == 0);
    let entry = if quads { "qkv_heads4" } else { "qkv_heads" };
    let kernel = Kernel::new("qkv_heads", entry);
    let gpu = qkv.gpu();
    for c in chunks(qkv, s, &dests)? {
        let (first, count) = c.tokens(s.seq);
        let (x_b, x_off) = qkv.bind_elems(1, first * x_stride, (first + count) * x_stride);
        let (pos_b, pos_off) = match rope {
            Some(_) => positions.bind_elems(2, first, first + count),
            // Unread without a rotation (any i32 binding will do).
            None => (Bind { binding: 2, ..x_b }, 0),
        };
        let table_b = rope.map_or(Bind { binding: 3, ..x_b }, |t| t.cos_sin.bind(3));
        let mut binds = vec![x_b, pos_b, table_b];
        let mut offs = [0u32; 3];
        for (i, d) in dests.iter().enumerate() {
            let (lo, hi) = d.span(&c, width);
            let (b, off) = d.tensor.bind_elems(4 + i as u32, lo, hi);
            binds.push(b);
            offs[i] = off;
        }
        // x, the table and the three destinations again as vec4s.
        let vec4s = [(0, 7), (2, 8), (3, 9), (4, 10), (5, 11)].map(|(i, at)| as_vec4(binds[i], at));
        let rows = (count * s.heads) as u32;
        let params = QkvHeadsParams {
            rows,
            heads: s.heads as u32,
            d: s.head_dim as u32,
            rot_half: rot_half as u32,
            seq: (c.t1 - c.t0) as u32,
            x_stride: x_stride as u32,
            x_head_stride: cols[0].1 as u32,
            x_off,
            pos_off,
            max_pos: rope.map_or(1, |t| t.max_positions) as u32,
            q_col: cols[0].0 as u32,
            k_col: cols[1].0 as u32,
            v_col: cols[2].0 as u32,
            q_off: offs[0],
            k_off: offs[1],
            v_off: offs[2],
            q_seq_stride: dests[0].seq_stride as u32,
            k_seq_stride: dests[1].seq_stride as u32,
            v_seq_stride: dests[2].seq_stride as u32,
            _pad: 0,
        };
        binds.extend(vec4s);
        gpu.dispatch(&kernel, &params, &binds, groups_1d(gpu, rows.div_ceil(64)))?;
    }
    Ok(())
}

/// Chunks whose qkv rows and destination spans each fit one storage binding
/// (with room for the binding's alignment): as many whole sequences as fit,
/// else one sequence's tokens a binding at a time.
fn chunks(qkv: &Tensor, s: &QkvShape, dests: &[Dest; 3]) -> Result<Vec<Chunk>> {
    let gpu = qkv.gpu();
    let align = (gpu.binding_alignment() / 4).max(1) as usize;
    let usable = ((gpu.max_binding() / 4) as usize).saturating_sub(align);
    let x_stride = 3 * s.width();
    let per_seq = dests
        .iter()
        .map(|d| d.seq_stride)
        .chain([s.seq * x_stride])
        .max()
        .unwrap_or(1)
        .max(1);
    let whole = usable / per_seq;
    if whole >= 1 {
        return Ok((0..s.batch)
            .step_by(whole)
            .map(|b0| Chunk {
                b0,
                b1: (b0 + whole).min(s.batch),
                t0: 0,
                t1: s.seq,
            })
            .collect());
    }
    let step = usable / x_stride.max(1);
    ensure!(
        step >= 1,
        "qkv_heads: one token ({x_stride} elements) does not fit one storage binding of {} bytes",
        gpu.max_binding()
    );
    Ok((0..s.batch)
        .flat_map(|b| {
            (0..s.seq).step_by(step).map(move |t0| Chunk {
                b0: b,
                b1: b + 1,
                t0,
                t1: (t0 + step).min(s.seq),
            })
        })
        .collect())
}
