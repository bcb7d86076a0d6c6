//! layernorm_pair_forward (inference only): two layer norms of one input in
//! a pass, each output the single layernorm's bit for bit and within f32
//! rounding of the f64 reference, into poisoned outputs, at odd row counts,
//! C not a multiple of 4 (two single norms), chunked rows, and its checks.

use super::layernorm::{poisoned_on, reference};
use crate::common::*;
use engine::ops::layernorm::{layernorm_forward, layernorm_pair_forward_into};
use engine::{Gpu, GpuOptions, Tensor};
use std::sync::Arc;

fn check_pair(gpu: &Arc<Gpu>, n: usize, c: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let up = |shape: &[usize], v: Vec<f32>| Tensor::from_f32(gpu, shape, &v).unwrap();
    let xs = rng.vec(n * c, 2.0);
    let x = up(&[n, c], xs.clone());
    let params: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(c, 1.0)).collect();
    let [w1, b1, w2, b2] = [0, 1, 2, 3].map(|i| up(&[c], params[i].clone()));
    let ys = [0, 1].map(|_| poisoned_on(gpu, &[n, c]));
    layernorm_pair_forward_into(&x, (&w1, &b1), (&w2, &b2), 1e-5, [&ys[0], &ys[1]]).unwrap();
    for (i, (w, b)) in [(&w1, &b1), (&w2, &b2)].into_iter().enumerate() {
        let what = format!("output {i} of N={n} C={c}");
        let got = ys[i].to_vec().unwrap();
        let single = layernorm_forward(&x, w, b, 1e-5)
            .unwrap()
            .y
            .to_vec()
            .unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&got),
            bits(&single),
            "{what}: not the single norm's bits"
        );
        let (wv, bv) = (&params[2 * i], &params[2 * i + 1]);
        let want = reference(&xs, wv, bv, &vec![0.0; n * c], c, 1e-5).y;
        assert_close(&what, &got, &want, 1e-5, 1e-5);
    }
}

#[test]
fn layernorm_pair_is_two_layernorms_bit_for_bit() {
    let gpu = gpu();
    for (n, c, seed) in [(1, 128, 1), (37, 128, 2), (5, 12, 3), (3, 6, 4), (48, 4, 5)] {
        check_pair(&gpu, n, c, seed);
    }
}

#[test]
fn layernorm_pair_chunks_rows_larger_than_one_binding() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    check_pair(&small, 40, 100, 6);
    check_pair(&small, 33, 64, 7);
}

#[test]
fn layernorm_pair_rejects_mismatched_shapes() {
    let gpu = gpu();
    let x = upload(&[3, 8], &[0.5; 24]);
    let w = upload(&[8], &[1.0; 8]);
    let short = upload(&[7], &[1.0; 7]);
    let y = poisoned(&[3, 8]);
    let err = |r: anyhow::Result<()>| r.unwrap_err().to_string();
    let e = err(layernorm_pair_forward_into(
        &x,
        (&w, &w),
        (&w, &short),
        1e-5,
        [&y, &y.clone()],
    ));
    assert!(e.contains("second bias"), "{e}");
    let small_y = poisoned(&[3, 7]);
    let e = err(layernorm_pair_forward_into(
        &x,
        (&w, &w),
        (&w, &w),
        1e-5,
        [&y, &small_y],
    ));
    assert!(e.contains("second y"), "{e}");
    let e = err(layernorm_pair_forward_into(
        &x,
        (&w, &w),
        (&w, &w),
        1e-5,
        [&x, &y],
    ));
    assert!(e.contains("alias"), "{e}");
    let _ = gpu;
}
