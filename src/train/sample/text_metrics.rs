//! Text metrics for eval: ROUGE-1/2/L and distinct-n.
//!
//! **Tokens** follow `rouge_score`'s default tokenizer: lowercase, every run
//! of characters outside `[a-z0-9]` becomes a space, split on whitespace. So
//! `"Don't stop!"` is `["don", "t", "stop"]`, and non-ASCII letters separate
//! words (`"café"` is `["caf"]`), as there.
//!
//! **Differences from `rouge_score`:** no stemming (its default,
//! `use_stemmer=False`, is the same); no `rougeLsum` (sentence-split LCS);
//! several references take the best F-measure per metric (its
//! `score_multi`); and the set-level score is the plain mean over examples
//! rather than `BootstrapAggregator`'s resampled mid value.
//!
//! **distinct-n** (Li et al. 2016) is the number of distinct n-grams over the
//! number of n-grams, pooled over all responses (n-grams never span two
//! responses), on the same word tokens. It is 0 when there is no n-gram.

use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// rouge_score's default tokenization (see the module docs).
pub fn rouge_tokens(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase();
    lowered
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Precision, recall and F-measure of one comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

impl Score {
    /// `F = 2PR/(P+R)`, 0 when both are 0 (rouge_score's `fmeasure`).
    fn new(precision: f64, recall: f64) -> Score {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Score {
            precision,
            recall,
            fmeasure,
        }
    }
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if n > 0 {
        for g in tokens.windows(n) {
            *counts.entry(g).or_insert(0) += 1;
        }
    }
    counts
}

/// ROUGE-N of a prediction against one reference: clipped n-gram overlap
/// over the prediction's (precision) and the reference's (recall) n-grams.
pub fn rouge_n(prediction: &str, reference: &str, n: usize) -> Score {
    let (p, r) = (rouge_tokens(prediction), rouge_tokens(reference));
    let (pc, rc) = (ngram_counts(&p, n), ngram_counts(&r, n));
    let overlap: usize = pc
        .iter()
        .map(|(g, &c)| c.min(rc.get(g).copied().unwrap_or(0)))
        .sum();
    let (np, nr) = (pc.values().sum::<usize>(), rc.values().sum::<usize>());
    Score::new(
        overlap as f64 / np.max(1) as f64,
        overlap as f64 / nr.max(1) as f64,
    )
}

/// Length of the longest common subsequence (O(|a|·|b|) time, O(|b|) memory).
pub fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0; // row[j-1] of the previous row
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

/// ROUGE-L: LCS over the prediction's and the reference's token counts
/// (all 0 when either is empty, as in rouge_score).
pub fn rouge_l(prediction: &str, reference: &str) -> Score {
    let (p, r) = (rouge_tokens(prediction), rouge_tokens(reference));
    if p.is_empty() || r.is_empty() {
        return Score::default();
    }
    let l = lcs_len(&p, &r) as f64;
    Score::new(l / p.len() as f64, l / r.len() as f64)
}

/// ROUGE-1, -2 and -L of one prediction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Rouge {
    pub rouge1: Score,
    pub rouge2: Score,
    pub rouge_l: Score,
}

/// Against several references: per metric, the score of the reference with
/// the best F-measure (rouge_score's `score_multi`). `None` without references.
pub fn rouge(prediction: &str, references: &[String]) -> Option<Rouge> {
    let best = |f: &dyn Fn(&str) -> Score| {
        references
            .iter()
            .map(|r| f(r))
            .max_by(|a, b| a.fmeasure.total_cmp(&b.fmeasure))
    };
    Some(Rouge {
        rouge1: best(&|r| rouge_n(prediction, r, 1))?,
        rouge2: best(&|r| rouge_n(prediction, r, 2))?,
        rouge_l: best(&|r| rouge_l(prediction, r))?,
    })
}

/// distinct-n over all responses (see the module docs).
pub fn distinct_n(responses: &[String], n: usize) -> f64 {
    let (mut seen, mut total) = (HashSet::new(), 0usize);
    for r in responses {
        let toks = rouge_tokens(r);
        if n == 0 || toks.len() < n {
            continue;
        }
        for g in toks.windows(n) {
            seen.insert(g.to_vec());
            total += 1;
        }
    }
    if total == 0 {
        0.0
    } else {
        seen.len() as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use crate::train::sample::text_metrics::*;

    #[test]
    fn lcs_of_classic_strings() {
        let a: Vec<char> = "ABCBDAB".chars().collect();
        let b: Vec<char> = "BDCABA".chars().collect();
        assert_eq!(lcs_len(&a, &b), 4);
        assert_eq!(lcs_len::<char>(&[], &b), 0);
    }

    #[test]
    fn tokens_like_rouge_score() {
        assert_eq!(
            rouge_tokens("Don't STOP-now, 42!"),
            ["don", "t", "stop", "now", "42"]
        );
        assert_eq!(rouge_tokens("café au lait"), ["caf", "au", "lait"]);
    }
}
