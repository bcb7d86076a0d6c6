//! What the direct-alignment trainer trains on: encoded preference pairs
//! (DPO, IPO, kto_pair) or unpaired labelled completions (KTO), their padded
//! batches, KTO's mismatched KL pairs, the reference log-probs of a batch
//! (computed on the fly or read from a precomputed cache), and a batch's loss.

use anyhow::{bail, ensure, Result};
use serde_json::Value;
use std::path::Path;

use super::config::{DirectLoss, DpoConfig};
use super::metrics::{mean, DirectMetrics};
use crate::data::{
    drop_ties, encode_all, kto_batch, load_kto, load_preferences, preference_batch, Encoder,
    KtoBatch, KtoExample, LoadOptions, PreferenceBatch, PreferenceExample,
};
use crate::models::params::ParamVars;
use crate::models::CausalLm;
use crate::ops::row_gather::row_gather;
use crate::rl::{dpo_loss, ipo_loss, kto_loss, kto_mismatched_indices, kto_pair_loss};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use crate::train::logprobs::{
    reference_logps, sequence_logps, sequence_logps_and_logits, LogpReduce, RefPass, SeqLogps,
};

/// Encoded training or eval examples.
#[derive(Clone, Debug)]
pub enum DirectData {
    /// Preference pairs (DPO, IPO, kto_pair).
    Pairs(Vec<PreferenceExample>),
    /// Labelled completions (KTO).
    Unpaired(Vec<KtoExample>),
}

impl DirectData {
    pub fn len(&self) -> usize {
        match self {
            DirectData::Pairs(p) => p.len(),
            DirectData::Unpaired(u) => u.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads and encodes a file for `loss`: preferences for the paired losses;
    /// for KTO a KTO file (`prompt`/`completion`/`label`), or a preference
    /// file, unpaired (see [`DirectData::into_unpaired`]), when the rows have
    /// `chosen`/`rejected` instead.
    pub fn load(
        path: &Path,
        loss: DirectLoss,
        encoder: &Encoder,
        opts: &LoadOptions,
    ) -> Result<DirectData> {
        DirectData::load_noted(path, loss, encoder, opts, &mut Vec::new())
    }

    /// [`DirectData::load`], adding warnings to `notes`: rows and tokens cut
    /// by truncation, pairs skipped as identical after it.
    pub fn load_noted(
        path: &Path,
        loss: DirectLoss,
        encoder: &Encoder,
        opts: &LoadOptions,
        notes: &mut Vec<String>,
    ) -> Result<DirectData> {
        let what = path.display().to_string();
        let mut pairs = |opts: &LoadOptions| -> Result<DirectData> {
            let ds = load_preferences(path, opts)?;
            let (ex, _, _) = encode_all(&ds.rows, opts.skip_bad_rows, |r| encoder.preference(r))?;
            notes.extend(encoder.truncation_note(ex.len(), &what));
            Ok(DirectData::Pairs(drop_ties(ex, &what, notes)))
        };
        if loss.paired() {
            return pairs(opts).map_err(|e| kto_shaped(path, opts, loss).unwrap_or(e));
        }
        match load_kto(path, opts) {
            Ok(ds) => {
                let (ex, _, _) = encode_all(&ds.rows, opts.skip_bad_rows, |r| encoder.kto(r))?;
                notes.extend(encoder.truncation_note(ex.len(), &what));
                Ok(DirectData::Unpaired(ex))
            }
            Err(kto_err) => match pairs(opts) {
                Ok(p) => Ok(p.into_unpaired()),
                Err(_) => Err(kto_err),
            },
        }
    }

    /// TRL's `unpair_preference_dataset`: each pair gives a desirable
    /// (chosen) and an undesirable (rejected) row. TRL maps batches of 1000
    /// pairs, emitting a batch's chosen rows then its rejected rows; the same
    /// order here keeps KTO's mismatched KL pairs on different prompts.
    pub fn into_unpaired(self) -> DirectData {
        let pairs = match self {
            DirectData::Unpaired(_) => return self,
            DirectData::Pairs(p) => p,
        };
        let mut out = Vec::with_capacity(2 * pairs.len());
        for chunk in pairs.chunks(1000) {
            for (chosen, e) in [(true, chunk), (false, chunk)] {
                out.extend(e.iter().map(|p| KtoExample {
                    prompt_ids: p.prompt_ids.clone(),
                    completion_ids: if chosen {
                        p.chosen_ids.clone()
                    } else {
                        p.rejected_ids.clone()
                    },
                    label: chosen,
                    origin: p.origin.clone(),
                }));
            }
        }
        DirectData::Unpaired(out)
    }
}

/// The error for a KTO file (`prompt`/`completion`/`label` rows) given to
/// a pairwise loss, if that is what `path` holds.
fn kto_shaped(path: &Path, opts: &LoadOptions, loss: DirectLoss) -> Option<anyhow::Error> {
    let one = LoadOptions {
        max_rows: Some(1),
        skip_bad_rows: false,
        ..opts.clone()
    };
    load_kto(path, &one).ok().filter(|d| !d.is_empty())?;
    Some(anyhow::anyhow!(
        "{}: the rows are KTO data (prompt, completion, label), not preference pairs \
         (prompt, chosen, rejected) as --loss {} needs: pass --loss kto",
        path.display(),
        loss.name()
    ))
}

/// The padded batch of some examples. For KTO also the batch of their
/// mismatched KL pairs `(prompt_i, completion_{kl[i]})`.
pub(super) enum Built {
    Pairs(PreferenceBatch),
    Unpaired { batch: KtoBatch, kl: KtoBatch },
}

impl Built {
    pub(super) fn new(
        data: &DirectData,
        kl_index: &[usize],
        idx: &[usize],
        pad: i32,
        n_ctx: usize,
    ) -> Result<Built> {
        Ok(match data {
            DirectData::Pairs(p) => {
                Built::Pairs(preference_batch(idx.iter().map(|&i| &p[i]), pad)?)
            }
            DirectData::Unpaired(u) => {
                let kl: Vec<KtoExample> = idx
                    .iter()
                    .map(|&i| {
                        let mut e = u[i].clone();
                        e.completion_ids = u[kl_index[i]].completion_ids.clone();
                        // A borrowed completion may not fit after this prompt.
                        let room = n_ctx.saturating_sub(e.prompt_ids.len()).max(1);
                        e.completion_ids.truncate(room);
                        e
                    })
                    .collect();
                Built::Unpaired {
                    batch: kto_batch(idx.iter().map(|&i| &u[i]), pad)?,
                    kl: kto_batch(&kl, pad)?,
                }
            }
        })
    }

    /// Reference log-probs: (chosen, rejected) for pairs, (completion, KL
    /// completion) for KTO.
    pub(super) fn reference(&self, pass: RefPass<'_>) -> Result<(SeqLogps, SeqLogps)> {
        match self {
            Built::Pairs(pb) => {
                let all = reference_logps(pass, &pb.batch)?;
                let p = pb.pairs;
                let half = |r: std::ops::Range<usize>| SeqLogps {
                    sum: all.sum[r.clone()].to_vec(),
                    tokens: all.tokens[r].to_vec(),
                };
                Ok((half(0..p), half(p..2 * p)))
            }
            Built::Unpaired { batch, kl } => Ok((
                reference_logps(pass, &batch.batch)?,
                reference_logps(pass, &kl.batch)?,
            )),
        }
    }
}

impl Built {
    /// The loss of this batch under `cfg` and its metrics: the policy's
    /// log-probs from `vars` (with gradient when the tape records), the
    /// reference's from `refs` (as [`Built::reference`] returns them).
    pub(super) fn loss(
        &self,
        model: &CausalLm,
        cfg: &DpoConfig,
        tape: &Tape,
        vars: &ParamVars,
        refs: &(SeqLogps, SeqLogps),
    ) -> Result<(Var, DirectMetrics)> {
        let (m, gpu) = (model, model.gpu());
        let reduce = cfg.reduce();
        let upload = |v: &[f32]| Tensor::from_f32(gpu, &[v.len()], v);
        match self {
            Built::Pairs(pb) => {
                let p = pb.pairs;
                let (all, logits) = sequence_logps_and_logits(m, tape, vars, &pb.batch, reduce)?;
                let (pc, pr) = halves(tape, &all, p)?;
                let rc = upload(&refs.0.reduced(reduce))?;
                let rr = upload(&refs.1.reduced(reduce))?;
                let (loss, pm) = match cfg.loss {
                    DirectLoss::Dpo => {
                        dpo_loss(tape, &pc, &pr, &rc, &rr, cfg.beta, cfg.label_smoothing)?
                    }
                    DirectLoss::Ipo => ipo_loss(tape, &pc, &pr, &rc, &rr, cfg.beta)?,
                    _ => kto_pair_loss(tape, &pc, &pr, &rc, &rr, cfg.beta)?,
                };
                let host = all.tensor().to_vec()?;
                Ok((
                    loss,
                    DirectMetrics {
                        rewards_chosen: pm.rewards_chosen,
                        rewards_rejected: pm.rewards_rejected,
                        rewards_margins: pm.rewards_margins,
                        rewards_accuracies: Some(pm.rewards_accuracies),
                        kl: None,
                        logps_chosen: mean(&host[..p]),
                        logps_rejected: mean(&host[p..]),
                        logits_chosen: logits.mean(0..p),
                        logits_rejected: logits.mean(p..2 * p),
                        count_chosen: p,
                        count_rejected: p,
                    },
                ))
            }
            Built::Unpaired { batch, kl } => {
                let (logps, logits) =
                    sequence_logps_and_logits(m, tape, vars, &batch.batch, LogpReduce::Sum)?;
                let policy_kl = {
                    let _no_grad = tape.no_grad();
                    sequence_logps(m, tape, vars, &kl.batch, LogpReduce::Sum)?
                };
                let (r, rk) = (upload(&refs.0.sum)?, upload(&refs.1.sum)?);
                let (loss, km) = kto_loss(
                    tape,
                    &logps,
                    &r,
                    &batch.labels,
                    policy_kl.tensor(),
                    &rk,
                    cfg.beta,
                    cfg.desirable_weight,
                    cfg.undesirable_weight,
                )?;
                let host = logps.tensor().to_vec()?;
                let pick = |want: bool| -> Vec<f32> {
                    host.iter()
                        .zip(&batch.labels)
                        .filter(|(_, &l)| l == want)
                        .map(|(&x, _)| x)
                        .collect()
                };
                // KTOTrainer 1.16: the token-weighted mean over a group's rows.
                let logit_sum = |want: bool| logits.mean_where(|i| batch.labels[i] == want);
                Ok((
                    loss,
                    DirectMetrics {
                        rewards_chosen: km.rewards_chosen,
                        rewards_rejected: km.rewards_rejected,
                        rewards_margins: km.rewards_margins,
                        rewards_accuracies: None,
                        kl: Some(km.kl),
                        logps_chosen: mean(&pick(true)),
                        logps_rejected: mean(&pick(false)),
                        logits_chosen: logit_sum(true),
                        logits_rejected: logit_sum(false),
                        count_chosen: km.count_chosen,
                        count_rejected: km.count_rejected,
                    },
                ))
            }
        }
    }
}

/// Rows `0..p` and `p..2p` of a `[2p]` vector, on the tape.
fn halves(tape: &Tape, all: &Var, p: usize) -> Result<(Var, Var)> {
    let col = tape.reshape(all, &[2 * p, 1])?;
    let pick = |r: std::ops::Range<usize>| -> Result<Var> {
        let idx: Vec<i32> = r.map(|i| i as i32).collect();
        tape.reshape(&row_gather(tape, &col, &idx)?, &[p])
    };
    Ok((pick(0..p)?, pick(p..2 * p)?))
}

/// KTO's mismatched-pair indices for a data set (none for pairs).
pub(super) fn kl_indices(data: &DirectData, batch_size: usize) -> Vec<usize> {
    match data {
        DirectData::Pairs(_) => Vec::new(),
        DirectData::Unpaired(u) => kto_mismatched_indices(u.len(), batch_size),
    }
}

/// Precomputed reference log-probs per example: slot 0 the chosen response
/// (or KTO completion), slot 1 the rejected one (or KTO's KL completion),
/// each as (sum, completion tokens).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct RefCache(pub Vec<[(f32, usize); 2]>);

impl RefCache {
    /// Scores every example in order, `batch_size` at a time.
    pub(super) fn compute(
        data: &DirectData,
        kl_index: &[usize],
        batch_size: usize,
        pad: i32,
        pass: RefPass<'_>,
    ) -> Result<RefCache> {
        let n_ctx = pass.model().cfg.n_ctx;
        let mut out = Vec::with_capacity(data.len());
        let all: Vec<usize> = (0..data.len()).collect();
        for idx in all.chunks(batch_size.max(1)) {
            let (a, b) = Built::new(data, kl_index, idx, pad, n_ctx)?.reference(pass)?;
            for i in 0..idx.len() {
                out.push([(a.sum[i], a.tokens[i]), (b.sum[i], b.tokens[i])]);
            }
        }
        Ok(RefCache(out))
    }

    /// The cached values of examples `idx`, as [`Built::reference`] returns.
    pub(super) fn lookup(&self, idx: &[usize]) -> (SeqLogps, SeqLogps) {
        let slot = |s: usize| SeqLogps {
            sum: idx.iter().map(|&i| self.0[i][s].0).collect(),
            tokens: idx.iter().map(|&i| self.0[i][s].1).collect(),
        };
        (slot(0), slot(1))
    }

    /// `[[sum, n, sum, n], ...]`; a non-finite sum becomes null.
    pub(super) fn to_json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|[(a, na), (b, nb)]| serde_json::json!([a, na, b, nb]))
                .collect(),
        )
    }

    pub(super) fn from_json(v: &Value, expected: usize) -> Result<RefCache> {
        let rows = v.as_array().map(Vec::as_slice).unwrap_or_default();
        ensure!(
            rows.len() == expected,
            "reference cache has {} entries for {expected} examples",
            rows.len()
        );
        let num = |x: &Value| x.as_f64().unwrap_or(f64::NAN);
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let r = r.as_array().filter(|r| r.len() == 4);
            let Some(r) = r else {
                bail!("reference cache entry is not [sum, n, sum, n]");
            };
            out.push([
                (num(&r[0]) as f32, num(&r[1]) as usize),
                (num(&r[2]) as f32, num(&r[3]) as usize),
            ]);
        }
        Ok(RefCache(out))
    }
}
