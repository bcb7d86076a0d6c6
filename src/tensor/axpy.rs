//! axpy: `y += alpha * x`, in place, for f32 tensors of equal element count.
//!
//! Inference-only (not differentiable): it takes plain [`Tensor`]s and cannot
//! join the tape. The tape uses it to accumulate gradients, which is why it
//! lives in the tensor layer (below the tape) rather than in `ops/`: the tape
//! must not import the ops that are built on it. Shader: `shaders/axpy.wgsl`.

use anyhow::{ensure, Result};

use crate::kernel::{as_vec4, elem_chunks, groups_1d, Kernel};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AxpyParams {
    pub n: u32,
    pub alpha: f32,
    pub _pad: [u32; 2],
}

pub fn axpy(y: &Tensor, alpha: f32, x: &Tensor) -> Result<()> {
    run(y, alpha, x, None)
}

/// `y + alpha * x` as a new tensor shaped like `y`, which is left as it was:
/// the bits [`axpy`] would leave in `y`, without copying it first.
pub fn axpy_into_new(y: &Tensor, alpha: f32, x: &Tensor) -> Result<Tensor> {
    let out = Tensor::empty(y.gpu(), y.shape(), DType::F32)?;
    run(y, alpha, x, Some(&out))?;
    Ok(out)
}

/// In place, or into `out` (same element count) when given.
fn run(y: &Tensor, alpha: f32, x: &Tensor, out: Option<&Tensor>) -> Result<()> {
    ensure!(x.numel() == y.numel(), "axpy: {:?} into {:?}", x, y);
    ensure!(
        x.dtype() == DType::F32 && y.dtype() == DType::F32,
        "axpy needs f32 tensors"
    );
    let gpu = y.gpu();
    for (lo, hi) in elem_chunks(gpu, y.numel()) {
        let n = (hi - lo) as u32;
        let params = AxpyParams {
            n,
            alpha,
            _pad: [0; 2],
        };
        // Chunks start binding-aligned: a multiple of 4 elements runs axpy4.
        let xb = x.bind_elems(1, lo, hi).0;
        let binds = match out {
            None => {
                let yb = y.bind_elems(2, lo, hi).0;
                vec![xb, yb, as_vec4(xb, 3), as_vec4(yb, 4)]
            }
            Some(o) => {
                let (yb, ob) = (y.bind_elems(5, lo, hi).0, o.bind_elems(6, lo, hi).0);
                vec![xb, yb, ob, as_vec4(xb, 3), as_vec4(yb, 7), as_vec4(ob, 8)]
            }
        };
        let (entry, per) = match (n.is_multiple_of(4), out.is_some()) {
            (true, false) => ("axpy4", 4),
            (false, false) => ("axpy", 1),
            (true, true) => ("axpy4_into", 4),
            (false, true) => ("axpy_into", 1),
        };
        gpu.dispatch(
            &Kernel::new("axpy", entry),
            &params,
            &binds,
            groups_1d(gpu, (n / per).div_ceil(256)),
        )?;
    }
    Ok(())
}
