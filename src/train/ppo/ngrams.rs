//! N-gram statistics of token responses, for the health checks' repetition
//! and fluency-drift tests.

use std::collections::{BTreeMap, HashSet};

/// Unique n-grams over all n-grams within the responses (1.0 with none).
pub fn distinct_n(responses: &[Vec<u32>], n: usize) -> f64 {
    let mut seen = HashSet::new();
    let mut total = 0usize;
    for r in responses.iter().filter(|r| r.len() >= n) {
        for w in r.windows(n) {
            seen.insert(w);
            total += 1;
        }
    }
    if total == 0 {
        1.0
    } else {
        seen.len() as f64 / total as f64
    }
}

/// The most repeated n-gram (n ≤ `max_n`) of `ids`: `(n, count, coverage)`,
/// counting overlapping occurrences, with coverage = the fraction of
/// positions inside one of them (a period-n loop covers 1.0; ties keep the
/// smaller n).
pub fn dominant_ngram(ids: &[u32], max_n: usize) -> (usize, usize, f64) {
    let mut best = (0, 0, 0.0);
    for n in 1..=max_n.min(ids.len()) {
        let mut at: BTreeMap<&[u32], Vec<usize>> = BTreeMap::new();
        for (i, w) in ids.windows(n).enumerate() {
            at.entry(w).or_default().push(i);
        }
        let Some(starts) = at.values().max_by_key(|v| v.len()) else {
            continue;
        };
        let mut covered = vec![false; ids.len()];
        for &i in starts {
            covered[i..i + n].iter_mut().for_each(|c| *c = true);
        }
        let coverage = covered.iter().filter(|&&c| c).count() as f64 / ids.len() as f64;
        if coverage > best.2 {
            best = (n, starts.len(), coverage);
        }
    }
    best
}
