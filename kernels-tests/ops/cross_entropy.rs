//! Fused cross-entropy and token log-probs: losses, saved logsumexp and
//! gradients against f64 references at odd vocabulary sizes, ignore-index and
//! invalid targets, temperature, large-magnitude and -inf logits, both kernel
//! variants, chunking on a small-binding device, and finite differences.

use super::softmax::{inv_t, poison_next, ref_lse, small_gpu, variants};
use crate::common::*;
use engine::ops::cross_entropy::*;
use engine::ops::softmax::Variant;
use engine::{Gpu, Tensor};
use std::sync::Arc;

/// Targets in [0, V) with every `ignore_every`-th row set to the ignore index.
fn targets(rng: &mut Rng, n: usize, v: usize, ignore_every: usize) -> Vec<i32> {
    (0..n)
        .map(|i| {
            if ignore_every > 0 && i % ignore_every == ignore_every - 1 {
                IGNORE_INDEX
            } else {
                rng.below(v) as i32
            }
        })
        .collect()
}

/// (out, lse, dx) in f64 for sign +1 (loss) or −1 (log-prob).
fn reference(
    x: &[f32],
    t: &[i32],
    dout: &[f32],
    v: usize,
    inv_t: f64,
    sign: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut out, mut lses, mut dx) = (vec![], vec![], vec![]);
    for ((row, &t), &g) in x.chunks(v).zip(t).zip(dout) {
        if t == IGNORE_INDEX {
            out.push(0.0);
            lses.push(0.0);
            dx.extend(std::iter::repeat_n(0.0, v));
            continue;
        }
        let lse = ref_lse(row, inv_t);
        out.push(sign * (lse - row[t as usize] as f64 * inv_t));
        lses.push(lse);
        for (j, &a) in row.iter().enumerate() {
            let q = (a as f64 * inv_t - lse).exp() - if j == t as usize { 1.0 } else { 0.0 };
            dx.push(sign * g as f64 * inv_t * q);
        }
    }
    (out, lses, dx)
}

/// Runs forward and backward for cross-entropy (T = 1) and token log-probs
/// (temperature `temp`) and compares everything.
#[allow(clippy::too_many_arguments)]
fn check(
    gpu: &Arc<Gpu>,
    x: &[f32],
    t: &[i32],
    n: usize,
    v: usize,
    temp: f32,
    tol: f64,
    variant: Variant,
) {
    let mut rng = Rng::new(n as u64 * 31 + v as u64);
    let dout = rng.vec(n, 2.0);
    let tx = Tensor::from_f32(gpu, &[n, v], x).unwrap();
    let tt = Tensor::from_i32(gpu, &[n], t).unwrap();
    let td = Tensor::from_f32(gpu, &[n], &dout).unwrap();
    for (sign, temp) in [(1.0, 1.0), (-1.0, temp)] {
        let what = format!("{variant:?} sign={sign} N={n} V={v} T={temp}");
        let (want_out, want_lse, want_dx) = reference(x, t, &dout, v, inv_t(temp), sign);
        poison_next(gpu, &[&[n], &[n]]);
        let (out, lse) = if sign > 0.0 {
            cross_entropy_forward(&tx, &tt, variant).unwrap()
        } else {
            token_logprobs_forward(&tx, &tt, temp, variant).unwrap()
        };
        // out = lse − z[t]: both are O(|z| + log V), so the error scales with them.
        let scale = want_lse.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        assert_close(
            &format!("{what} out"),
            &out.to_vec().unwrap(),
            &want_out,
            tol * scale,
            tol,
        );
        assert_close(
            &format!("{what} lse"),
            &lse.to_vec().unwrap(),
            &want_lse,
            tol,
            tol,
        );
        poison_next(gpu, &[&[n, v]]);
        let dx = if sign > 0.0 {
            cross_entropy_backward(&tx, &tt, &lse, &td, variant).unwrap()
        } else {
            token_logprobs_backward(&tx, &tt, &lse, &td, temp, variant).unwrap()
        };
        // p_j = exp(z_j − lse) inherits lse's absolute error as a relative one.
        let atol = 1e-8 + tol * 0.1 * inv_t(temp);
        assert_close(
            &format!("{what} dx"),
            &dx.to_vec().unwrap(),
            &want_dx,
            atol,
            tol * scale,
        );
    }
}

#[test]
fn cross_entropy_matches_reference_at_odd_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    for (n, v) in [(1, 1), (3, 2), (7, 7), (5, 33), (9, 1000), (1, 1000)] {
        let x = rng.normals(n * v, 3.0);
        let t = targets(&mut rng, n, v, 3);
        for variant in variants(&gpu) {
            check(&gpu, &x, &t, n, v, 0.7, 1e-6, variant);
        }
    }
}

#[test]
fn cross_entropy_matches_reference_at_vocab_size() {
    let gpu = gpu();
    let mut rng = Rng::new(22);
    let (n, v) = (3, 50257);
    let x = rng.normals(n * v, 3.0);
    let mut t = targets(&mut rng, n, v, 0);
    t[1] = IGNORE_INDEX;
    t[2] = (v - 1) as i32;
    for variant in variants(&gpu) {
        check(&gpu, &x, &t, n, v, 1.4, 2e-6, variant);
    }
}

#[test]
fn cross_entropy_is_stable_for_large_and_masked_logits() {
    let gpu = gpu();
    let mut rng = Rng::new(23);
    let (n, v) = (6, 97);
    let mut x = rng.vec(n * v, 80.0);
    // Masked vocabulary entries: -inf logits have probability 0.
    for row in x.chunks_mut(v) {
        row.iter_mut()
            .step_by(5)
            .for_each(|a| *a = f32::NEG_INFINITY);
    }
    let mut t = targets(&mut rng, n, v, 0);
    t.iter_mut().for_each(|t| *t -= *t % 5 - 1); // never a masked column
    for variant in variants(&gpu) {
        check(&gpu, &x, &t, n, v, 0.5, 1e-6, variant);
    }
}

#[test]
fn cross_entropy_flags_out_of_range_targets_with_nan() {
    let gpu = gpu();
    let x = upload(&[3, 4], &[0.5; 12]);
    let t = Tensor::from_i32(&gpu, &[3], &[4, -1, 2]).unwrap();
    let dout = upload(&[3], &[1.0; 3]);
    for variant in variants(&gpu) {
        let (loss, lse) = cross_entropy_forward(&x, &t, variant).unwrap();
        let loss = loss.to_vec().unwrap();
        assert!(loss[0].is_nan() && loss[1].is_nan(), "{loss:?}");
        assert!((loss[2] as f64 - 4f64.ln()).abs() < 1e-6, "{loss:?}");
        let dx = cross_entropy_backward(&x, &t, &lse, &dout, variant).unwrap();
        let dx = dx.to_vec().unwrap();
        assert!(dx[..8].iter().all(|v| v.is_nan()) && dx[8..].iter().all(|v| v.is_finite()));
    }
}

#[test]
fn cross_entropy_chunks_rows_on_a_small_binding_device() {
    // 4 KiB bindings: 203 rows of 37 are ~8 chunks with unaligned starts.
    let small = small_gpu(4096);
    let mut rng = Rng::new(24);
    let (n, v) = (203, 37);
    let x = rng.normals(n * v, 2.0);
    let t = targets(&mut rng, n, v, 4);
    for variant in variants(&small) {
        check(&small, &x, &t, n, v, 0.8, 1e-6, variant);
    }
}

#[test]
fn cross_entropy_tape_output_shape_and_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(25);
    let x = rng.normals(2 * 3 * 5, 1.0);
    let t = Tensor::from_i32(&gpu, &[2, 3], &[0, 4, IGNORE_INDEX, 2, 1, 3]).unwrap();
    let t2 = t.clone();
    check_grads(
        "cross_entropy",
        &[(vec![2, 3, 5], x.clone())],
        1e-2,
        2e-3,
        move |tape, v| {
            let y = cross_entropy(tape, &v[0], &t).unwrap();
            assert_eq!(y.shape(), &[2, 3]);
            y
        },
    );
    check_grads(
        "token_logprobs",
        &[(vec![2, 3, 5], x)],
        1e-2,
        2e-3,
        move |tape, v| token_logprobs(tape, &v[0], &t2, 0.6).unwrap(),
    );
}

#[test]
fn cross_entropy_rejects_bad_targets_tensor() {
    let gpu = gpu();
    let x = upload(&[2, 3], &[0.0; 6]);
    let wrong_len = Tensor::from_i32(&gpu, &[3], &[0, 1, 2]).unwrap();
    assert!(cross_entropy_forward(&x, &wrong_len, Variant::Auto).is_err());
    let float = upload(&[2], &[0.0, 1.0]);
    assert!(cross_entropy_forward(&x, &float, Variant::Auto).is_err());
    let t = Tensor::from_i32(&gpu, &[2], &[0, 1]).unwrap();
    assert!(token_logprobs_forward(&x, &t, 0.0, Variant::Auto).is_err());
}
