//! One matmul test problem ([`Case`]): its shapes, seeded data, the f64
//! reference (C and every gradient), and the check of a kernel against it.

use crate::common::*;
use engine::ops::matmul::{matmul_backward_with, matmul_forward_with, MatmulVariant};
use engine::{Gpu, Tensor};
use std::sync::Arc;

/// One problem: sizes, transposes, batch (0 = plain 2-D), shared weight, bias.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub shared: bool,
    pub ta: bool,
    pub tb: bool,
    pub bias: bool,
}

pub struct Data {
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub bias: Vec<f32>,
    pub dc: Vec<f32>,
}

impl Case {
    pub fn nb(&self) -> usize {
        self.batch.max(1)
    }
    /// `dims`, behind the batch dim when this operand has one.
    fn batched(&self, has_batch: bool, dims: [usize; 2]) -> Vec<usize> {
        let batch = (self.batch > 0 && has_batch).then_some(self.batch);
        batch.into_iter().chain(dims).collect()
    }
    pub fn a_shape(&self) -> Vec<usize> {
        let dims = if self.ta {
            [self.k, self.m]
        } else {
            [self.m, self.k]
        };
        self.batched(true, dims)
    }
    pub fn b_shape(&self) -> Vec<usize> {
        let dims = if self.tb {
            [self.n, self.k]
        } else {
            [self.k, self.n]
        };
        self.batched(!self.shared, dims)
    }
    pub fn c_shape(&self) -> Vec<usize> {
        self.batched(true, [self.m, self.n])
    }
    pub fn data(&self, seed: u64) -> Data {
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
    pub fn reference(&self, d: &Data) -> [Vec<f64>; 4] {
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
pub fn tol(len: usize) -> f64 {
    2e-7 * len as f64 + 1e-6
}

pub fn check_case(gpu: &Arc<Gpu>, variant: MatmulVariant, cs: Case, seed: u64, backward: bool) {
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

pub fn plain(m: usize, n: usize, k: usize) -> Case {
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
