//! The adapter's ceilings, measured by `shaders/ceiling.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::case::{Case, Work};
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
        Case {
            op: "fma_peak",
            shape: format!("{FMA_THREADS}x{FMA_ITERS}"),
            work: Work::Flops(FMA_THREADS as f64 * FMA_ITERS as f64 * 8.0 * 4.0 * 2.0),
            prepare: Box::new(|gpu, _| {
                let src = Tensor::full(gpu, &[64 * 4], 0.5)?;
                let dst = Tensor::empty(gpu, &[64 * 4], DType::F32)?;
                let gpu = gpu.clone();
                Ok(Box::new(move || {
                    let p = CeilingParams {
                        n: FMA_THREADS,
                        iters: FMA_ITERS,
                        _pad: [0; 2],
                    };
                    let k = Kernel::new("ceiling", "fma_peak");
                    gpu.dispatch(
                        &k,
                        &p,
                        &[src.bind(1), dst.bind(2)],
                        groups_1d(&gpu, FMA_THREADS / 64),
                    )
                }))
            }),
        },
        Case {
            op: "copy_bandwidth",
            shape: format!("{}MiB", (COPY_VEC4S as u64 * 16) >> 20),
            work: Work::Bytes(2.0 * COPY_VEC4S as f64 * 16.0),
            prepare: Box::new(|gpu, _| {
                let n = COPY_VEC4S as usize * 4;
                let src = Tensor::zeros(gpu, &[n], DType::F32)?;
                let dst = Tensor::empty(gpu, &[n], DType::F32)?;
                let gpu = gpu.clone();
                Ok(Box::new(move || {
                    let p = CeilingParams {
                        n: COPY_VEC4S,
                        iters: 0,
                        _pad: [0; 2],
                    };
                    let k = Kernel::new("ceiling", "copy_bandwidth");
                    gpu.dispatch(
                        &k,
                        &p,
                        &[src.bind(1), dst.bind(2)],
                        groups_1d(&gpu, COPY_VEC4S / 64),
                    )
                }))
            }),
        },
    ]
}
