//! layernorm: both row-kernel variants (where the adapter has them), forward
//! and backward against f64 references at odd sizes, poisoned outputs, row
//! chunking on a small-binding device, and the tape against finite
//! differences.

use crate::common::*;
use engine::ops::layernorm::{
    layernorm, layernorm_backward, layernorm_backward_into, layernorm_forward,
    layernorm_forward_into, LayerNormOutput, LayerNormParams, LayerNormVariant,
};
use engine::{DType, Gpu, GpuOptions, Tensor};
use std::sync::Arc;

/// Every concrete variant this adapter can run.
fn variants(gpu: &Gpu) -> Vec<LayerNormVariant> {
    let mut v = vec![LayerNormVariant::Row];
    if gpu.has_subgroups() {
        v.push(LayerNormVariant::Subgroup);
    }
    v
}

pub(crate) struct Reference {
    pub(crate) y: Vec<f64>,
    mean: Vec<f64>,
    rstd: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
}

/// f64 forward and backward (mean/var two-pass, as in the kernels).
pub(crate) fn reference(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
    c: usize,
    eps: f32,
) -> Reference {
    let n = x.len() / c;
    let mut r = Reference {
        y: vec![0.0; n * c],
        mean: vec![0.0; n],
        rstd: vec![0.0; n],
        dx: vec![0.0; n * c],
        dw: vec![0.0; c],
        db: vec![0.0; c],
    };
    for i in 0..n {
        let row = &x[i * c..(i + 1) * c];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        r.mean[i] = mean;
        r.rstd[i] = rstd;
        let xh: Vec<f64> = row.iter().map(|&v| (v as f64 - mean) * rstd).collect();
        let g: Vec<f64> = (0..c).map(|j| dy[i * c + j] as f64 * w[j] as f64).collect();
        let mg = g.iter().sum::<f64>() / c as f64;
        let mgx = g.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / c as f64;
        for j in 0..c {
            r.y[i * c + j] = xh[j] * w[j] as f64 + b[j] as f64;
            r.dx[i * c + j] = rstd * (g[j] - mg - xh[j] * mgx);
            r.dw[j] += dy[i * c + j] as f64 * xh[j];
            r.db[j] += dy[i * c + j] as f64;
        }
    }
    r
}

pub(crate) fn poisoned_on(gpu: &Arc<Gpu>, shape: &[usize]) -> Tensor {
    let t = Tensor::empty(gpu, shape, DType::F32).unwrap();
    t.poison();
    t
}

/// Runs forward and backward of `variant` on `gpu` into poisoned outputs
/// and checks everything against the f64 reference.
fn check_case(gpu: &Arc<Gpu>, variant: LayerNormVariant, n: usize, c: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    // An offset mean and a non-unit scale make the variance pass matter.
    let x: Vec<f32> = rng.normals(n * c, 2.0).iter().map(|v| v + 3.0).collect();
    let w = rng.vec(c, 1.5);
    let b = rng.vec(c, 0.5);
    let dy = rng.normals(n * c, 1.0);
    let eps = 1e-5;
    let want = reference(&x, &w, &b, &dy, c, eps);
    let up = |s: &[usize], d: &[f32]| Tensor::from_f32(gpu, s, d).unwrap();
    let (tx, tw, tb, tdy) = (
        up(&[n, c], &x),
        up(&[c], &w),
        up(&[c], &b),
        up(&[n, c], &dy),
    );
    let out = LayerNormOutput {
        y: poisoned_on(gpu, &[n, c]),
        mean: poisoned_on(gpu, &[n]),
        rstd: poisoned_on(gpu, &[n]),
    };
    layernorm_forward_into(&tx, &tw, &tb, eps, variant, &out).unwrap();
    let what = format!("layernorm {variant:?} N={n} C={c}");
    assert_close(
        &format!("{what} mean"),
        &out.mean.to_vec().unwrap(),
        &want.mean,
        1e-6,
        1e-6,
    );
    assert_close(
        &format!("{what} rstd"),
        &out.rstd.to_vec().unwrap(),
        &want.rstd,
        0.0,
        2e-6,
    );
    assert_close(
        &format!("{what} y"),
        &out.y.to_vec().unwrap(),
        &want.y,
        2e-6,
        2e-6,
    );
    let (dx, dw, db) = (
        poisoned_on(gpu, &[n, c]),
        poisoned_on(gpu, &[c]),
        poisoned_on(gpu, &[c]),
    );
    layernorm_backward_into(
        &tdy,
        &tx,
        &tw,
        &out.mean,
        &out.rstd,
        variant,
        Some(&dx),
        Some((&dw, &db)),
    )
    .unwrap();
    // dx = rstd·(g - mean(g) - x̂·mean(g·x̂)), g = dy·γ: a difference of O(|g|)
    // terms, so its absolute error is a few ulps of |g| times rstd. That
    // matters at C = 1, where var = 0 and rstd = 1/√eps ≈ 316: a compiler
    // that fuses g - mean(g) into one fma (NVIDIA does; WGSL allows it)
    // leaves g's rounding error, ~316 × 6e-8, where the exact answer is 0.
    let rstd_max = want.rstd.iter().fold(1.0f64, |m, &r| m.max(r));
    let g_max = (0..n * c).fold(0.0f64, |m, i| m.max((dy[i] * w[i % c]).abs() as f64));
    let dx_atol = 5e-6f64.max(8.0 * f32::EPSILON as f64 * rstd_max * g_max);
    assert_close(
        &format!("{what} dx"),
        &dx.to_vec().unwrap(),
        &want.dx,
        dx_atol,
        5e-6,
    );
    // dγ/dβ are sums of n terms of size O(1).
    let atol = 2e-6 * (n as f64).sqrt().max(1.0);
    assert_close(
        &format!("{what} dw"),
        &dw.to_vec().unwrap(),
        &want.dw,
        atol,
        2e-6,
    );
    assert_close(
        &format!("{what} db"),
        &db.to_vec().unwrap(),
        &want.db,
        atol,
        2e-6,
    );
}

#[test]
fn layernorm_params_layout() {
    for stem in ["layernorm", "layernorm_subgroup"] {
        crate::assert_params_layout!(
            LayerNormParams,
            stem,
            "LayerNormParams",
            [rows, cols, eps, x_base, r_base, blk0, blk_rows, nblk]
        );
    }
}

#[test]
fn layernorm_matches_f64_at_odd_sizes_for_every_variant() {
    let gpu = gpu();
    for variant in variants(&gpu) {
        for c in [1usize, 3, 17, 64, 100, 768] {
            for n in [1usize, 5, 33] {
                check_case(&gpu, variant, n, c, (c * 100 + n) as u64);
            }
        }
        // Enough rows for several weight-gradient blocks (64 rows each).
        check_case(&gpu, variant, 200, 40, 7);
        check_case(&gpu, variant, 3, 2048, 8);
    }
}

#[test]
fn layernorm_chunks_rows_larger_than_one_binding() {
    // 4 KiB bindings: 40 rows of 100 floats span four or more chunks.
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    for variant in variants(&small) {
        check_case(&small, variant, 40, 100, 31);
        check_case(&small, variant, 150, 7, 32);
    }
}

#[test]
fn layernorm_auto_matches_reference_and_keeps_shapes() {
    let mut rng = Rng::new(41);
    let (b, t, c) = (2, 3, 10);
    let x = rng.vec(b * t * c, 2.0);
    let w = rng.vec(c, 1.0);
    let bias = rng.vec(c, 1.0);
    let dy = rng.vec(b * t * c, 1.0);
    let want = reference(&x, &w, &bias, &dy, c, 1e-5);
    let (tx, tw) = (upload(&[b, t, c], &x), upload(&[c], &w));
    let out = layernorm_forward(&tx, &tw, &upload(&[c], &bias), 1e-5).unwrap();
    assert_eq!(out.y.shape(), &[b, t, c]);
    assert_eq!(out.mean.shape(), &[b * t]);
    assert_close("auto y", &out.y.to_vec().unwrap(), &want.y, 2e-6, 2e-6);
    let g = layernorm_backward(&upload(&[b, t, c], &dy), &tx, &tw, &out.mean, &out.rstd).unwrap();
    assert_eq!(g.dx.as_ref().unwrap().shape(), &[b, t, c]);
    assert_close(
        "auto dx",
        &g.dx.unwrap().to_vec().unwrap(),
        &want.dx,
        5e-6,
        5e-6,
    );
    assert_close(
        "auto dw",
        &g.dw.unwrap().to_vec().unwrap(),
        &want.dw,
        5e-6,
        2e-6,
    );
    assert_close(
        "auto db",
        &g.db.unwrap().to_vec().unwrap(),
        &want.db,
        5e-6,
        2e-6,
    );
}

#[test]
fn layernorm_of_a_constant_row_is_the_bias() {
    // var = 0: y = β exactly and rstd = 1/sqrt(eps), with NeoX's eps.
    let gpu = gpu();
    let c = 33;
    let x = upload(&[2, c], &[7.25; 66]);
    let w = upload(&[c], &vec![2.0; c]);
    let b: Vec<f32> = (0..c).map(|i| i as f32 * 0.1).collect();
    for variant in variants(&gpu) {
        let out = layernorm_forward_into_new(&x, &w, &upload(&[c], &b), 1e-5, variant);
        let want: Vec<f64> = b.iter().chain(&b).map(|&v| v as f64).collect();
        assert_close("constant rows", &out.y.to_vec().unwrap(), &want, 0.0, 0.0);
        let r = 1.0 / (1e-5f64).sqrt();
        assert_close("rstd", &out.rstd.to_vec().unwrap(), &[r, r], 0.0, 1e-6);
    }
}

fn layernorm_forward_into_new(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f32,
    v: LayerNormVariant,
) -> LayerNormOutput {
    let gpu = x.gpu();
    let out = LayerNormOutput {
        y: poisoned_on(gpu, x.shape()),
        mean: poisoned_on(gpu, &[x.rows()]),
        rstd: poisoned_on(gpu, &[x.rows()]),
    };
    layernorm_forward_into(x, w, b, eps, v, &out).unwrap();
    out
}

#[test]
fn layernorm_tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(42);
    for (n, c) in [(3usize, 5usize), (2, 1), (1, 8)] {
        let x = rng.vec(n * c, 2.0);
        let w = rng.vec(c, 1.5);
        let b = rng.vec(c, 1.0);
        // C = 1 normalises to 0: y = β, so dx and dγ are 0 — a degenerate but valid case.
        check_grads(
            &format!("layernorm {n}x{c}"),
            &[(vec![n, c], x), (vec![c], w), (vec![c], b)],
            1e-2,
            3e-3,
            |tape, v| layernorm(tape, &v[0], &v[1], &v[2], 1e-5).unwrap(),
        );
    }
}

#[test]
fn layernorm_tape_skips_unneeded_gradients() {
    let gpu = gpu();
    let tape = engine::Tape::new(&gpu);
    let x = tape.param(&upload(&[2, 4], &[1.0, 2.0, 3.0, 5.0, -1.0, 0.0, 2.0, 1.0]));
    let w = tape.constant(upload(&[4], &[1.0; 4]));
    let b = tape.constant(upload(&[4], &[0.0; 4]));
    let y = layernorm(&tape, &x, &w, &b, 1e-5).unwrap();
    let grads = tape.backward(&y).unwrap();
    // Σ_c y is constant in x when γ = 1: the gradient of Σ y is 0.
    let dx = grads.get(&x).unwrap().to_vec().unwrap();
    assert_close("d Σy / dx", &dx, &[0.0; 8], 1e-6, 0.0);
    assert!(grads.get(&w).is_none() && grads.get(&b).is_none());
}
