//! adamw: one in-place AdamW step on f32 `param`, `m`, `v` buffers given a
//! gradient, with PyTorch's `torch.optim.AdamW` semantics (decoupled weight
//! decay, bias correction from the 1-based step `t`).
//!
//! Shapes: all four tensors hold the same N elements. Non-differentiable: it
//! takes plain [`Tensor`]s and saves nothing. Tensors larger than one storage
//! binding are updated chunk by chunk.

use anyhow::{ensure, Result};

use crate::kernel::Kernel;
use crate::ops::dispatch_elem_chunks;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamwParams {
    pub n: u32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub decay: f32,
    pub step_size: f32,
    pub bc2_sqrt: f32,
    pub _pad: u32,
}

/// Hyper-parameters (torch's defaults via `Default`, except `lr`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamwConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamwConfig {
    fn default() -> Self {
        AdamwConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

impl AdamwConfig {
    /// The kernel's constants for step `t` (1-based), folded in f64.
    pub fn params(&self, t: u32) -> AdamwParams {
        let (lr, b1, b2) = (self.lr as f64, self.beta1 as f64, self.beta2 as f64);
        let bc1 = 1.0 - b1.powi(t as i32);
        let bc2 = 1.0 - b2.powi(t as i32);
        AdamwParams {
            n: 0,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            decay: (1.0 - lr * self.weight_decay as f64) as f32,
            step_size: (lr / bc1) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            _pad: 0,
        }
    }
}

/// Updates `param`, `m` and `v` in place for step `t` (1 on the first step).
pub fn adamw_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    cfg: &AdamwConfig,
    t: u32,
) -> Result<()> {
    adamw_step_scaled(param, grad, m, v, cfg, t, None)
}

/// [`adamw_step`] on `grad · scale[0]` when `scale` ([1], e.g. the clipping
/// scale of [`crate::ops::grad_clip::norm_and_scale`]) is given: the same
/// numbers as scaling the gradient in place first, one pass fewer, and the
/// gradient is left as it was.
pub fn adamw_step_scaled(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    cfg: &AdamwConfig,
    t: u32,
    scale: Option<&Tensor>,
) -> Result<()> {
    ensure!(t >= 1, "adamw: step t is 1-based, got {t}");
    let n = param.numel();
    for x in [param, grad, m, v] {
        ensure!(
            x.dtype() == DType::F32 && x.numel() == n,
            "adamw: {x:?} vs param {param:?} (all f32, same size)"
        );
    }
    ensure!(
        !grad.same_storage(param) && !m.same_storage(v) && !m.same_storage(param),
        "adamw: param, m and v must be distinct buffers"
    );
    if let Some(s) = scale {
        ensure!(
            s.dtype() == DType::F32 && s.numel() == 1,
            "adamw: the gradient scale must be one f32, got {s:?}"
        );
    }
    let base = cfg.params(t);
    let entry = if scale.is_some() {
        "adamw_clipped"
    } else {
        "adamw_forward"
    };
    let kernel = Kernel::new("adamw", entry);
    dispatch_elem_chunks(param.gpu(), &kernel, n, 256, |lo, hi| {
        let p = AdamwParams {
            n: (hi - lo) as u32,
            ..base
        };
        let mut binds = vec![
            grad.bind_elems(1, lo, hi).0,
            param.bind_elems(2, lo, hi).0,
            m.bind_elems(3, lo, hi).0,
            v.bind_elems(4, lo, hi).0,
        ];
        binds.extend(scale.map(|s| s.bind(5)));
        (p, binds)
    })
}
