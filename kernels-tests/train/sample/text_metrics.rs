//! ROUGE-1/2/L and distinct-n on tiny strings, worked out by hand.

use engine::train::sample::text_metrics::{distinct_n, rouge, rouge_l, rouge_n, Score};

fn close(got: Score, p: f64, r: f64, f: f64) {
    let ok = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(
        ok(got.precision, p) && ok(got.recall, r) && ok(got.fmeasure, f),
        "{got:?} vs ({p}, {r}, {f})"
    );
}

#[test]
fn rouge_by_hand() {
    // the cat sat on the mat / the cat is on the mat: unigram overlap 5 of 6,
    // bigrams {the cat, on the, the mat} = 3 of 5, LCS "the cat on the mat" = 5.
    let (p, r) = ("The cat sat on the mat.", "the cat is on the mat");
    close(rouge_n(p, r, 1), 5.0 / 6.0, 5.0 / 6.0, 5.0 / 6.0);
    close(rouge_n(p, r, 2), 0.6, 0.6, 0.6);
    close(rouge_l(p, r), 5.0 / 6.0, 5.0 / 6.0, 5.0 / 6.0);
    // Asymmetric: "a b c" vs "a b c d e": P 1, R 3/5, F 0.75; bigrams 2 of
    // 2 and 2 of 4: F 2/3.
    close(rouge_n("a b c", "a b c d e", 1), 1.0, 0.6, 0.75);
    close(rouge_n("a b c", "a b c d e", 2), 1.0, 0.5, 2.0 / 3.0);
    close(rouge_l("a b c", "a b c d e"), 1.0, 0.6, 0.75);
    // LCS skips: "a x b y c" vs "a b c": LCS 3, P 3/5, R 1, F 0.75.
    close(rouge_l("a x b y c", "a b c"), 0.6, 1.0, 0.75);
    // Clipped counts: "the the the" vs "the cat": overlap 1, P 1/3, R 1/2.
    close(rouge_n("the the the", "the cat", 1), 1.0 / 3.0, 0.5, 0.4);
    // Empty prediction: all 0.
    close(rouge_l("!!", "a b"), 0.0, 0.0, 0.0);
    close(rouge_n("", "a b", 1), 0.0, 0.0, 0.0);
    // Several references: the best F per metric.
    let refs = ["x y z".to_string(), "a b c d e".to_string()];
    let best = rouge("a b c", &refs).unwrap();
    close(best.rouge1, 1.0, 0.6, 0.75);
    assert!(rouge("a b c", &[]).is_none());
}

#[test]
fn distinct_n_by_hand() {
    let r = ["a b a b".to_string(), "A, c".to_string()];
    // unigrams a b a b a c: 3 distinct of 6; bigrams ab ba ab | ac: 3 of 4
    // (no bigram spans the two responses).
    assert_eq!(distinct_n(&r, 1), 0.5);
    assert_eq!(distinct_n(&r, 2), 0.75);
    assert_eq!(distinct_n(&["one".to_string()], 2), 0.0);
}
