//! dropout: the Philox generator against published known-answer vectors, the
//! GPU mask against a host Philox bit for bit, reproducibility, statistics,
//! forward/backward consistency, p = 0, chunking and the tape.

use crate::common::*;
use engine::ops::dropout::{
    dropout, dropout_backward, dropout_backward_into, dropout_forward, dropout_forward_into,
    dropout_threshold, DropoutParams,
};
use engine::{DType, Gpu, GpuOptions, Tensor};

/// Host Philox-4x32-10 with a native 64-bit multiply.
fn philox(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    for r in 0..10 {
        if r > 0 {
            k[0] = k[0].wrapping_add(0x9E37_79B9);
            k[1] = k[1].wrapping_add(0xBB67_AE85);
        }
        let p0 = 0xD251_1F53u64 * c[0] as u64;
        let p1 = 0xCD9E_8D57u64 * c[2] as u64;
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

/// The mask the kernels must produce for element g.
fn kept(g: usize, p: f32, seed: u64, offset: u64) -> bool {
    let c = [(g / 4) as u32, 0, offset as u32, (offset >> 32) as u32];
    let r = philox(c, [seed as u32, (seed >> 32) as u32]);
    r[g % 4] >= dropout_threshold(p)
}

fn poisoned_like(t: &Tensor) -> Tensor {
    let o = Tensor::empty(t.gpu(), t.shape(), DType::F32).unwrap();
    o.poison();
    o
}

fn fwd(x: &Tensor, p: f32, seed: u64, offset: u64) -> Vec<f32> {
    let y = poisoned_like(x);
    dropout_forward_into(x, &y, p, seed, offset).unwrap();
    y.to_vec().unwrap()
}

fn bwd(dy: &Tensor, p: f32, seed: u64, offset: u64) -> Vec<f32> {
    let dx = poisoned_like(dy);
    dropout_backward_into(dy, &dx, p, seed, offset).unwrap();
    dx.to_vec().unwrap()
}

fn reference(x: &[f32], p: f32, seed: u64, offset: u64) -> Vec<f64> {
    let scale = (1.0 / (1.0 - p as f64)) as f32;
    x.iter()
        .enumerate()
        .map(|(g, &v)| {
            if kept(g, p, seed, offset) {
                (v * scale) as f64
            } else {
                0.0
            }
        })
        .collect()
}

#[test]
fn dropout_params_layout() {
    crate::assert_params_layout!(
        DropoutParams,
        "dropout",
        "DropoutParams",
        [
            lo, hi, base, threshold, scale, seed_lo, seed_hi, offset_lo, offset_hi, _pad0, _pad1,
            _pad2
        ]
    );
}

#[test]
fn host_philox_matches_known_answer_vectors() {
    // Random123's kat_vectors for philox4x32_10.
    assert_eq!(
        philox([0; 4], [0; 2]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        philox([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
    assert_eq!(
        philox(
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0]
        ),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

#[test]
fn dropout_matches_host_philox_bit_for_bit() {
    let mut rng = Rng::new(21);
    let seeds = [
        (0u64, 0u64),
        (1, 0),
        (0xDEAD_BEEF_0123_4567, 7),
        (42, u64::MAX),
    ];
    for shape in [vec![1], vec![3], vec![5, 17], vec![33, 100], vec![7, 3, 11]] {
        let n: usize = shape.iter().product();
        let x = rng.vec(n, 2.0);
        let tx = upload(&shape, &x);
        for (seed, offset) in seeds {
            for p in [0.1f32, 0.5, 0.9] {
                let what = format!("dropout {shape:?} p={p} seed={seed:#x} offset={offset}");
                let want = reference(&x, p, seed, offset);
                assert_close(&what, &fwd(&tx, p, seed, offset), &want, 0.0, 0.0);
                assert_close(
                    &format!("{what} backward"),
                    &bwd(&tx, p, seed, offset),
                    &want,
                    0.0,
                    0.0,
                );
            }
        }
    }
}

#[test]
fn dropout_is_reproducible_and_seed_and_offset_sensitive() {
    let n = 4099;
    let tx = upload(&[n], &vec![1.0; n]);
    let mask = |seed, offset| -> Vec<bool> {
        fwd(&tx, 0.5, seed, offset)
            .iter()
            .map(|&v| v != 0.0)
            .collect()
    };
    let a = mask(5, 0);
    assert_eq!(a, mask(5, 0), "same seed and offset, same mask");
    for other in [
        mask(6, 0),
        mask(5, 1),
        mask(5 | 1 << 32, 0),
        mask(5, 1 << 32),
    ] {
        let same = a.iter().zip(&other).filter(|(x, y)| x == y).count() as f64 / n as f64;
        // Independent masks agree on half the elements: 0.5 ± 6·0.5/√n.
        assert!(
            (same - 0.5).abs() < 6.0 * 0.5 / (n as f64).sqrt(),
            "agreement {same}"
        );
    }
}

#[test]
fn dropout_keep_fraction_and_pair_statistics() {
    let n = 1 << 20;
    let tx = upload(&[n], &vec![1.0; n]);
    for p in [0.1f32, 0.5, 0.9] {
        let m: Vec<bool> = fwd(&tx, p, 1234, 0).iter().map(|&v| v != 0.0).collect();
        let q = 1.0 - p as f64;
        let bound = |prob: f64, count: usize| 6.0 * (prob * (1.0 - prob) / count as f64).sqrt();
        let kept = m.iter().filter(|&&k| k).count() as f64 / n as f64;
        assert!(
            (kept - q).abs() < bound(q, n),
            "p={p}: keep fraction {kept} vs {q}"
        );
        // Pairs within one Philox output (lag 1) and across counters (lag 4)
        // are kept together with probability (1-p)^2 when independent.
        for lag in [1usize, 4, 1024] {
            let both = (0..n - lag).filter(|&i| m[i] && m[i + lag]).count() as f64;
            let both = both / (n - lag) as f64;
            assert!(
                (both - q * q).abs() < bound(q * q, n - lag),
                "p={p} lag {lag}: {both}"
            );
        }
    }
}

#[test]
fn dropout_backward_uses_the_forwards_mask_and_scale() {
    let mut rng = Rng::new(22);
    let (n, p) = (1000, 0.3f32);
    let y = fwd(&upload(&[10, 100], &vec![1.0; n]), p, 99, 3);
    let dy = rng.vec(n, 1.0);
    let dx = bwd(&upload(&[10, 100], &dy), p, 99, 3);
    let want: Vec<f64> = dy.iter().zip(&y).map(|(&g, &m)| (g * m) as f64).collect();
    assert_close("dx = dy · y(ones)", &dx, &want, 0.0, 1e-7);
    let scale = (1.0 / (1.0 - p as f64)) as f32;
    assert!(y.iter().all(|&v| v == 0.0 || v == scale));
}

#[test]
fn dropout_with_p_zero_is_the_exact_identity() {
    let mut rng = Rng::new(23);
    let x = rng.normals(777, 3.0);
    let tx = upload(&[777], &x);
    assert_eq!(fwd(&tx, 0.0, 1, 2), x);
    assert_eq!(bwd(&tx, 0.0, 1, 2), x);
}

#[test]
fn dropout_rejects_bad_probabilities_and_aliasing() {
    let tx = upload(&[4], &[1.0; 4]);
    for p in [1.0f32, 1.5, -0.1, f32::NAN] {
        assert!(dropout_forward(&tx, p, 0, 0).is_err(), "p={p} accepted");
        assert!(dropout_backward(&tx, p, 0, 0).is_err(), "p={p} accepted");
    }
    assert!(dropout_forward_into(&tx, &tx, 0.5, 0, 0).is_err());
    let y = dropout_forward(&tx, 0.5, 0, 0).unwrap();
    assert_eq!(y.shape(), &[4]);
}

#[test]
fn dropout_chunks_tensors_larger_than_one_binding() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    let n = 5003;
    let mut rng = Rng::new(24);
    let x = rng.vec(n, 1.0);
    let tx = Tensor::from_f32(&small, &[n], &x).unwrap();
    let want = reference(&x, 0.25, 77, 5);
    assert_close("chunked dropout", &fwd(&tx, 0.25, 77, 5), &want, 0.0, 0.0);
    assert_close(
        "chunked dropout backward",
        &bwd(&tx, 0.25, 77, 5),
        &want,
        0.0,
        0.0,
    );
    // The same mask as on the unrestricted device.
    assert_eq!(fwd(&tx, 0.25, 77, 5), fwd(&upload(&[n], &x), 0.25, 77, 5));
}

#[test]
fn dropout_tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(25);
    let x = rng.vec(24, 1.0);
    check_grads("dropout", &[(vec![4, 6], x)], 1e-2, 1e-3, |tape, v| {
        dropout(tape, &v[0], 0.4, 8, 1).unwrap()
    });
}
