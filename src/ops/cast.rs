//! cast: f32 → f16 / bf16 (packed two per u32) and back to f32, bit-exact with
//! the `half` crate: round to nearest even, overflow to ±Inf, subnormals kept,
//! NaN stays NaN. Uses bit manipulation only (no shader-f16 feature).
//!
//! Shapes: any; the output has the input's shape. Odd element counts leave the
//! high half of the last word zero. `cast_forward` packs, `cast_backward`
//! unpacks (also the gradient of packing). Not on the tape: gradients are f32.
//! Tensors larger than one storage binding are converted in chunks.

use anyhow::{bail, Result};

use crate::device::Gpu;
use crate::kernel::{groups_1d, Bind, Kernel};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CastParams {
    pub n: u32,
    pub _pad: [u32; 3],
}

/// Element ranges whose f32 words and packed words both start on a binding
/// alignment boundary and fit one binding.
fn chunks(gpu: &Gpu, n: usize) -> Vec<(usize, usize)> {
    let align = (gpu.binding_alignment() / 4).max(1) as usize * 2;
    let step = ((gpu.max_binding() / 4) as usize / align * align).max(align);
    (0..n.max(1))
        .step_by(step)
        .map(|lo| (lo, (lo + step).min(n)))
        .collect()
}

fn bind_f32(t: &Tensor, binding: u32, lo: usize, hi: usize) -> Bind<'_> {
    Bind {
        binding,
        buffer: t.buffer(),
        offset: lo as u64 * 4,
        size: ((hi - lo) as u64 * 4).max(4),
    }
}

fn bind_packed(t: &Tensor, binding: u32, lo: usize, hi: usize) -> Bind<'_> {
    Bind {
        binding,
        buffer: t.buffer(),
        offset: lo as u64 / 2 * 4,
        size: ((hi - lo).div_ceil(2) as u64 * 4).max(4),
    }
}

fn kind(dtype: DType) -> Result<f64> {
    Ok(match dtype {
        DType::F16 => 0.0,
        DType::BF16 => 1.0,
        other => bail!("cast: {} is not a 16-bit float type", other.name()),
    })
}

/// f32 → `dtype` (F16 or BF16).
pub fn cast_forward(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype() != DType::F32 {
        bail!("cast_forward takes an f32 tensor, got {x:?}");
    }
    convert(x, dtype, kind(dtype)?)
}

/// F16 / BF16 → f32.
pub fn cast_backward(x: &Tensor) -> Result<Tensor> {
    let bf16 = kind(x.dtype())?;
    convert(x, DType::F32, bf16)
}

/// x into a new `out`-typed y, one dispatch per chunk: packing when `out` is
/// 16-bit (`cast_forward`, a thread per packed word of two elements), else
/// unpacking (`cast_backward`, a thread per element).
fn convert(x: &Tensor, out: DType, bf16: f64) -> Result<Tensor> {
    let pack = out != DType::F32;
    let consts = [("BF16", bf16)];
    let gpu = x.gpu();
    let y = Tensor::empty(gpu, x.shape(), out)?;
    for (lo, hi) in chunks(gpu, x.numel()) {
        let p = CastParams {
            n: (hi - lo) as u32,
            _pad: [0; 3],
        };
        let (entry, binds, per_thread) = if pack {
            let binds = [bind_f32(x, 1, lo, hi), bind_packed(&y, 2, lo, hi)];
            ("cast_forward", binds, 2)
        } else {
            let binds = [bind_packed(x, 3, lo, hi), bind_f32(&y, 4, lo, hi)];
            ("cast_backward", binds, 1)
        };
        let k = Kernel::new("cast", entry).with(&consts);
        let groups = groups_1d(gpu, p.n.div_ceil(per_thread).div_ceil(256));
        gpu.dispatch(&k, &p, &binds, groups)?;
    }
    Ok(y)
}

/// Converts between f32 and f16 / bf16 (a copy when the dtype already matches;
/// f16 ↔ bf16 goes through f32, which is exact on the way up).
pub fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    match (x.dtype(), dtype) {
        (a, b) if a == b => x.deep_copy(),
        (DType::F32, DType::F16 | DType::BF16) => cast_forward(x, dtype),
        (DType::F16 | DType::BF16, DType::F32) => cast_backward(x),
        (DType::F16 | DType::BF16, DType::F16 | DType::BF16) => {
            cast_forward(&cast_backward(x)?, dtype)
        }
        (a, b) => bail!("cast from {} to {} is not supported", a.name(), b.name()),
    }
}
