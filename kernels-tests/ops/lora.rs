//! lora: the fused forward and backward (matmul kernels + LoRA epilogue)
//! against an f64 reference, for both matmul kernels, both base layouts
//! (Conv1D `[in, out]` and nn.Linear `[out, in]`), odd sizes, ranks 1/4/16,
//! M = 1, with and without bias and dropout; fused == unfused; the epilogue
//! directly on poisoned outputs (with accumulation and both V layouts);
//! ranks that are not a multiple of 4 over storage full of NaN;
//! chunking on a small-binding device; the tape against finite differences.

use crate::common::*;
use engine::ops::dropout::dropout_forward;
use engine::ops::lora::{
    lora_backward, lora_forward, LoraBase, LoraDropout, LoraEpilogueParams, LoraSpec, LowRank,
};
use engine::ops::matmul::{matmul_lowrank_into, MatmulParams, MatmulVariant};
use engine::{Gpu, GpuOptions, Tensor};
use std::sync::Arc;

mod tape;

const VARIANTS: [MatmulVariant; 4] = [
    MatmulVariant::Cpu,
    MatmulVariant::CpuSubgroup,
    MatmulVariant::Tiled,
    MatmulVariant::Rows,
];

#[test]
fn epilogue_params_layout() {
    for stem in ["matmul", "matmul_cpu", "matmul_rows"] {
        crate::assert_params_layout!(
            LoraEpilogueParams,
            stem,
            "LoraEpilogue",
            [u_off, ldu, v_off, ldv, rank, scale]
        );
        crate::assert_params_layout!(MatmulParams, stem, "MatmulParams", [bias_off, lora]);
    }
}

/// One problem: M rows, K inputs, N outputs, rank r.
#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    r: usize,
    trans_b: bool,
    bias: bool,
    scale: f32,
    dropout: Option<LoraDropout>,
}

fn case(m: usize, k: usize, n: usize, r: usize, trans_b: bool) -> Case {
    Case {
        m,
        k,
        n,
        r,
        trans_b,
        bias: true,
        scale: 2.0,
        dropout: None,
    }
}

struct Data {
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
}

/// f64 reference values.
struct Want {
    y: Vec<f64>,
    xa: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    dbias: Vec<f64>,
    da: Vec<f64>,
    db: Vec<f64>,
}

impl Case {
    fn data(&self, seed: u64) -> Data {
        let mut rng = Rng::new(seed);
        Data {
            x: rng.vec(self.m * self.k, 1.0),
            w: rng.vec(self.k * self.n, 1.0),
            bias: rng.vec(self.n, 1.0),
            a: rng.vec(self.r * self.k, 1.0),
            b: rng.vec(self.n * self.r, 1.0),
            dy: rng.vec(self.m * self.n, 1.0),
        }
    }

    fn wi(&self, kk: usize, j: usize) -> usize {
        if self.trans_b {
            j * self.k + kk
        } else {
            kk * self.n + j
        }
    }

    /// The dropout multiplier of every x element (1 without dropout).
    fn keep(&self, gpu: &Arc<Gpu>) -> Vec<f64> {
        let n = self.m * self.k;
        match self.dropout {
            Some(d) => {
                let ones = Tensor::full(gpu, &[n], 1.0).unwrap();
                let f = dropout_forward(&ones, d.p, d.seed, d.offset).unwrap();
                to_f64(&f.to_vec().unwrap())
            }
            None => vec![1.0; n],
        }
    }

    #[allow(clippy::needless_range_loop)]
    fn want(&self, d: &Data, keep: &[f64]) -> Want {
        let (m, k, n, r, s) = (self.m, self.k, self.n, self.r, self.scale as f64);
        let f = |v: f32| v as f64;
        let sum = |len: usize, t: &dyn Fn(usize) -> f64| (0..len).map(t).sum::<f64>();
        let xd: Vec<f64> = (0..m * k).map(|i| f(d.x[i]) * keep[i]).collect();
        let mut w = Want {
            y: vec![0.0; m * n],
            xa: vec![0.0; m * r],
            dx: vec![0.0; m * k],
            dw: vec![0.0; k * n],
            dbias: vec![0.0; n],
            da: vec![0.0; r * k],
            db: vec![0.0; n * r],
        };
        let mut dxa = vec![0.0; m * r];
        for i in 0..m {
            for q in 0..r {
                w.xa[i * r + q] = sum(k, &|kk| xd[i * k + kk] * f(d.a[q * k + kk]));
                dxa[i * r + q] = s * sum(n, &|j| f(d.dy[i * n + j]) * f(d.b[j * r + q]));
            }
            for j in 0..n {
                let base = sum(k, &|kk| f(d.x[i * k + kk]) * f(d.w[self.wi(kk, j)]));
                let low = sum(r, &|q| w.xa[i * r + q] * f(d.b[j * r + q]));
                let bias = if self.bias { f(d.bias[j]) } else { 0.0 };
                w.y[i * n + j] = base + bias + s * low;
                w.dbias[j] += f(d.dy[i * n + j]);
            }
            for kk in 0..k {
                let base = sum(n, &|j| f(d.dy[i * n + j]) * f(d.w[self.wi(kk, j)]));
                let low = sum(r, &|q| dxa[i * r + q] * f(d.a[q * k + kk]));
                w.dx[i * k + kk] = base + keep[i * k + kk] * low;
            }
        }
        for kk in 0..k {
            for j in 0..n {
                w.dw[self.wi(kk, j)] = sum(m, &|i| f(d.x[i * k + kk]) * f(d.dy[i * n + j]));
            }
            for q in 0..r {
                w.da[q * k + kk] = sum(m, &|i| dxa[i * r + q] * xd[i * k + kk]);
            }
        }
        for j in 0..n {
            for q in 0..r {
                w.db[j * r + q] = s * sum(m, &|i| f(d.dy[i * n + j]) * w.xa[i * r + q]);
            }
        }
        w
    }

    fn spec(&self, variant: MatmulVariant) -> LoraSpec {
        LoraSpec {
            dropout: self.dropout,
            variant,
            ..LoraSpec::new(self.scale, self.trans_b)
        }
    }
}

/// Runs forward and backward of `c` on `gpu` and compares everything.
fn check(gpu: &Arc<Gpu>, variant: MatmulVariant, c: Case, seed: u64) {
    let what = format!("{variant:?} {c:?}");
    let d = c.data(seed);
    let up = |shape: &[usize], v: &[f32]| Tensor::from_f32(gpu, shape, v).unwrap();
    let x = up(&[c.m, c.k], &d.x);
    let wshape = if c.trans_b { [c.n, c.k] } else { [c.k, c.n] };
    let w = up(&wshape, &d.w);
    let bias = up(&[c.n], &d.bias);
    let (a, b) = (up(&[c.r, c.k], &d.a), up(&[c.n, c.r], &d.b));
    let want = c.want(&d, &c.keep(gpu));
    let spec = c.spec(variant);
    let bias = c.bias.then_some(&bias);
    let base = LoraBase::dense(&w, spec.trans_b);
    let (y, xa) = lora_forward(&spec, &base, &x, bias, &a, &b).unwrap();
    let reference = LoraSpec {
        unfused: true,
        ..spec
    };
    let (unfused, _) = lora_forward(&reference, &base, &x, bias, &a, &b).unwrap();
    let dy = up(&[c.m, c.n], &d.dy);
    let g = lora_backward(&spec, &base, &dy, &x, &a, &b, &xa, [true; 5]).unwrap();
    let got = [
        Some(y),
        Some(xa),
        Some(unfused),
        g.dx,
        g.dw,
        g.dbias,
        g.da,
        g.db,
    ];
    let want = [
        &want.y,
        &want.xa,
        &want.y,
        &want.dx,
        &want.dw,
        &want.dbias,
        &want.da,
        &want.db,
    ];
    let names = ["y", "xa", "unfused y", "dx", "dW", "dbias", "dA", "dB"];
    for ((t, w), name) in got.into_iter().zip(want).zip(names) {
        let t = t.unwrap().to_vec().unwrap();
        assert_close(&format!("{what}: {name}"), &t, w, 2e-5, 2e-5);
    }
}

#[test]
fn fused_forward_and_backward_match_reference() {
    let gpu = gpu();
    for (vi, variant) in VARIANTS.into_iter().enumerate() {
        for trans_b in [false, true] {
            let cases = [
                case(19, 33, 70, 4, trans_b),
                case(1, 7, 5, 1, trans_b),
                case(37, 24, 13, 16, trans_b),
                Case {
                    bias: false,
                    scale: 0.75,
                    ..case(20, 16, 64, 4, trans_b)
                },
            ];
            for (i, c) in cases.into_iter().enumerate() {
                check(
                    &gpu,
                    variant,
                    c,
                    10 * vi as u64 + i as u64 + 100 * trans_b as u64,
                );
            }
        }
    }
}

/// Ranks that are not a multiple of 4, on a device whose every new buffer
/// holds NaN: the epilogue reads U and V in whole 4-wide panels, and the
/// lanes at or past the rank (the next row's elements, or storage past the
/// tensor's end that nothing wrote) must not reach the output, not even as
/// 0·NaN. A reused buffer once made a PPO LoRA rollout's logits NaN this way.
#[test]
fn lanes_past_the_rank_never_reach_the_output() {
    let gpu = poisoning_gpu();
    for (vi, variant) in VARIANTS.into_iter().enumerate() {
        for (i, r) in [1, 2, 3, 5, 6].into_iter().enumerate() {
            let c = case(7 + i, 9, 11 + 2 * i, r, i % 2 == 0);
            check(&gpu, variant, c, 300 + 10 * vi as u64 + i as u64);
        }
    }
}

#[test]
fn dropout_applies_to_the_input_of_a_only() {
    let gpu = gpu();
    let dropout = Some(LoraDropout {
        p: 0.4,
        seed: 7,
        offset: 3,
    });
    for trans_b in [false, true] {
        let c = Case {
            dropout,
            ..case(9, 21, 17, 4, trans_b)
        };
        check(&gpu, MatmulVariant::Auto, c, 40 + trans_b as u64);
    }
}

/// The epilogue by itself: C = C0 + A·op(B) + s·U·Vᵀ into a poisoned (or,
/// accumulating, pre-filled) C, with V stored [N, r] and [r, N].
#[test]
#[allow(clippy::needless_range_loop)]
fn epilogue_writes_every_element_and_accumulates() {
    let mut rng = Rng::new(5);
    for variant in VARIANTS {
        for (m, k, n, r) in [(21, 9, 67, 3), (16, 8, 64, 8), (1, 5, 3, 16)] {
            for (v_t, accumulate) in [(false, false), (true, false), (true, true)] {
                let (xa, xb) = (rng.vec(m * k, 1.0), rng.vec(k * n, 1.0));
                let (u, v) = (rng.vec(m * r, 1.0), rng.vec(n * r, 1.0));
                let c0 = rng.vec(m * n, 1.0);
                let c = if accumulate {
                    upload(&[m, n], &c0)
                } else {
                    poisoned(&[m, n])
                };
                let vt = if v_t {
                    upload(&[r, n], &v)
                } else {
                    upload(&[n, r], &v)
                };
                let ut = upload(&[m, r], &u);
                let lr = LowRank::new(&ut, &vt, v_t, -0.5).unwrap();
                let (ta, tb) = (upload(&[m, k], &xa), upload(&[k, n], &xb));
                matmul_lowrank_into(variant, &c, &ta, &tb, None, false, false, accumulate, &lr)
                    .unwrap();
                let mut want = vec![0.0f64; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let base: f64 = (0..k)
                            .map(|q| xa[i * k + q] as f64 * xb[q * n + j] as f64)
                            .sum();
                        let vi = |q: usize| if v_t { q * n + j } else { j * r + q };
                        let low: f64 = (0..r).map(|q| u[i * r + q] as f64 * v[vi(q)] as f64).sum();
                        let prev = if accumulate {
                            c0[i * n + j] as f64
                        } else {
                            0.0
                        };
                        want[i * n + j] = prev + base - 0.5 * low;
                    }
                }
                let what =
                    format!("{variant:?} epilogue m{m} k{k} n{n} r{r} v_t {v_t} acc {accumulate}");
                assert_close(&what, &c.to_vec().unwrap(), &want, 1e-5, 1e-5);
            }
        }
    }
}

#[test]
fn fused_equals_unfused_at_a_model_shape() {
    let mut rng = Rng::new(9);
    let (m, k, n, r) = (64, 96, 288, 16);
    let x = upload(&[m, k], &rng.vec(m * k, 1.0));
    let w = upload(&[k, n], &rng.vec(k * n, 0.1));
    let bias = upload(&[n], &rng.vec(n, 0.1));
    let a = upload(&[r, k], &rng.vec(r * k, 0.1));
    let b = upload(&[n, r], &rng.vec(n * r, 0.1));
    let spec = LoraSpec::new(2.0, false);
    let base = LoraBase::dense(&w, spec.trans_b);
    let (fused, _) = lora_forward(&spec, &base, &x, Some(&bias), &a, &b).unwrap();
    let reference = LoraSpec {
        unfused: true,
        ..spec
    };
    let (unfused, _) = lora_forward(&reference, &base, &x, Some(&bias), &a, &b).unwrap();
    let want = to_f64(&unfused.to_vec().unwrap());
    assert_close(
        "fused vs unfused",
        &fused.to_vec().unwrap(),
        &want,
        1e-5,
        1e-5,
    );
}

#[test]
fn chunks_operands_larger_than_one_binding() {
    // 4 KiB bindings (1024 floats): x, W, y, dx and U all exceed one.
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(4096);
    let small = Gpu::new(&opts).unwrap();
    for trans_b in [false, true] {
        check(
            &small,
            MatmulVariant::Auto,
            case(70, 40, 45, 16, trans_b),
            60,
        );
    }
    check(&small, MatmulVariant::Auto, case(300, 5, 6, 4, false), 61);
}
