//! swiglu: the elementwise part of Llama's MLP (`LlamaMLP`, `hidden_act =
//! "silu"`): `h = silu(g) · u` with `silu(g) = g · σ(g)`, where g = gate_proj(x)
//! and u = up_proj(x), fused into one kernel. Forward saves only its inputs
//! g and u; backward gives `dg = dh · u · σ(g)(1 + g(1 - σ(g)))` and
//! `du = dh · silu(g)` in one pass.
//!
//! g and u are two tensors of equal size rather than halves of one [.., 2I]
//! tensor: Llama checkpoints store gate_proj and up_proj as separate weights
//! (and PEFT adapts them separately), so the two projections come out as two
//! tensors and nothing has to be concatenated or split around the kernel.
//!
//! Kernels: `shaders/swiglu.wgsl` (`swiglu_forward`, `swiglu_backward`);
//! σ from exp(-|g|), so no input overflows. Tensors larger than one storage
//! binding are processed in [`elem_chunks`].

use anyhow::{ensure, Result};

use crate::kernel::Kernel;
use crate::ops::dispatch_elem_chunks;
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Mirrors `SwigluParams` in `shaders/swiglu.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SwigluParams {
    /// Elements in this chunk.
    pub n: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

const WG: u32 = 256;

fn check(what: &str, t: &Tensor, g: &Tensor) -> Result<()> {
    ensure!(
        t.dtype() == DType::F32 && t.numel() == g.numel(),
        "swiglu: {what} {:?} for g {:?} (f32, same element count)",
        t,
        g
    );
    Ok(())
}

/// Runs `entry` over g, u (and dh); `outs` are h, or (dg, du).
fn run(
    entry: &'static str,
    g: &Tensor,
    u: &Tensor,
    dh: Option<&Tensor>,
    outs: &[&Tensor],
) -> Result<()> {
    check("g", g, g)?;
    check("u", u, g)?;
    let ins: Vec<&Tensor> = [g, u].into_iter().chain(dh).collect();
    for (k, out) in outs.iter().enumerate() {
        check(if k == 0 { "output" } else { "du" }, out, g)?;
        ensure!(
            ins.iter().chain(&outs[..k]).all(|t| !out.same_storage(t)),
            "{entry}: an output must not alias an input or another output"
        );
    }
    if let Some(dh) = dh {
        check("dh", dh, g)?;
    }
    let kernel = Kernel::new("swiglu", entry);
    dispatch_elem_chunks(g.gpu(), &kernel, g.numel(), WG, |lo, hi| {
        let params = SwigluParams {
            n: (hi - lo) as u32,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        };
        let mut binds = vec![g.bind_elems(1, lo, hi).0, u.bind_elems(2, lo, hi).0];
        if let Some(dh) = dh {
            binds.push(dh.bind_elems(3, lo, hi).0);
        }
        for (k, out) in outs.iter().enumerate() {
            binds.push(out.bind_elems(4 + k as u32, lo, hi).0);
        }
        (params, binds)
    })
}

/// `h = silu(g) · u`, a new tensor of g's shape.
pub fn swiglu_forward(g: &Tensor, u: &Tensor) -> Result<Tensor> {
    let h = Tensor::empty(g.gpu(), g.shape(), DType::F32)?;
    swiglu_forward_into(g, u, &h)?;
    Ok(h)
}

/// `h = silu(g) · u` into an existing f32 tensor with g's element count.
pub fn swiglu_forward_into(g: &Tensor, u: &Tensor, h: &Tensor) -> Result<()> {
    run("swiglu_forward", g, u, None, &[h])
}

/// `(dg, du)`, new tensors of g's shape.
pub fn swiglu_backward(dh: &Tensor, g: &Tensor, u: &Tensor) -> Result<(Tensor, Tensor)> {
    let dg = Tensor::empty(g.gpu(), g.shape(), DType::F32)?;
    let du = Tensor::empty(g.gpu(), g.shape(), DType::F32)?;
    swiglu_backward_into(dh, g, u, &dg, &du)?;
    Ok((dg, du))
}

/// `(dg, du)` into existing f32 tensors with g's element count.
pub fn swiglu_backward_into(
    dh: &Tensor,
    g: &Tensor,
    u: &Tensor,
    dg: &Tensor,
    du: &Tensor,
) -> Result<()> {
    run("swiglu_backward", g, u, Some(dh), &[dg, du])
}

/// Records `silu(g) · u` on the tape; the backward keeps references to g and u.
pub fn swiglu(tape: &Tape, g: &Var, u: &Var) -> Result<Var> {
    ensure!(
        g.shape() == u.shape(),
        "swiglu: gate {:?} and up {:?} differ in shape",
        g.shape(),
        u.shape()
    );
    let h = swiglu_forward(g.tensor(), u.tensor())?;
    let (gs, us) = (g.tensor().clone(), u.tensor().clone());
    Ok(tape.record("swiglu", &[g, u], h, move |dh, needs| {
        let (dg, du) = swiglu_backward(dh, &gs, &us)?;
        Ok(vec![
            Some(dg).filter(|_| needs[0]),
            Some(du).filter(|_| needs[1]),
        ])
    }))
}
