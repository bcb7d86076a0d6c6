//! gelu: both forms, forward and backward, against f64 references, on odd
//! sizes, extreme inputs, a small-binding device (chunking) and through the
//! tape against finite differences.

use crate::common::*;
use engine::ops::gelu::{
    gelu, gelu_backward, gelu_backward_into, gelu_forward, gelu_forward_into, GeluKind, GeluParams,
};
use engine::{Gpu, GpuOptions, Tensor};

/// Standard normal density in f64.
fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Standard normal CDF in f64 to ~1e-15 relative: the positive-term series
/// Φ(x) - 1/2 = φ(x)·Σ x^(2n+1)/(2n+1)!! for |x| < 3, and Laplace's
/// continued fraction for the Mills ratio beyond.
fn cdf(x: f64) -> f64 {
    let u = x.abs();
    let upper_tail = if u < 3.0 {
        let (mut term, mut s, mut n) = (u, u, 0.0);
        while term > 1e-18 * s {
            n += 1.0;
            term *= u * u / (2.0 * n + 1.0);
            s += term;
        }
        0.5 - pdf(u) * s
    } else {
        let mut f = 0.0;
        for k in (1..=400).rev() {
            f = k as f64 / (u + f);
        }
        pdf(u) / (u + f)
    };
    if x < 0.0 {
        upper_tail
    } else {
        1.0 - upper_tail
    }
}

const K: f64 = 0.7978845608028654; // √(2/π)

/// σ(2u) and 1 - σ(2u) in f64 for the tanh form's u: 1 + tanh(u) = 2σ(2u)
/// (evaluating 1 + tanh(u) itself would cancel in f64 too, for x < -6).
fn sig2(x: f64) -> (f64, f64) {
    let u = K * (x + 0.044715 * x * x * x);
    (
        1.0 / (1.0 + (-2.0 * u).exp()),
        1.0 / (1.0 + (2.0 * u).exp()),
    )
}

fn gelu_ref(kind: GeluKind, x: f64) -> f64 {
    match kind {
        GeluKind::Tanh => x * sig2(x).0,
        GeluKind::Erf => x * cdf(x),
    }
}

fn gelu_grad_ref(kind: GeluKind, x: f64) -> f64 {
    match kind {
        GeluKind::Tanh => {
            // 0.5(1 + tanh u) + 0.5x(1 - tanh² u)u' with 1 ± tanh u = 2σ(±2u).
            let (s, r) = sig2(x);
            s + 2.0 * x * s * r * K * (1.0 + 3.0 * 0.044715 * x * x)
        }
        GeluKind::Erf => cdf(x) + x * pdf(x),
    }
}

const KINDS: [GeluKind; 2] = [GeluKind::Tanh, GeluKind::Erf];

/// Forward into a NaN-poisoned output on x's device.
fn fwd(x: &Tensor, kind: GeluKind) -> Vec<f32> {
    let y = Tensor::empty(x.gpu(), x.shape(), engine::DType::F32).unwrap();
    y.poison();
    gelu_forward_into(x, &y, kind).unwrap();
    y.to_vec().unwrap()
}

/// Backward into a NaN-poisoned output on x's device.
fn bwd(dy: &Tensor, x: &Tensor, kind: GeluKind) -> Vec<f32> {
    let dx = Tensor::empty(x.gpu(), x.shape(), engine::DType::F32).unwrap();
    dx.poison();
    gelu_backward_into(dy, x, &dx, kind).unwrap();
    dx.to_vec().unwrap()
}

#[test]
fn gelu_params_layout() {
    crate::assert_params_layout!(GeluParams, "gelu", "GeluParams", [n]);
}

#[test]
fn f64_reference_cdf_is_sane() {
    // Independent spot values of Φ (tabulated to 15 digits).
    for (x, want) in [
        (0.0, 0.5),
        (1.0, 0.841344746068543),
        (-2.5, 0.00620966532577614),
        (-6.0, 9.86587645037698e-10),
    ] {
        assert!((cdf(x) / want - 1.0).abs() < 1e-12, "Φ({x}) = {}", cdf(x));
    }
    assert!((cdf(2.9999) - cdf(3.0001)).abs() < 1e-4, "branches join");
}

/// Inputs covering both erf branches (|x| < 1 and beyond), the tails and a
/// few exact points.
fn inputs(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut v = rng.vec(n, 6.0);
    let specials = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.999_999_9,
        -1.000_000_1,
        3.0,
        -3.0,
        9.0,
        -9.0,
    ];
    for (slot, s) in v.iter_mut().zip(specials) {
        *slot = s;
    }
    v
}

#[test]
fn gelu_forward_and_backward_match_f64_at_odd_sizes() {
    let mut rng = Rng::new(11);
    for kind in KINDS {
        for shape in [vec![1], vec![5, 3], vec![33, 17], vec![3, 7, 100]] {
            let n: usize = shape.iter().product();
            let x = inputs(&mut rng, n);
            let dy = rng.vec(n, 2.0);
            let tx = upload(&shape, &x);
            let y = fwd(&tx, kind);
            let want: Vec<f64> = x.iter().map(|&v| gelu_ref(kind, v as f64)).collect();
            let what = format!("gelu {kind:?} forward {shape:?}");
            assert_close(&what, &y, &want, 1e-7, 1e-6);
            let dx = bwd(&upload(&shape, &dy), &tx, kind);
            let want: Vec<f64> = x
                .iter()
                .zip(&dy)
                .map(|(&v, &g)| g as f64 * gelu_grad_ref(kind, v as f64))
                .collect();
            let what = format!("gelu {kind:?} backward {shape:?}");
            assert_close(&what, &dx, &want, 1e-7, 1e-6);
        }
    }
}

#[test]
fn gelu_is_relatively_accurate_in_the_negative_tail() {
    // Where gelu(x) is tiny, 1 + tanh / 1 + erf would cancel; the kernels
    // evaluate σ and Φ directly, so the error stays relative.
    let x: Vec<f32> = (0..200).map(|i| -0.05 - i as f32 * 0.05).collect(); // down to -10
    let tx = upload(&[x.len()], &x);
    for kind in KINDS {
        // Both tails are an exp of a large negative argument a, and WGSL only
        // promises exp to 3 + 2|a| ulps (a = -x²/2 = -50 at x = -10: ~6e-6).
        // The tanh form's a = -2|u| ≈ -0.07·x³ is itself rounded in f32.
        let rtol = if kind == GeluKind::Tanh { 2e-5 } else { 8e-6 };
        let y = fwd(&tx, kind);
        let want: Vec<f64> = x.iter().map(|&v| gelu_ref(kind, v as f64)).collect();
        assert_close(&format!("{kind:?} tail"), &y, &want, 1e-30, rtol);
        let ones = upload(&[x.len()], &vec![1.0; x.len()]);
        let d = bwd(&ones, &tx, kind);
        let want: Vec<f64> = x.iter().map(|&v| gelu_grad_ref(kind, v as f64)).collect();
        // gelu' crosses zero near x = -0.75: there only an absolute bound holds.
        assert_close(&format!("{kind:?} tail grad"), &d, &want, 1e-7, 2.0 * rtol);
    }
}

#[test]
fn gelu_is_finite_for_huge_inputs() {
    let x = [1e4f32, -1e4, 3e19, -3e19, f32::MAX, -f32::MAX, 88.0, -88.0];
    let tx = upload(&[x.len()], &x);
    for kind in KINDS {
        let y = fwd(&tx, kind);
        let want: Vec<f64> = x
            .iter()
            .map(|&v| if v > 0.0 { v as f64 } else { 0.0 })
            .collect();
        assert_close(&format!("{kind:?} huge"), &y, &want, 0.0, 0.0);
        let ones = upload(&[x.len()], &vec![1.0; x.len()]);
        let d = bwd(&ones, &tx, kind);
        let want: Vec<f64> = x.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }).collect();
        assert_close(&format!("{kind:?} huge grad"), &d, &want, 0.0, 0.0);
    }
}

#[test]
fn gelu_allocating_forms_match_the_into_forms() {
    let mut rng = Rng::new(12);
    let x = upload(&[4, 9], &rng.vec(36, 4.0));
    let dy = upload(&[4, 9], &rng.vec(36, 1.0));
    for kind in KINDS {
        let y = gelu_forward(&x, kind).unwrap();
        assert_eq!(y.shape(), &[4, 9]);
        assert_eq!(y.to_vec().unwrap(), fwd(&x, kind));
        assert_eq!(
            gelu_backward(&dy, &x, kind).unwrap().to_vec().unwrap(),
            bwd(&dy, &x, kind)
        );
    }
    assert!(
        gelu_forward_into(&x, &x, GeluKind::Tanh).is_err(),
        "aliasing is refused"
    );
}

#[test]
fn gelu_chunks_tensors_larger_than_one_binding() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    // Five bindings' worth plus a ragged tail (scalar entries), and a
    // multiple of 4 (the vec4 entries).
    for n in [5003, 5004] {
        gelu_chunks_at(&small, n);
    }
}

fn gelu_chunks_at(small: &std::sync::Arc<Gpu>, n: usize) {
    let mut rng = Rng::new(13);
    let x = rng.vec(n, 5.0);
    let dy = rng.vec(n, 1.0);
    let tx = Tensor::from_f32(small, &[n], &x).unwrap();
    let tdy = Tensor::from_f32(small, &[n], &dy).unwrap();
    for kind in KINDS {
        let y = fwd(&tx, kind);
        let want: Vec<f64> = x.iter().map(|&v| gelu_ref(kind, v as f64)).collect();
        assert_close("chunked gelu", &y, &want, 1e-7, 1e-6);
        let dx = bwd(&tdy, &tx, kind);
        let want: Vec<f64> = x
            .iter()
            .zip(&dy)
            .map(|(&v, &g)| g as f64 * gelu_grad_ref(kind, v as f64))
            .collect();
        assert_close("chunked gelu grad", &dx, &want, 1e-7, 1e-6);
    }
}

/// Element counts that are a multiple of 4 run the vec4 entries, others
/// the scalar ones: the same values bit for bit.
#[test]
fn gelu_vec4_entries_equal_the_scalar_entries() {
    let mut rng = Rng::new(15);
    let n = 4 * 300;
    let (x, dy) = (inputs(&mut rng, n + 1), rng.vec(n + 1, 1.0));
    for kind in KINDS {
        let (x4, dy4) = (upload(&[n], &x[..n]), upload(&[n], &dy[..n]));
        let (x1, dy1) = (upload(&[n + 1], &x), upload(&[n + 1], &dy));
        assert_eq!(fwd(&x4, kind)[..], fwd(&x1, kind)[..n], "{kind:?}");
        assert_eq!(
            bwd(&dy4, &x4, kind)[..],
            bwd(&dy1, &x1, kind)[..n],
            "{kind:?}"
        );
    }
}

#[test]
fn gelu_tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(14);
    for kind in KINDS {
        let x = rng.vec(12, 3.0);
        check_grads(
            &format!("gelu {kind:?}"),
            &[(vec![3, 4], x)],
            1e-2,
            2e-3,
            |tape, v| gelu(tape, &v[0], kind).unwrap(),
        );
    }
}

#[test]
fn gelu_kind_from_hf_names() {
    assert_eq!(GeluKind::from_hf_name("gelu_new").unwrap(), GeluKind::Tanh);
    assert_eq!(GeluKind::from_hf_name("gelu").unwrap(), GeluKind::Erf);
    assert!(GeluKind::from_hf_name("relu").is_err());
}
