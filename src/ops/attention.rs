//! attention: scaled dot-product self-attention, causal with a KV-cache
//! offset, an optional key-padding mask, flash-style (never stores T×T).
//!
//! Shapes: `q` [B, Tq, H, D] (i.e. [B, T, C] with C = H·D, heads contiguous
//! inside a token); `k`, `v` [B, Tcap, Hkv, D], of which the first Tk =
//! `kv_len` (default Tcap) positions are valid (a KV cache); output
//! [B, Tq, H, D]. Grouped-query attention (Llama's `num_key_value_heads`):
//! Hkv divides H and query head h reads KV head h / (H / Hkv); the KV heads
//! are shared, never copied, so a cache holds only Hkv heads, and dK/dV of a
//! KV head sum over the H / Hkv query heads of its group (Hkv = H is plain
//! multi-head attention, Hkv = 1 multi-query). Query i (0-based in Tq) may attend key j iff j < Tk and,
//! when causal, j ≤ i + (Tk − Tq): Tq == Tk is training, Tq = 1 decoding.
//! The optional mask is i32 [B, Tm], Tm ≥ Tk (1 = real token, 0 = pad):
//! masked keys get zero weight, and a query that sees no real key (a
//! left-pad query) outputs exact zeros and gets zero gradient.
//!
//! Forward saves q, k, v, out and the per-row logsumexp [B, H, Tq] (natural
//! log of Σ exp(scale·q·k); 0 for a row with no key). Backward recomputes the
//! probabilities from them (FlashAttention-2) in three race-free passes: a
//! per-row pre-pass D_i = rowsum(dO_i ∘ O_i), dQ per query row, dK/dV per key
//! row. D must be a multiple of 4 and at most 128 (the naive path takes any D);
//! the flash pipelines are specialised on D/4 (override `D4`) so that the
//! per-row arrays unroll into registers: one set of pipelines per head dim.
//!
//! Variants: `attention_cpu_subgroup.wgsl` (one invocation per row, K/V rows
//! shared through subgroup broadcasts: llvmpipe over Vulkan; its dK/dV pass,
//! sharing Q/dO rows the same way, is `attention_cpu_subgroup_bwd.wgsl`),
//! `attention_cpu.wgsl` (the same without subgroups: llvmpipe over GL) and
//! `attention.wgsl` (K/V tiles in shared memory: GPUs), picked by
//! [`AttnVariant::Auto`]. `attention_naive.wgsl` is the unfused baseline
//! (host side in `attention/naive.rs`, re-exported here).

use anyhow::{ensure, Result};
use std::sync::Arc;

mod naive;
pub use naive::{attention_naive_forward, attention_naive_forward_into};

use crate::device::Gpu;
use crate::kernel::{groups_1d, Bind, Kernel};
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Mirrors `AttnParams` in `shaders/common/attention_params.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttnParams {
    pub batch: u32,
    pub tq: u32,
    pub tk: u32,
    pub heads: u32,
    pub d: u32,
    pub kv_stride: u32,
    pub mask_stride: u32,
    /// bit 0: causal; bit 1: a key mask is bound.
    pub flags: u32,
    pub scale: f32,
    pub scale_log2: f32,
    /// KV heads (divides `heads`).
    pub kv_heads: u32,
    pub _pad1: u32,
}

/// Which flash kernel file runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttnVariant {
    /// `CpuSubgroup` on CPU adapters (`Cpu` where they lack subgroups),
    /// `Tiled` elsewhere.
    #[default]
    Auto,
    /// One invocation per row, no shared memory (`attention_cpu.wgsl`).
    Cpu,
    /// `Cpu`'s rows, each K/V (Q/dO) row loaded once per workgroup and
    /// shared by subgroup broadcasts (`attention_cpu_subgroup.wgsl`; `Cpu`
    /// without subgroups of at least 8 lanes).
    CpuSubgroup,
    /// Shared-memory K/V (Q/dO) tiles per workgroup (`attention.wgsl`).
    Tiled,
}

#[derive(Clone, Copy, Debug)]
pub struct AttnOptions {
    /// Query i sees keys j ≤ i + (Tk − Tq); off: every valid key.
    pub causal: bool,
    /// Score scale; `None` is 1/sqrt(D).
    pub scale: Option<f32>,
    /// Valid cache positions Tk ≤ Tcap (k.shape()[1]); `None` is Tcap.
    pub kv_len: Option<usize>,
    pub variant: AttnVariant,
}

impl Default for AttnOptions {
    fn default() -> Self {
        AttnOptions {
            causal: true,
            scale: None,
            kv_len: None,
            variant: AttnVariant::Auto,
        }
    }
}

const WG: u32 = 64;

fn dims4(what: &str, t: &Tensor) -> Result<[usize; 4]> {
    ensure!(
        t.shape().len() == 4 && t.dtype() == DType::F32,
        "attention: {what} must be f32 [B, T, H, D], got {t:?}"
    );
    Ok([t.shape()[0], t.shape()[1], t.shape()[2], t.shape()[3]])
}

/// The operands every attention pass reads (and binds at 1..=4): q
/// [B, Tq, H, D], k and v [B, Tk, Hkv, D] and the optional key mask.
#[derive(Clone, Copy, Debug)]
pub struct AttnInputs<'a> {
    pub q: &'a Tensor,
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    pub mask: Option<&'a Tensor>,
}

impl<'a> AttnInputs<'a> {
    pub fn new(
        q: &'a Tensor,
        k: &'a Tensor,
        v: &'a Tensor,
        mask: Option<&'a Tensor>,
    ) -> AttnInputs<'a> {
        AttnInputs { q, k, v, mask }
    }

    /// q, k, v and the mask at bindings 1..=4 (q stands in for a missing
    /// mask: the kernel skips it).
    fn binds(&self) -> [Bind<'a>; 4] {
        let mask = self.mask.unwrap_or(self.q);
        [self.q.bind(1), self.k.bind(2), self.v.bind(3), mask.bind(4)]
    }
}

/// Validates shapes and builds the kernel params.
fn params(x: AttnInputs, opts: &AttnOptions, flash: bool) -> Result<AttnParams> {
    let AttnInputs { q, k, v, mask } = x;
    let [b, tq, h, d] = dims4("q", q)?;
    let [bk, tcap, hk, dk] = dims4("k", k)?;
    ensure!(
        v.shape() == k.shape() && v.dtype() == DType::F32,
        "attention: v {v:?} vs k {k:?}"
    );
    ensure!(bk == b && dk == d, "attention: q {q:?} vs k {k:?}");
    ensure!(
        hk >= 1 && h % hk == 0,
        "attention: {hk} KV heads (k {k:?}) must divide the {h} query heads (q {q:?})"
    );
    ensure!(
        b > 0 && tq > 0 && h > 0 && d > 0,
        "attention: empty q {q:?}"
    );
    let tk = opts.kv_len.unwrap_or(tcap);
    ensure!(
        tk >= 1 && tk <= tcap,
        "attention: kv_len {tk} outside 1..={tcap}"
    );
    ensure!(
        !opts.causal || tq <= tk,
        "attention: causal needs Tq ({tq}) <= Tk ({tk})"
    );
    if flash {
        ensure!(
            d % 4 == 0 && d <= 128,
            "attention: head dim {d} must be a multiple of 4 and at most 128"
        );
    }
    let mut mask_stride = 0;
    if let Some(m) = mask {
        ensure!(
            m.dtype() == DType::I32 && m.shape().len() == 2 && m.shape()[0] == b,
            "attention: mask must be i32 [B, >= Tk], got {m:?}"
        );
        mask_stride = m.shape()[1];
        ensure!(
            mask_stride >= tk,
            "attention: mask {m:?} shorter than Tk = {tk}"
        );
    }
    let gpu = q.gpu();
    for t in [q, k, v] {
        ensure!(
            t.bytes() <= gpu.max_binding(),
            "attention: {t:?} exceeds one storage binding"
        );
    }
    let scale = opts.scale.unwrap_or(1.0 / (d as f32).sqrt());
    let u = |x: usize| u32::try_from(x).map_err(|_| anyhow::anyhow!("attention: {x} too large"));
    Ok(AttnParams {
        batch: u(b)?,
        tq: u(tq)?,
        tk: u(tk)?,
        heads: u(h)?,
        d: u(d)?,
        kv_stride: u(tcap)?,
        mask_stride: u(mask_stride)?,
        flags: opts.causal as u32 | (mask.is_some() as u32) << 1,
        scale,
        scale_log2: scale * std::f32::consts::LOG2_E,
        kv_heads: u(hk)?,
        _pad1: 0,
    })
}

fn stem(gpu: &Gpu, variant: AttnVariant) -> &'static str {
    match variant {
        AttnVariant::Cpu => "attention_cpu",
        AttnVariant::Tiled => "attention",
        // One workgroup of 8 rows must be one subgroup (GL has none).
        AttnVariant::CpuSubgroup if gpu.subgroup_min_size() < 8 => "attention_cpu",
        AttnVariant::CpuSubgroup => "attention_cpu_subgroup",
        AttnVariant::Auto if gpu.is_cpu() => stem(gpu, AttnVariant::CpuSubgroup),
        AttnVariant::Auto => "attention",
    }
}

/// Workgroups for `rows` rows per (b, head) of `heads` heads: each workgroup
/// holds consecutive rows of one (b, head), 8 (`CW`) in the CPU variant and
/// 64 in the tiled one.
fn row_groups(gpu: &Gpu, stem: &str, p: &AttnParams, rows: u32, heads: u32) -> [u32; 3] {
    let rows_per_group = if stem.starts_with("attention_cpu") {
        8
    } else {
        WG
    };
    groups_1d(gpu, p.batch * heads * rows.div_ceil(rows_per_group))
}

fn empty(gpu: &Arc<Gpu>, shape: &[usize]) -> Result<Tensor> {
    Tensor::empty(gpu, shape, DType::F32)
}

/// Forward: returns (out [B, Tq, H, D], lse [B, H, Tq]).
pub fn attention_forward(x: AttnInputs, opts: &AttnOptions) -> Result<(Tensor, Tensor)> {
    let q = x.q;
    let out = empty(q.gpu(), q.shape())?;
    let lse = empty(q.gpu(), &[q.shape()[0], q.shape()[2], q.shape()[1]])?;
    attention_forward_into(x, opts, &out, &lse)?;
    Ok((out, lse))
}

/// [`attention_forward`] into caller-allocated `out` and `lse`.
pub fn attention_forward_into(
    x: AttnInputs,
    opts: &AttnOptions,
    out: &Tensor,
    lse: &Tensor,
) -> Result<()> {
    let p = params(x, opts, true)?;
    let q = x.q;
    ensure!(
        out.shape() == q.shape() && lse.numel() == (p.batch * p.heads * p.tq) as usize,
        "attention_forward: out {out:?} / lse {lse:?} for q {q:?}"
    );
    let extra = [out.bind(5), lse.bind(6)];
    flash_pass(x, opts, &p, "attention_forward", &extra, (p.tq, p.heads))
}

/// One pass of the flash kernels: `entry` of the variant's shader
/// (specialised on D/4) over `rows` rows of `heads` heads, binding q, k, v,
/// the mask and `extra`.
fn flash_pass(
    x: AttnInputs,
    opts: &AttnOptions,
    p: &AttnParams,
    entry: &'static str,
    extra: &[Bind],
    (rows, heads): (u32, u32),
) -> Result<()> {
    let gpu = x.q.gpu();
    let mut stem = stem(gpu, opts.variant);
    if stem == "attention_cpu_subgroup" && entry == "attention_backward_dkv" {
        // The variant's dK/dV pass has a file of its own.
        stem = "attention_cpu_subgroup_bwd";
    }
    let mut binds = x.binds().to_vec();
    binds.extend_from_slice(extra);
    let d4 = [("D4", (p.d / 4) as f64)];
    // Decoding: one query row per lane across (b, h) rather than 8 lanes on
    // one row. It reproduces attention_cpu's numbers exactly, and the
    // subgroup variant's up to D = 32 (one vec4 chunk per lane; past that
    // the subgroup kernel sums each score's chunks in another order), so it
    // replaces only those; tests compare it with both.
    let same_numbers = stem == "attention_cpu" || (stem == "attention_cpu_subgroup" && p.d <= 32);
    let auto = opts.variant == AttnVariant::Auto;
    if auto && same_numbers && entry == "attention_forward" && p.tq == 1 {
        let groups = groups_1d(gpu, (p.batch * heads).div_ceil(8));
        let kernel = Kernel::new("attention_cpu", "attention_forward_rows").with(&d4);
        return gpu.dispatch(&kernel, p, &binds, groups);
    }
    let groups = row_groups(gpu, stem, p, rows, heads);
    gpu.dispatch(&Kernel::new(stem, entry).with(&d4), p, &binds, groups)
}

/// Backward from the saved forward (`out`, `lse`): returns (dq, dk, dv)
/// shaped like q, k, v. Cache rows at or past `kv_len` and padded keys get
/// zero gradient.
pub fn attention_backward(
    x: AttnInputs,
    (out, lse): (&Tensor, &Tensor),
    dout: &Tensor,
    opts: &AttnOptions,
) -> Result<(Tensor, Tensor, Tensor)> {
    let gpu = x.q.gpu();
    let dq = empty(gpu, x.q.shape())?;
    let dk = empty(gpu, x.k.shape())?;
    let dv = empty(gpu, x.v.shape())?;
    attention_backward_into(x, (out, lse), dout, opts, [&dq, &dk, &dv])?;
    Ok((dq, dk, dv))
}

/// [`attention_backward`] into caller-allocated `[dq, dk, dv]`.
pub fn attention_backward_into(
    x: AttnInputs,
    (out, lse): (&Tensor, &Tensor),
    dout: &Tensor,
    opts: &AttnOptions,
    [dq, dk, dv]: [&Tensor; 3],
) -> Result<()> {
    let p = params(x, opts, true)?;
    let AttnInputs { q, k, .. } = x;
    ensure!(
        out.shape() == q.shape() && dout.shape() == q.shape() && dq.shape() == q.shape(),
        "attention_backward: out {out:?} / dout {dout:?} / dq {dq:?} vs q {q:?}"
    );
    ensure!(
        dk.shape() == k.shape() && dv.shape() == k.shape(),
        "attention_backward: dk {dk:?} / dv {dv:?} vs k {k:?}"
    );
    let rows = (p.batch * p.heads * p.tq) as usize;
    ensure!(lse.numel() == rows, "attention_backward: lse {lse:?}");
    let gpu = q.gpu();
    let stem = stem(gpu, opts.variant);
    let d4 = [("D4", (p.d / 4) as f64)];
    let stats = empty(gpu, &[rows, 2])?;
    gpu.dispatch(
        &Kernel::new(stem, "attention_backward_prep").with(&d4),
        &p,
        &[out.bind(12), lse.bind(6), dout.bind(7), stats.bind(8)],
        groups_1d(gpu, (rows as u32).div_ceil(WG)),
    )?;
    let common = [dout.bind(7), stats.bind(8)];
    let dq_binds = [&common[..], &[dq.bind(9)]].concat();
    flash_pass(
        x,
        opts,
        &p,
        "attention_backward_dq",
        &dq_binds,
        (p.tq, p.heads),
    )?;
    let dkv_binds = [&common[..], &[dk.bind(10), dv.bind(11)]].concat();
    let kv_rows = (p.kv_stride, p.kv_heads);
    flash_pass(x, opts, &p, "attention_backward_dkv", &dkv_binds, kv_rows)
}

/// Differentiable attention on the tape (gradients for q, k and v; the mask
/// is data). Output [B, Tq, H, D].
pub fn attention(
    tape: &Tape,
    q: &Var,
    k: &Var,
    v: &Var,
    mask: Option<&Tensor>,
    opts: &AttnOptions,
) -> Result<Var> {
    let x = AttnInputs::new(q.tensor(), k.tensor(), v.tensor(), mask);
    let (out, lse) = attention_forward(x, opts)?;
    let (tq, tk, tv) = (q.tensor().clone(), k.tensor().clone(), v.tensor().clone());
    let (saved_out, mask, opts) = (out.clone(), mask.cloned(), *opts);
    Ok(tape.record("attention", &[q, k, v], out, move |dy, needs| {
        let x = AttnInputs::new(&tq, &tk, &tv, mask.as_ref());
        let (dq, dk, dv) = attention_backward(x, (&saved_out, &lse), dy, &opts)?;
        Ok(vec![
            Some(dq).filter(|_| needs[0]),
            Some(dk).filter(|_| needs[1]),
            Some(dv).filter(|_| needs[2]),
        ])
    }))
}
