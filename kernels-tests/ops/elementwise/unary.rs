//! elementwise unary ops: forward and backward against f64 (including the
//! tails of log-sigmoid and softplus) and the tape against finite differences.

use super::poison_pool;
use crate::common::*;
use engine::ops::elementwise::{self as ew, UnaryOp};

fn unary_ops() -> Vec<UnaryOp> {
    vec![
        UnaryOp::Scale {
            alpha: -1.5,
            beta: 0.25,
        },
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Relu,
        UnaryOp::Square,
        UnaryOp::Sqrt,
        UnaryOp::Clamp {
            min: -0.5,
            max: 0.75,
        },
        UnaryOp::Abs,
        UnaryOp::LogSigmoid,
        UnaryOp::Softplus,
    ]
}

fn sigmoid_ref(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        x.exp() / (1.0 + x.exp())
    }
}

/// (f, f') in f64.
fn unary_ref(op: UnaryOp, x: f64) -> (f64, f64) {
    match op {
        UnaryOp::Scale { alpha, beta } => (alpha as f64 * x + beta as f64, alpha as f64),
        UnaryOp::Exp => (x.exp(), x.exp()),
        UnaryOp::Log => (x.ln(), 1.0 / x),
        UnaryOp::Sigmoid => {
            let s = 1.0 / (1.0 + (-x).exp());
            (s, s * (1.0 - s))
        }
        UnaryOp::Tanh => (x.tanh(), 1.0 - x.tanh().powi(2)),
        UnaryOp::Relu => (x.max(0.0), (x > 0.0) as u8 as f64),
        UnaryOp::Square => (x * x, 2.0 * x),
        UnaryOp::Sqrt => (x.sqrt(), 0.5 / x.sqrt()),
        UnaryOp::Clamp { min, max } => (
            x.clamp(min as f64, max as f64),
            (x >= min as f64 && x <= max as f64) as u8 as f64,
        ),
        UnaryOp::Abs => (x.abs(), if x == 0.0 { 0.0 } else { x.signum() }),
        UnaryOp::LogSigmoid => (x.min(0.0) - (-x.abs()).exp().ln_1p(), sigmoid_ref(-x)),
        UnaryOp::Softplus => (x.max(0.0) + (-x.abs()).exp().ln_1p(), sigmoid_ref(x)),
    }
}

fn unary_input(op: UnaryOp, rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut x: Vec<f32> = match op {
        UnaryOp::Log | UnaryOp::Sqrt => (0..n).map(|_| rng.uniform(0.05, 4.0)).collect(),
        UnaryOp::Sigmoid | UnaryOp::Tanh | UnaryOp::LogSigmoid | UnaryOp::Softplus => {
            rng.vec(n, 12.0)
        }
        _ => rng.vec(n, 3.0),
    };
    if matches!(op, UnaryOp::Relu | UnaryOp::Abs) {
        x[1] = 0.0;
    }
    if let UnaryOp::Clamp { min, max } = op {
        x[1] = min; // boundaries pass the gradient, as in torch
        x[2] = max;
    }
    x
}

#[test]
fn unary_forward_and_backward_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    for n in [3usize, 257, 1001] {
        for op in unary_ops() {
            let x = unary_input(op, &mut rng, n);
            let dy = rng.vec(n, 1.0);
            let tx = upload(&[n], &x);
            poison_pool(&gpu, &[n]);
            let y = ew::unary_forward(op, &tx).unwrap();
            let refs: Vec<(f64, f64)> = x.iter().map(|&v| unary_ref(op, v as f64)).collect();
            let want: Vec<f64> = refs.iter().map(|r| r.0).collect();
            // exp/log/tanh/sigmoid are a few ulp off in f32.
            assert_close(
                &format!("{op:?} n={n}"),
                &y.to_vec().unwrap(),
                &want,
                1e-7,
                1e-6,
            );
            let saved = if op.saves_output() {
                y.clone()
            } else {
                tx.clone()
            };
            poison_pool(&gpu, &[n]);
            let dx = ew::unary_backward(op, &upload(&[n], &dy), &saved).unwrap();
            let want: Vec<f64> = refs.iter().zip(&dy).map(|(r, &g)| r.1 * g as f64).collect();
            assert_close(
                &format!("{op:?} dx n={n}"),
                &dx.to_vec().unwrap(),
                &want,
                1e-6,
                2e-6,
            );
        }
    }
}

/// log σ and softplus far out in both tails: no −inf / inf / NaN, log σ(x) → x
/// for x ≪ 0, and the tiny tail values keep their relative precision (a naive
/// `log(1 + e^−x)` would round them to 0).
#[test]
fn log_sigmoid_and_softplus_are_stable_in_the_tails() {
    let x: Vec<f32> = vec![
        -1.0e4, -200.0, -90.0, -30.0, -17.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 17.0, 30.0, 90.0, 200.0,
        1.0e4,
    ];
    let n = x.len();
    let tx = upload(&[n], &x);
    let dy = vec![1.0f32; n];
    for op in [UnaryOp::LogSigmoid, UnaryOp::Softplus] {
        let y = ew::unary_forward(op, &tx).unwrap().to_vec().unwrap();
        let refs: Vec<(f64, f64)> = x.iter().map(|&v| unary_ref(op, v as f64)).collect();
        let want: Vec<f64> = refs.iter().map(|r| r.0).collect();
        // Values below f32's normal range (e^−90, e^−200) flush to 0: atol 1e-37.
        assert_close(&format!("{op:?} tails"), &y, &want, 1e-37, 2e-6);
        let dx = ew::unary_backward(op, &upload(&[n], &dy), &tx)
            .unwrap()
            .to_vec()
            .unwrap();
        let want: Vec<f64> = refs.iter().map(|r| r.1).collect();
        assert_close(&format!("{op:?} tails dx"), &dx, &want, 1e-37, 2e-6);
    }
}

#[test]
fn unary_tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(12);
    for op in unary_ops() {
        let mut x = unary_input(op, &mut rng, 7);
        x.iter_mut().for_each(|v| {
            // keep away from the kinks of relu/abs/clamp
            if v.abs() < 0.05 || (*v + 0.5).abs() < 0.05 || (*v - 0.75).abs() < 0.05 {
                *v += 0.2
            }
        });
        if matches!(
            op,
            UnaryOp::Sigmoid
                | UnaryOp::Tanh
                | UnaryOp::Exp
                | UnaryOp::LogSigmoid
                | UnaryOp::Softplus
        ) {
            x.iter_mut().for_each(|v| *v = v.clamp(-3.0, 3.0));
        }
        check_grads(&format!("{op:?}"), &[(vec![7], x)], 1e-3, 3e-3, |t, v| {
            ew::unary(t, op, &v[0]).unwrap()
        });
    }
}
