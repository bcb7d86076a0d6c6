//! Next-token selection from one row of logits, in transformers' order:
//! repetition penalty, then temperature, top-k and top-p, then either argmax
//! (greedy) or a draw from the seeded RNG.
//!
//! Generation samples on the device (`ops::sample`, which only sends the
//! chosen ids back); [`choose`] here is its f64 reference and draws from
//! the same stream in the same order (the device's f32 CDF picks a
//! neighbouring id for about V·1e-7 of draws; see `ops::sample`).

use anyhow::{ensure, Result};

use crate::ops::sample::SampleSpec;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    /// Greedy decoding ignores temperature, top-k and top-p.
    pub greedy: bool,
    pub temperature: f32,
    /// 0 disables top-k, as in transformers.
    pub top_k: usize,
    /// 1.0 disables top-p.
    pub top_p: f32,
    /// 1.0 disables the penalty (CTRL-style: divide positive, multiply negative).
    pub repetition_penalty: f32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            greedy: true,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
        }
    }
}

impl SamplingConfig {
    /// Plain sampling at temperature 1 with no truncation (PPO rollouts, evals).
    pub fn sample() -> Self {
        SamplingConfig {
            greedy: false,
            ..Default::default()
        }
    }

    /// The device sampler's settings.
    pub fn spec(&self) -> SampleSpec {
        SampleSpec {
            greedy: self.greedy,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
        }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.temperature > 0.0 || self.greedy,
            "temperature must be > 0 (got {})",
            self.temperature
        );
        ensure!(
            self.top_p > 0.0 && self.top_p <= 1.0,
            "top_p must be in (0, 1] (got {})",
            self.top_p
        );
        ensure!(
            self.repetition_penalty > 0.0,
            "repetition_penalty must be > 0"
        );
        Ok(())
    }
}

/// Applies the penalty to every token already in `context` (each once).
pub fn apply_repetition_penalty(logits: &mut [f32], context: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for &t in context {
        let t = t as usize;
        if t < logits.len() && seen.insert(t) {
            let l = &mut logits[t];
            *l = if *l < 0.0 { *l * penalty } else { *l / penalty };
        }
    }
}

/// Keeps the `k` largest logits (and any tied with the k-th), as
/// `TopKLogitsWarper` does; the rest become -inf.
pub fn apply_top_k(logits: &mut [f32], k: usize) {
    if k == 0 || k >= logits.len() {
        return;
    }
    let mut sorted: Vec<f32> = logits.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let kth = sorted[k - 1];
    for l in logits.iter_mut() {
        if *l < kth {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// Keeps the smallest set of most likely tokens whose probability reaches
/// `p`, as `TopPLogitsWarper` does: sorting ascending, tokens whose
/// cumulative probability is ≤ 1 − p are removed, always keeping the top one.
pub fn apply_top_p(logits: &mut [f32], p: f32) {
    if p >= 1.0 {
        return;
    }
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let mut cum = 0.0f64;
    let last = order.len() - 1;
    for (rank, &i) in order.iter().enumerate() {
        cum += probs[i];
        if cum <= 1.0 - p as f64 && rank != last {
            logits[i] = f32::NEG_INFINITY;
        }
    }
}

/// Softmax in f64 (for host-side probabilities).
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = logits.iter().map(|&l| (l as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

/// Index of the largest logit; the first one on ties, like torch.argmax.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

/// Picks the next token. `valid` cuts padded vocab rows (GPT-NeoX pads its
/// embedding past the tokenizer) so they are never chosen.
pub fn choose(
    logits: &[f32],
    valid: usize,
    context: &[u32],
    cfg: &SamplingConfig,
    rng: &mut Rng,
) -> u32 {
    let mut l = logits[..valid.min(logits.len())].to_vec();
    apply_repetition_penalty(&mut l, context, cfg.repetition_penalty);
    if cfg.greedy {
        return argmax(&l) as u32;
    }
    for x in l.iter_mut() {
        *x /= cfg.temperature;
    }
    apply_top_k(&mut l, cfg.top_k);
    apply_top_p(&mut l, cfg.top_p);
    let probs = softmax(&l);
    let u = rng.unit();
    let mut cum = 0.0;
    for (i, p) in probs.iter().enumerate() {
        cum += p;
        if u < cum {
            return i as u32;
        }
    }
    // Rounding left u above the total: take the last token with mass.
    probs.iter().rposition(|&p| p > 0.0).unwrap_or(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut l = vec![2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut l, &[0, 1, 0], 2.0);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn top_k_keeps_ties_with_the_kth() {
        let mut l = vec![1.0, 3.0, 2.0, 2.0, 0.0];
        apply_top_k(&mut l, 2);
        assert_eq!(l, vec![f32::NEG_INFINITY, 3.0, 2.0, 2.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus() {
        // probabilities ≈ [0.0900, 0.2447, 0.6652]
        let mut l = vec![0.0, 1.0, 2.0];
        apply_top_p(&mut l, 0.6);
        assert_eq!(l, vec![f32::NEG_INFINITY, f32::NEG_INFINITY, 2.0]);
        let mut l = vec![0.0, 1.0, 2.0];
        apply_top_p(&mut l, 0.9);
        assert_eq!(l, vec![f32::NEG_INFINITY, 1.0, 2.0]);
    }

    #[test]
    fn greedy_ignores_padded_rows_and_takes_the_first_max() {
        let cfg = SamplingConfig::default();
        let mut rng = Rng::new(0);
        assert_eq!(choose(&[1.0, 5.0, 5.0, 9.0], 3, &[], &cfg, &mut rng), 1);
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_distribution() {
        let cfg = SamplingConfig::sample();
        let logits = [0.0f32, (3.0f32).ln()];
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..4000)
                .filter(|_| choose(&logits, 2, &[], &cfg, &mut rng) == 1)
                .count()
        };
        assert_eq!(draw(7), draw(7));
        let frac = draw(7) as f64 / 4000.0;
        assert!((frac - 0.75).abs() < 0.03, "{frac}");
    }
}
