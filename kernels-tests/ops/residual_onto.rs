//! Residual connections fused into the product's store (`matmul_onto`,
//! `lora_linear_onto`): the output and every gradient equal
//! `add(onto, linear(x))` bit for bit, on odd shapes, both weight layouts,
//! with and without a bias, on a small-binding device too; a mismatched
//! `onto` is refused.

use crate::common::*;
use engine::ops::elementwise::add;
use engine::ops::lora::{lora_linear, lora_linear_onto};
use engine::ops::matmul::{matmul, matmul_onto};
use engine::tape::Var;
use engine::{Gpu, GpuOptions, Tape, Tensor};
use std::sync::Arc;

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().unwrap().iter().map(|x| x.to_bits()).collect()
}

/// Runs `linear` (fused when `fused`) on fresh tape params from `data` and
/// returns the output and the gradient of each input it uses (None for the
/// others) for a fixed seed.
fn run(
    gpu: &Arc<Gpu>,
    data: &[(Vec<usize>, Vec<f32>)],
    seed: &[f32],
    linear: &dyn Fn(&Tape, &[Var], bool) -> Var,
    fused: bool,
) -> Vec<Option<Vec<u32>>> {
    let tape = Tape::new(gpu);
    let vars: Vec<Var> = data
        .iter()
        .map(|(s, d)| tape.param(&Tensor::from_f32(gpu, s, d).unwrap()))
        .collect();
    let y = linear(&tape, &vars, fused);
    let mut out = vec![Some(bits(y.tensor()))];
    let seed = Tensor::from_f32(gpu, y.shape(), seed).unwrap();
    let grads = tape.backward_with(&y, seed).unwrap();
    out.extend(vars.iter().map(|v| grads.get(v).map(bits)));
    out
}

fn check(gpu: &Arc<Gpu>, (b, t, k, n, r): (usize, usize, usize, usize, usize), out_in: bool) {
    let mut rng = Rng::new((b * t * k * n + r) as u64);
    let w_shape = if out_in { vec![n, k] } else { vec![k, n] };
    for with_bias in [false, true] {
        let mut data = vec![
            (vec![b, t, k], rng.vec(b * t * k, 1.0)),
            (w_shape.clone(), rng.vec(k * n, 0.5)),
            (vec![b, t, n], rng.vec(b * t * n, 2.0)),
            (vec![r, k], rng.vec(r * k, 0.5)),
            (vec![n, r], rng.vec(n * r, 0.5)),
        ];
        if with_bias {
            data.push((vec![n], rng.vec(n, 1.0)));
        }
        let seed = rng.vec(b * t * n, 1.0);
        let dense = |tape: &Tape, v: &[Var], fused: bool| {
            let bias = v.get(5);
            if fused {
                matmul_onto(tape, &v[0], &v[1], bias, false, out_in, Some(&v[2])).unwrap()
            } else {
                let h = matmul(tape, &v[0], &v[1], bias, false, out_in).unwrap();
                add(tape, &v[2], &h).unwrap()
            }
        };
        let lora = |tape: &Tape, v: &[Var], fused: bool| {
            let (x, w, onto, a, bb, bias) = (&v[0], &v[1], &v[2], &v[3], &v[4], v.get(5));
            if fused {
                lora_linear_onto(tape, x, w, bias, a, bb, 1.7, out_in, None, Some(onto)).unwrap()
            } else {
                let h = lora_linear(tape, x, w, bias, a, bb, 1.7, out_in, None).unwrap();
                add(tape, onto, &h).unwrap()
            }
        };
        let shape = (b, t, k, n, r, out_in, with_bias);
        for (what, f) in [
            ("dense", &dense as &dyn Fn(&Tape, &[Var], bool) -> Var),
            ("lora", &lora),
        ] {
            let want = run(gpu, &data, &seed, f, false);
            let got = run(gpu, &data, &seed, f, true);
            let names = ["y", "dx", "dw", "d_onto", "da", "db", "dbias"];
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(g == w, "{what} {shape:?}: {} differs", names[i]);
            }
            let used = if what == "dense" { 4 } else { 6 } + with_bias as usize;
            let n_grads = got.iter().filter(|g| g.is_some()).count();
            assert_eq!(n_grads, used, "{what} {shape:?}: gradients present");
        }
    }
}

#[test]
fn products_onto_a_residual_equal_the_add_bit_for_bit() {
    let gpu = gpu();
    for (dims, out_in) in [
        ((1, 1, 5, 3, 1), true),
        ((2, 7, 37, 19, 4), true),
        ((3, 5, 33, 48, 16), false),
        ((1, 9, 64, 128, 8), true),
    ] {
        check(&gpu, dims, out_in);
    }
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    check(&small, (2, 11, 40, 36, 4), true);
}

#[test]
fn a_residual_of_another_shape_is_refused() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let p = |s: &[usize]| tape.param(&Tensor::zeros(&gpu, s, engine::tensor::DType::F32).unwrap());
    let (x, w, onto) = (p(&[2, 3]), p(&[4, 3]), p(&[2, 5]));
    let e = matmul_onto(&tape, &x, &w, None, false, true, Some(&onto)).unwrap_err();
    assert!(e.to_string().contains("matmul_onto"), "{e}");
    let (a, b) = (p(&[2, 3]), p(&[4, 2]));
    let e =
        lora_linear_onto(&tape, &x, &w, None, &a, &b, 1.0, true, None, Some(&onto)).unwrap_err();
    assert!(e.to_string().contains("cannot add"), "{e}");
}
