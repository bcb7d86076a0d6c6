//! qmatmul on NF4 weights: forward (fused, staged and GEMV), backward and the tape
//! function against an f64 reference from the bnb-exact dequantized weight.
//! Quantize / dequantize parity with bitsandbytes is in `quantize.rs`.

use super::{check_qlinear_grads, check_qmatmul, check_qmatmul_chunking, forward_ref};
use crate::common::*;
use engine::ops::qmatmul::{qmatmul_forward_into, QgemmPath};
use engine::quant::{QuantFormat, QuantizedWeight};

fn nf4(w: &QuantizedWeight) -> &engine::quant::Nf4Weight {
    match w {
        QuantizedWeight::Nf4(w) => w,
        _ => unreachable!(),
    }
}

#[test]
fn forward_and_backward_fused() {
    check_qmatmul(QuantFormat::Nf4, QgemmPath::Fused);
}

#[test]
fn forward_and_backward_staged() {
    check_qmatmul(QuantFormat::Nf4, QgemmPath::Staged);
}

#[test]
fn forward_auto_uses_gemv_for_one_row() {
    // Auto: GEMV where M = 1 and K % 64 == 0, else the adapter's general kernel.
    check_qmatmul(QuantFormat::Nf4, QgemmPath::Auto);
}

#[test]
fn gemv_matches_reference_at_lm_head_like_widths() {
    let gpu = gpu();
    let mut rng = Rng::new(5);
    for (n, k) in [(1usize, 64usize), (63, 128), (1000, 192), (4099, 64)] {
        let w = rng.normals(n * k, 0.02);
        let q = QuantizedWeight::from_host(&gpu, &w, n, k, QuantFormat::Nf4).unwrap();
        let wd = q.dequantize_host().unwrap();
        let x = rng.vec(k, 1.0);
        let b = rng.vec(n, 0.1);
        let y = poisoned(&[1, n]);
        qmatmul_forward_into(
            QgemmPath::Gemv,
            &y,
            &upload(&[1, k], &x),
            nf4(&q),
            Some(&upload(&[n], &b)),
            None,
        )
        .unwrap();
        let (want, s) = forward_ref(&x, &wd, Some(&b), 1, n, k);
        assert_close(
            &format!("gemv N={n} K={k}"),
            &y.to_vec().unwrap(),
            &want,
            1e-6 * s,
            1e-6,
        );
    }
    // Forcing the GEMV where it does not apply is an error, not a wrong answer.
    let q = QuantizedWeight::from_host(&gpu, &rng.normals(9 * 100, 1.0), 9, 100, QuantFormat::Nf4)
        .unwrap();
    let y = poisoned(&[1, 9]);
    assert!(qmatmul_forward_into(
        QgemmPath::Gemv,
        &y,
        &upload(&[1, 100], &[0.0; 100]),
        nf4(&q),
        None,
        None
    )
    .is_err());
}

#[test]
fn qlinear_gradients() {
    check_qlinear_grads(QuantFormat::Nf4);
}

#[test]
fn chunking_and_split_reduction() {
    check_qmatmul_chunking(QuantFormat::Nf4, QgemmPath::Fused);
    check_qmatmul_chunking(QuantFormat::Nf4, QgemmPath::Staged);
}
