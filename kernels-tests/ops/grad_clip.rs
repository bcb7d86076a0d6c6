//! grad_clip: global norm and clipping against f64, with and without
//! clipping, non-finite norms, and chunking on a small-binding device.

use crate::common::*;
use engine::ops::grad_clip::{clip_grad_norm, grad_norm, ClipParams};
use engine::{Gpu, GpuOptions, Tensor};
use std::sync::Arc;

#[test]
fn params_layout() {
    crate::assert_params_layout!(ClipParams, "grad_clip", "ClipParams", [n, y_off, max_norm]);
}

fn norm_ref(data: &[Vec<f32>]) -> f64 {
    data.iter()
        .flatten()
        .map(|&v| v as f64 * v as f64)
        .sum::<f64>()
        .sqrt()
}

fn check(gpu: &Arc<Gpu>, sizes: &[usize], max_norm: f32, seed: u64) {
    let mut rng = Rng::new(seed);
    let data: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec(n, 1.0)).collect();
    let ts: Vec<Tensor> = sizes
        .iter()
        .zip(&data)
        .map(|(&n, d)| Tensor::from_f32(gpu, &[n], d).unwrap())
        .collect();
    let refs: Vec<&Tensor> = ts.iter().collect();
    let want = norm_ref(&data);
    let what = format!("sizes {sizes:?} max_norm {max_norm}");
    let plain = grad_norm(gpu, &refs).unwrap();
    assert_close(
        &format!("{what}: grad_norm"),
        &plain.to_vec().unwrap(),
        &[want],
        0.0,
        2e-6,
    );
    let norm = clip_grad_norm(gpu, &refs, max_norm).unwrap();
    assert_close(
        &format!("{what}: norm"),
        &norm.to_vec().unwrap(),
        &[want],
        0.0,
        2e-6,
    );
    let coef = (max_norm as f64 / (want + 1e-6)).min(1.0);
    for (t, d) in ts.iter().zip(&data) {
        let got = t.to_vec().unwrap();
        if coef == 1.0 {
            assert_eq!(got, *d, "{what}: no clipping leaves gradients untouched");
        }
        let want: Vec<f64> = d.iter().map(|&v| v as f64 * coef).collect();
        assert_close(&format!("{what}: clipped"), &got, &want, 0.0, 3e-6);
    }
    if coef < 1.0 {
        let after = grad_norm(gpu, &refs).unwrap().item().unwrap() as f64;
        assert!(
            (after - max_norm as f64).abs() < 1e-5 * max_norm as f64,
            "{what}: norm after {after}"
        );
    }
}

#[test]
fn norm_and_clipping_match_reference() {
    let gpu = gpu();
    let sizes = [1usize, 7, 1000, 40_001, 3];
    check(&gpu, &sizes, 1e6, 1); // no clipping needed
    check(&gpu, &sizes, 1.0, 2); // large clip: norm is ~115
    check(&gpu, &[5], 1e-3, 3);
}

#[test]
fn non_finite_norms_are_reported_and_leave_gradients_alone() {
    let gpu = gpu();
    for bad in [f32::NAN, f32::INFINITY] {
        let a = upload(&[3], &[1.0, bad, 2.0]);
        let b = upload(&[2], &[3.0, 4.0]);
        let norm = clip_grad_norm(&gpu, &[&a, &b], 0.5)
            .unwrap()
            .item()
            .unwrap();
        assert!(!norm.is_finite(), "norm {norm} with a {bad} gradient");
        assert_eq!(b.to_vec().unwrap(), vec![3.0, 4.0]);
        assert_eq!(a.to_vec().unwrap()[0], 1.0);
    }
    // Finite values whose squares overflow f32 also report a non-finite norm.
    let big = upload(&[2], &[3e19, 3e19]);
    assert!(!grad_norm(&gpu, &[&big])
        .unwrap()
        .item()
        .unwrap()
        .is_finite());
    assert_eq!(grad_norm(&gpu, &[]).unwrap().item().unwrap(), 0.0);
}

#[test]
fn chunks_on_a_small_binding_device() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    check(&small, &[5003, 2, 1024], 2.0, 4);
}
