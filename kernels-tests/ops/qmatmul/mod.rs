//! qmatmul (`engine::ops::qmatmul`): the checks shared by `int8.rs` and
//! `nf4.rs`, run for each kernel path (fused, staged, auto): forward,
//! backward and the tape function against an f64 reference from the bnb-exact dequantized weight;
//! row chunking, split reductions and staged panels.

mod int8;
mod nf4;
mod quantize;

use crate::common::*;
use engine::ops::qmatmul::{qlinear, qmatmul_backward_into, qmatmul_forward_into, QgemmPath};
use engine::quant::{QuantFormat, QuantizedWeight};
use engine::{Gpu, GpuOptions, Tensor};

/// x [m, k] · W[n, k]ᵀ (+ bias) in f64 from the dequantized weight, and the
/// per-row scale Σ_k |x W| that bounds the f32 rounding error.
pub fn forward_ref(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
) -> (Vec<f64>, f64) {
    let mut y = vec![0.0; m * n];
    let mut scale = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut a) = (0.0f64, 0.0f64);
            for t in 0..k {
                let p = x[i * k + t] as f64 * w[j * k + t] as f64;
                s += p;
                a += p.abs();
            }
            y[i * n + j] = s + bias.map_or(0.0, |b| b[j] as f64);
            scale = scale.max(a);
        }
    }
    (y, scale)
}

/// dy [m, n] · W [n, k] in f64, and the scale Σ_n |dy W|.
pub fn backward_ref(dy: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> (Vec<f64>, f64) {
    let mut dx = vec![0.0; m * k];
    let mut scale = 0.0f64;
    for i in 0..m {
        for t in 0..k {
            let (mut s, mut a) = (0.0f64, 0.0f64);
            for j in 0..n {
                let p = dy[i * n + j] as f64 * w[j * k + t] as f64;
                s += p;
                a += p.abs();
            }
            dx[i * k + t] = s;
            scale = scale.max(a);
        }
    }
    (dx, scale)
}

/// Shapes (M, N, K): odd sizes, M = 1, K not a multiple of 4, 8 or 64, more
/// than one workgroup in each direction, a single output column.
pub const SHAPES: &[(usize, usize, usize)] = &[
    (1, 9, 64),
    (1, 300, 192),
    (1, 9, 100),
    (3, 9, 13),
    (2, 33, 7),
    (5, 1, 64),
    (130, 70, 100),
    (129, 17, 128),
    (7, 24, 72),
];

/// Forward (with and without bias) and backward by `path` against the f64
/// reference from the host-dequantized weight, outputs poisoned. Tolerance:
/// f32 accumulation error, 1e-6 of the absolute-product sum plus 1e-6 relative.
pub fn check_qmatmul(format: QuantFormat, path: QgemmPath) {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    for &(m, n, k) in SHAPES {
        let w = rng.normals(n * k, 0.5);
        let q = QuantizedWeight::from_host(&gpu, &w, n, k, format).unwrap();
        let wd = q.dequantize_host().unwrap();
        let x = rng.vec(m * k, 1.0);
        let b = rng.vec(n, 1.0);
        let tx = upload(&[m, k], &x);
        for bias in [None, Some(&b[..])] {
            let y = poisoned(&[m, n]);
            let tb = bias.map(|b| upload(&[n], b));
            qmatmul_forward_into(path, &y, &tx, &q, tb.as_ref(), None).unwrap();
            let (want, s) = forward_ref(&x, &wd, bias, m, n, k);
            let what = format!(
                "{format:?} {path:?} forward M={m} N={n} K={k} bias={}",
                bias.is_some()
            );
            assert_close(&what, &y.to_vec().unwrap(), &want, 1e-6 * s, 1e-6);
        }
        let dy = rng.vec(m * n, 1.0);
        let dx = poisoned(&[m, k]);
        qmatmul_backward_into(path, &dx, &upload(&[m, n], &dy), &q, None).unwrap();
        let (want, s) = backward_ref(&dy, &wd, m, n, k);
        assert_close(
            &format!("{format:?} {path:?} backward M={m} N={n} K={k}"),
            &dx.to_vec().unwrap(),
            &want,
            1e-6 * s,
            1e-6,
        );
    }
}

/// dx and dbias of `qlinear` against finite differences; the weight gets none.
pub fn check_qlinear_grads(format: QuantFormat) {
    let gpu = gpu();
    let (m, n, k) = (3, 5, 13);
    let mut rng = Rng::new(21);
    let q = QuantizedWeight::from_host(&gpu, &rng.normals(n * k, 1.0), n, k, format).unwrap();
    let x = rng.vec(m * k, 1.0);
    let b = rng.vec(n, 1.0);
    check_grads(
        &format!("qlinear {format:?}"),
        &[(vec![m, k], x), (vec![n], b)],
        1e-2,
        2e-3,
        |tape, v| qlinear(tape, &v[0], &q, Some(&v[1])).unwrap(),
    );
    // Without a bias, and with x on a [2, 1, k] batch shape.
    let x = rng.vec(2 * k, 1.0);
    check_grads(
        &format!("qlinear {format:?} no bias"),
        &[(vec![2, 1, k], x)],
        1e-2,
        2e-3,
        |tape, v| qlinear(tape, &v[0], &q, None).unwrap(),
    );
}

/// Row chunking (x and y larger than one binding) on a 4 KiB-binding device,
/// and the reduction split into several accumulating dispatches (fused) or
/// panels (staged), by `path`.
pub fn check_qmatmul_chunking(format: QuantFormat, path: QgemmPath) {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    let mut rng = Rng::new(31);
    let (m, n, k) = (40, 9, 64); // x is 10 KiB: three row chunks
    let w = rng.normals(n * k, 1.0);
    let q = QuantizedWeight::from_host(&small, &w, n, k, format).unwrap();
    let wd = q.dequantize_host().unwrap();
    let x = rng.vec(m * k, 1.0);
    let y = Tensor::empty(&small, &[m, n], engine::DType::F32).unwrap();
    qmatmul_forward_into(
        path,
        &y,
        &Tensor::from_f32(&small, &[m, k], &x).unwrap(),
        &q,
        None,
        None,
    )
    .unwrap();
    let (want, s) = forward_ref(&x, &wd, None, m, n, k);
    assert_close(
        &format!("{format:?} {path:?} chunked forward"),
        &y.to_vec().unwrap(),
        &want,
        1e-6 * s,
        1e-6,
    );
    let dy = rng.vec(m * n, 1.0);
    let dx = Tensor::empty(&small, &[m, k], engine::DType::F32).unwrap();
    qmatmul_backward_into(
        path,
        &dx,
        &Tensor::from_f32(&small, &[m, n], &dy).unwrap(),
        &q,
        None,
    )
    .unwrap();
    let (want, s) = backward_ref(&dy, &wd, m, n, k);
    assert_close(
        &format!("{format:?} {path:?} chunked backward"),
        &dx.to_vec().unwrap(),
        &want,
        1e-6 * s,
        1e-6,
    );
    // A row wider than a binding: the fused kernels refuse it with a clear
    // error; staged, the f32 matmul splits the reduction and gets it right.
    let wide = Tensor::from_f32(&small, &[1, 2048], &vec![0.5; 2048]).unwrap();
    let qw = QuantizedWeight::from_host(&small, &vec![1.0; 2048], 1, 2048, format).unwrap();
    let out = Tensor::empty(&small, &[1, 1], engine::DType::F32).unwrap();
    let r = qmatmul_forward_into(path, &out, &wide, &qw, None, None);
    if path == QgemmPath::Staged {
        r.unwrap();
        assert_eq!(
            out.to_vec().unwrap(),
            [1024.0],
            "{format:?} staged wide row"
        );
    } else {
        let e = r.err().map(|e| format!("{e:#}"));
        assert!(
            e.is_some_and(|e| e.contains("binding")),
            "a row wider than a binding must be refused"
        );
    }

    // The backward reduction runs over N = 196,708: four fused dispatches of at
    // most 65,536 steps, all but the first accumulating; staged, two panels of
    // 98,368 rows (a panel holds at most STAGE_ELEMS / K = 131,072 rows).
    let gpu = gpu();
    let (m, n, k) = (2, 65636 + 131072, 8);
    let w = rng.normals(n * k, 1.0);
    let q = QuantizedWeight::from_host(&gpu, &w, n, k, format).unwrap();
    let wd = q.dequantize_host().unwrap();
    let dy = rng.vec(m * n, 1.0);
    let dx = poisoned(&[m, k]);
    qmatmul_backward_into(path, &dx, &upload(&[m, n], &dy), &q, None).unwrap();
    let (want, s) = backward_ref(&dy, &wd, m, n, k);
    assert_close(
        &format!("{format:?} {path:?} split reduction"),
        &dx.to_vec().unwrap(),
        &want,
        1e-6 * s,
        1e-6,
    );
}
