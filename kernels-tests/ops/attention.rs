//! Attention: flash forward (out, lse) and backward (dq, dk, dv) for all three
//! variants and the naive baseline against an f64 reference, over causal /
//! full, left-padded batches, KV-cache decoding and odd sizes; the tape
//! against finite differences; exact zeros for pad queries. Elsewhere:
//! grouped-query heads (`gqa.rs`), bidirectional attention over right padding
//! (`bidirectional.rs`), the CPU one-row-per-lane decoding kernel (`decode.rs`).

mod bidirectional;
mod decode;
mod gqa;

use crate::common::*;
use engine::ops::attention::*;
use engine::{Tape, Tensor};

#[derive(Clone, Debug)]
struct Case {
    b: usize,
    tq: usize,
    tk: usize,
    tcap: usize,
    h: usize,
    /// KV heads (divides h).
    hkv: usize,
    d: usize,
    causal: bool,
    /// Left padding per batch row (mask [B, tcap]); None = no mask.
    pads: Option<Vec<usize>>,
    /// The pads end each row instead (encoders' right padding).
    right: bool,
    scale: Option<f32>,
}

fn case(b: usize, t: usize, h: usize, d: usize) -> Case {
    Case {
        b,
        tq: t,
        tk: t,
        tcap: t,
        h,
        hkv: h,
        d,
        causal: true,
        pads: None,
        right: false,
        scale: None,
    }
}

struct Data {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    dout: Vec<f32>,
    mask: Option<Vec<i32>>,
}

impl Case {
    fn qshape(&self) -> [usize; 4] {
        [self.b, self.tq, self.h, self.d]
    }
    fn kshape(&self) -> [usize; 4] {
        [self.b, self.tcap, self.hkv, self.d]
    }
    fn opts(&self, variant: AttnVariant) -> AttnOptions {
        AttnOptions {
            causal: self.causal,
            scale: self.scale,
            kv_len: Some(self.tk),
            variant,
        }
    }
    fn data(&self, seed: u64) -> Data {
        let mut rng = Rng::new(seed);
        let nq = self.b * self.tq * self.h * self.d;
        let nk = self.b * self.tcap * self.hkv * self.d;
        let mask = self.pads.as_ref().map(|pads| {
            (0..self.b * self.tcap)
                .map(|e| {
                    let (j, pad) = (e % self.tcap, pads[e / self.tcap]);
                    // Distance from the padded end of the row.
                    let from_pad_end = if self.right { self.tcap - 1 - j } else { j };
                    (from_pad_end >= pad) as i32
                })
                .collect()
        });
        Data {
            q: rng.vec(nq, 1.5),
            k: rng.vec(nk, 1.5),
            v: rng.vec(nk, 1.0),
            dout: rng.vec(nq, 1.0),
            mask,
        }
    }
    fn allowed(&self, m: &Data, b: usize, i: usize, j: usize) -> bool {
        j < self.tk
            && (!self.causal || j + self.tq <= i + self.tk)
            && m.mask.as_ref().is_none_or(|mk| mk[b * self.tcap + j] != 0)
    }
}

struct Reference {
    out: Vec<f64>,
    lse: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
}

/// Plain f64 attention and its gradients, row by row; query head hh reads
/// KV head hh / (h / hkv), whose gradients sum over its query heads.
fn reference(c: &Case, x: &Data) -> Reference {
    let (d, h) = (c.d, c.h);
    let scale = c.scale.map_or(1.0 / (d as f64).sqrt(), |s| s as f64);
    let qi = |b: usize, i: usize, hh: usize| ((b * c.tq + i) * h + hh) * d;
    let group = h / c.hkv;
    let ki = |b: usize, j: usize, hh: usize| ((b * c.tcap + j) * c.hkv + hh / group) * d;
    let dot = |a: &[f32], o1: usize, bb: &[f32], o2: usize| -> f64 {
        (0..d).map(|t| a[o1 + t] as f64 * bb[o2 + t] as f64).sum()
    };
    let mut r = Reference {
        out: vec![0.0; x.q.len()],
        lse: vec![0.0; c.b * h * c.tq],
        dq: vec![0.0; x.q.len()],
        dk: vec![0.0; x.k.len()],
        dv: vec![0.0; x.k.len()],
    };
    for b in 0..c.b {
        for hh in 0..h {
            for i in 0..c.tq {
                let keys: Vec<usize> = (0..c.tk).filter(|&j| c.allowed(x, b, i, j)).collect();
                if keys.is_empty() {
                    continue;
                }
                let qo = qi(b, i, hh);
                let s: Vec<f64> = keys
                    .iter()
                    .map(|&j| scale * dot(&x.q, qo, &x.k, ki(b, j, hh)))
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let l: f64 = s.iter().map(|v| (v - m).exp()).sum();
                r.lse[(b * h + hh) * c.tq + i] = m + l.ln();
                let pr: Vec<f64> = s.iter().map(|v| (v - m).exp() / l).collect();
                for (&j, &pj) in keys.iter().zip(&pr) {
                    for t in 0..d {
                        r.out[qo + t] += pj * x.v[ki(b, j, hh) + t] as f64;
                    }
                }
                let dp: Vec<f64> = keys
                    .iter()
                    .map(|&j| dot(&x.dout, qo, &x.v, ki(b, j, hh)))
                    .collect();
                let delta: f64 = pr.iter().zip(&dp).map(|(a, b)| a * b).sum();
                for (n, &j) in keys.iter().enumerate() {
                    let ko = ki(b, j, hh);
                    let ds = pr[n] * (dp[n] - delta) * scale;
                    for t in 0..d {
                        r.dv[ko + t] += pr[n] * x.dout[qo + t] as f64;
                        r.dq[qo + t] += ds * x.k[ko + t] as f64;
                        r.dk[ko + t] += ds * x.q[qo + t] as f64;
                    }
                }
            }
        }
    }
    r
}

fn uploads(c: &Case, x: &Data) -> (Tensor, Tensor, Tensor, Option<Tensor>) {
    (
        upload(&c.qshape(), &x.q),
        upload(&c.kshape(), &x.k),
        upload(&c.kshape(), &x.v),
        x.mask
            .as_ref()
            .map(|m| Tensor::from_i32(&gpu(), &[c.b, c.tcap], m).unwrap()),
    )
}

const VARIANTS: [AttnVariant; 3] = [
    AttnVariant::Cpu,
    AttnVariant::CpuSubgroup,
    AttnVariant::Tiled,
];

/// Runs forward and backward of one variant into poisoned outputs and checks
/// all five results; returns them for further checks.
fn check(c: &Case, seed: u64, variant: AttnVariant) -> [Vec<f32>; 5] {
    let x = c.data(seed);
    let r = reference(c, &x);
    let (q, k, v, mask) = uploads(c, &x);
    let opts = c.opts(variant);
    let out = poisoned(&c.qshape());
    let lse = poisoned(&[c.b, c.h, c.tq]);
    let inputs = AttnInputs::new(&q, &k, &v, mask.as_ref());
    attention_forward_into(inputs, &opts, &out, &lse).unwrap();
    let [dq, dk, dv] = [
        poisoned(&c.qshape()),
        poisoned(&c.kshape()),
        poisoned(&c.kshape()),
    ];
    let dout = upload(&c.qshape(), &x.dout);
    attention_backward_into(inputs, (&out, &lse), &dout, &opts, [&dq, &dk, &dv]).unwrap();
    let what = |n: &str| format!("{variant:?} {n} {c:?}");
    let got = [&out, &lse, &dq, &dk, &dv].map(|t| t.to_vec().unwrap());
    assert_close(&what("out"), &got[0], &r.out, 2e-6, 1e-5);
    assert_close(&what("lse"), &got[1], &r.lse, 2e-6, 1e-5);
    assert_close(&what("dq"), &got[2], &r.dq, 1e-5, 1e-4);
    assert_close(&what("dk"), &got[3], &r.dk, 1e-5, 1e-4);
    assert_close(&what("dv"), &got[4], &r.dv, 1e-5, 1e-4);
    got
}

fn cases() -> Vec<Case> {
    vec![
        case(1, 1, 1, 16),
        case(1, 3, 3, 24),
        Case {
            pads: Some(vec![0, 5]),
            ..case(2, 17, 1, 64)
        },
        case(1, 33, 3, 80),
        Case {
            pads: Some(vec![3, 40]),
            ..case(2, 70, 1, 128)
        },
        // Full (non-causal) attention over a padded batch.
        Case {
            causal: false,
            pads: Some(vec![0, 4]),
            scale: Some(0.3),
            ..case(2, 17, 3, 16)
        },
        // A batch row that is all padding.
        Case {
            pads: Some(vec![1, 5]),
            ..case(2, 5, 2, 16)
        },
        // Decoding one token against a cache of capacity 12 holding 9.
        Case {
            tq: 1,
            tk: 9,
            tcap: 12,
            pads: Some(vec![0, 3]),
            ..case(2, 1, 3, 64)
        },
        // A chunk of 5 queries appended to a cache (causal offset 16).
        Case {
            tq: 5,
            tk: 21,
            tcap: 24,
            ..case(1, 5, 1, 24)
        },
    ]
}

#[test]
fn attention_params_layout() {
    crate::assert_params_layout!(
        AttnParams,
        "attention",
        "AttnParams",
        [
            batch,
            tq,
            tk,
            heads,
            d,
            kv_stride,
            mask_stride,
            flags,
            scale,
            scale_log2,
            kv_heads,
            _pad1
        ]
    );
}

#[test]
fn attention_cpu_variants_match_reference() {
    for (n, c) in cases().iter().enumerate() {
        check(c, 100 + n as u64, AttnVariant::Cpu);
        check(c, 100 + n as u64, AttnVariant::CpuSubgroup);
    }
}

#[test]
fn attention_tiled_variant_matches_reference() {
    for (n, c) in cases().iter().enumerate() {
        check(c, 100 + n as u64, AttnVariant::Tiled);
    }
}

#[test]
fn attention_pad_queries_and_keys_are_exact_zeros() {
    let c = Case {
        pads: Some(vec![2, 6]),
        ..case(2, 9, 2, 16)
    };
    for variant in VARIANTS {
        let [out, lse, dq, dk, dv] = check(&c, 7, variant);
        for b in 0..c.b {
            let pad = c.pads.as_ref().unwrap()[b];
            for t in 0..pad {
                let row = |v: &[f32]| {
                    let o = (b * c.tq + t) * c.h * c.d;
                    v[o..o + c.h * c.d].iter().all(|&x| x == 0.0)
                };
                assert!(row(&out) && row(&dq) && row(&dk) && row(&dv), "pad {b}/{t}");
                for h in 0..c.h {
                    assert_eq!(lse[(b * c.h + h) * c.tq + t], 0.0);
                }
            }
        }
    }
}

#[test]
fn attention_naive_matches_reference() {
    let mut cs = cases();
    cs.truncate(3);
    cs.push(Case {
        tq: 1,
        tk: 9,
        tcap: 12,
        pads: Some(vec![0, 3]),
        ..case(2, 1, 3, 6)
    });
    cs.push(Case {
        causal: false,
        pads: Some(vec![0, 4]),
        ..case(2, 7, 2, 16)
    });
    for (n, c) in cs.iter().enumerate() {
        let x = c.data(200 + n as u64);
        let r = reference(c, &x);
        let (q, k, v, mask) = uploads(c, &x);
        let out = poisoned(&c.qshape());
        attention_naive_forward_into(
            AttnInputs::new(&q, &k, &v, mask.as_ref()),
            &c.opts(AttnVariant::Auto),
            &out,
        )
        .unwrap();
        assert_close(
            &format!("naive {c:?}"),
            &out.to_vec().unwrap(),
            &r.out,
            2e-6,
            1e-5,
        );
    }
}

#[test]
fn attention_tape_matches_finite_differences() {
    let causal = Case {
        pads: Some(vec![0, 1]),
        ..case(2, 3, 2, 4)
    };
    // Bidirectional over right padding (an encoder batch).
    let full = Case {
        causal: false,
        right: true,
        pads: Some(vec![0, 2]),
        ..case(2, 4, 2, 4)
    };
    for (c, seed) in [(causal, 9), (full, 11)] {
        let x = c.data(seed);
        let mask = Tensor::from_i32(&gpu(), &[c.b, c.tcap], x.mask.as_ref().unwrap()).unwrap();
        let inputs = vec![
            (c.qshape().to_vec(), x.q.clone()),
            (c.kshape().to_vec(), x.k.clone()),
            (c.kshape().to_vec(), x.v.clone()),
        ];
        let opts = c.opts(AttnVariant::Auto);
        check_grads("attention", &inputs, 1e-2, 2e-3, |tape: &Tape, vs| {
            attention(tape, &vs[0], &vs[1], &vs[2], Some(&mask), &opts).unwrap()
        });
    }
}

#[test]
fn attention_rejects_bad_shapes() {
    let c = case(1, 4, 1, 6);
    let x = c.data(1);
    let (q, k, v, _) = uploads(&c, &x);
    let opts = AttnOptions::default();
    assert!(
        attention_forward(AttnInputs::new(&q, &k, &v, None), &opts).is_err(),
        "D % 4 != 0"
    );
    let q2 = upload(&[1, 5, 1, 8], &[0.0; 40]);
    let k2 = upload(&[1, 4, 1, 8], &[0.0; 32]);
    assert!(
        attention_forward(AttnInputs::new(&q2, &k2, &k2, None), &opts).is_err(),
        "causal Tq > Tk"
    );
}
