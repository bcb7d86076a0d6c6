//! The adapter's ceilings, measured by `shaders/ceiling.wgsl`.

use anyhow::Result;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

use super::case::{Case, Work};
use crate::device::Gpu;
use crate::kernel::{groups_1d, Kernel};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct CeilingParams {
    pub n: u32,
    pub iters: u32,
    pub _pad: [u32; 2],
}

/// Invocations and rounds of the FMA kernel: enough work to dwarf the
/// dispatch overhead on a CPU adapter while staying well under a second.
const FMA_THREADS: u32 = 16 * 1024;
const FMA_ITERS: u32 = 2048;
/// Elements (vec4) copied by the bandwidth kernel: 64 MiB each way, far beyond
/// the CPU's caches.
const COPY_VEC4S: u32 = 4 << 20;

pub fn cases() -> Vec<Case> {
    vec![
        ceiling_case(
            "fma_peak",
            format!("{FMA_THREADS}x{FMA_ITERS}"),
            Work::Flops(FMA_THREADS as f64 * FMA_ITERS as f64 * 8.0 * 4.0 * 2.0),
            (FMA_THREADS, FMA_ITERS),
            |gpu| Tensor::full(gpu, &[64 * 4], 0.5),
        ),
        ceiling_case(
            "copy_bandwidth",
            format!("{}MiB", (COPY_VEC4S as u64 * 16) >> 20),
            Work::Bytes(2.0 * COPY_VEC4S as f64 * 16.0),
            (COPY_VEC4S, 0),
            |gpu| Tensor::zeros(gpu, &[COPY_VEC4S as usize * 4], DType::F32),
        ),
    ]
}

/// The `op` entry of `ceiling.wgsl` over `n` invocations of `iters` rounds
/// (both ceilings are one such dispatch), reading `src` into an f32 `dst` of
/// the same size.
fn ceiling_case(
    op: &'static str,
    shape: String,
    work: Work,
    (n, iters): (u32, u32),
    src: fn(&Arc<Gpu>) -> Result<Tensor>,
) -> Case {
    Case {
        op,
        shape,
        work,
        prepare: Box::new(move |gpu, _| {
            let src = src(gpu)?;
            let dst = Tensor::empty(gpu, src.shape(), DType::F32)?;
            let gpu = gpu.clone();
            Ok(Box::new(move || {
                let p = CeilingParams {
                    n,
                    iters,
                    _pad: [0; 2],
                };
                gpu.dispatch(
                    &Kernel::new("ceiling", op),
                    &p,
                    &[src.bind(1), dst.bind(2)],
                    groups_1d(&gpu, n / 64),
                )
            }))
        }),
    }
}
