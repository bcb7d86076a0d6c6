//! LoRA on a frozen int8 / NF4 base (QLoRA), fused into the dequantizing
//! kernels: the epilogue itself on poisoned outputs (forward V = B `[N, r]`,
//! backward V = A `[r, K]`; the GEMM and, for one row, the GEMV), the fused
//! op's y, dx, dA, dB against an f64 reference from the dequantized weight
//! and against the unfused composition, row chunking on a small-binding
//! device, and the tape against finite differences (W gets no gradient).

use crate::common::*;
use engine::ops::lora::{
    lora_backward, lora_forward, qlora_linear, LoraBase, LoraDropout, LoraSpec, LowRank,
};
use engine::ops::qmatmul::{qmatmul_backward_into, qmatmul_forward_into, QgemmPath};
use engine::quant::{QuantFormat, QuantizedWeight};
use engine::{Gpu, GpuOptions, Tensor};
use std::sync::Arc;

const FORMATS: [QuantFormat; 2] = [QuantFormat::Int8, QuantFormat::Nf4];

/// `Σ_t a(t)·b(t)` in f64 and `Σ_t |a(t)·b(t)|` (the f32 rounding scale).
fn dot(len: usize, f: impl Fn(usize) -> (f64, f64)) -> (f64, f64) {
    (0..len).fold((0.0, 0.0), |(s, a), t| {
        let (x, y) = f(t);
        (s + x * y, a + (x * y).abs())
    })
}

/// Paths to run for an M-row problem with K inputs: both general kernels,
/// and NF4's GEMV where it applies (one row, K % 64 == 0).
fn paths(format: QuantFormat, m: usize, k: usize) -> Vec<QgemmPath> {
    let mut v = vec![QgemmPath::Fused, QgemmPath::Staged];
    if format == QuantFormat::Nf4 && m == 1 && k.is_multiple_of(64) {
        v.push(QgemmPath::Gemv);
    }
    v
}

/// The epilogue alone: y = x·Wᵀ (+ bias) + s·U·Vᵀ and dx = dy·W + s·U'·A
/// into poisoned outputs, for both formats and every kernel; the last shape
/// (1.1M weights) takes two staged panels each way.
#[test]
fn epilogue_writes_every_element() {
    let gpu = gpu();
    let mut rng = Rng::new(3);
    for format in FORMATS {
        for (m, k, n, r) in [
            (21, 13, 67, 3),
            (1, 64, 37, 16),
            (130, 100, 9, 5),
            (1, 7, 5, 1),
            (3, 1000, 1100, 4),
        ] {
            let w = rng.normals(n * k, 0.5);
            let q = QuantizedWeight::from_host(&gpu, &w, n, k, format).unwrap();
            let wd = q.dequantize_host().unwrap();
            let (x, dy, bias) = (rng.vec(m * k, 1.0), rng.vec(m * n, 1.0), rng.vec(n, 1.0));
            let (u, v, va) = (
                rng.vec(m * r, 1.0),
                rng.vec(n * r, 1.0),
                rng.vec(r * k, 1.0),
            );
            let (tu, tv, ta) = (
                upload(&[m, r], &u),
                upload(&[n, r], &v),
                upload(&[r, k], &va),
            );
            let s = -0.75;
            let (mut want_y, mut scale_y) = (vec![0.0; m * n], 0.0f64);
            for i in 0..m {
                for j in 0..n {
                    let base = dot(k, |t| (x[i * k + t] as f64, wd[j * k + t] as f64));
                    let low = dot(r, |q| (u[i * r + q] as f64, v[j * r + q] as f64));
                    want_y[i * n + j] = base.0 + bias[j] as f64 + s as f64 * low.0;
                    scale_y = scale_y.max(base.1 + low.1);
                }
            }
            let (mut want_dx, mut scale_dx) = (vec![0.0; m * k], 0.0f64);
            for i in 0..m {
                for t in 0..k {
                    let base = dot(n, |j| (dy[i * n + j] as f64, wd[j * k + t] as f64));
                    let low = dot(r, |q| (u[i * r + q] as f64, va[q * k + t] as f64));
                    want_dx[i * k + t] = base.0 + s as f64 * low.0;
                    scale_dx = scale_dx.max(base.1 + low.1);
                }
            }
            for path in paths(format, m, k) {
                let what = format!("{format:?} {path:?} m{m} k{k} n{n} r{r}");
                let y = poisoned(&[m, n]);
                let lr = LowRank::new(&tu, &tv, false, s).unwrap();
                let tb = upload(&[n], &bias);
                qmatmul_forward_into(path, &y, &upload(&[m, k], &x), &q, Some(&tb), Some(&lr))
                    .unwrap();
                let got = y.to_vec().unwrap();
                assert_close(
                    &format!("{what} forward"),
                    &got,
                    &want_y,
                    2e-6 * scale_y,
                    1e-6,
                );
                if path == QgemmPath::Gemv {
                    continue; // forward only
                }
                let dx = poisoned(&[m, k]);
                let lr = LowRank::new(&tu, &ta, true, s).unwrap();
                qmatmul_backward_into(path, &dx, &upload(&[m, n], &dy), &q, Some(&lr)).unwrap();
                let got = dx.to_vec().unwrap();
                assert_close(
                    &format!("{what} backward"),
                    &got,
                    &want_dx,
                    2e-6 * scale_dx,
                    1e-6,
                );
            }
        }
    }
}

/// One fused QLoRA problem against the f64 reference and the unfused op.
#[allow(clippy::too_many_arguments)]
fn check_op(
    gpu: &Arc<Gpu>,
    format: QuantFormat,
    path: QgemmPath,
    (m, k, n, r): (usize, usize, usize, usize),
    with_bias: bool,
    dropout: Option<LoraDropout>,
    seed: u64,
) {
    let what = format!("{format:?} {path:?} m{m} k{k} n{n} r{r} bias {with_bias} {dropout:?}");
    let mut rng = Rng::new(seed);
    let w = rng.normals(n * k, 0.3);
    let q = QuantizedWeight::from_host(gpu, &w, n, k, format).unwrap();
    let wd: Vec<f64> = to_f64(&q.dequantize_host().unwrap());
    let (x, bias, a, b, dy) = (
        rng.vec(m * k, 1.0),
        rng.vec(n, 1.0),
        rng.vec(r * k, 1.0),
        rng.vec(n * r, 1.0),
        rng.vec(m * n, 1.0),
    );
    let up = |shape: &[usize], v: &[f32]| Tensor::from_f32(gpu, shape, v).unwrap();
    let (tx, tbias, ta, tb, tdy) = (
        up(&[m, k], &x),
        up(&[n], &bias),
        up(&[r, k], &a),
        up(&[n, r], &b),
        up(&[m, n], &dy),
    );
    let keep: Vec<f64> = match dropout {
        Some(d) => {
            let ones = Tensor::full(gpu, &[m * k], 1.0).unwrap();
            let t = engine::ops::dropout::dropout_forward(&ones, d.p, d.seed, d.offset).unwrap();
            to_f64(&t.to_vec().unwrap())
        }
        None => vec![1.0; m * k],
    };
    let s = 1.75f64;
    let spec = LoraSpec {
        dropout,
        ..LoraSpec::new(s as f32, true)
    };
    let base = LoraBase::Quantized { w: q, path };
    let bias_t = with_bias.then_some(&tbias);
    let (y, xa) = lora_forward(&spec, &base, &tx, bias_t, &ta, &tb).unwrap();
    let reference = LoraSpec {
        unfused: true,
        ..spec
    };
    let (unfused, _) = lora_forward(&reference, &base, &tx, bias_t, &ta, &tb).unwrap();
    let g = lora_backward(
        &spec,
        &base,
        &tdy,
        &tx,
        &ta,
        &tb,
        &xa,
        [true, false, with_bias, true, true],
    )
    .unwrap();
    // f64 reference.
    let f = |v: f32| v as f64;
    let xd: Vec<f64> = (0..m * k).map(|i| f(x[i]) * keep[i]).collect();
    let mut want_xa = vec![0.0; m * r];
    let mut dxa = vec![0.0; m * r];
    for i in 0..m {
        for q in 0..r {
            want_xa[i * r + q] = (0..k).map(|t| xd[i * k + t] * f(a[q * k + t])).sum();
            dxa[i * r + q] = s
                * (0..n)
                    .map(|j| f(dy[i * n + j]) * f(b[j * r + q]))
                    .sum::<f64>();
        }
    }
    let (mut want_y, mut want_dx) = (vec![0.0; m * n], vec![0.0; m * k]);
    for i in 0..m {
        for j in 0..n {
            let base: f64 = (0..k).map(|t| f(x[i * k + t]) * wd[j * k + t]).sum();
            let low: f64 = (0..r).map(|q| want_xa[i * r + q] * f(b[j * r + q])).sum();
            let bias = if with_bias { f(bias[j]) } else { 0.0 };
            want_y[i * n + j] = base + bias + s * low;
        }
        for t in 0..k {
            let base: f64 = (0..n).map(|j| f(dy[i * n + j]) * wd[j * k + t]).sum();
            let low: f64 = (0..r).map(|q| dxa[i * r + q] * f(a[q * k + t])).sum();
            want_dx[i * k + t] = base + keep[i * k + t] * low;
        }
    }
    let mut want_da = vec![0.0; r * k];
    for q in 0..r {
        for t in 0..k {
            want_da[q * k + t] = (0..m).map(|i| dxa[i * r + q] * xd[i * k + t]).sum();
        }
    }
    let mut want_db = vec![0.0; n * r];
    for j in 0..n {
        for q in 0..r {
            want_db[j * r + q] = s
                * (0..m)
                    .map(|i| f(dy[i * n + j]) * want_xa[i * r + q])
                    .sum::<f64>();
        }
    }
    let want_dbias: Vec<f64> = (0..n)
        .map(|j| (0..m).map(|i| f(dy[i * n + j])).sum())
        .collect();
    let mut checks = vec![
        ("y", Some(y), &want_y),
        ("unfused y", Some(unfused), &want_y),
        ("xa", Some(xa), &want_xa),
        ("dx", g.dx, &want_dx),
        ("dA", g.da, &want_da),
        ("dB", g.db, &want_db),
    ];
    if with_bias {
        checks.push(("dbias", g.dbias, &want_dbias));
    }
    // Inputs are O(1) and sums short: f32 accumulation stays well inside these.
    for (name, got, want) in checks {
        let got = got.unwrap_or_else(|| panic!("{what}: no {name}"));
        assert_close(
            &format!("{what}: {name}"),
            &got.to_vec().unwrap(),
            want,
            5e-5,
            2e-5,
        );
    }
}

#[test]
fn fused_op_matches_reference_and_unfused() {
    let gpu = gpu();
    let shapes = [
        (19, 33, 70, 4),
        (1, 64, 37, 16),
        (1, 7, 5, 1),
        (37, 24, 13, 16),
        (130, 100, 9, 3),
    ];
    for (fi, format) in FORMATS.into_iter().enumerate() {
        for (si, &(m, k, n, r)) in shapes.iter().enumerate() {
            for path in paths(format, m, k) {
                let seed = 100 * fi as u64 + si as u64;
                check_op(&gpu, format, path, (m, k, n, r), si % 2 == 0, None, seed);
            }
        }
    }
}

#[test]
fn dropout_applies_to_the_input_of_a_only() {
    let gpu = gpu();
    let d = Some(LoraDropout {
        p: 0.4,
        seed: 7,
        offset: 3,
    });
    for format in FORMATS {
        check_op(&gpu, format, QgemmPath::Auto, (9, 21, 17, 4), true, d, 40);
        check_op(&gpu, format, QgemmPath::Auto, (1, 64, 17, 4), false, d, 41);
    }
}

#[test]
fn chunks_rows_on_a_small_binding_device() {
    // 4 KiB bindings (1024 floats): x, y, dx, dy and U = x·Aᵀ [300, 4] split by rows.
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    for format in FORMATS {
        for path in [QgemmPath::Fused, QgemmPath::Staged] {
            check_op(&small, format, path, (70, 40, 45, 16), true, None, 60);
            check_op(&small, format, path, (300, 5, 6, 4), false, None, 61);
        }
    }
}

#[test]
fn tape_gradients_match_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    // (m, k, n, r): a GEMM shape and a one-row shape that NF4 runs as a GEMV.
    for (m, k, n, r) in [(3, 5, 4, 2), (1, 64, 3, 2)] {
        for format in FORMATS {
            let q =
                QuantizedWeight::from_host(&gpu, &rng.normals(n * k, 1.0), n, k, format).unwrap();
            for dropout in [
                None,
                Some(LoraDropout {
                    p: 0.3,
                    seed: 1,
                    offset: 2,
                }),
            ] {
                let spec = LoraSpec {
                    dropout,
                    ..LoraSpec::new(1.5, true)
                };
                let inputs = [
                    (vec![m, k], rng.vec(m * k, 1.0)),
                    (vec![n], rng.vec(n, 1.0)),
                    (vec![r, k], rng.vec(r * k, 1.0)),
                    (vec![n, r], rng.vec(n * r, 1.0)),
                ];
                check_grads(
                    &format!("qlora_linear {format:?} m{m} k{k} dropout={dropout:?}"),
                    &inputs,
                    1e-2,
                    2e-3,
                    |tape, v| {
                        qlora_linear(tape, &spec, &v[0], &q, Some(&v[1]), &v[2], &v[3]).unwrap()
                    },
                );
            }
        }
    }
}

#[test]
fn frozen_base_and_bad_shapes() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    let q =
        QuantizedWeight::from_host(&gpu, &rng.normals(5 * 4, 1.0), 5, 4, QuantFormat::Nf4).unwrap();
    let tape = engine::Tape::new(&gpu);
    let x = tape.param(&upload(&[2, 3, 4], &rng.vec(24, 1.0)));
    let a = tape.param(&upload(&[2, 4], &rng.vec(8, 1.0)));
    let b = tape.param(&upload(&[5, 2], &rng.vec(10, 1.0)));
    let spec = LoraSpec::new(1.0, true);
    let y = qlora_linear(&tape, &spec, &x, &q, None, &a, &b).unwrap();
    assert_eq!(y.shape(), [2, 3, 5]);
    let grads = tape.backward(&y).unwrap();
    assert_eq!(grads.get(&x).unwrap().shape(), [2, 3, 4]);
    assert_eq!(grads.get(&a).unwrap().shape(), [2, 4]);
    assert_eq!(grads.get(&b).unwrap().shape(), [5, 2]);
    // A quantized base has no dW, and mismatched adapters are refused.
    let base = LoraBase::quantized(&q);
    let (_, xa) = lora_forward(&spec, &base, x.tensor(), None, a.tensor(), b.tensor()).unwrap();
    let dy = upload(&[2, 3, 5], &[1.0; 30]);
    let e = lora_backward(
        &spec,
        &base,
        &dy,
        x.tensor(),
        a.tensor(),
        b.tensor(),
        &xa,
        [false, true, false, false, false],
    );
    assert!(e.is_err_and(|e| format!("{e:#}").contains("frozen")));
    let bad = upload(&[3, 4], &[0.0; 12]);
    let e = lora_forward(&spec, &base, x.tensor(), None, &bad, b.tensor());
    assert!(e.is_err(), "A [3, 4] with B [5, 2] must be rejected");
}
