//! Bidirectional (encoder) attention: every query sees every real key, the
//! pads at the end of each row are masked as keys; against finite
//! differences here, against the f64 reference in the shared case list
//! (right-padded and T = 1 cases).

use super::*;

#[test]
fn bidirectional_attention_matches_reference() {
    let cases = [
        // Right-padded rows (an encoder batch; one row all real), odd D/4.
        Case {
            causal: false,
            right: true,
            pads: Some(vec![0, 6, 12]),
            ..case(3, 13, 2, 20)
        },
        // One token, no mask.
        Case {
            causal: false,
            ..case(2, 1, 3, 8)
        },
    ];
    for (n, c) in cases.iter().enumerate() {
        for variant in VARIANTS {
            check(c, 300 + n as u64, variant);
        }
    }
}

/// Bidirectional attention over right-padded rows against finite differences.
#[test]
fn bidirectional_attention_tape_matches_finite_differences() {
    let c = Case {
        causal: false,
        right: true,
        pads: Some(vec![0, 2]),
        ..case(2, 4, 2, 4)
    };
    let x = c.data(11);
    let mask = Tensor::from_i32(&gpu(), &[c.b, c.tcap], x.mask.as_ref().unwrap()).unwrap();
    let inputs = vec![
        (c.qshape().to_vec(), x.q.clone()),
        (c.kshape().to_vec(), x.k.clone()),
        (c.kshape().to_vec(), x.v.clone()),
    ];
    let opts = c.opts(AttnVariant::Auto);
    check_grads("bidirectional attention", &inputs, 1e-2, 2e-3, |tape: &Tape, vs| {
        attention(tape, &vs[0], &vs[1], &vs[2], Some(&mask), &opts).unwrap()
    });
}
