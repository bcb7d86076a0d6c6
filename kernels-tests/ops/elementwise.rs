//! elementwise: binary ops with every broadcast pattern, unary ops, their
//! backward against f64 and finite differences, and chunking on a
//! small-binding device (including a broadcast operand larger than a binding).
//! The unary ops' tests are in `elementwise/unary.rs`.

mod unary;

use crate::common::*;
use engine::ops::elementwise::{self as ew, BinaryOp, Broadcast, EwParams, UnaryOp};
use engine::{Gpu, GpuOptions, Tape, Tensor};
use std::sync::Arc;

/// Fills the buffer pool with NaN-poisoned buffers of these element counts,
/// so the next outputs an op allocates start poisoned.
pub fn poison_pool(gpu: &Arc<Gpu>, sizes: &[usize]) {
    let ts: Vec<Tensor> = sizes
        .iter()
        .flat_map(|&n| (0..3).map(move |_| n))
        .map(|n| {
            let t = Tensor::empty(gpu, &[n], engine::DType::F32).unwrap();
            t.poison();
            t
        })
        .collect();
    drop(ts);
}

const BINARY: [BinaryOp; 7] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::Gt,
];

fn bin_ref(op: BinaryOp, x: f64, z: f64) -> f64 {
    match op {
        BinaryOp::Add => x + z,
        BinaryOp::Sub => x - z,
        BinaryOp::Mul => x * z,
        BinaryOp::Div => x / z,
        BinaryOp::Maximum => x.max(z),
        BinaryOp::Minimum => x.min(z),
        BinaryOp::Gt => (x > z) as u8 as f64,
    }
}

/// (d/da, d/db) of one element, ties split in halves.
fn bin_grad_ref(op: BinaryOp, x: f64, z: f64) -> (f64, f64) {
    match op {
        BinaryOp::Add => (1.0, 1.0),
        BinaryOp::Sub => (1.0, -1.0),
        BinaryOp::Mul => (z, x),
        BinaryOp::Div => (1.0 / z, -x / (z * z)),
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let w = if x == z {
                0.5
            } else if (x > z) == (op == BinaryOp::Maximum) {
                1.0
            } else {
                0.0
            };
            (w, 1.0 - w)
        }
        BinaryOp::Gt => unreachable!(),
    }
}

/// Inputs for b that keep division well conditioned and create some ties.
fn operands(rng: &mut Rng, n: usize, m: usize) -> (Vec<f32>, Vec<f32>) {
    let a: Vec<f32> = rng.vec(n, 2.0);
    let mut b: Vec<f32> = (0..m)
        .map(|_| {
            let v = rng.uniform(0.5, 2.0);
            if rng.below(2) == 0 {
                -v
            } else {
                v
            }
        })
        .collect();
    if m > 1 {
        b[0] = a[0]; // a tie for maximum/minimum
    }
    (a, b)
}

#[test]
fn params_layout() {
    crate::assert_params_layout!(
        EwParams,
        "elementwise",
        "EwParams",
        [n, off, base, div, modulo, b_lo, b_off, alpha, beta]
    );
}

#[test]
fn broadcast_inference() {
    let bc = |a: &[usize], b: &[usize]| Broadcast::infer(a, b).unwrap();
    let d = |div, modulo| Broadcast { div, modulo };
    assert_eq!(bc(&[3, 5], &[3, 5]), d(1, 15));
    assert_eq!(bc(&[3, 5], &[5]), d(1, 5));
    assert_eq!(bc(&[3, 5], &[1, 5]), d(1, 5));
    assert_eq!(bc(&[3, 5], &[3, 1]), d(5, 3));
    assert_eq!(bc(&[3, 5], &[1]), d(1, 1));
    assert_eq!(bc(&[3, 5], &[]), d(1, 1));
    assert_eq!(bc(&[2, 3, 4], &[3, 1]), d(4, 3));
    assert_eq!(bc(&[2, 3, 4], &[2, 3, 1]), d(4, 6));
    assert_eq!(
        bc(&[2, 1, 4], &[2, 1, 4]),
        d(1, 8),
        "size-1 dims of a are transparent"
    );
    assert_eq!(bc(&[4, 1, 3], &[4, 1, 1]), d(3, 4));
    assert_eq!(bc(&[4, 1, 3], &[1, 3]), d(1, 3));
    for (a, b) in [
        (vec![3, 5], vec![3]),
        (vec![3, 5], vec![2, 3, 5]),
        (vec![2, 3, 4], vec![2, 1, 4]),
    ] {
        let e = Broadcast::infer(&a, &b).unwrap_err().to_string();
        assert!(e.contains("cannot broadcast"), "{e}");
    }
}

/// (a shape, b shape) pairs covering same-shape, bias, per-row, scalar, middle.
fn patterns() -> Vec<(Vec<usize>, Vec<usize>)> {
    vec![
        (vec![7, 37], vec![7, 37]),
        (vec![7, 37], vec![37]),
        (vec![7, 37], vec![7, 1]),
        (vec![7, 37], vec![1]),
        (vec![3, 5, 9], vec![5, 1]),
        (vec![1, 1], vec![1]),
        (vec![300, 3], vec![300, 1]),
        // Multiples of 4 elements run the vec4 forward, b read as aligned
        // vec4s (same shape, bias), one value per quad (per-row, scalar, a
        // middle dim over 8) or per element (a bias of 6).
        (vec![8, 36], vec![8, 36]),
        (vec![8, 36], vec![36]),
        (vec![8, 36], vec![8, 1]),
        (vec![8, 36], vec![1]),
        (vec![2, 3, 8], vec![3, 1]),
        (vec![4, 6], vec![6]),
    ]
}

/// The vec4 forward (element counts a multiple of 4) gives the scalar one's
/// values bit for bit: a same-shape op on 4k + 1 elements (scalar) against
/// its first 4k (vec4), and a bias op against the host's f32 arithmetic.
#[test]
fn binary_vec4_forward_equals_the_scalar_forward() {
    let gpu = gpu();
    let mut rng = Rng::new(16);
    let (rows, cols) = (37, 12);
    let a = rng.vec(rows * cols + cols, 3.0);
    let b = rng.vec(rows * cols + cols, 3.0);
    let up = |s: &[usize], d: &[f32]| Tensor::from_f32(&gpu, s, d).unwrap();
    for op in [BinaryOp::Add, BinaryOp::Mul] {
        let n = rows * cols;
        let same = |n: usize| {
            let bc = Broadcast::same(n);
            let y = ew::binary_forward(op, &up(&[n], &a[..n]), &up(&[n], &b[..n]), bc);
            y.unwrap().to_vec().unwrap()
        };
        assert_eq!(same(n)[..], same(n + 1)[..n], "{op:?} same shape");
        let bias = |r: usize, c: usize| {
            let bc = Broadcast::infer(&[r, c], &[c]).unwrap();
            let y = ew::binary_forward(op, &up(&[r, c], &a[..r * c]), &up(&[c], &b[..c]), bc);
            y.unwrap().to_vec().unwrap()
        };
        // One IEEE operation per element: the host's f32 result exactly.
        let want: Vec<f32> = (0..n)
            .map(|i| match op {
                BinaryOp::Add => a[i] + b[i % cols],
                _ => a[i] * b[i % cols],
            })
            .collect();
        assert_eq!(bias(rows, cols), want, "{op:?} bias");
    }
}

/// `op` on `a` [sa] by `b` [sb] on `gpu`, forward and backward (for the
/// output gradient `dy`) against f64, with the pool poisoned before each.
fn check_binary(
    gpu: &Arc<Gpu>,
    op: BinaryOp,
    (sa, a): (&[usize], &[f32]),
    (sb, b): (&[usize], &[f32]),
    dy: &[f32],
) {
    let bc = Broadcast::infer(sa, sb).unwrap();
    let (n, m) = (a.len(), b.len());
    let up = |s: &[usize], d: &[f32]| Tensor::from_f32(gpu, s, d).unwrap();
    let (ta, tb, tdy) = (up(sa, a), up(sb, b), up(sa, dy));
    let bi = |i: usize| (i / bc.div) % bc.modulo;
    let what = format!(
        "{op:?} {sa:?} by {sb:?} (bindings ≤ {} B)",
        gpu.max_binding()
    );
    poison_pool(gpu, &[n, m]);
    let y = ew::binary_forward(op, &ta, &tb, bc).unwrap();
    assert_eq!(y.shape(), sa);
    let want: Vec<f64> = (0..n)
        .map(|i| bin_ref(op, a[i] as f64, b[bi(i)] as f64))
        .collect();
    assert_close(&what, &y.to_vec().unwrap(), &want, 0.0, 1.5e-7);
    if op == BinaryOp::Gt {
        return;
    }
    poison_pool(gpu, &[n, m]);
    let (da, db) = ew::binary_backward(op, &tdy, &ta, &tb, bc, [true, true]).unwrap();
    let (da, db) = (da.unwrap(), db.unwrap());
    assert_eq!(db.shape(), sb);
    let mut want_da = vec![0.0; n];
    let mut want_db = vec![0.0; m];
    for i in 0..n {
        let (ga, gz) = bin_grad_ref(op, a[i] as f64, b[bi(i)] as f64);
        want_da[i] = dy[i] as f64 * ga;
        want_db[bi(i)] += dy[i] as f64 * gz;
    }
    assert_close(
        &format!("{what} da"),
        &da.to_vec().unwrap(),
        &want_da,
        1e-7,
        2e-7,
    );
    // db sums up to n/m terms in f32.
    assert_close(
        &format!("{what} db"),
        &db.to_vec().unwrap(),
        &want_db,
        1e-5,
        1e-5,
    );
}

#[test]
fn binary_forward_and_backward_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(10);
    for (sa, sb) in patterns() {
        let (a, b) = operands(&mut rng, sa.iter().product(), sb.iter().product());
        let dy = rng.vec(a.len(), 1.0);
        for op in BINARY {
            check_binary(&gpu, op, (&sa, &a), (&sb, &b), &dy);
        }
    }
}

#[test]
fn binary_tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(12);
    // Binary ops on a [3, 4] by every broadcast pattern; no near-ties.
    let a: Vec<f32> = rng.vec(12, 2.0);
    let b_for = |m: usize, rng: &mut Rng| -> Vec<f32> {
        (0..m)
            .map(|i| rng.uniform(0.6, 1.5) * if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect()
    };
    for sb in [vec![3, 4], vec![4], vec![3, 1], vec![1]] {
        let m: usize = sb.iter().product();
        let b = b_for(m, &mut rng);
        for op in &BINARY[..6] {
            let op = *op;
            check_grads(
                &format!("{op:?} [3,4] by {sb:?}"),
                &[(vec![3, 4], a.clone()), (sb.clone(), b.clone())],
                1e-3,
                3e-3,
                |t, v| ew::binary(t, op, &v[0], &v[1]).unwrap(),
            );
        }
    }
}

#[test]
fn tape_wrappers_and_constants() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let a = tape.param(&upload(&[2, 2], &[1.0, -2.0, 3.0, 0.5]));
    let b = tape.constant(upload(&[2], &[0.5, 1.0]));
    let y = ew::add(
        &tape,
        &ew::mul(&tape, &a, &b).unwrap(),
        &ew::neg(&tape, &a).unwrap(),
    )
    .unwrap();
    let y = ew::scale(&tape, &ew::clamp(&tape, &y, -1.0, 1.0).unwrap(), 2.0, 1.0).unwrap();
    assert_close(
        "composite",
        &y.tensor().to_vec().unwrap(),
        &[0.0, 1.0, -1.0, 1.0],
        0.0,
        1e-7,
    );
    let flag = ew::gt(&tape, &a, &b).unwrap();
    assert!(!flag.requires_grad(), "gt is a constant");
    assert_close(
        "gt",
        &flag.tensor().to_vec().unwrap(),
        &[1.0, 0.0, 1.0, 0.0],
        0.0,
        0.0,
    );
    let g = tape.backward(&y).unwrap();
    // y = 2·clamp(a·b - a) + 1: gradient 2(b - 1) where inside (-1, 1).
    assert_close(
        "da",
        &g.get(&a).unwrap().to_vec().unwrap(),
        &[-1.0, 0.0, 0.0, 0.0],
        0.0,
        1e-7,
    );
    assert!(g.get(&b).is_none());
}

#[test]
fn chunks_on_a_small_binding_device() {
    // 4 KiB bindings: 1024 floats. Every operand below exceeds that.
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    let mut rng = Rng::new(13);
    for (sa, sb) in [
        (vec![2500], vec![2500]),
        (vec![3, 2000], vec![2000]),
        (vec![2000, 3], vec![2000, 1]),
        (vec![2, 1500, 2], vec![1500, 1]),
        (vec![3000, 2], vec![2]),
        (vec![2100], vec![1]),
    ] {
        let (a, b) = operands(&mut rng, sa.iter().product(), sb.iter().product());
        let dy = rng.vec(a.len(), 1.0);
        for op in [BinaryOp::Sub, BinaryOp::Div] {
            check_binary(&small, op, (&sa, &a), (&sb, &b), &dy);
        }
    }
    let x = rng.vec(3001, 3.0);
    let y = ew::unary_forward(
        UnaryOp::Exp,
        &Tensor::from_f32(&small, &[3001], &x).unwrap(),
    )
    .unwrap();
    let want: Vec<f64> = x.iter().map(|&v| (v as f64).exp()).collect();
    assert_close("chunked exp", &y.to_vec().unwrap(), &want, 0.0, 1e-6);
}
