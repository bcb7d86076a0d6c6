//! Shared test support: the one device per test binary, seeded random inputs,
//! f64 comparison with atol + rtol·|ref|, poisoning, and finite differences.
#![allow(dead_code)]

use engine::{Gpu, Tape, Tensor, Var};
use std::sync::Arc;

mod scratch;
#[allow(unused_imports)] // the kernel tests write no files
pub use scratch::Scratch;

/// The shared device. Tests never skip: no adapter is a failure that says why.
pub fn gpu() -> Arc<Gpu> {
    Gpu::shared().unwrap_or_else(|e| {
        panic!(
            "no usable GPU adapter for the kernel tests: {e}\n\
             Install Mesa (`apt-get install -y mesa-vulkan-drivers libegl1-mesa`) or select an \
             adapter with ENGINE_DEVICE / WGPU_BACKEND."
        )
    })
}

/// A second device, shared per test binary, that fills every buffer it
/// hands out with NaN (`GpuOptions::poison_allocations`): what a kernel reads
/// without anything having written it shows up as NaN instead of whatever
/// an earlier tensor left there.
pub fn poisoning_gpu() -> Arc<Gpu> {
    static POISONING: std::sync::OnceLock<Arc<Gpu>> = std::sync::OnceLock::new();
    POISONING
        .get_or_init(|| {
            let opts = engine::GpuOptions {
                poison_allocations: true,
                ..engine::GpuOptions::from_env().unwrap()
            };
            Gpu::new(&opts).unwrap()
        })
        .clone()
}

pub use engine::rng::Rng;

pub fn upload(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(&gpu(), shape, data).unwrap()
}

/// An f32 tensor filled with NaN, for outputs that a kernel must fully write.
pub fn poisoned(shape: &[usize]) -> Tensor {
    let t = Tensor::empty(&gpu(), shape, engine::DType::F32).unwrap();
    t.poison();
    t
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Asserts |got - want| <= atol + rtol·|want| everywhere, that every element
/// was written (no NaN left from poisoning) and reports the worst element.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs reference {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0.0f64, 0.0f64, f64::NEG_INFINITY);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        assert!(
            g.is_finite() || !w.is_finite(),
            "{what}: element {i} is {g} (reference {w}): not written or overflowed"
        );
        let abs = (g - w).abs();
        let rel = abs / w.abs().max(1e-30);
        let excess = abs - (atol + rtol * w.abs());
        if excess > worst.3 {
            worst = (i, abs, rel, excess);
        }
    }
    let (i, abs, rel, excess) = worst;
    assert!(
        excess <= 0.0,
        "{what}: max error at index {i}: got {} want {} (abs {abs:.3e}, rel {rel:.3e}; atol {atol:.1e} rtol {rtol:.1e})",
        got[i],
        want[i]
    );
}

/// Checks a recorded graph's gradients against central finite differences.
///
/// `build` maps input vars to an output var of any shape. The objective is
/// L = Σ w·y with fixed random weights w, so the analytic gradients come from
/// `backward_with(y, w)` and the numeric ones from re-running `build` on
/// perturbed inputs. Only use on tiny shapes.
pub fn check_grads(
    what: &str,
    inputs: &[(Vec<usize>, Vec<f32>)],
    eps: f32,
    tol: f64,
    build: impl Fn(&Tape, &[Var]) -> Var,
) {
    let gpu = gpu();
    let objective = |data: &[Vec<f32>], w: &[f32]| -> f64 {
        let tape = Tape::new(&gpu);
        let _g = tape.no_grad();
        let vars: Vec<Var> = inputs
            .iter()
            .zip(data)
            .map(|((s, _), d)| tape.constant(upload(s, d)))
            .collect();
        let y = build(&tape, &vars).tensor().to_vec().unwrap();
        y.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    let tape = Tape::new(&gpu);
    let vars: Vec<Var> = inputs
        .iter()
        .map(|(s, d)| tape.param(&upload(s, d)))
        .collect();
    let y = build(&tape, &vars);
    let mut rng = Rng::new(0xF1D1FF);
    let w = rng.vec(y.tensor().numel(), 1.0);
    let grads = tape.backward_with(&y, upload(y.shape(), &w)).unwrap();
    let data: Vec<Vec<f32>> = inputs.iter().map(|(_, d)| d.clone()).collect();
    for (k, var) in vars.iter().enumerate() {
        let analytic = grads
            .get(var)
            .unwrap_or_else(|| panic!("{what}: no gradient for input {k}"))
            .to_vec()
            .unwrap();
        let mut numeric = Vec::with_capacity(data[k].len());
        for i in 0..data[k].len() {
            let mut plus = data.clone();
            plus[k][i] += eps;
            let mut minus = data.clone();
            minus[k][i] -= eps;
            numeric.push((objective(&plus, &w) - objective(&minus, &w)) / (2.0 * eps as f64));
        }
        assert_close(
            &format!("{what}: d/d(input {k}) vs finite differences"),
            &analytic,
            &numeric,
            tol,
            tol,
        );
    }
}

/// Asserts that a `#[repr(C)]` params struct matches its WGSL twin: the same
/// size and the same offset for every named field.
#[macro_export]
macro_rules! assert_params_layout {
    ($ty:ty, $stem:expr, $wgsl:expr, [$($field:ident),* $(,)?]) => {{
        let (size, members) = engine::shader::struct_layout($stem, $wgsl).unwrap();
        assert_eq!(std::mem::size_of::<$ty>() as u32, size, "size of {} vs WGSL {}", stringify!($ty), $wgsl);
        $(
            let off = members.iter().find(|(n, _)| n == stringify!($field))
                .unwrap_or_else(|| panic!("WGSL {} has no member {}", $wgsl, stringify!($field))).1;
            assert_eq!(std::mem::offset_of!($ty, $field) as u32, off, "offset of {}", stringify!($field));
        )*
    }};
}
