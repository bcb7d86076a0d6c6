//! softmax / log-softmax: forward and backward against f64 references for
//! odd row lengths and temperatures, large-magnitude logits, both kernel
//! variants, chunking on a small-binding device, and finite differences.
//! Also the helpers the other logits-op tests share.

use crate::common::*;
use engine::ops::softmax::{log_softmax, softmax, softmax_backward, softmax_forward};
use engine::ops::softmax::{LogitsParams, Variant};
use engine::{DType, Gpu, GpuOptions, Tape, Tensor};
use std::sync::Arc;

/// Every variant this adapter can run (subgroups only where supported).
pub(crate) fn variants(gpu: &Gpu) -> Vec<Variant> {
    let mut v = vec![Variant::Rows];
    if gpu.has_subgroups() {
        v.push(Variant::Subgroup);
    }
    v
}

/// The ops allocate their outputs from the buffer pool; parking NaN-filled
/// buffers of the outputs' sizes there first means every output starts
/// poisoned, so unwritten elements fail `assert_close`.
pub(crate) fn poison_next(gpu: &Arc<Gpu>, shapes: &[&[usize]]) {
    let ts: Vec<Tensor> = shapes
        .iter()
        .map(|s| {
            let t = Tensor::empty(gpu, s, DType::F32).unwrap();
            t.poison();
            t
        })
        .collect();
    drop(ts);
}

/// A device whose storage bindings pretend to hold only `bytes`.
pub(crate) fn small_gpu(bytes: u64) -> Arc<Gpu> {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(bytes);
    Gpu::new(&opts).unwrap()
}

/// 1/T as the kernels see it (f32), widened: references then differ from the
/// GPU only by f32 arithmetic, not by the rounding of 1/T itself.
pub(crate) fn inv_t(temperature: f32) -> f64 {
    (1.0 / temperature) as f64
}

/// f64 logsumexp of x·inv_t.
pub(crate) fn ref_lse(row: &[f32], inv_t: f64) -> f64 {
    let m = row
        .iter()
        .map(|&x| x as f64 * inv_t)
        .fold(f64::NEG_INFINITY, f64::max);
    m + row
        .iter()
        .map(|&x| (x as f64 * inv_t - m).exp())
        .sum::<f64>()
        .ln()
}

/// f64 softmax (or log-softmax) of x·inv_t, row by row.
fn ref_softmax(x: &[f32], v: usize, inv_t: f64, log: bool) -> Vec<f64> {
    x.chunks(v)
        .flat_map(|row| {
            let lse = ref_lse(row, inv_t);
            row.iter().map(move |&a| {
                let z = a as f64 * inv_t - lse;
                if log {
                    z
                } else {
                    z.exp()
                }
            })
        })
        .collect()
}

fn ref_backward(y: &[f64], dy: &[f32], v: usize, inv_t: f64, log: bool) -> Vec<f64> {
    y.chunks(v)
        .zip(dy.chunks(v))
        .flat_map(|(y, g)| {
            let s: f64 = if log {
                g.iter().map(|&g| g as f64).sum()
            } else {
                y.iter().zip(g).map(|(&y, &g)| y * g as f64).sum()
            };
            y.iter().zip(g).map(move |(&y, &g)| {
                let g = g as f64;
                inv_t * if log { g - y.exp() * s } else { y * (g - s) }
            })
        })
        .collect()
}

#[test]
fn logits_params_layout() {
    for stem in ["softmax", "cross_entropy_subgroup", "entropy"] {
        crate::assert_params_layout!(
            LogitsParams,
            stem,
            "LogitsParams",
            [rows, v, x_off, r_off, inv_t, scale, mode, _pad0]
        );
    }
}

#[test]
fn poisoning_through_the_pool_reaches_op_outputs() {
    let gpu = gpu();
    poison_next(&gpu, &[&[3, 5]]);
    let t = Tensor::empty(&gpu, &[3, 5], DType::F32).unwrap();
    assert!(t.to_vec().unwrap().iter().all(|v| v.is_nan()));
}

/// Forward and backward of one shape against the f64 reference.
fn check(gpu: &Arc<Gpu>, rng: &mut Rng, n: usize, v: usize, scale: f32, temp: f32, tol: f64) {
    let x = rng.normals(n * v, scale);
    let dy = rng.vec(n * v, 1.0);
    let tx = Tensor::from_f32(gpu, &[n, v], &x).unwrap();
    let tdy = Tensor::from_f32(gpu, &[n, v], &dy).unwrap();
    for variant in variants(gpu) {
        for log in [false, true] {
            let what = format!("{variant:?} log={log} N={n} V={v} T={temp}");
            poison_next(gpu, &[&[n, v]]);
            let y = softmax_forward(&tx, temp, log, variant).unwrap();
            let want = ref_softmax(&x, v, inv_t(temp), log);
            // log-softmax values are O(|z| + log V): error scales with them.
            let (atol, rtol) = if log { (tol, tol) } else { (1e-9, tol) };
            assert_close(
                &format!("{what} y"),
                &y.to_vec().unwrap(),
                &want,
                atol,
                rtol,
            );
            poison_next(gpu, &[&[n, v]]);
            let dx = softmax_backward(&y, &tdy, temp, log, variant).unwrap();
            // Reference backward from the GPU's own y isolates the backward math.
            let y64 = to_f64(&y.to_vec().unwrap());
            let want = ref_backward(&y64, &dy, v, inv_t(temp), log);
            // dx = y(dy - s)/T cancels in (dy - s): its error is ~eps·|y|(|dy| + |s|)/T.
            let atol = if log { tol } else { 3e-7 * inv_t(temp) };
            assert_close(
                &format!("{what} dx"),
                &dx.to_vec().unwrap(),
                &want,
                atol,
                tol,
            );
        }
    }
}

#[test]
fn softmax_matches_reference_at_odd_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    for (n, v) in [(1, 1), (3, 2), (5, 7), (4, 33), (9, 1000)] {
        for temp in [1.0, 0.7] {
            check(&gpu, &mut rng, n, v, 3.0, temp, 4e-6);
        }
    }
}

#[test]
fn softmax_matches_reference_at_vocab_size() {
    let gpu = gpu();
    check(&gpu, &mut Rng::new(12), 2, 50257, 3.0, 1.3, 1e-5);
}

#[test]
fn softmax_is_stable_for_large_logits() {
    // |x / T| up to 160: exp would overflow f32 without the running max.
    let gpu = gpu();
    let mut rng = Rng::new(13);
    for (n, v) in [(3, 33), (2, 1000)] {
        check(&gpu, &mut rng, n, v, 40.0, 0.5, 3e-5);
    }
}

#[test]
fn softmax_chunks_rows_on_a_small_binding_device() {
    // 4 KiB bindings hold 1024 floats: 301 rows of 37 run in about 12 chunks,
    // most of which start at an unaligned element.
    let small = small_gpu(4096);
    let mut rng = Rng::new(14);
    check(&small, &mut rng, 301, 37, 2.0, 0.9, 4e-6);
    let x = Tensor::from_f32(&small, &[1, 2000], &rng.vec(2000, 1.0)).unwrap();
    let err = softmax_forward(&x, 1.0, false, Variant::Auto).unwrap_err();
    assert!(
        format!("{err}").contains("exceeds one storage binding"),
        "{err}"
    );
}

#[test]
fn softmax_gradients_match_finite_differences() {
    let mut rng = Rng::new(15);
    let x = rng.normals(3 * 5, 1.0);
    check_grads("softmax", &[(vec![3, 5], x.clone())], 1e-2, 2e-3, |t, v| {
        softmax(t, &v[0], 0.8).unwrap()
    });
    check_grads("log_softmax", &[(vec![3, 5], x)], 1e-2, 2e-3, |t, v| {
        log_softmax(t, &v[0], 1.5).unwrap()
    });
}

#[test]
fn softmax_records_on_the_tape_only_when_needed() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let c = tape.constant(upload(&[2, 3], &[1.0, 2.0, 3.0, 0.0, 0.0, 0.0]));
    let y = softmax(&tape, &c, 1.0).unwrap();
    assert!(!y.requires_grad() && tape.is_empty());
    let want = ref_softmax(&[1.0, 2.0, 3.0, 0.0, 0.0, 0.0], 3, 1.0, false);
    assert_close("softmax", &y.tensor().to_vec().unwrap(), &want, 1e-7, 1e-6);
}

#[test]
fn softmax_refuses_rows_beyond_the_cpu_loop_budget() {
    // llvmpipe stops an invocation after 65535 loop iterations: one invocation
    // per row cannot do two passes over 300k columns, and must say so rather
    // than return a half-written row.
    let gpu = gpu();
    let v = 300_000;
    let x = Tensor::from_f32(&gpu, &[1, v], &vec![0.0; v]).unwrap();
    let rows = softmax_forward(&x, 1.0, false, Variant::Rows);
    if gpu.is_cpu() {
        let err = rows.unwrap_err();
        assert!(format!("{err}").contains("loop iterations"), "{err}");
    }
    if gpu.has_subgroups() {
        poison_next(&gpu, &[&[1, v]]);
        let y = softmax_forward(&x, 1.0, false, Variant::Subgroup).unwrap();
        let want = vec![1.0 / v as f64; v];
        assert_close("uniform row", &y.to_vec().unwrap(), &want, 0.0, 1e-5);
    }
}
