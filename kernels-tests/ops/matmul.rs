//! matmul: forward and backward of both kernels (CPU register-blocked and
//! shared-memory tiled) against an f64 reference, for every transpose
//! combination, odd and aligned shapes, batches with and without a shared
//! weight, bias, accumulation, chunking on a small-binding device, and the
//! tape against finite differences. The reference problem is `matmul/case.rs`.

mod case;
mod narrow;

use crate::common::*;
use case::{check_case, plain, tol, Case};
use engine::ops::matmul::{linear, matmul, matmul_into, MatmulParams, MatmulVariant};
use engine::{Gpu, GpuOptions, Tensor};

const VARIANTS: [MatmulVariant; 4] = [
    MatmulVariant::Cpu,
    MatmulVariant::CpuSubgroup,
    MatmulVariant::Tiled,
    MatmulVariant::Rows,
];
const TRANS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

#[test]
fn matmul_params_layout() {
    for stem in ["matmul", "matmul_cpu", "matmul_rows"] {
        crate::assert_params_layout!(
            MatmulParams,
            stem,
            "MatmulParams",
            [
                m, n, k, batch, a_off, lda, a_bs, accumulate, b_off, ldb, b_bs, has_bias, c_off,
                ldc, c_bs, bias_off
            ]
        );
    }
}

#[test]
fn forward_matches_reference_for_every_variant_and_transpose() {
    let gpu = gpu();
    // GEMV (M = 1), K = 1, odd sizes across tile edges, and 16-byte aligned
    // sizes (vec4 loads on the CPU kernel).
    let shapes = [
        (1, 1, 1),
        (1, 37, 19),
        (6, 5, 1),
        (7, 13, 5),
        (65, 33, 17),
        (130, 70, 9),
        (20, 24, 36),
    ];
    for variant in VARIANTS {
        for (t, (ta, tb)) in TRANS.into_iter().enumerate() {
            for (s, &(m, n, k)) in shapes.iter().enumerate() {
                let cs = Case {
                    ta,
                    tb,
                    bias: (s + t) % 2 == 0,
                    ..plain(m, n, k)
                };
                check_case(&gpu, variant, cs, (10 * s + t) as u64, false);
            }
        }
    }
}

#[test]
fn batched_forward_and_backward_match_reference() {
    let gpu = gpu();
    for variant in VARIANTS {
        for (t, (ta, tb)) in TRANS.into_iter().enumerate() {
            for shared in [false, true] {
                for (m, n, k) in [(5, 7, 3), (12, 8, 16)] {
                    let cs = Case {
                        ta,
                        tb,
                        batch: 3,
                        shared,
                        bias: shared,
                        ..plain(m, n, k)
                    };
                    check_case(&gpu, variant, cs, 100 + t as u64, true);
                }
            }
        }
    }
}

#[test]
fn backward_matches_reference_at_odd_sizes() {
    let gpu = gpu();
    for variant in VARIANTS {
        for (t, (ta, tb)) in TRANS.into_iter().enumerate() {
            for (m, n, k) in [(1, 9, 6), (33, 7, 1), (66, 35, 19)] {
                let cs = Case {
                    ta,
                    tb,
                    bias: true,
                    ..plain(m, n, k)
                };
                check_case(&gpu, variant, cs, 200 + t as u64, true);
            }
        }
    }
}

#[test]
fn accumulate_adds_to_the_output() {
    let gpu = gpu();
    let cs = Case {
        bias: true,
        ..plain(9, 11, 6)
    };
    let d = cs.data(7);
    let [c_ref, ..] = cs.reference(&d);
    for variant in VARIANTS {
        let a = Tensor::from_f32(&gpu, &cs.a_shape(), &d.a).unwrap();
        let b = Tensor::from_f32(&gpu, &cs.b_shape(), &d.b).unwrap();
        let bias = Tensor::from_f32(&gpu, &[cs.n], &d.bias).unwrap();
        let c = Tensor::from_f32(&gpu, &cs.c_shape(), &d.dc).unwrap();
        matmul_into(variant, &c, &a, &b, Some(&bias), false, false, true).unwrap();
        let want: Vec<f64> = c_ref
            .iter()
            .zip(&d.dc)
            .map(|(r, &x)| r + x as f64)
            .collect();
        assert_close(
            &format!("{variant:?} C += AB + bias"),
            &c.to_vec().unwrap(),
            &want,
            tol(6),
            1e-6,
        );
    }
}

#[test]
fn outputs_are_fully_written() {
    // Poisoned outputs through matmul_into without accumulation.
    let gpu = gpu();
    let cs = plain(17, 19, 5);
    let d = cs.data(8);
    let [c_ref, ..] = cs.reference(&d);
    for variant in VARIANTS {
        let a = upload(&cs.a_shape(), &d.a);
        let b = upload(&cs.b_shape(), &d.b);
        let c = poisoned(&cs.c_shape());
        matmul_into(variant, &c, &a, &b, None, false, false, false).unwrap();
        assert_close(
            &format!("{variant:?} poisoned C"),
            &c.to_vec().unwrap(),
            &c_ref,
            tol(5),
            1e-6,
        );
    }
    let _ = gpu;
}

#[test]
fn chunks_operands_larger_than_one_binding() {
    // Bindings of 4 KiB (1024 floats): every operand below exceeds one, and
    // with K = 1100 a single row of A (or of a transposed B) does too.
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    for (t, (ta, tb)) in TRANS.into_iter().enumerate() {
        for (m, n, k) in [(37, 41, 45), (3, 5, 1100), (70, 1030, 2)] {
            let cs = Case {
                ta,
                tb,
                bias: true,
                ..plain(m, n, k)
            };
            check_case(&small, MatmulVariant::Auto, cs, 300 + t as u64, true);
        }
        for shared in [false, true] {
            let cs = Case {
                ta,
                tb,
                batch: 3,
                shared,
                bias: true,
                ..plain(29, 23, 31)
            };
            check_case(&small, MatmulVariant::Auto, cs, 400 + t as u64, true);
        }
    }
    let cs = Case {
        ta: true,
        tb: true,
        bias: true,
        ..plain(37, 41, 45)
    };
    check_case(&small, MatmulVariant::Tiled, cs, 500, true);
    for (t, (ta, tb)) in TRANS.into_iter().enumerate() {
        let cs = Case {
            ta,
            tb,
            bias: true,
            ..plain(3, 5, 1100)
        };
        check_case(&small, MatmulVariant::Rows, cs, 600 + t as u64, true);
    }
}

#[test]
fn tape_gradients_match_finite_differences() {
    let mut rng = Rng::new(9);
    for (ta, tb) in TRANS {
        let (m, n, k) = (3, 4, 5);
        let a_shape = if ta { vec![2, k, m] } else { vec![2, m, k] };
        let b_shape = if tb { vec![n, k] } else { vec![k, n] };
        let inputs = [
            (a_shape, rng.vec(2 * m * k, 1.0)),
            (b_shape, rng.vec(k * n, 1.0)),
            (vec![n], rng.vec(n, 1.0)),
        ];
        check_grads(
            &format!("matmul ta={ta} tb={tb}"),
            &inputs,
            1e-2,
            2e-3,
            |tape, v| matmul(tape, &v[0], &v[1], Some(&v[2]), ta, tb).unwrap(),
        );
    }
    for x_shape in [vec![4], vec![2, 3, 4]] {
        let nx = x_shape.iter().product();
        let inputs = [
            (x_shape.clone(), rng.vec(nx, 1.0)),
            (vec![4, 3], rng.vec(12, 1.0)),
        ];
        check_grads(
            &format!("linear {x_shape:?}"),
            &inputs,
            1e-2,
            2e-3,
            |tape, v| linear(tape, &v[0], &v[1], None).unwrap(),
        );
    }
}

#[test]
fn linear_keeps_leading_dims_and_rejects_mismatches() {
    let gpu = gpu();
    let tape = engine::Tape::new(&gpu);
    let x = tape.constant(upload(&[2, 3, 4], &[0.5; 24]));
    let w = tape.param(&upload(&[4, 5], &[0.25; 20]));
    let b = tape.param(&upload(&[5], &[1.0; 5]));
    let y = linear(&tape, &x, &w, Some(&b)).unwrap();
    assert_eq!(y.shape(), [2, 3, 5]);
    assert_close(
        "linear",
        &y.tensor().to_vec().unwrap(),
        &[1.5; 30],
        1e-6,
        1e-6,
    );
    let bad = tape.constant(upload(&[2, 3, 5], &[0.0; 30]));
    assert!(linear(&tape, &bad, &w, None).is_err());
}
