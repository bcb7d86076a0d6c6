//! rotary: GPT-NeoX rotate_half rotary embedding against an f64 reference
//! that uses transformers' f32 angle formula, partial rotation, left-padded
//! positions, q and k rotated straight out of a fused qkv (rotary_slice),
//! chunking and the tape.

use crate::common::*;
use engine::ops::head_slice::{head_slice_backward, head_slice_forward, QkvLayout, Slice};
use engine::ops::rotary::*;
use engine::{DType, Gpu, GpuOptions, Tensor};
use std::sync::Arc;

/// f64 rotation of x [BT, H, D]; `sign` -1 gives the transposed rotation.
/// Angles are transformers' f32 ones (f32 inv_freq, f32 product); cos/sin and
/// the rotation itself are in f64. Positions are clamped like the kernel.
pub(crate) fn reference(
    x: &[f32],
    pos: &[i32],
    h: usize,
    d: usize,
    rot_dim: usize,
    max_pos: usize,
    sign: f64,
) -> Vec<f64> {
    let half = rot_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0f32 / 10000f32.powf((2 * i) as f32 / rot_dim as f32))
        .collect();
    let mut out: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (tok, &p) in pos.iter().enumerate() {
        let p = p.clamp(0, max_pos as i32 - 1);
        for hh in 0..h {
            let base = (tok * h + hh) * d;
            for i in 0..half {
                let a = (p as f32 * inv[i]) as f64;
                let (s, c) = (sign * a.sin(), a.cos());
                let x1 = x[base + i] as f64;
                let x2 = x[base + i + half] as f64;
                out[base + i] = x1 * c - x2 * s;
                out[base + i + half] = x2 * c + x1 * s;
            }
        }
    }
    out
}

/// Left-padded positions: sequence b has `pads[b]` pads (given `pad_pos`)
/// followed by real tokens at 0, 1, 2...
pub(crate) fn left_padded(t: usize, pads: &[usize], pad_pos: i32) -> Vec<i32> {
    pads.iter()
        .flat_map(|&np| (0..t).map(move |j| if j < np { pad_pos } else { (j - np) as i32 }))
        .collect()
}

#[test]
fn rotary_params_layout() {
    crate::assert_params_layout!(
        RotaryParams,
        "rotary",
        "RotaryParams",
        [
            rows,
            heads,
            d,
            rot_half,
            x_stride,
            x_off,
            out_off,
            pos_off,
            max_pos,
            x_head_stride,
            out_stride,
            out_head_stride
        ]
    );
}

#[test]
fn rotary_matches_f64_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    for d in [16usize, 24, 64] {
        for pct in [0.25, 1.0] {
            let table = RotaryTable::new(&gpu, d, pct, 10000.0, 64).unwrap();
            assert_eq!(table.rot_dim, (d as f64 * pct) as usize);
            for (b, t, h) in [(2usize, 5usize, 3usize), (3, 1, 2)] {
                let what = format!("D={d} pct={pct} B={b} T={t} H={h}");
                let n = b * t * h * d;
                let x = rng.vec(n, 2.0);
                let pads: Vec<usize> = (0..b).map(|i| i % t.max(1)).collect();
                // Pads carry out-of-table positions: clamped, never out of bounds.
                let pad_pos = if d == 24 { -5 } else { 1_000_000 };
                let pos = left_padded(t, &pads, pad_pos);
                let tpos = Tensor::from_i32(&gpu, &[b, t], &pos).unwrap();
                let out = poisoned(&[b, t, h, d]);
                rotary_into(
                    Rotation::Forward,
                    &out,
                    &upload(&[b, t, h, d], &x),
                    &tpos,
                    &table,
                )
                .unwrap();
                let want = reference(&x, &pos, h, d, table.rot_dim, 64, 1.0);
                assert_close(&what, &out.to_vec().unwrap(), &want, 1e-6, 1e-6);

                let dy = rng.vec(n, 2.0);
                let dx = poisoned(&[b, t, h, d]);
                rotary_into(
                    Rotation::Backward,
                    &dx,
                    &upload(&[b, t, h, d], &dy),
                    &tpos,
                    &table,
                )
                .unwrap();
                let want = reference(&dy, &pos, h, d, table.rot_dim, 64, -1.0);
                assert_close(
                    &format!("d{what}"),
                    &dx.to_vec().unwrap(),
                    &want,
                    1e-6,
                    1e-6,
                );
            }
        }
    }
}

#[test]
fn rotary_is_accurate_at_long_positions() {
    // Pythia: D = 64, rotary_pct 0.25 (rot_dim 16), positions up to 2047.
    let gpu = gpu();
    let mut rng = Rng::new(22);
    let table = RotaryTable::new(&gpu, 64, 0.25, 10000.0, 2048).unwrap();
    assert_eq!(table.rot_dim, 16);
    let (b, t, h, d) = (1, 40, 2, 64);
    let pos: Vec<i32> = (0..t as i32).map(|j| 2047 - 51 * j).collect();
    let x = rng.vec(b * t * h * d, 1.0);
    let out = rotary_forward(
        &upload(&[b, t, h, d], &x),
        &Tensor::from_i32(&gpu, &[b, t], &pos).unwrap(),
        &table,
    )
    .unwrap();
    let want = reference(&x, &pos, h, d, 16, 2048, 1.0);
    assert_close("long positions", &out.to_vec().unwrap(), &want, 1e-6, 1e-6);
    // The f32 angle formula is what transformers uses.
    let inv = RotaryTable::inv_freq(16, 10000.0);
    assert_eq!(inv[0], 1.0);
    assert_eq!(inv[1], 1.0f32 / 10000f32.powf(2.0 / 16.0));
    assert_eq!(RotaryTable::angle(2047, inv[1]), 2047.0f32 * inv[1]);
}

/// A slice of both fused layouts at every partial rotation, against the
/// f64 reference and, bit for bit, against head_slice then rotary (the two
/// passes it replaces); the backward against head_slice's backward of the
/// inverse rotation, zero outside the slice's columns.
#[test]
fn rotary_slice_is_head_slice_then_rotary_bit_for_bit() {
    let gpu = gpu();
    let mut rng = Rng::new(23);
    for layout in [QkvLayout::PerHead, QkvLayout::Blocked] {
        for (b, t, h, d, pct) in [(2, 3, 2, 24, 0.25), (1, 1, 3, 8, 1.0), (3, 5, 1, 16, 0.5)] {
            let table = RotaryTable::new(&gpu, d, pct, 10000.0, 8).unwrap();
            let width = 3 * h * d;
            let fused = rng.vec(b * t * width, 1.0);
            let pads: Vec<usize> = (0..b).map(|i| (2 * i) % t).collect();
            let pos = left_padded(t, &pads, 0);
            let tpos = Tensor::from_i32(&gpu, &[b, t], &pos).unwrap();
            let tf = upload(&[b, t, width], &fused);
            for which in 0..3 {
                let what = format!("{layout:?} which {which} B={b} T={t} H={h} D={d} pct {pct}");
                let s = Slice {
                    layout,
                    which,
                    heads: h,
                    head_dim: d,
                };
                let got = rotary_slice_forward(&tf, &s, &tpos, &table).unwrap();
                assert_eq!(got.shape(), [b, t, h, d]);
                let sliced = head_slice_forward(&tf, &s).unwrap();
                let two_pass = rotary_forward(&sliced, &tpos, &table).unwrap();
                assert_eq!(got.to_vec().unwrap(), two_pass.to_vec().unwrap(), "{what}");
                let plain = sliced.to_vec().unwrap();
                let want = reference(&plain, &pos, h, d, table.rot_dim, 8, 1.0);
                assert_close(&what, &got.to_vec().unwrap(), &want, 1e-6, 1e-6);

                let dy = upload(&[b, t, h, d], &rng.vec(b * t * h * d, 1.0));
                let dqkv = rotary_slice_backward(&dy, &[b, t, width], &s, &tpos, &table).unwrap();
                let inverse = rotary_backward(&dy, &tpos, &table).unwrap();
                let two_pass = head_slice_backward(&inverse, &[b, t, width], &s).unwrap();
                assert_eq!(
                    dqkv.to_vec().unwrap(),
                    two_pass.to_vec().unwrap(),
                    "d{what}"
                );
            }
        }
    }
}

#[test]
fn rotary_slice_chunks_a_fused_qkv_larger_than_one_binding() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small: Arc<Gpu> = Gpu::new(&opts).unwrap();
    let mut rng = Rng::new(26);
    let (b, t, h, d) = (2, 9, 3, 16); // qkv: 2592 elements, several bindings
    let table = RotaryTable::new(&small, d, 0.25, 10000.0, 16).unwrap();
    let width = 3 * h * d;
    let fused = rng.vec(b * t * width, 1.0);
    let pos = left_padded(t, &[2, 0], 5);
    let tpos = Tensor::from_i32(&small, &[b, t], &pos).unwrap();
    let tf = Tensor::from_f32(&small, &[b, t, width], &fused).unwrap();
    let s = Slice {
        layout: QkvLayout::PerHead,
        which: 1,
        heads: h,
        head_dim: d,
    };
    let got = rotary_slice_forward(&tf, &s, &tpos, &table).unwrap();
    let k: Vec<f32> = (0..b * t * h)
        .flat_map(|r| fused[(r / h) * width + (r % h) * 3 * d + d..][..d].to_vec())
        .collect();
    let want = reference(&k, &pos, h, d, table.rot_dim, 16, 1.0);
    assert_close("chunked slice", &got.to_vec().unwrap(), &want, 1e-6, 1e-6);
    let back = rotary_slice_backward(&got, &[b, t, width], &s, &tpos, &table).unwrap();
    let back = back.to_vec().unwrap();
    for (i, (&x, &y)) in back.iter().zip(&fused).enumerate() {
        let (head_col, dim) = ((i % width) % (3 * d), (i % width) % d);
        let want = if head_col / d == 1 { y } else { 0.0 };
        assert!(
            (x - want).abs() <= 1e-6,
            "element {i} (dim {dim}): {x} vs {want}"
        );
    }
}

#[test]
fn rotary_slice_tape_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(27);
    let (b, t, h, d) = (2, 3, 2, 8);
    let table = RotaryTable::new(&gpu, d, 0.5, 10000.0, 8).unwrap();
    let pos = left_padded(t, &[1, 0], 0);
    let tpos = Tensor::from_i32(&gpu, &[b, t], &pos).unwrap();
    for which in [0, 1] {
        let s = Slice {
            layout: QkvLayout::PerHead,
            which,
            heads: h,
            head_dim: d,
        };
        check_grads(
            "rotary_slice",
            &[(vec![b, t, 3 * h * d], rng.vec(b * t * 3 * h * d, 1.0))],
            1e-2,
            1e-3,
            |tape, v| rotary_slice(tape, &v[0], s, &tpos, &table).unwrap(),
        );
    }
}

#[test]
fn rotary_slice_rejects_a_projection_of_the_wrong_width() {
    let gpu = gpu();
    let table = RotaryTable::new(&gpu, 8, 1.0, 10000.0, 4).unwrap();
    let s = Slice {
        layout: QkvLayout::Blocked,
        which: 0,
        heads: 2,
        head_dim: 8,
    };
    let qkv = upload(&[1, 2, 40], &[0.0; 80]);
    let pos = Tensor::from_i32(&gpu, &[1, 2], &[0, 1]).unwrap();
    let err = rotary_slice_forward(&qkv, &s, &pos, &table).unwrap_err();
    assert!(format!("{err:#}").contains("width 48"), "{err:#}");
}

#[test]
fn rotary_chunks_tokens_larger_than_one_binding() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small: Arc<Gpu> = Gpu::new(&opts).unwrap();
    let mut rng = Rng::new(24);
    let (b, t, h, d) = (2, 21, 3, 16); // 2016 elements: two+ bindings
    let table = RotaryTable::new(&small, d, 1.0, 10000.0, 32).unwrap();
    let x = rng.vec(b * t * h * d, 1.0);
    let pos = left_padded(t, &[3, 0], 7);
    let tpos = Tensor::from_i32(&small, &[b, t], &pos).unwrap();
    let tx = Tensor::from_f32(&small, &[b, t, h, d], &x).unwrap();
    let out = Tensor::empty(&small, &[b, t, h, d], DType::F32).unwrap();
    out.poison();
    rotary_into(Rotation::Forward, &out, &tx, &tpos, &table).unwrap();
    let want = reference(&x, &pos, h, d, 16, 32, 1.0);
    assert_close("chunked", &out.to_vec().unwrap(), &want, 1e-6, 1e-6);
    let dx = rotary_backward(&out, &tpos, &table).unwrap();
    assert_close(
        "chunked inverse",
        &dx.to_vec().unwrap(),
        &to_f64(&x),
        1e-6,
        1e-6,
    );
}

#[test]
fn rotary_rejects_bad_configs() {
    let gpu = gpu();
    assert!(
        RotaryTable::new(&gpu, 10, 0.3, 10000.0, 4).is_err(),
        "odd rot_dim"
    );
    let table = RotaryTable::new(&gpu, 16, 0.25, 10000.0, 4).unwrap();
    let x = upload(&[1, 2, 1, 8], &[0.0; 16]);
    let pos = Tensor::from_i32(&gpu, &[1, 2], &[0, 1]).unwrap();
    assert!(
        rotary_forward(&x, &pos, &table).is_err(),
        "head dim mismatch"
    );
}

#[test]
fn rotary_tape_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(25);
    let (b, t, h, d) = (2, 3, 2, 8);
    let table = RotaryTable::new(&gpu, d, 0.5, 10000.0, 8).unwrap();
    let pos = left_padded(t, &[1, 0], 0);
    let tpos = Tensor::from_i32(&gpu, &[b, t], &pos).unwrap();
    check_grads(
        "rotary",
        &[(vec![b, t, h, d], rng.vec(b * t * h * d, 1.0))],
        1e-2,
        1e-3,
        |tape, v| rotary(tape, &v[0], &tpos, &table).unwrap(),
    );
}

/// The vec4 entries' two forms (an invocation per quad, GPUs; per (token,
/// head) row, CPU adapters) give the same bits, forward and backward, for
/// partial and full rotation, and match the f64 reference.
#[test]
fn rotary_per_row_and_per_quad_forms_agree_bit_for_bit() {
    let gpu = gpu();
    let mut rng = Rng::new(33);
    for (d, pct) in [(32usize, 0.25), (64, 0.25), (24, 1.0), (32, 0.5), (64, 1.0)] {
        let table = RotaryTable::new(&gpu, d, pct, 10000.0, 64).unwrap();
        let (b, t, h) = (3usize, 5usize, 3usize);
        let shape = [b, t, h, d];
        let pos = left_padded(t, &[0, 2, 4], 1_000_000);
        let tpos = Tensor::from_i32(&gpu, &[b, t], &pos).unwrap();
        let x = rng.vec(b * t * h * d, 2.0);
        for (rotation, sgn) in [(Rotation::Forward, 1.0), (Rotation::Backward, -1.0)] {
            let run = |form| {
                let out = poisoned(&shape);
                rotary_into_with(form, rotation, &out, &upload(&shape, &x), &tpos, &table).unwrap();
                out.to_vec().unwrap()
            };
            let (quad, row) = (run(RotaryForm::PerQuad), run(RotaryForm::PerRow));
            let what = format!("D={d} pct={pct} {rotation:?}");
            assert!(
                quad.iter()
                    .zip(&row)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what}"
            );
            let want = reference(&x, &pos, h, d, table.rot_dim, 64, sgn);
            assert_close(&what, &row, &want, 1e-6, 1e-6);
        }
    }
}
