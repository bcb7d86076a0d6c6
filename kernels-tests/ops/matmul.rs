//! matmul: forward and backward of both kernels (CPU register-blocked and
//! shared-memory tiled) against an f64 reference, for every transpose
//! combination, odd and aligned shapes, batches with and without a shared
//! weight, bias, accumulation, chunking on a small-binding device, and the
//! tape against finite differences.

use crate::common::*;
use engine::ops::matmul::{
    linear, matmul, matmul_backward_with, matmul_forward_with, matmul_into, MatmulParams,
    MatmulVariant,
};
use engine::{Gpu, GpuOptions, Tensor};
use std::sync::Arc;

const VARIANTS: [MatmulVariant; 2] = [MatmulVariant::Cpu, MatmulVariant::Tiled];
const TRANS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

#[test]
fn matmul_params_layout() {
    for stem in ["matmul", "matmul_cpu"] {
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

/// One problem: sizes, transposes, batch (0 = plain 2-D), shared weight, bias.
#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    shared: bool,
    ta: bool,
    tb: bool,
    bias: bool,
}

struct Data {
    a: Vec<f32>,
    b: Vec<f32>,
    bias: Vec<f32>,
    dc: Vec<f32>,
}

impl Case {
    fn nb(&self) -> usize {
        self.batch.max(1)
    }
    fn a_shape(&self) -> Vec<usize> {
        let mut s = if self.batch > 0 {
            vec![self.batch]
        } else {
            vec![]
        };
        s.extend(if self.ta {
            [self.k, self.m]
        } else {
            [self.m, self.k]
        });
        s
    }
    fn b_shape(&self) -> Vec<usize> {
        let mut s = if self.batch > 0 && !self.shared {
            vec![self.batch]
        } else {
            vec![]
        };
        s.extend(if self.tb {
            [self.n, self.k]
        } else {
            [self.k, self.n]
        });
        s
    }
    fn c_shape(&self) -> Vec<usize> {
        let mut s = if self.batch > 0 {
            vec![self.batch]
        } else {
            vec![]
        };
        s.extend([self.m, self.n]);
        s
    }
    fn data(&self, seed: u64) -> Data {
        let mut rng = Rng::new(seed);
        let nbb = if self.shared { 1 } else { self.nb() };
        Data {
            a: rng.vec(self.nb() * self.m * self.k, 1.0),
            b: rng.vec(nbb * self.k * self.n, 1.0),
            bias: rng.vec(self.n, 1.0),
            dc: rng.vec(self.nb() * self.m * self.n, 1.0),
        }
    }
    fn ai(&self, z: usize, i: usize, kk: usize) -> usize {
        z * self.m * self.k
            + if self.ta {
                kk * self.m + i
            } else {
                i * self.k + kk
            }
    }
    fn bi(&self, z: usize, kk: usize, j: usize) -> usize {
        let z = if self.shared { 0 } else { z };
        z * self.k * self.n
            + if self.tb {
                j * self.k + kk
            } else {
                kk * self.n + j
            }
    }
    #[allow(clippy::needless_range_loop)]
    /// f64 reference: C, and the gradients dA, dB, dbias for `d.dc`.
    fn reference(&self, d: &Data) -> [Vec<f64>; 4] {
        let (m, n, k) = (self.m, self.n, self.k);
        let mut c = vec![0.0; self.nb() * m * n];
        let mut da = vec![0.0; d.a.len()];
        let mut db = vec![0.0; d.b.len()];
        let mut dbias = vec![0.0; n];
        for z in 0..self.nb() {
            for i in 0..m {
                for j in 0..n {
                    let ci = (z * m + i) * n + j;
                    let mut s = if self.bias { d.bias[j] as f64 } else { 0.0 };
                    let g = d.dc[ci] as f64;
                    for kk in 0..k {
                        let (ai, bi) = (self.ai(z, i, kk), self.bi(z, kk, j));
                        s += d.a[ai] as f64 * d.b[bi] as f64;
                        da[ai] += g * d.b[bi] as f64;
                        db[bi] += g * d.a[ai] as f64;
                    }
                    c[ci] = s;
                    dbias[j] += g;
                }
            }
        }
        [c, da, db, dbias]
    }
}

/// Tolerance for f32 dot products of length `len` with |terms| <= 1.
fn tol(len: usize) -> f64 {
    2e-7 * len as f64 + 1e-6
}

fn check_case(gpu: &Arc<Gpu>, variant: MatmulVariant, cs: Case, seed: u64, backward: bool) {
    let d = cs.data(seed);
    let up = |s: &[usize], v: &[f32]| Tensor::from_f32(gpu, s, v).unwrap();
    let (a, b) = (up(&cs.a_shape(), &d.a), up(&cs.b_shape(), &d.b));
    let bias = up(&[cs.n], &d.bias);
    let bias = cs.bias.then_some(&bias);
    let [c_ref, da_ref, db_ref, dbias_ref] = cs.reference(&d);
    let what = format!("{variant:?} {cs:?}");
    let c = matmul_forward_with(variant, &a, &b, bias, cs.ta, cs.tb).unwrap();
    assert_eq!(c.shape(), cs.c_shape());
    assert_close(
        &format!("{what}: C"),
        &c.to_vec().unwrap(),
        &c_ref,
        tol(cs.k),
        1e-6,
    );
    if !backward {
        return;
    }
    let dc = up(&cs.c_shape(), &d.dc);
    let g =
        matmul_backward_with(variant, &dc, &a, &b, cs.ta, cs.tb, [true, true, cs.bias]).unwrap();
    let da = g.da.unwrap();
    assert_eq!(da.shape(), a.shape());
    assert_close(
        &format!("{what}: dA"),
        &da.to_vec().unwrap(),
        &da_ref,
        tol(cs.n),
        1e-6,
    );
    let db = g.db.unwrap();
    assert_eq!(db.shape(), b.shape());
    let summed = if cs.shared { cs.nb() * cs.m } else { cs.m };
    assert_close(
        &format!("{what}: dB"),
        &db.to_vec().unwrap(),
        &db_ref,
        tol(summed),
        1e-6,
    );
    if cs.bias {
        let dbias = g.dbias.unwrap().to_vec().unwrap();
        assert_close(
            &format!("{what}: dbias"),
            &dbias,
            &dbias_ref,
            tol(cs.nb() * cs.m),
            1e-6,
        );
    } else {
        assert!(g.dbias.is_none());
    }
}

fn plain(m: usize, n: usize, k: usize) -> Case {
    let (ta, tb, batch, shared, bias) = (false, false, 0, false, false);
    Case {
        m,
        n,
        k,
        batch,
        shared,
        ta,
        tb,
        bias,
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
