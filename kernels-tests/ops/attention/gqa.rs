//! Grouped-query attention: KV heads shared by groups of query heads
//! (n_kv = 1, 2 and n_head), for every flash variant and the naive baseline,
//! against the f64 reference (dK/dV summed over each group) and finite
//! differences; odd T, KV-cache decoding with T = 1, padding.

use super::*;

fn gqa(b: usize, t: usize, h: usize, hkv: usize, d: usize) -> Case {
    Case {
        hkv,
        ..case(b, t, h, d)
    }
}

fn gqa_cases() -> Vec<Case> {
    let mut cs = Vec::new();
    for hkv in [1, 2, 4] {
        cs.push(gqa(1, 7, 4, hkv, 16));
        cs.push(Case {
            pads: Some(vec![0, 3]),
            ..gqa(2, 13, 4, hkv, 24)
        });
        // Decoding one token against a cache of capacity 12 holding 9.
        cs.push(Case {
            tq: 1,
            tk: 9,
            tcap: 12,
            pads: Some(vec![2, 0]),
            ..gqa(2, 1, 4, hkv, 24)
        });
    }
    cs.extend([
        gqa(1, 1, 6, 3, 16),
        // Full attention, a custom scale, 3 query heads per KV head.
        Case {
            causal: false,
            scale: Some(0.4),
            pads: Some(vec![1, 0]),
            ..gqa(2, 11, 6, 2, 16)
        },
        // 5 queries appended to a cache (causal offset), multi-query.
        Case {
            tq: 5,
            tk: 17,
            tcap: 20,
            ..gqa(1, 5, 3, 1, 64)
        },
        // More rows than one tiled workgroup (64).
        gqa(1, 70, 2, 1, 16),
    ]);
    cs
}

#[test]
fn gqa_matches_reference_for_both_variants() {
    for variant in VARIANTS {
        for (n, c) in gqa_cases().iter().enumerate() {
            check(c, 300 + n as u64, variant);
        }
    }
}

#[test]
fn gqa_naive_matches_reference() {
    for (n, c) in gqa_cases().iter().enumerate() {
        let x = c.data(400 + n as u64);
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
fn gqa_decode_with_a_kv_head_cache_matches_the_full_pass() {
    // A cache holding only the KV heads: decoding the last token gives the
    // last row of the full causal pass.
    let (t, h, hkv, d) = (6, 4, 2, 16);
    let c = gqa(1, t, h, hkv, d);
    let x = c.data(17);
    let (q, k, v, _) = uploads(&c, &x);
    for variant in VARIANTS {
        let opts = c.opts(variant);
        let (full, _) = attention_forward(AttnInputs::new(&q, &k, &v, None), &opts).unwrap();
        let row = h * d;
        let q_last = upload(&[1, 1, h, d], &x.q[(t - 1) * row..]);
        let dec = AttnOptions {
            kv_len: Some(t),
            ..opts
        };
        let (out, _) = attention_forward(AttnInputs::new(&q_last, &k, &v, None), &dec).unwrap();
        let want = to_f64(&full.to_vec().unwrap()[(t - 1) * row..]);
        assert_close(
            &format!("{variant:?} decode"),
            &out.to_vec().unwrap(),
            &want,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn gqa_tape_matches_finite_differences() {
    for hkv in [1, 2] {
        let c = Case {
            pads: Some(vec![0, 1]),
            ..gqa(2, 3, 4, hkv, 4)
        };
        let x = c.data(19 + hkv as u64);
        let mask = Tensor::from_i32(&gpu(), &[c.b, c.tcap], x.mask.as_ref().unwrap()).unwrap();
        let inputs = vec![
            (c.qshape().to_vec(), x.q.clone()),
            (c.kshape().to_vec(), x.k.clone()),
            (c.kshape().to_vec(), x.v.clone()),
        ];
        check_grads(
            &format!("gqa kv={hkv}"),
            &inputs,
            1e-2,
            2e-3,
            |tape: &Tape, vs| {
                attention(
                    tape,
                    &vs[0],
                    &vs[1],
                    &vs[2],
                    Some(&mask),
                    &AttnOptions::default(),
                )
                .unwrap()
            },
        );
    }
}

#[test]
fn gqa_rejects_kv_heads_that_do_not_divide_the_query_heads() {
    let q = upload(&[1, 2, 4, 8], &[0.0; 64]);
    let k = upload(&[1, 2, 3, 8], &[0.0; 48]);
    let err =
        attention_forward(AttnInputs::new(&q, &k, &k, None), &AttnOptions::default()).unwrap_err();
    assert!(format!("{err:#}").contains("KV heads"), "{err:#}");
}
