//! The logits ops store no subnormal floats (common/float_bits:
//! flush_subnormal): probabilities and their gradients below 2^-126 come back
//! as zeros of their sign, everything else as before. A subnormal left in
//! dlogits makes every FMA of the LM-head matmul that reads it take a
//! microcode assist on CPU adapters (about 25× slower).

use super::softmax::variants;
use crate::common::*;
use engine::ops::cross_entropy::*;
use engine::ops::entropy::{entropy_backward, entropy_forward};
use engine::ops::softmax::{softmax_backward, softmax_forward};
use engine::Tensor;

const MIN_NORMAL: f32 = f32::MIN_POSITIVE;

/// One row whose probabilities run from ~1 down through the subnormal range
/// (exp(-87.3) = 2^-126) to below the smallest subnormal, at odd V.
fn steep_row(v: usize) -> Vec<f32> {
    (0..v)
        .map(|j| -(j as f32) * 130.0 / (v - 1) as f32)
        .collect()
}

/// No subnormals, and `want` (f64) within `rtol` or 1e-35: an exp() near
/// 2^-126 may itself flush, and the entropy gradient multiplies it by
/// |z - mean| < 130.
fn check(what: &str, got: &[f32], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == 0.0 || g.abs() >= MIN_NORMAL,
            "{what}[{j}] = {g:e} is subnormal"
        );
        assert!(
            (g as f64 - w).abs() <= (rtol * w.abs()).max(1e-35),
            "{what}[{j}]: got {g:e}, want {w:e}"
        );
    }
}

#[test]
fn logits_ops_flush_subnormal_outputs_to_zero() {
    let gpu = gpu();
    let v = 211;
    let x = steep_row(v);
    let lse = super::softmax::ref_lse(&x, 1.0);
    let p: Vec<f64> = x.iter().map(|&a| (a as f64 - lse).exp()).collect();
    assert!(
        p.iter().any(|&q| q < MIN_NORMAL as f64 && q > 1e-45),
        "row reaches subnormals"
    );
    let tx = Tensor::from_f32(&gpu, &[1, v], &x).unwrap();
    let ones = Tensor::from_f32(&gpu, &[1], &[1.0]).unwrap();
    let dy = Tensor::from_f32(&gpu, &[1, v], &vec![1.0; v]).unwrap();
    let t = Tensor::from_i32(&gpu, &[1], &[0]).unwrap();
    for variant in variants(&gpu) {
        let y = softmax_forward(&tx, 1.0, false, variant).unwrap();
        check(
            &format!("{variant:?} softmax y"),
            &y.to_vec().unwrap(),
            &p,
            1e-5,
        );
        // dy = 1 everywhere: dx = y (1 − Σy) is ~0 up to rounding; only its
        // class is checked against p's tail.
        let dx = softmax_backward(&y, &dy, 1.0, false, variant)
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(
            dx.iter().all(|&g| g == 0.0 || g.abs() >= MIN_NORMAL),
            "{variant:?} softmax dx"
        );
        let (_, l) = cross_entropy_forward(&tx, &t, variant).unwrap();
        let dx = cross_entropy_backward(&tx, &t, &l, &ones, variant).unwrap();
        let want: Vec<f64> = p
            .iter()
            .enumerate()
            .map(|(j, &q)| q - (j == 0) as u8 as f64)
            .collect();
        check(
            &format!("{variant:?} cross_entropy dx"),
            &dx.to_vec().unwrap(),
            &want,
            1e-5,
        );
        let (_, l) = token_logprobs_forward(&tx, &t, 1.0, variant).unwrap();
        let dx = token_logprobs_backward(&tx, &t, &l, &ones, 1.0, variant).unwrap();
        let neg: Vec<f64> = want.iter().map(|w| -w).collect();
        check(
            &format!("{variant:?} token_logprobs dx"),
            &dx.to_vec().unwrap(),
            &neg,
            1e-5,
        );
        let (_, saved) = entropy_forward(&tx, 1.0, variant).unwrap();
        let dx = entropy_backward(&tx, &saved, &ones, 1.0, variant).unwrap();
        let mean: f64 = p.iter().zip(&x).map(|(q, &a)| q * a as f64).sum();
        let want: Vec<f64> = p
            .iter()
            .zip(&x)
            .map(|(q, &a)| -q * (a as f64 - mean))
            .collect();
        check(
            &format!("{variant:?} entropy dx"),
            &dx.to_vec().unwrap(),
            &want,
            1e-4,
        );
    }
}
