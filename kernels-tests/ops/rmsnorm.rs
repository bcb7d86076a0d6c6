//! rmsnorm: forward and backward against f64 references at odd sizes into
//! poisoned outputs, extreme scales, row chunking on a small-binding device,
//! and the tape against finite differences.

use crate::common::*;
use engine::ops::rmsnorm::{
    rmsnorm, rmsnorm_backward, rmsnorm_backward_into, rmsnorm_forward, rmsnorm_forward_into,
    RmsNormOutput, RmsNormParams,
};
use engine::{DType, Gpu, GpuOptions, Tensor};
use std::sync::Arc;

struct Reference {
    y: Vec<f64>,
    rstd: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
}

/// f64 LlamaRMSNorm and its gradients.
fn reference(x: &[f32], w: &[f32], dy: &[f32], c: usize, eps: f32) -> Reference {
    let n = x.len() / c;
    let mut r = Reference {
        y: vec![0.0; n * c],
        rstd: vec![0.0; n],
        dx: vec![0.0; n * c],
        dw: vec![0.0; c],
    };
    for i in 0..n {
        let row = &x[i * c..(i + 1) * c];
        let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (ms + eps as f64).sqrt();
        r.rstd[i] = rstd;
        let xh: Vec<f64> = row.iter().map(|&v| v as f64 * rstd).collect();
        let g: Vec<f64> = (0..c).map(|j| dy[i * c + j] as f64 * w[j] as f64).collect();
        let mgx = g.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / c as f64;
        for j in 0..c {
            r.y[i * c + j] = w[j] as f64 * xh[j];
            r.dx[i * c + j] = rstd * (g[j] - xh[j] * mgx);
            r.dw[j] += dy[i * c + j] as f64 * xh[j];
        }
    }
    r
}

fn poisoned_on(gpu: &Arc<Gpu>, shape: &[usize]) -> Tensor {
    let t = Tensor::empty(gpu, shape, DType::F32).unwrap();
    t.poison();
    t
}

/// Forward and backward on `gpu` into poisoned outputs, against f64; x is
/// drawn at `scale` (the result is scale-invariant up to eps).
fn check_case(gpu: &Arc<Gpu>, n: usize, c: usize, scale: f32, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = rng
        .normals(n * c, 1.0)
        .iter()
        .map(|v| (v + 0.5) * scale)
        .collect();
    let w = rng.vec(c, 1.5);
    let dy = rng.normals(n * c, 1.0);
    let eps = 1e-6;
    let want = reference(&x, &w, &dy, c, eps);
    let up = |s: &[usize], d: &[f32]| Tensor::from_f32(gpu, s, d).unwrap();
    let (tx, tw, tdy) = (up(&[n, c], &x), up(&[c], &w), up(&[n, c], &dy));
    let out = RmsNormOutput {
        y: poisoned_on(gpu, &[n, c]),
        rstd: poisoned_on(gpu, &[n]),
    };
    rmsnorm_forward_into(&tx, &tw, eps, &out).unwrap();
    let what = format!("rmsnorm N={n} C={c} scale={scale}");
    let rstd = out.rstd.to_vec().unwrap();
    assert_close(&format!("{what} rstd"), &rstd, &want.rstd, 0.0, 2e-6);
    assert_close(
        &format!("{what} y"),
        &out.y.to_vec().unwrap(),
        &want.y,
        1e-6,
        2e-6,
    );
    let (dx, dw) = (poisoned_on(gpu, &[n, c]), poisoned_on(gpu, &[c]));
    rmsnorm_backward_into(&tdy, &tx, &tw, &out.rstd, Some(&dx), Some(&dw)).unwrap();
    // dx is a difference of O(rstd) terms; dw a sum of n terms of size O(1).
    let rmax = want.rstd.iter().cloned().fold(0.0, f64::max);
    assert_close(
        &format!("{what} dx"),
        &dx.to_vec().unwrap(),
        &want.dx,
        3e-6 * rmax,
        3e-6,
    );
    let atol = 2e-6 * (n as f64).sqrt().max(1.0);
    assert_close(
        &format!("{what} dw"),
        &dw.to_vec().unwrap(),
        &want.dw,
        atol,
        2e-6,
    );
}

#[test]
fn rmsnorm_params_layout() {
    crate::assert_params_layout!(
        RmsNormParams,
        "rmsnorm",
        "RmsNormParams",
        [rows, cols, eps, x_base, r_base, blk0, blk_rows, nblk]
    );
}

#[test]
fn rmsnorm_matches_f64_at_odd_sizes() {
    let gpu = gpu();
    for c in [1usize, 3, 17, 64, 100, 771] {
        for n in [1usize, 5, 33] {
            check_case(&gpu, n, c, 2.0, (c * 100 + n) as u64);
        }
    }
    // Several weight-gradient blocks (64 rows each) and a long row.
    check_case(&gpu, 200, 40, 1.0, 7);
    check_case(&gpu, 3, 2049, 1.0, 8);
}

#[test]
fn rmsnorm_is_accurate_at_extreme_scales() {
    // Tiny rows are dominated by eps; large ones square to ~1e30 in f32.
    let gpu = gpu();
    for (scale, seed) in [(1e-4f32, 1u64), (1e-2, 2), (1e6, 3), (1e14, 4)] {
        check_case(&gpu, 7, 45, scale, seed);
    }
    // An all-zero row: rstd = 1/sqrt(eps), y = 0, dx = rstd·g.
    let x = upload(&[2, 5], &[0.0; 10]);
    let w = upload(&[5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
    let out = rmsnorm_forward(&x, &w, 1e-5).unwrap();
    assert_close("zero row y", &out.y.to_vec().unwrap(), &[0.0; 10], 0.0, 0.0);
    let r = 1.0 / 1e-5f64.sqrt();
    assert_close(
        "zero row rstd",
        &out.rstd.to_vec().unwrap(),
        &[r, r],
        0.0,
        1e-6,
    );
}

#[test]
fn rmsnorm_chunks_rows_larger_than_one_binding() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    check_case(&small, 40, 100, 1.0, 31);
    check_case(&small, 150, 7, 1.0, 32);
}

#[test]
fn rmsnorm_allocating_forms_keep_shapes_and_refuse_aliasing() {
    let mut rng = Rng::new(41);
    let (b, t, c) = (2, 3, 10);
    let x = rng.vec(b * t * c, 2.0);
    let w = rng.vec(c, 1.0);
    let dy = rng.vec(b * t * c, 1.0);
    let want = reference(&x, &w, &dy, c, 1e-5);
    let (tx, tw) = (upload(&[b, t, c], &x), upload(&[c], &w));
    let out = rmsnorm_forward(&tx, &tw, 1e-5).unwrap();
    assert_eq!(out.y.shape(), &[b, t, c]);
    assert_eq!(out.rstd.shape(), &[b * t]);
    assert_close("y", &out.y.to_vec().unwrap(), &want.y, 1e-6, 2e-6);
    let (dx, dw) =
        rmsnorm_backward(&upload(&[b, t, c], &dy), &tx, &tw, &out.rstd, true, false).unwrap();
    assert!(dw.is_none());
    let dx = dx.unwrap();
    assert_eq!(dx.shape(), &[b, t, c]);
    assert_close("dx", &dx.to_vec().unwrap(), &want.dx, 5e-6, 5e-6);
    let bad = RmsNormOutput {
        y: tx.clone(),
        rstd: out.rstd.clone(),
    };
    assert!(
        rmsnorm_forward_into(&tx, &tw, 1e-5, &bad).is_err(),
        "aliasing is refused"
    );
    assert!(rmsnorm_forward(&tx, &upload(&[c + 1], &vec![1.0; c + 1]), 1e-5).is_err());
}

#[test]
fn rmsnorm_tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(42);
    for (n, c) in [(3usize, 5usize), (2, 1), (1, 8)] {
        let x = rng.vec(n * c, 2.0);
        let w = rng.vec(c, 1.5);
        check_grads(
            &format!("rmsnorm {n}x{c}"),
            &[(vec![n, c], x), (vec![c], w)],
            1e-2,
            3e-3,
            |tape, v| rmsnorm(tape, &v[0], &v[1], 1e-5).unwrap(),
        );
    }
}
