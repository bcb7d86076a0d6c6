//! adamw: several steps against an f64 reference of torch.optim.AdamW, odd
//! sizes, zero gradients, and chunking on a small-binding device.

use crate::common::*;
use engine::ops::adamw::{adamw_step, adamw_step_scaled, AdamwConfig, AdamwParams};
use engine::ops::grad_clip::{clip_grad_norm, norm_and_scale};
use engine::{Gpu, GpuOptions, Tensor};
use std::sync::Arc;

#[test]
fn params_layout() {
    crate::assert_params_layout!(
        AdamwParams,
        "adamw",
        "AdamwParams",
        [n, beta1, beta2, eps, decay, step_size, bc2_sqrt]
    );
}

/// torch's single-tensor AdamW step in f64.
fn reference(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f32], c: &AdamwConfig, t: u32) {
    let (lr, b1, b2) = (c.lr as f64, c.beta1 as f64, c.beta2 as f64);
    let bc1 = 1.0 - b1.powi(t as i32);
    let bc2 = 1.0 - b2.powi(t as i32);
    for i in 0..p.len() {
        let g = g[i] as f64;
        p[i] *= 1.0 - lr * c.weight_decay as f64;
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        let denom = (v[i] / bc2).sqrt() + c.eps as f64;
        p[i] -= lr / bc1 * m[i] / denom;
    }
}

fn run_steps(gpu: &Arc<Gpu>, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let p0 = rng.vec(n, 1.0);
    let (tp, tm, tv) = (
        Tensor::from_f32(gpu, &[n], &p0).unwrap(),
        Tensor::zeros(gpu, &[n], engine::DType::F32).unwrap(),
        Tensor::zeros(gpu, &[n], engine::DType::F32).unwrap(),
    );
    let mut p: Vec<f64> = to_f64(&p0);
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    for t in 1..=6u32 {
        // A schedule-like lr, and some exactly-zero and tiny gradients.
        let cfg = AdamwConfig {
            lr: 1e-2 / t as f32,
            weight_decay: 0.1,
            ..AdamwConfig::default()
        };
        let mut g = rng.vec(n, 0.5);
        for i in (0..n).step_by(7) {
            g[i] = 0.0;
        }
        for i in (3..n).step_by(11) {
            g[i] *= 1e-7;
        }
        let tg = Tensor::from_f32(gpu, &[n], &g).unwrap();
        adamw_step(&tp, &tg, &tm, &tv, &cfg, t).unwrap();
        reference(&mut p, &mut m, &mut v, &g, &cfg, t);
    }
    assert_close(
        &format!("adamw p n={n}"),
        &tp.to_vec().unwrap(),
        &p,
        1e-6,
        1e-6,
    );
    assert_close(
        &format!("adamw m n={n}"),
        &tm.to_vec().unwrap(),
        &m,
        1e-8,
        1e-6,
    );
    assert_close(
        &format!("adamw v n={n}"),
        &tv.to_vec().unwrap(),
        &v,
        1e-10,
        1e-6,
    );
}

#[test]
fn steps_match_f64_reference() {
    let gpu = gpu();
    for (n, seed) in [(1usize, 1u64), (7, 2), (255, 3), (1001, 4)] {
        run_steps(&gpu, n, seed);
    }
}

#[test]
fn rejects_bad_inputs() {
    let a = upload(&[4], &[0.0; 4]);
    let b = upload(&[4], &[0.0; 4]);
    let c = upload(&[4], &[0.0; 4]);
    let short = upload(&[3], &[0.0; 3]);
    let cfg = AdamwConfig::default();
    assert!(adamw_step(&a, &b, &c, &short, &cfg, 1).is_err());
    assert!(adamw_step(&a, &b, &c, &c, &cfg, 1).is_err());
    assert!(adamw_step(&a, &b, &c, &b.deep_copy().unwrap(), &cfg, 0).is_err());
}

#[test]
fn chunks_on_a_small_binding_device() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    run_steps(&small, 5003, 5);
}

/// The clipped step (`adamw_clipped`, the scale applied as the gradient is
/// read) equals clipping the gradient in place and then stepping, bit for
/// bit, over several steps and chunked bindings, and leaves the gradient
/// unclipped; a scale that is not one f32 is refused.
#[test]
fn clipped_step_equals_clipping_then_stepping() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    for (gpu, n) in [(gpu(), 1001usize), (small, 3001)] {
        let mut rng = Rng::new(n as u64);
        let new = |v: &[f32]| Tensor::from_f32(&gpu, &[n], v).unwrap();
        let p0 = rng.vec(n, 1.0);
        let [pa, ma, va] = [new(&p0), new(&vec![0.0; n]), new(&vec![0.0; n])];
        let [pb, mb, vb] = [new(&p0), new(&vec![0.0; n]), new(&vec![0.0; n])];
        let cfg = AdamwConfig::default();
        for t in 1..=3 {
            let g = rng.vec(n, 3.0);
            let (ga, gb) = (new(&g), new(&g));
            // max_norm below the norm, so the scale is < 1 and inexact.
            let (_, scale) = norm_and_scale(&gpu, &[&ga], 0.37).unwrap();
            adamw_step_scaled(&pa, &ga, &ma, &va, &cfg, t, Some(&scale)).unwrap();
            clip_grad_norm(&gpu, &[&gb], 0.37).unwrap();
            adamw_step(&pb, &gb, &mb, &vb, &cfg, t).unwrap();
            assert_eq!(ga.to_vec().unwrap(), g, "the gradient is left as it was");
            assert!(scale.item().unwrap() < 1.0);
        }
        for (a, b) in [(&pa, &pb), (&ma, &mb), (&va, &vb)] {
            let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }
    let a = upload(&[4], &[0.0; 4]);
    let [b, c, d] = [a.deep_copy(), a.deep_copy(), a.deep_copy()].map(Result::unwrap);
    let two = upload(&[2], &[1.0; 2]);
    let e = adamw_step_scaled(&a, &b, &c, &d, &AdamwConfig::default(), 1, Some(&two));
    assert!(e.unwrap_err().to_string().contains("one f32"));
}
