//! head_slice: both fused-QKV layouts against a CPU reference, and backward
//! by finite differences.

use crate::common::*;
use engine::ops::head_slice::{
    head_slice, head_slice_forward, split_qkv, HeadSliceParams, QkvLayout, Slice,
};
use engine::Tape;

#[test]
fn params_layout() {
    crate::assert_params_layout!(
        HeadSliceParams,
        "head_slice",
        "HeadSliceParams",
        [rows, row_stride, heads, head_dim, base, head_stride]
    );
}

fn reference(x: &[f32], rows: usize, s: &Slice) -> Vec<f64> {
    let (h, d) = (s.heads, s.head_dim);
    let mut out = Vec::new();
    for r in 0..rows {
        for hh in 0..h {
            for dd in 0..d {
                let col = match s.layout {
                    QkvLayout::Blocked => s.which as usize * h * d + hh * d + dd,
                    QkvLayout::PerHead => hh * 3 * d + s.which as usize * d + dd,
                };
                out.push(x[r * 3 * h * d + col] as f64);
            }
        }
    }
    out
}

#[test]
fn forward_matches_reference_for_both_layouts() {
    let mut rng = Rng::new(11);
    for (rows, heads, head_dim) in [(1, 1, 1), (5, 3, 4), (7, 2, 16), (3, 2, 6)] {
        let x = rng.vec(rows * 3 * heads * head_dim, 1.0);
        let tx = upload(&[rows, 3 * heads * head_dim], &x);
        for layout in [QkvLayout::Blocked, QkvLayout::PerHead] {
            for which in 0..3 {
                let s = Slice {
                    layout,
                    which,
                    heads,
                    head_dim,
                };
                let got = head_slice_forward(&tx, &s).unwrap();
                assert_eq!(got.shape(), &[rows, heads, head_dim]);
                let want = reference(&x, rows, &s);
                assert_close(
                    &format!("{layout:?} {which} {rows}x{heads}x{head_dim}"),
                    &got.to_vec().unwrap(),
                    &want,
                    0.0,
                    0.0,
                );
            }
        }
    }
}

#[test]
fn backward_scatters_into_the_right_columns() {
    let mut rng = Rng::new(12);
    let (rows, heads, hd) = (3, 2, 3);
    let x = rng.vec(rows * 3 * heads * hd, 1.0);
    for layout in [QkvLayout::Blocked, QkvLayout::PerHead] {
        for which in 0..3 {
            let s = Slice {
                layout,
                which,
                heads,
                head_dim: hd,
            };
            check_grads(
                &format!("head_slice {layout:?} {which}"),
                &[(vec![rows, 3 * heads * hd], x.clone())],
                1e-2,
                1e-4,
                |tape: &Tape, v| head_slice(tape, &v[0], s).unwrap(),
            );
        }
    }
}

#[test]
fn split_qkv_returns_the_three_parts() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let x: Vec<f32> = (0..2 * 12).map(|i| i as f32).collect();
    let v = tape.constant(upload(&[2, 12], &x));
    let [q, k, vv] = split_qkv(&tape, &v, QkvLayout::PerHead, 2, 2).unwrap();
    assert_eq!(
        q.tensor().to_vec().unwrap(),
        vec![0., 1., 6., 7., 12., 13., 18., 19.]
    );
    assert_eq!(
        k.tensor().to_vec().unwrap(),
        vec![2., 3., 8., 9., 14., 15., 20., 21.]
    );
    assert_eq!(
        vv.tensor().to_vec().unwrap(),
        vec![4., 5., 10., 11., 16., 17., 22., 23.]
    );
}
