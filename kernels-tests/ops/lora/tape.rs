//! lora on the tape (`src/ops/lora/tape.rs`): `lora_linear`'s gradients
//! against finite differences (both base layouts, with and without dropout),
//! leading dimensions, a frozen base, and mismatched adapter shapes refused.

use crate::common::*;
use engine::ops::lora::{lora_forward, lora_linear, LoraBase, LoraDropout, LoraSpec};

#[test]
fn tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(11);
    let (m, k, n, r) = (3, 5, 4, 2);
    for trans_b in [false, true] {
        for dropout in [
            None,
            Some(LoraDropout {
                p: 0.3,
                seed: 1,
                offset: 2,
            }),
        ] {
            let wshape = if trans_b { vec![n, k] } else { vec![k, n] };
            let inputs = [
                (vec![m, k], rng.vec(m * k, 1.0)),
                (wshape, rng.vec(k * n, 1.0)),
                (vec![n], rng.vec(n, 1.0)),
                (vec![r, k], rng.vec(r * k, 1.0)),
                (vec![n, r], rng.vec(n * r, 1.0)),
            ];
            check_grads(
                &format!("lora_linear trans_b={trans_b} dropout={dropout:?}"),
                &inputs,
                1e-2,
                2e-3,
                |tape, v| {
                    lora_linear(
                        tape,
                        &v[0],
                        &v[1],
                        Some(&v[2]),
                        &v[3],
                        &v[4],
                        1.5,
                        trans_b,
                        dropout,
                    )
                    .unwrap()
                },
            );
        }
    }
}

#[test]
fn leading_dims_and_frozen_base() {
    let tape = engine::Tape::new(&gpu());
    let mut rng = Rng::new(12);
    let x = tape.param(&upload(&[2, 3, 4], &rng.vec(24, 1.0)));
    let w = tape.constant(upload(&[4, 5], &rng.vec(20, 1.0)));
    let a = tape.param(&upload(&[2, 4], &rng.vec(8, 1.0)));
    let b = tape.param(&upload(&[5, 2], &rng.vec(10, 1.0)));
    let y = lora_linear(&tape, &x, &w, None, &a, &b, 1.0, false, None).unwrap();
    assert_eq!(y.shape(), [2, 3, 5]);
    let grads = tape.backward(&y).unwrap();
    assert!(
        grads.get(&w).is_none(),
        "a constant base weight gets no gradient"
    );
    assert_eq!(grads.get(&x).unwrap().shape(), [2, 3, 4]);
    assert_eq!(grads.get(&a).unwrap().shape(), [2, 4]);
    assert_eq!(grads.get(&b).unwrap().shape(), [5, 2]);
    let bad = upload(&[3, 4], &[0.0; 12]);
    let spec = LoraSpec::new(1.0, false);
    let base = LoraBase::dense(w.tensor(), spec.trans_b);
    let err = lora_forward(&spec, &base, x.tensor(), None, &bad, b.tensor());
    assert!(err.is_err(), "A [3, 4] with B [5, 2] must be rejected");
}
