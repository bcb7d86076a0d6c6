//! swiglu: forward and backward against f64 references on odd sizes into
//! poisoned outputs, extreme gate values, a small-binding device (chunking)
//! and the tape against finite differences.

use crate::common::*;
use engine::ops::swiglu::{
    swiglu, swiglu_backward, swiglu_backward_into, swiglu_forward, swiglu_forward_into,
    SwigluParams,
};
use engine::{DType, Gpu, GpuOptions, Tensor};

/// σ(g) and 1 - σ(g) in f64, each without cancellation.
fn sig(g: f64) -> (f64, f64) {
    (1.0 / (1.0 + (-g).exp()), 1.0 / (1.0 + g.exp()))
}

/// (h, dg, du) in f64 for one element.
fn reference(g: f32, u: f32, dh: f32) -> (f64, f64, f64) {
    let (g, u, dh) = (g as f64, u as f64, dh as f64);
    let (s, r) = sig(g);
    // g·(1 - σ) is 0·∞-free: r underflows to 0 only once |g| is huge.
    let ds = s * (1.0 + if r > 0.0 { g * r } else { 0.0 });
    (g * s * u, dh * u * ds, dh * g * s)
}

fn run(g: &Tensor, u: &Tensor, dh: &Tensor) -> [Vec<f32>; 3] {
    let gpu = g.gpu();
    let fresh = || {
        let t = Tensor::empty(gpu, g.shape(), DType::F32).unwrap();
        t.poison();
        t
    };
    let (h, dg, du) = (fresh(), fresh(), fresh());
    swiglu_forward_into(g, u, &h).unwrap();
    swiglu_backward_into(dh, g, u, &dg, &du).unwrap();
    [h, dg, du].map(|t| t.to_vec().unwrap())
}

/// Runs both kernels on host data and checks them against the f64 reference.
fn check(
    gpu: &std::sync::Arc<Gpu>,
    shape: &[usize],
    g: &[f32],
    u: &[f32],
    dh: &[f32],
    atol: f64,
    rtol: f64,
) {
    let up = |d: &[f32]| Tensor::from_f32(gpu, shape, d).unwrap();
    let got = run(&up(g), &up(u), &up(dh));
    let want: Vec<(f64, f64, f64)> = (0..g.len()).map(|i| reference(g[i], u[i], dh[i])).collect();
    let names = ["h", "dg", "du"];
    for (k, (got, name)) in got.iter().zip(names).enumerate() {
        let w: Vec<f64> = want.iter().map(|r| [r.0, r.1, r.2][k]).collect();
        assert_close(&format!("swiglu {name} {shape:?}"), got, &w, atol, rtol);
    }
}

#[test]
fn swiglu_params_layout() {
    crate::assert_params_layout!(
        SwigluParams,
        "swiglu",
        "SwigluParams",
        [n, _pad0, _pad1, _pad2]
    );
}

#[test]
fn swiglu_matches_f64_at_odd_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    for shape in [vec![1], vec![5, 3], vec![33, 17], vec![3, 7, 101]] {
        let n: usize = shape.iter().product();
        let mut g = rng.vec(n, 8.0);
        for (slot, s) in g
            .iter_mut()
            .zip([0.0, -0.0, 1.0, -1.0, -1.2785, 20.0, -20.0])
        {
            *slot = s; // includes silu's minimum near -1.2785 (dg ≈ 0)
        }
        let u = rng.vec(n, 2.0);
        let dh = rng.vec(n, 1.0);
        check(&gpu, &shape, &g, &u, &dh, 1e-7, 1e-6);
    }
}

#[test]
fn swiglu_is_finite_and_accurate_for_extreme_gates() {
    // exp(-|g|) never overflows: huge gates give silu(g) = g or -0 exactly,
    // and the negative tail stays relatively accurate until σ is subnormal.
    let gpu = gpu();
    let g: Vec<f32> = [
        1e4f32,
        -1e4,
        3e19,
        -3e19,
        f32::MAX,
        -f32::MAX,
        88.0,
        -80.0,
        -30.0,
        -15.0,
    ]
    .into_iter()
    .chain((0..40).map(|i| -0.5 - i as f32 * 0.5))
    .collect();
    let n = g.len();
    let u: Vec<f32> = (0..n).map(|i| 0.25 + (i % 3) as f32 * 0.25).collect();
    let dh: Vec<f32> = (0..n).map(|i| 1.0 - (i % 4) as f32 * 0.5).collect();
    // WGSL's exp is within 3 + 2|a| ulps for argument a (|a| <= 20 here
    // outside the exact cases): a few 1e-6 relative.
    check(&gpu, &[n], &g, &u, &dh, 1e-30, 8e-6);
}

#[test]
fn swiglu_allocating_forms_match_the_into_forms() {
    let mut rng = Rng::new(22);
    let g = upload(&[4, 9], &rng.vec(36, 4.0));
    let u = upload(&[4, 9], &rng.vec(36, 1.0));
    let dh = upload(&[4, 9], &rng.vec(36, 1.0));
    let h = swiglu_forward(&g, &u).unwrap();
    assert_eq!(h.shape(), &[4, 9]);
    let [h2, dg2, du2] = run(&g, &u, &dh);
    assert_eq!(h.to_vec().unwrap(), h2);
    let (dg, du) = swiglu_backward(&dh, &g, &u).unwrap();
    assert_eq!((dg.to_vec().unwrap(), du.to_vec().unwrap()), (dg2, du2));
    assert!(
        swiglu_forward_into(&g, &u, &u).is_err(),
        "aliasing is refused"
    );
    assert!(
        swiglu_backward_into(&dh, &g, &u, &dh, &dh).is_err(),
        "aliasing is refused"
    );
    assert!(
        swiglu_forward(&g, &upload(&[35], &[0.0; 35])).is_err(),
        "sizes must agree"
    );
}

#[test]
fn swiglu_chunks_tensors_larger_than_one_binding() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    let n = 5003; // five bindings' worth plus a ragged tail
    let mut rng = Rng::new(23);
    let (g, u, dh) = (rng.vec(n, 6.0), rng.vec(n, 2.0), rng.vec(n, 1.0));
    check(&small, &[n], &g, &u, &dh, 1e-7, 1e-6);
}

#[test]
fn swiglu_tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(24);
    let g = rng.vec(15, 4.0);
    let u = rng.vec(15, 2.0);
    check_grads(
        "swiglu",
        &[(vec![3, 5], g), (vec![3, 5], u)],
        1e-2,
        2e-3,
        |tape, v| swiglu(tape, &v[0], &v[1]).unwrap(),
    );
}
