//! grad_clip: the global L2 norm over a list of f32 gradients and in-place
//! clipping to `max_norm`, like `torch.nn.utils.clip_grad_norm_`, with no host
//! round trip: partial sums of squares per workgroup, one final workgroup that
//! writes the norm and the scale `min(1, max_norm / (norm + 1e-6))`, then a
//! scaling pass that reads the scale on the GPU.
//!
//! The norm comes back as a `[1]` tensor; read it (`item()`) for logging or
//! to skip a step when it is NaN/Inf. Unlike torch, a non-finite norm leaves
//! the gradients unscaled (scale 1) instead of filling them with NaN.
//! Non-differentiable: plain [`Tensor`]s only. Tensors larger than one
//! storage binding are processed in chunks.

use anyhow::{ensure, Result};
use std::sync::Arc;

use crate::device::Gpu;
use crate::kernel::{elem_chunks, groups_1d, Kernel};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ClipParams {
    pub n: u32,
    pub y_off: u32,
    pub max_norm: f32,
    pub _pad: u32,
}

const WG: usize = 64;

/// The global L2 norm of `grads` ([1]) and the clipping scale for
/// `max_norm` ([1]: `min(1, max_norm / (norm + 1e-6))`, 1 when the norm is
/// not finite), both on the GPU; nothing is modified (`max_norm` must be
/// positive; infinity never clips). The optimizer reads the norm and hands
/// the scale to `adamw_step_scaled`.
pub fn norm_and_scale(
    gpu: &Arc<Gpu>,
    grads: &[&Tensor],
    max_norm: f32,
) -> Result<(Tensor, Tensor)> {
    ensure!(
        max_norm > 0.0,
        "grad_clip: max_norm must be positive, got {max_norm}"
    );
    let mut launches = Vec::new();
    for g in grads {
        ensure!(
            g.dtype() == DType::F32,
            "grad_clip needs f32 gradients, got {g:?}"
        );
        ensure!(
            Arc::ptr_eq(g.gpu(), gpu),
            "grad_clip: gradients on different devices"
        );
        for (lo, hi) in elem_chunks(gpu, g.numel()) {
            if hi > lo {
                launches.push((*g, lo, hi, (hi - lo).div_ceil(WG * 8).clamp(1, WG)));
            }
        }
    }
    let total: usize = launches.iter().map(|l| l.3).sum();
    let partials = Tensor::empty(gpu, &[total.max(1)], DType::F32)?;
    if total == 0 {
        partials.zero();
    }
    let mut slot = 0;
    for (g, lo, hi, groups) in launches {
        let p = ClipParams {
            n: (hi - lo) as u32,
            y_off: slot as u32,
            ..Default::default()
        };
        let binds = [g.bind_elems(1, lo, hi).0, partials.bind(2)];
        let k = Kernel::new("grad_clip", "grad_clip_partials");
        gpu.dispatch(&k, &p, &binds, [groups as u32, 1, 1])?;
        slot += groups;
    }
    let norm = Tensor::empty(gpu, &[1], DType::F32)?;
    let scale = Tensor::empty(gpu, &[1], DType::F32)?;
    let p = ClipParams {
        n: total as u32,
        max_norm,
        ..Default::default()
    };
    let binds = [partials.bind(1), norm.bind(3), scale.bind(4)];
    gpu.dispatch(
        &Kernel::new("grad_clip", "grad_clip_norm"),
        &p,
        &binds,
        [1, 1, 1],
    )?;
    Ok((norm, scale))
}

/// The global L2 norm of all `grads` as a `[1]` tensor (nothing is modified).
pub fn grad_norm(gpu: &Arc<Gpu>, grads: &[&Tensor]) -> Result<Tensor> {
    Ok(norm_and_scale(gpu, grads, f32::INFINITY)?.0)
}

/// Scales every gradient in place by `min(1, max_norm / (norm + 1e-6))` and
/// returns the pre-clipping global norm (`[1]`, on the GPU).
pub fn clip_grad_norm(gpu: &Arc<Gpu>, grads: &[&Tensor], max_norm: f32) -> Result<Tensor> {
    let (norm, scale) = norm_and_scale(gpu, grads, max_norm)?;
    for g in grads {
        for (lo, hi) in elem_chunks(gpu, g.numel()) {
            let p = ClipParams {
                n: (hi - lo) as u32,
                ..Default::default()
            };
            let binds = [scale.bind(5), g.bind_elems(6, lo, hi).0];
            let k = Kernel::new("grad_clip", "grad_clip_apply");
            gpu.dispatch(&k, &p, &binds, groups_1d(gpu, p.n.div_ceil(256)))?;
        }
    }
    Ok(norm)
}
