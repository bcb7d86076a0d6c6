//! Bidirectional (encoder) attention: every query sees every real key, the
//! pads at the end of each row are masked as keys; every flash variant against
//! the f64 reference (right-padded and T = 1 cases). Finite differences are
//! in `attention_tape_matches_finite_differences`.

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
