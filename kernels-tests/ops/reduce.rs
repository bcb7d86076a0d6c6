//! reduce: sum / mean / max over the last dim and over all elements, their
//! backward, column sums for broadcast gradients, masked_mean, and chunking
//! on a small-binding device.

use super::elementwise::poison_pool;
use crate::common::*;
use engine::ops::elementwise::Broadcast;
use engine::ops::reduce::{self as rd, Axis, ReduceOp, ReduceParams};
use engine::{Gpu, GpuOptions, Tape, Tensor};
use std::sync::Arc;

const OPS: [ReduceOp; 3] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max];

/// (y, first argmax) per row of `x` viewed as [rows, cols], in f64.
fn reduce_ref(x: &[f32], cols: usize, op: ReduceOp) -> (Vec<f64>, Vec<usize>) {
    x.chunks(cols)
        .map(|row| {
            let s: f64 = row.iter().map(|&v| v as f64).sum();
            match op {
                ReduceOp::Sum => (s, 0),
                ReduceOp::Mean => (s / cols as f64, 0),
                ReduceOp::Max => {
                    let mut bi = 0;
                    for (i, &v) in row.iter().enumerate() {
                        if v > row[bi] {
                            bi = i;
                        }
                    }
                    (row[bi] as f64, bi)
                }
            }
        })
        .unzip()
}

fn backward_ref(dy: &[f32], cols: usize, op: ReduceOp, arg: &[usize]) -> Vec<f64> {
    let mut dx = Vec::with_capacity(dy.len() * cols);
    for (r, &g) in dy.iter().enumerate() {
        for c in 0..cols {
            dx.push(match op {
                ReduceOp::Sum => g as f64,
                ReduceOp::Mean => g as f64 / cols as f64,
                ReduceOp::Max => ((c == arg[r]) as u8 as f64) * g as f64,
            });
        }
    }
    dx
}

/// Random data with duplicated maxima (ties must go to the first index).
fn data(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut x = rng.vec(n, 4.0);
    for i in (0..n).step_by(5) {
        x[i] = 4.5; // the largest value, repeated
    }
    x
}

/// Checks forward and backward of one (shape, op, axis) on `gpu`.
fn check(gpu: &Arc<Gpu>, rng: &mut Rng, shape: &[usize], op: ReduceOp, axis: Axis) {
    let n: usize = shape.iter().product();
    let cols = if axis == Axis::All {
        n
    } else {
        *shape.last().unwrap()
    };
    let x = data(rng, n);
    let what = format!("{op:?} {axis:?} {shape:?}");
    let tx = Tensor::from_f32(gpu, shape, &x).unwrap();
    poison_pool(gpu, &[n, n / cols]);
    let (y, arg) = rd::reduce_forward(&tx, op, axis).unwrap();
    assert_eq!(y.shape(), &rd::out_shape(shape, axis)[..], "{what}");
    let (want, want_arg) = reduce_ref(&x, cols, op);
    // f32 sums of up to ~40k terms of |x| <= 4.5.
    let atol = 1e-6 * (cols as f64).sqrt();
    assert_close(&what, &y.to_vec().unwrap(), &want, atol, 2e-6);
    if op == ReduceOp::Max {
        let got: Vec<usize> = arg.as_ref().unwrap().to_i32_vec().unwrap()[..want_arg.len()]
            .iter()
            .map(|&i| i as usize)
            .collect();
        assert_eq!(got, want_arg, "{what}: argmax");
    }
    let dy = rng.vec(n / cols, 1.0);
    let tdy = Tensor::from_f32(gpu, y.shape(), &dy).unwrap();
    poison_pool(gpu, &[n]);
    let dx = rd::reduce_backward(&tdy, shape, op, axis, arg.as_ref()).unwrap();
    let want = backward_ref(&dy, cols, op, &want_arg);
    assert_close(
        &format!("{what} dx"),
        &dx.to_vec().unwrap(),
        &want,
        0.0,
        1e-7,
    );
}

#[test]
fn params_layout() {
    crate::assert_params_layout!(
        ReduceParams,
        "reduce",
        "ReduceParams",
        [n, cols, x_off, y_off, base, extra, row0, scale]
    );
}

#[test]
fn forward_and_backward_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(20);
    for shape in [
        vec![1, 1],
        vec![5, 37],
        vec![3, 4, 129],
        vec![1000],
        vec![7, 1],
    ] {
        for op in OPS {
            check(&gpu, &mut rng, &shape, op, Axis::Last);
            check(&gpu, &mut rng, &shape, op, Axis::All);
        }
    }
    // Full reductions with many partials (grid-stride loops, 64 workgroups).
    for n in [63usize, 4097, 40_001] {
        for op in OPS {
            check(&gpu, &mut rng, &[n], op, Axis::All);
        }
    }
}

#[test]
fn max_propagates_nan_and_breaks_ties_by_index() {
    let x = [1.0, 3.0, 3.0, -1.0, 2.0, f32::NAN, 7.0, f32::NAN];
    let (y, arg) = rd::reduce_forward(&upload(&[2, 4], &x), ReduceOp::Max, Axis::Last).unwrap();
    assert_eq!(arg.unwrap().to_i32_vec().unwrap()[..2], [1, 1]);
    let y = y.to_vec().unwrap();
    assert_eq!(y[0], 3.0);
    assert!(y[1].is_nan());
    let (y, arg) = rd::reduce_forward(&upload(&[8], &x), ReduceOp::Max, Axis::All).unwrap();
    assert!(y.item().unwrap().is_nan());
    assert_eq!(arg.unwrap().to_i32_vec().unwrap()[0], 5);
}

#[test]
fn tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(21);
    let x = rng.vec(15, 2.0); // distinct values: max is differentiable
    for op in OPS {
        for axis in [Axis::Last, Axis::All] {
            check_grads(
                &format!("{op:?} {axis:?}"),
                &[(vec![3, 5], x.clone())],
                1e-3,
                2e-3,
                |t, v| rd::reduce(t, &v[0], op, axis).unwrap(),
            );
        }
    }
    let mask: Vec<f32> = (0..15).map(|i| (i % 3 != 0) as u8 as f32).collect();
    let gpu = gpu();
    let mtensor = upload(&[3, 5], &mask);
    check_grads(
        "masked_mean",
        &[(vec![3, 5], x.clone())],
        1e-3,
        2e-3,
        move |t, v| {
            let m = t.constant(mtensor.clone());
            rd::masked_mean(t, &v[0], &m).unwrap()
        },
    );
    // masked_mean value
    let tape = Tape::new(&gpu);
    let v = tape.constant(upload(&[3, 5], &x));
    let m = tape.constant(upload(&[3, 5], &mask));
    let got = rd::masked_mean(&tape, &v, &m)
        .unwrap()
        .tensor()
        .item()
        .unwrap();
    let num: f64 = x
        .iter()
        .zip(&mask)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum();
    let den: f64 = mask.iter().map(|&b| b as f64).sum();
    assert_close("masked_mean", &[got], &[num / den], 1e-7, 1e-6);
}

#[test]
fn sum_broadcast_over_many_rows() {
    // 600 rows: three column blocks, then a second level.
    let mut rng = Rng::new(22);
    for (n, bc) in [
        (600 * 5, Broadcast { div: 1, modulo: 5 }),
        (600 * 4 * 3, Broadcast { div: 3, modulo: 4 }),
        (50, Broadcast { div: 1, modulo: 50 }),
        (77, Broadcast { div: 1, modulo: 1 }),
    ] {
        let g = rng.vec(n, 1.0);
        let mut want = vec![0.0f64; bc.modulo];
        for (i, &v) in g.iter().enumerate() {
            want[(i / bc.div) % bc.modulo] += v as f64;
        }
        let got = rd::sum_broadcast(&upload(&[n], &g), bc).unwrap();
        assert_close(
            &format!("sum_broadcast {bc:?}"),
            &got.to_vec().unwrap(),
            &want,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn chunks_on_a_small_binding_device() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096); // 1024 floats
    let small = Gpu::new(&opts).unwrap();
    let mut rng = Rng::new(23);
    for op in OPS {
        check(&small, &mut rng, &[40, 100], op, Axis::Last);
        check(&small, &mut rng, &[3, 1000], op, Axis::Last);
        check(&small, &mut rng, &[5000], op, Axis::All);
    }
    let g = rng.vec(700 * 3, 1.0);
    let got = rd::sum_broadcast(
        &Tensor::from_f32(&small, &[700, 3], &g).unwrap(),
        Broadcast { div: 1, modulo: 3 },
    )
    .unwrap();
    let want: Vec<f64> = (0..3)
        .map(|j| g.iter().skip(j).step_by(3).map(|&v| v as f64).sum())
        .collect();
    assert_close(
        "chunked column sums",
        &got.to_vec().unwrap(),
        &want,
        1e-5,
        1e-5,
    );
}
