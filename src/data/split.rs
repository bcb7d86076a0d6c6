//! Seeded train/eval splits and epoch orders, reproducible across runs and
//! platforms (the engine's SplitMix64), so a resumed run sees the same data.

use anyhow::{ensure, Result};

use crate::rng::Rng;

/// 0..n in a seeded random order (Fisher–Yates).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// (train, eval): a seeded random `eval_fraction` of the items (rounded,
/// at least one when the fraction is positive) is held out; both keep
/// the input order.
pub fn train_eval_split<T>(
    items: Vec<T>,
    eval_fraction: f64,
    seed: u64,
) -> Result<(Vec<T>, Vec<T>)> {
    ensure!(
        (0.0..1.0).contains(&eval_fraction),
        "eval fraction {eval_fraction} is not in [0, 1)"
    );
    let n = items.len();
    let mut n_eval = (n as f64 * eval_fraction).round() as usize;
    if eval_fraction > 0.0 {
        n_eval = n_eval.max(1);
    }
    ensure!(
        n_eval < n || n == 0,
        "an eval fraction of {eval_fraction} leaves no training rows out of {n}"
    );
    let mut is_eval = vec![false; n];
    for &i in &shuffled(n, seed)[..n_eval] {
        is_eval[i] = true;
    }
    let (mut train, mut eval) = (Vec::with_capacity(n - n_eval), Vec::with_capacity(n_eval));
    for (item, e) in items.into_iter().zip(is_eval) {
        if e {
            eval.push(item);
        } else {
            train.push(item);
        }
    }
    Ok((train, eval))
}

/// Batches of indices, reshuffled every epoch from (seed, epoch) alone, so
/// any epoch can be replayed without the ones before it.
#[derive(Clone, Debug)]
pub struct EpochSampler {
    pub n: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
}

impl EpochSampler {
    pub fn new(n: usize, batch_size: usize, seed: u64) -> Result<EpochSampler> {
        ensure!(batch_size > 0, "batch size 0");
        ensure!(n > 0, "no examples to sample");
        Ok(EpochSampler {
            n,
            batch_size,
            seed,
            drop_last: false,
        })
    }

    pub fn drop_last(mut self, drop: bool) -> EpochSampler {
        self.drop_last = drop;
        self
    }

    pub fn batches_per_epoch(&self) -> usize {
        if self.drop_last {
            self.n / self.batch_size
        } else {
            self.n.div_ceil(self.batch_size)
        }
    }

    /// The batches of one epoch (0-based).
    pub fn epoch(&self, epoch: u64) -> impl Iterator<Item = Vec<usize>> {
        let seed = self.seed ^ (epoch + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let order = shuffled(self.n, seed);
        let (size, count) = (self.batch_size, self.batches_per_epoch());
        (0..count).map(move |b| order[b * size..((b + 1) * size).min(order.len())].to_vec())
    }

    /// Endless (epoch, batch) pairs from `start_epoch` on.
    pub fn iter_from(&self, start_epoch: u64) -> impl Iterator<Item = (u64, Vec<usize>)> + '_ {
        // An epoch with no batch (drop_last, n < batch_size) would spin forever.
        let any = self.batches_per_epoch() > 0;
        (start_epoch..)
            .take_while(move |_| any)
            .flat_map(move |e| self.epoch(e).map(move |b| (e, b)))
    }
}
