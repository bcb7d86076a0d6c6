//! qkv_heads (inference only): q, k and v out of a fused QKV in one pass,
//! against the passes it replaces (rotary_slice for q and k, head_slice for
//! v) bit for bit and against the f64 rotation; into a KV cache's rows
//! without touching the others; chunked; and its input checks.

use super::rotary::{left_padded, reference};
use crate::common::*;
use engine::ops::head_slice::{head_slice_forward, QkvLayout, Slice};
use engine::ops::qkv_heads::*;
use engine::ops::rotary::{rotary_slice_forward, RotaryTable};
use engine::{Gpu, GpuOptions, Tensor};
use std::sync::Arc;

#[test]
fn qkv_heads_params_layout() {
    crate::assert_params_layout!(
        QkvHeadsParams,
        "qkv_heads",
        "QkvHeadsParams",
        [
            rows,
            heads,
            d,
            rot_half,
            seq,
            x_stride,
            x_head_stride,
            x_off,
            pos_off,
            max_pos,
            q_col,
            k_col,
            v_col,
            q_off,
            k_off,
            v_off,
            q_seq_stride,
            k_seq_stride,
            v_seq_stride
        ]
    );
}

fn shape(layout: QkvLayout, batch: usize, seq: usize, heads: usize, head_dim: usize) -> QkvShape {
    QkvShape {
        layout,
        batch,
        seq,
        heads,
        head_dim,
    }
}

/// q, k, v by the differentiable passes: rotary_slice for q and k (with a
/// table), head_slice otherwise.
fn two_pass(qkv: &Tensor, s: &QkvShape, pos: &Tensor, rope: Option<&RotaryTable>) -> [Vec<f32>; 3] {
    [0, 1, 2].map(|which| {
        let slice = Slice {
            layout: s.layout,
            which,
            heads: s.heads,
            head_dim: s.head_dim,
        };
        let t = match rope {
            Some(r) if which < 2 => rotary_slice_forward(qkv, &slice, pos, r).unwrap(),
            _ => head_slice_forward(qkv, &slice).unwrap(),
        };
        t.to_vec().unwrap()
    })
}

/// Odd sizes (D = 6 and rot_dim 6 take the scalar entry), T = 1, partial and
/// full rotation, both layouts, with and without a table; every output
/// poisoned first.
#[test]
fn qkv_heads_is_rotary_slice_and_head_slice_bit_for_bit() {
    let gpu = gpu();
    let mut rng = Rng::new(41);
    let cases = [
        (2, 3, 2, 24, 0.25),
        (1, 1, 3, 8, 1.0),
        (3, 5, 1, 16, 0.5),
        (5, 1, 4, 32, 0.25),
        (2, 2, 2, 6, 1.0),
    ];
    for layout in [QkvLayout::PerHead, QkvLayout::Blocked] {
        for (b, t, h, d, pct) in cases {
            let s = shape(layout, b, t, h, d);
            let table = RotaryTable::new(&gpu, d, pct, 10000.0, 8).unwrap();
            let qkv = upload(&[b, t, 3 * h * d], &rng.vec(b * t * 3 * h * d, 1.0));
            let pads: Vec<usize> = (0..b).map(|i| (2 * i) % t).collect();
            let pos = left_padded(t, &pads, 11);
            let tpos = Tensor::from_i32(&gpu, &[b, t], &pos).unwrap();
            for rope in [Some(&table), None] {
                let what = format!(
                    "{layout:?} B={b} T={t} H={h} D={d} pct {pct} rope {}",
                    rope.is_some()
                );
                let out = [0, 1, 2].map(|_| poisoned(&[b, t, h, d]));
                let dests = [0, 1, 2].map(|i| Dest::contiguous(&out[i], &s));
                qkv_heads_into(&qkv, &s, &tpos, rope, dests).unwrap();
                let want = two_pass(&qkv, &s, &tpos, rope);
                for (i, part) in ["q", "k", "v"].iter().enumerate() {
                    assert_eq!(out[i].to_vec().unwrap(), want[i], "{part}: {what}");
                }
                if let Some(r) = rope {
                    // The rotation itself, in f64, of head_slice's plain k.
                    let slice = Slice {
                        layout,
                        which: 1,
                        heads: h,
                        head_dim: d,
                    };
                    let plain = head_slice_forward(&qkv, &slice).unwrap().to_vec().unwrap();
                    let f64_k = reference(&plain, &pos, h, d, r.rot_dim, 8, 1.0);
                    assert_close(&what, &out[1].to_vec().unwrap(), &f64_k, 1e-6, 1e-6);
                }
            }
        }
    }
}

/// Decoding's use: k and v go to rows len .. len+T of a [B, capacity, H, D]
/// cache; every other element keeps its value.
#[test]
fn qkv_heads_writes_k_and_v_into_a_cache_and_nothing_else() {
    let gpu = gpu();
    let mut rng = Rng::new(42);
    for (b, t, h, d, len, cap) in [(3, 1, 4, 32, 5, 9), (2, 4, 2, 8, 0, 4), (2, 3, 3, 6, 2, 7)] {
        let s = shape(QkvLayout::PerHead, b, t, h, d);
        // rot_dim D/2, or all of D = 6 (the scalar entry).
        let pct = if d == 6 { 1.0 } else { 0.5 };
        let table = RotaryTable::new(&gpu, d, pct, 10000.0, 16).unwrap();
        let qkv = upload(&[b * t, 3 * h * d], &rng.vec(b * t * 3 * h * d, 1.0));
        let pos: Vec<i32> = (0..b * t).map(|i| (len + i % t) as i32).collect();
        let tpos = Tensor::from_i32(&gpu, &[b, t], &pos).unwrap();
        let old = rng.vec(b * cap * h * d, 1.0);
        let [kc, vc] = [0, 1].map(|_| upload(&[b, cap, h, d], &old));
        let q = poisoned(&[b, t, h, d]);
        let row = h * d;
        let cached = |c| Dest {
            tensor: c,
            offset: len * row,
            seq_stride: cap * row,
        };
        let dests = [Dest::contiguous(&q, &s), cached(&kc), cached(&vc)];
        qkv_heads_into(&qkv, &s, &tpos, Some(&table), dests).unwrap();
        let want = two_pass(&qkv, &s, &tpos, Some(&table));
        let what = format!("B={b} T={t} H={h} D={d} len {len} of {cap}");
        assert_eq!(q.to_vec().unwrap(), want[0], "q: {what}");
        for (part, cache, new) in [("k", &kc, &want[1]), ("v", &vc, &want[2])] {
            let got = cache.to_vec().unwrap();
            for (i, &x) in got.iter().enumerate() {
                let (bi, slot) = (i / (cap * row), (i / row) % cap);
                let expected = if (len..len + t).contains(&slot) {
                    new[(bi * t + slot - len) * row + i % row]
                } else {
                    old[i]
                };
                assert_eq!(
                    x.to_bits(),
                    expected.to_bits(),
                    "{part} element {i}: {what}"
                );
            }
        }
    }
}

/// Several chunks when qkv and a cache exceed one binding: whole sequences
/// at a time, or one long sequence's tokens a binding at a time.
#[test]
fn qkv_heads_chunks_sequences_larger_than_one_binding() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small: Arc<Gpu> = Gpu::new(&opts).unwrap();
    let mut rng = Rng::new(43);
    // qkv 2160 elements in 3-token sequences; then 20-token sequences of
    // 2880 elements each, more than one 1024-element binding.
    for (b, t, h, d, cap) in [(5, 3, 3, 16, 4), (2, 20, 3, 16, 24)] {
        let s = shape(QkvLayout::Blocked, b, t, h, d);
        let table = RotaryTable::new(&small, d, 0.25, 10000.0, 32).unwrap();
        let width = 3 * h * d;
        let data = rng.vec(b * t * width, 1.0);
        let qkv = Tensor::from_f32(&small, &[b * t, width], &data).unwrap();
        let pos: Vec<i32> = (0..b * t).map(|i| (i % 7) as i32).collect();
        let tpos = Tensor::from_i32(&small, &[b, t], &pos).unwrap();
        let q = Tensor::zeros(&small, &[b, t, h, d], engine::DType::F32).unwrap();
        let zeros = || Tensor::zeros(&small, &[b, cap, h, d], engine::DType::F32).unwrap();
        let (kc, vc) = (zeros(), zeros());
        let cached = |c| Dest {
            tensor: c,
            offset: h * d,
            seq_stride: cap * h * d,
        };
        let dests = [Dest::contiguous(&q, &s), cached(&kc), cached(&vc)];
        qkv_heads_into(&qkv, &s, &tpos, Some(&table), dests).unwrap();
        let want = two_pass(&qkv, &s, &tpos, Some(&table));
        assert_eq!(q.to_vec().unwrap(), want[0], "q, T = {t}");
        let row = h * d;
        for (cache, new) in [(&kc, &want[1]), (&vc, &want[2])] {
            let got = cache.to_vec().unwrap();
            for bi in 0..b {
                let at = (bi * cap + 1) * row;
                assert_eq!(
                    got[at..at + t * row],
                    new[bi * t * row..][..t * row],
                    "sequence {bi}, T = {t}"
                );
                assert!(got[bi * cap * row..at].iter().all(|&x| x == 0.0));
                assert!(got[at + t * row..(bi + 1) * cap * row]
                    .iter()
                    .all(|&x| x == 0.0));
            }
        }
    }
}

#[test]
fn qkv_heads_rejects_bad_shapes() {
    let gpu = gpu();
    let (b, t, h, d) = (2, 3, 2, 8);
    let s = shape(QkvLayout::PerHead, b, t, h, d);
    let table = RotaryTable::new(&gpu, d, 1.0, 10000.0, 8).unwrap();
    let qkv = upload(&[b * t, 3 * h * d], &vec![0.5; b * t * 3 * h * d]);
    let pos = Tensor::from_i32(&gpu, &[b, t], &[0; 6]).unwrap();
    let out = [0, 1, 2].map(|_| poisoned(&[b, t, h, d]));
    let ok = |i: usize| Dest::contiguous(&out[i], &s);
    let err = |r: anyhow::Result<()>| r.unwrap_err().to_string();

    let narrow = upload(&[b * t, 3 * h * d - 1], &vec![0.5; b * t * (3 * h * d - 1)]);
    let e = err(qkv_heads_into(
        &narrow,
        &s,
        &pos,
        None,
        [ok(0), ok(1), ok(2)],
    ));
    assert!(e.contains("not a fused QKV"), "{e}");
    let short_pos = Tensor::from_i32(&gpu, &[5], &[0; 5]).unwrap();
    let e = err(qkv_heads_into(
        &qkv,
        &s,
        &short_pos,
        None,
        [ok(0), ok(1), ok(2)],
    ));
    assert!(e.contains("positions"), "{e}");
    let other = RotaryTable::new(&gpu, 16, 1.0, 10000.0, 8).unwrap();
    let e = err(qkv_heads_into(
        &qkv,
        &s,
        &pos,
        Some(&other),
        [ok(0), ok(1), ok(2)],
    ));
    assert!(e.contains("rotary table"), "{e}");
    let small = poisoned(&[b, t, h, d - 1]);
    let e = err(qkv_heads_into(
        &qkv,
        &s,
        &pos,
        Some(&table),
        [ok(0), Dest::contiguous(&small, &s), ok(2)],
    ));
    assert!(e.contains("k ") && e.contains("too small"), "{e}");
    let overlap = Dest {
        tensor: &out[2],
        offset: 0,
        seq_stride: t * h * d - 1,
    };
    let e = err(qkv_heads_into(
        &qkv,
        &s,
        &pos,
        None,
        [ok(0), ok(1), overlap],
    ));
    assert!(e.contains("v's sequences") && e.contains("overlap"), "{e}");
}
