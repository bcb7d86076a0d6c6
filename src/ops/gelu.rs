//! gelu: `y = gelu(x)` elementwise over f32 tensors of any shape, in the two
//! forms the supported models use ([`GeluKind`]). Forward saves only its input
//! `x`; backward is `dx = dy · gelu'(x)`.
//!
//! Kernels: `shaders/gelu.wgsl` (`gelu_forward`, `gelu_backward`), with the
//! normal CDF for the exact form in `shaders/common/normal.wgsl`. Tensors larger
//! than one storage binding are processed in [`elem_chunks`].

use anyhow::{ensure, Result};

use crate::kernel::{as_vec4, Kernel};
use crate::ops::dispatch_elem_chunks;
use crate::tape::{Tape, Var};
use crate::tensor::{DType, Tensor};

/// Which GELU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GeluKind {
    /// GPT-2's `gelu_new`: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    Tanh,
    /// The exact form (Pythia/GPT-NeoX `gelu`): `0.5·x·(1 + erf(x/√2))`.
    Erf,
}

impl GeluKind {
    /// The kind for a Hugging Face `activation_function` / `hidden_act` name.
    pub fn from_hf_name(name: &str) -> Result<GeluKind> {
        Ok(match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => GeluKind::Tanh,
            "gelu" => GeluKind::Erf,
            other => anyhow::bail!("unsupported activation `{other}` (gelu_new or gelu)"),
        })
    }

    /// The shader's `KIND` override.
    fn code(self) -> f64 {
        match self {
            GeluKind::Tanh => 0.0,
            GeluKind::Erf => 1.0,
        }
    }
}

/// Mirrors `GeluParams` in `shaders/gelu.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GeluParams {
    /// Elements in this chunk.
    pub n: u32,
    pub _pad: [u32; 3],
}

const WG: u32 = 256;

fn run(
    entry: &'static str,
    x: &Tensor,
    dy: Option<&Tensor>,
    out: &Tensor,
    kind: GeluKind,
) -> Result<()> {
    ensure!(x.dtype() == DType::F32, "gelu needs f32, got {:?}", x);
    ensure!(
        out.dtype() == DType::F32 && out.numel() == x.numel(),
        "{entry}: output {:?} for x {:?}",
        out,
        x
    );
    ensure!(
        !out.same_storage(x) && !dy.is_some_and(|d| out.same_storage(d)),
        "{entry}: the output must not alias an input"
    );
    if let Some(dy) = dy {
        ensure!(
            dy.dtype() == DType::F32 && dy.numel() == x.numel(),
            "gelu_backward: dy {:?} for x {:?}",
            dy,
            x
        );
    }
    // Chunks start at binding-aligned elements; a multiple of 4 elements in
    // all runs the vec4 entry (4 elements per invocation).
    let vec4 = x.numel().is_multiple_of(4);
    let (entry, per) = match (vec4, dy.is_some()) {
        (false, _) => (entry, 1),
        (true, false) => ("gelu_forward4", 4),
        (true, true) => ("gelu_backward4", 4),
    };
    let kind = [("KIND", kind.code())];
    let kernel = Kernel::new("gelu", entry).with(&kind);
    dispatch_elem_chunks(x.gpu(), &kernel, x.numel(), WG * per, |lo, hi| {
        let params = GeluParams {
            n: (hi - lo) as u32,
            _pad: [0; 3],
        };
        let (xb, ob) = (x.bind_elems(1, lo, hi).0, out.bind_elems(3, lo, hi).0);
        let mut binds = vec![xb, ob, as_vec4(xb, 4), as_vec4(ob, 6)];
        if let Some(dy) = dy {
            let db = dy.bind_elems(2, lo, hi).0;
            binds.extend([db, as_vec4(db, 5)]);
        }
        (params, binds)
    })
}

/// `y = gelu(x)`, a new tensor of x's shape.
pub fn gelu_forward(x: &Tensor, kind: GeluKind) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    gelu_forward_into(x, &y, kind)?;
    Ok(y)
}

/// `y = gelu(x)` into an existing f32 tensor with x's element count.
pub fn gelu_forward_into(x: &Tensor, y: &Tensor, kind: GeluKind) -> Result<()> {
    run("gelu_forward", x, None, y, kind)
}

/// `dx = dy · gelu'(x)`, a new tensor of x's shape.
pub fn gelu_backward(dy: &Tensor, x: &Tensor, kind: GeluKind) -> Result<Tensor> {
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    gelu_backward_into(dy, x, &dx, kind)?;
    Ok(dx)
}

/// `dx = dy · gelu'(x)` into an existing f32 tensor with x's element count.
pub fn gelu_backward_into(dy: &Tensor, x: &Tensor, dx: &Tensor, kind: GeluKind) -> Result<()> {
    run("gelu_backward", x, Some(dy), dx, kind)
}

/// Records `gelu(x)` on the tape; the backward keeps a reference to `x`.
pub fn gelu(tape: &Tape, x: &Var, kind: GeluKind) -> Result<Var> {
    let y = gelu_forward(x.tensor(), kind)?;
    let saved = x.tensor().clone();
    Ok(tape.record("gelu", &[x], y, move |dy, _needs| {
        Ok(vec![Some(gelu_backward(dy, &saved, kind)?)])
    }))
}
