//! The CPU kernels' narrow products (src/ops/matmul/gemm.rs): a product at
//! most 16 columns wide runs as its transpose, stored back transposed, and
//! one at most 16 rows tall runs the subgroup kernel's one-Block form. Each
//! output element is the same sum as before, so the result must equal the
//! plain kernel's bit for bit. A zero bias keeps the plain path (the swap
//! never takes a bias) and adds exactly nothing.

use super::case::{plain, tol, Case};
use super::TRANS;
use crate::common::*;
use engine::ops::matmul::{matmul_into, MatmulVariant};

/// `C (+)= op(A)·op(B)` through `matmul_into`, with or without a zero bias.
fn run(
    variant: MatmulVariant,
    cs: &Case,
    d: &super::case::Data,
    c0: Option<&[f32]>,
    zero_bias: bool,
) -> Vec<f32> {
    let a = upload(&cs.a_shape(), &d.a);
    let b = upload(&cs.b_shape(), &d.b);
    let c = match c0 {
        Some(v) => upload(&cs.c_shape(), v),
        None => poisoned(&cs.c_shape()),
    };
    let bias = upload(&[cs.n], &vec![0.0; cs.n]);
    let bias = zero_bias.then_some(&bias);
    matmul_into(variant, &c, &a, &b, bias, cs.ta, cs.tb, c0.is_some()).unwrap();
    c.to_vec().unwrap()
}

#[test]
fn narrow_products_equal_the_plain_kernel_bit_for_bit() {
    // Narrow (N ≤ 16, swapped) and short (M ≤ 16, one Block) products at
    // odd sizes, K % 4 tails, K = 1, and the LoRA shapes (U = x·Aᵀ at
    // rank 16, a decoding batch of 48, dA's 16 rows over a long K).
    let shapes = [
        (70, 16, 37),
        (33, 5, 8),
        (130, 12, 1),
        (19, 3, 130),
        (48, 16, 128),
        (16, 70, 93),
    ];
    for variant in [MatmulVariant::Cpu, MatmulVariant::CpuSubgroup] {
        for (t, (ta, tb)) in TRANS.into_iter().enumerate() {
            for (s, &(m, n, k)) in shapes.iter().enumerate() {
                let cs = Case {
                    ta,
                    tb,
                    ..plain(m, n, k)
                };
                let what = format!("{variant:?} {m}x{n}x{k} ta={ta} tb={tb}");
                let d = cs.data((40 * s + t) as u64);
                let narrow = run(variant, &cs, &d, None, false);
                let wide = run(variant, &cs, &d, None, true);
                for (i, (x, y)) in narrow.iter().zip(&wide).enumerate() {
                    assert!(x == y, "{what}: element {i} is {x}, the plain kernel's {y}");
                }
                let [c_ref, ..] = cs.reference(&d);
                assert_close(&what, &narrow, &c_ref, tol(k), 1e-6);
                // Accumulating onto C: the old value joins after the sum.
                let narrow = run(variant, &cs, &d, Some(&d.dc), false);
                let wide = run(variant, &cs, &d, Some(&d.dc), true);
                for (i, (x, y)) in narrow.iter().zip(&wide).enumerate() {
                    assert!(
                        x == y,
                        "{what} accumulating: element {i} is {x}, the plain kernel's {y}"
                    );
                }
            }
        }
    }
}

#[test]
fn narrow_batched_products_match_the_reference() {
    // A batch whose entries each run transposed: C's batch stride with the
    // transposed store, and a shared weight.
    for variant in [MatmulVariant::Cpu, MatmulVariant::CpuSubgroup] {
        for (t, (ta, tb)) in TRANS.into_iter().enumerate() {
            for shared in [false, true] {
                let cs = Case {
                    ta,
                    tb,
                    batch: 3,
                    shared,
                    ..plain(37, 9, 21)
                };
                let d = cs.data(500 + t as u64);
                let got = run(variant, &cs, &d, None, false);
                let [c_ref, ..] = cs.reference(&d);
                let what = format!("{variant:?} batched ta={ta} tb={tb} shared={shared}");
                assert_close(&what, &got, &c_ref, tol(21), 1e-6);
            }
        }
    }
}

#[test]
fn narrow_products_split_across_small_bindings() {
    // 4 KiB bindings: the transposed problem is split along its own M and N
    // (C's storage rows and columns swap roles) and still matches.
    let mut opts = engine::GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = engine::Gpu::new(&opts).unwrap();
    for (t, (ta, tb)) in TRANS.into_iter().enumerate() {
        for (m, n, k) in [(300, 9, 45), (70, 16, 130)] {
            let cs = Case {
                ta,
                tb,
                ..plain(m, n, k)
            };
            let d = cs.data(700 + t as u64);
            let a = engine::Tensor::from_f32(&small, &cs.a_shape(), &d.a).unwrap();
            let b = engine::Tensor::from_f32(&small, &cs.b_shape(), &d.b).unwrap();
            let c = engine::Tensor::empty(&small, &cs.c_shape(), engine::DType::F32).unwrap();
            c.poison();
            matmul_into(MatmulVariant::Auto, &c, &a, &b, None, ta, tb, false).unwrap();
            let [c_ref, ..] = cs.reference(&d);
            let what = format!("small bindings {m}x{n}x{k} ta={ta} tb={tb}");
            assert_close(&what, &c.to_vec().unwrap(), &c_ref, tol(k), 1e-6);
        }
    }
}

#[test]
fn a_rows_result_does_not_depend_on_the_products_height() {
    // The subgroup kernel runs 1 or 2 Blocks of 16 rows per invocation by
    // the product's height, and rows past M in a partial tile are clamped. A
    // row's result must not depend on either: rows 0..m of a product of
    // height m equal those of the same rows stacked into a product 100 tall,
    // bit for bit.
    let variant = MatmulVariant::CpuSubgroup;
    for tb in [false, true] {
        for (m, n, k) in [(16, 70, 37), (40, 33, 64), (48, 130, 9), (45, 8, 128)] {
            let cs = Case {
                tb,
                bias: true,
                ..plain(m, n, k)
            };
            let d = cs.data(900 + m as u64);
            let tall = Case { m: 100, ..cs };
            let a_tall: Vec<f32> = d.a.iter().copied().cycle().take(100 * k).collect();
            let b = upload(&cs.b_shape(), &d.b);
            let bias = upload(&[n], &d.bias);
            let short = poisoned(&cs.c_shape());
            let c_tall = poisoned(&tall.c_shape());
            let a = upload(&cs.a_shape(), &d.a);
            matmul_into(variant, &short, &a, &b, Some(&bias), false, tb, false).unwrap();
            let a = upload(&tall.a_shape(), &a_tall);
            matmul_into(variant, &c_tall, &a, &b, Some(&bias), false, tb, false).unwrap();
            let (short, c_tall) = (short.to_vec().unwrap(), c_tall.to_vec().unwrap());
            for (i, (x, y)) in short.iter().zip(&c_tall).enumerate() {
                assert!(
                    x.to_bits() == y.to_bits(),
                    "{m}x{n}x{k} tb={tb}: element {i} is {x}, {y} in the tall product"
                );
            }
            let [c_ref, ..] = cs.reference(&d);
            assert_close(
                &format!("{m}x{n}x{k} tb={tb}"),
                &short,
                &c_ref,
                tol(k),
                1e-6,
            );
        }
    }
}
