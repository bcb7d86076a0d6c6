//! Softmax entropy: h, the saved lse and mean, and the gradient against f64
//! references at odd vocabulary sizes and temperatures, large-magnitude and
//! -inf logits, both kernel variants, chunking on a small-binding device, and
//! finite differences through the tape.

use super::softmax::{inv_t, poison_next, ref_lse, small_gpu, variants};
use crate::common::*;
use engine::ops::entropy::{entropy, entropy_backward, entropy_forward};
use engine::ops::softmax::Variant;
use engine::{Gpu, Tensor};
use std::sync::Arc;

/// (h, lse, mean, dx) in f64.
fn reference(x: &[f32], dh: &[f32], v: usize, inv_t: f64) -> [Vec<f64>; 4] {
    let mut r: [Vec<f64>; 4] = Default::default();
    for (row, &g) in x.chunks(v).zip(dh) {
        let lse = ref_lse(row, inv_t);
        let z: Vec<f64> = row.iter().map(|&a| a as f64 * inv_t).collect();
        let p: Vec<f64> = z.iter().map(|&z| (z - lse).exp()).collect();
        // Σ p·z, skipping p = 0 (masked -inf logits, where 0·inf is NaN).
        let mean: f64 = p
            .iter()
            .zip(&z)
            .filter(|(p, _)| **p > 0.0)
            .map(|(p, z)| p * z)
            .sum();
        r[0].push(lse - mean);
        r[1].push(lse);
        r[2].push(mean);
        for (&p, &z) in p.iter().zip(&z) {
            r[3].push(if p > 0.0 {
                -(g as f64) * inv_t * p * (z - mean)
            } else {
                0.0
            });
        }
    }
    r
}

fn check(gpu: &Arc<Gpu>, x: &[f32], n: usize, v: usize, temp: f32, tol: f64) {
    let dh = Rng::new(n as u64 * 7 + v as u64).vec(n, 2.0);
    let tx = Tensor::from_f32(gpu, &[n, v], x).unwrap();
    let td = Tensor::from_f32(gpu, &[n], &dh).unwrap();
    let [h, lse, mean, dx] = reference(x, &dh, v, inv_t(temp));
    // lse and mean are O(|z|): their error scales with the largest of them.
    let scale = lse.iter().chain(&mean).fold(1.0f64, |m, v| m.max(v.abs()));
    for variant in variants(gpu) {
        let what = format!("{variant:?} N={n} V={v} T={temp}");
        poison_next(gpu, &[&[n], &[n], &[n]]);
        let (th, saved) = entropy_forward(&tx, temp, variant).unwrap();
        assert_close(
            &format!("{what} h"),
            &th.to_vec().unwrap(),
            &h,
            tol * scale,
            tol,
        );
        let got_lse = saved.lse.to_vec().unwrap();
        assert_close(&format!("{what} lse"), &got_lse, &lse, tol * scale, tol);
        let got_mean = saved.mean.to_vec().unwrap();
        assert_close(&format!("{what} mean"), &got_mean, &mean, tol * scale, tol);
        poison_next(gpu, &[&[n, v]]);
        let tdx = entropy_backward(&tx, &saved, &td, temp, variant).unwrap();
        let atol = 1e-8 + tol * scale * inv_t(temp) * 0.1;
        assert_close(
            &format!("{what} dx"),
            &tdx.to_vec().unwrap(),
            &dx,
            atol,
            tol * scale,
        );
    }
}

#[test]
fn entropy_matches_reference_at_odd_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(31);
    for (n, v) in [(1, 1), (3, 2), (7, 7), (5, 33), (9, 1000), (1, 1000)] {
        let x = rng.normals(n * v, 3.0);
        for temp in [1.0, 0.7] {
            check(&gpu, &x, n, v, temp, 1e-6);
        }
    }
}

#[test]
fn entropy_matches_reference_at_vocab_size() {
    let gpu = gpu();
    let x = Rng::new(32).normals(2 * 50257, 3.0);
    check(&gpu, &x, 2, 50257, 1.2, 2e-6);
}

#[test]
fn entropy_is_stable_for_large_and_masked_logits() {
    let gpu = gpu();
    let mut rng = Rng::new(33);
    let (n, v) = (6, 97);
    let mut x = rng.vec(n * v, 80.0);
    for row in x.chunks_mut(v) {
        row.iter_mut()
            .step_by(5)
            .for_each(|a| *a = f32::NEG_INFINITY);
    }
    check(&gpu, &x, n, v, 0.5, 1e-6);
    // A nearly one-hot row (H ≈ 0) and a uniform row (H = log V).
    let mut x = vec![0.0f32; 2 * v];
    x[3] = 60.0;
    check(&gpu, &x, 2, v, 1.0, 1e-6);
}

#[test]
fn entropy_chunks_rows_on_a_small_binding_device() {
    let small = small_gpu(4096);
    let x = Rng::new(34).normals(157 * 41, 2.0);
    check(&small, &x, 157, 41, 0.9, 1e-6);
}

#[test]
fn entropy_gradients_match_finite_differences() {
    let x = Rng::new(35).normals(2 * 3 * 5, 1.0);
    check_grads("entropy", &[(vec![2, 3, 5], x)], 1e-2, 2e-3, |tape, v| {
        let y = entropy(tape, &v[0], 0.7).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        y
    });
}

#[test]
fn entropy_of_a_single_row_vector() {
    // 1-D logits give a [1] result.
    let gpu = gpu();
    let x = Tensor::from_f32(&gpu, &[4], &[0.0; 4]).unwrap();
    let (h, _) = entropy_forward(&x, 1.0, Variant::Auto).unwrap();
    assert_eq!(h.shape(), &[1]);
    assert_close("uniform", &h.to_vec().unwrap(), &[4f64.ln()], 1e-6, 1e-6);
}
