//! Several reward sources combined: [`RewardMix`] scores a sample as
//!
//! ```text
//! r = Σᵢ wᵢ · rᵢ        rᵢ: component i's raw score (an RM's label logit or
//!                        probability, a reward function), wᵢ its weight
//! ```
//!
//! and reports each rᵢ by name, so PPO logs `env/reward_component/<name>`
//! (the batch mean of the unweighted rᵢ) beside `env/reward_mean` (of r).
//! A negative weight makes a component a penalty (e.g. a toxicity
//! classifier's logit). [`reward_sources`] builds the scorer from the CLI:
//! one source stays that source (the flags before mixing behave as
//! before); several become a mix. [`RewardModelArgs`] declares the
//! reward-model flags once for `train-ppo`, `best-of-n` and `eval`.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::bounds;
use super::scoring::{
    score_checked, RewardKind, RewardLabelArgs, RewardModelScorer, Sample, ScoreParts, Scorer,
};
use crate::device::Gpu;

/// The reward-model flags of `train-ppo`, `best-of-n` and `eval` (flattened
/// into each, in clap and in the run file: keys `reward-model`,
/// `reward-weight`, `reward-label`, `reward-kind`, each one value or a list).
#[derive(clap::Args, Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RewardModelArgs {
    /// Reward model directory (sequence-classification head; an encoder
    /// classifier reads the decoded text with its own tokenizer). Repeat to
    /// sum several, weighted by --reward-weight.
    #[arg(long, action = clap::ArgAction::Append)]
    #[serde(default, deserialize_with = "one_or_many")]
    pub reward_model: Vec<PathBuf>,
    /// The weight of each --reward-model in the summed reward, in order
    /// (default 1 each; negative: a penalty). Give one per --reward-model.
    #[arg(long, action = clap::ArgAction::Append, allow_negative_numbers = true, value_parser = bounds::finite::<f32>)]
    #[serde(default)]
    pub reward_weight: Vec<f32>,
    /// The reward model's label whose score is the reward: a name from its
    /// id2label (e.g. POSITIVE) or an index (default 0). Once: for every
    /// --reward-model; or once per --reward-model, paired in order.
    #[arg(long, value_name = "NAME|INDEX", action = clap::ArgAction::Append)]
    #[serde(default, deserialize_with = "one_or_many")]
    pub reward_label: Vec<String>,
    /// The label's logit (default) or its probability. Once: for every
    /// --reward-model; or once per --reward-model, paired in order.
    #[arg(long, value_enum, action = clap::ArgAction::Append, default_value = "logit")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub reward_kind: Vec<RewardKind>,
}

impl RewardModelArgs {
    /// The label choice of each `--reward-model`, in order (see
    /// [`per_model`]).
    pub fn labels(&self) -> Result<Vec<RewardLabelArgs>> {
        let n = self.reward_model.len();
        let labels = per_model(n, &self.reward_label, "--reward-label")?;
        let kinds = per_model(n, &self.reward_kind, "--reward-kind")?;
        Ok((0..n)
            .map(|i| RewardLabelArgs {
                reward_label: labels.get(i).cloned().flatten(),
                reward_kind: kinds.get(i).copied().flatten().unwrap_or_default(),
            })
            .collect())
    }

    /// The reward these flags name, with an optional reward function (see
    /// [`reward_sources`]).
    pub fn sources(
        &self,
        gpu: &Arc<Gpu>,
        function: Option<(&str, Box<dyn Scorer>)>,
        fn_weight: Option<f32>,
    ) -> Result<Box<dyn Scorer>> {
        reward_sources(
            gpu,
            &self.reward_model,
            &self.reward_weight,
            &self.labels()?,
            function,
            fn_weight,
        )
    }
}

/// A per-model flag's value for each of `n_models`: none given means the
/// default (`None`) for each, one applies to all, else exactly one per
/// `--reward-model`, paired by position.
fn per_model<T: Clone>(n_models: usize, given: &[T], flag: &str) -> Result<Vec<Option<T>>> {
    match given.len() {
        0 => Ok(vec![None; n_models]),
        1 => Ok(vec![Some(given[0].clone()); n_models]),
        k if k == n_models => Ok(given.iter().cloned().map(Some).collect()),
        k => bail!(
            "{k} {flag} values for {n_models} --reward-model(s): give one {flag} (for every \
             --reward-model) or one per --reward-model, in the same order"
        ),
    }
}

/// One weighted source of a [`RewardMix`].
pub struct RewardComponent {
    /// The metric name: `env/reward_component/<name>`.
    pub name: String,
    pub weight: f32,
    pub scorer: Box<dyn Scorer>,
}

/// The weighted sum of its components' scores.
pub struct RewardMix {
    pub components: Vec<RewardComponent>,
}

impl RewardMix {
    /// Checks the weights are finite and the names distinct.
    pub fn new(components: Vec<RewardComponent>) -> Result<RewardMix> {
        ensure!(!components.is_empty(), "a reward mix needs a component");
        for (i, c) in components.iter().enumerate() {
            ensure!(
                c.weight.is_finite(),
                "reward component {} has a non-finite weight {}",
                c.name,
                c.weight
            );
            ensure!(
                components[..i].iter().all(|o| o.name != c.name),
                "two reward components are named {}",
                c.name
            );
        }
        Ok(RewardMix { components })
    }
}

impl Scorer for RewardMix {
    fn describe(&self) -> String {
        let names: Vec<&str> = self.components.iter().map(|c| c.name.as_str()).collect();
        format!("the reward mix ({})", names.join(" + "))
    }

    fn score(&self, samples: &[Sample]) -> Result<Vec<f32>> {
        Ok(self.score_parts(samples)?.0)
    }

    fn score_parts(&self, samples: &[Sample]) -> Result<(Vec<f32>, ScoreParts)> {
        let mut total = vec![0f32; samples.len()];
        let mut parts = Vec::with_capacity(self.components.len());
        for c in &self.components {
            // Each part checked on its own, so a NaN names its source.
            let s = score_checked(c.scorer.as_ref(), samples)
                .with_context(|| format!("reward component {}", c.name))?;
            for (t, &x) in total.iter_mut().zip(&s) {
                *t += c.weight * x;
            }
            parts.push((c.name.clone(), s));
        }
        Ok((total, parts))
    }
}

/// The weight of each of `n_models` `--reward-model`s: none given means 1
/// each, else exactly one `--reward-weight` per `--reward-model`.
pub fn model_weights(n_models: usize, weights: &[f32]) -> Result<Vec<f32>> {
    if weights.is_empty() {
        return Ok(vec![1.0; n_models]);
    }
    if weights.len() != n_models {
        bail!(
            "{} --reward-weight value(s) for {} --reward-model(s): give one --reward-weight per \
             --reward-model, in the same order (or none for weight 1 each)",
            weights.len(),
            n_models
        );
    }
    Ok(weights.to_vec())
}

/// A component name for a reward model directory: its folder name (a
/// trainer's `<run>/model` output: the run's name), made unique among `taken`.
fn model_name(dir: &Path, taken: &[RewardComponent]) -> String {
    let folder = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
    };
    let base = match folder(dir) {
        Some(n) if n == "model" => dir.parent().and_then(folder).unwrap_or(n),
        Some(n) => n,
        None => "reward_model".to_string(),
    };
    let mut name = base.clone();
    let mut k = 2;
    while taken.iter().any(|c| c.name == name) {
        name = format!("{base}_{k}");
        k += 1;
    }
    name
}

/// Loads a reward model for a mix: the label flags (`--reward-label`,
/// `--reward-kind`) apply to classifiers with several labels; a one-label
/// model (a decoder RM) scores its logit.
fn load_component(
    gpu: &Arc<Gpu>,
    dir: &Path,
    flags: &RewardLabelArgs,
) -> Result<RewardModelScorer> {
    let mut rm = RewardModelScorer::load(gpu, dir)?;
    if rm.model.cfg.num_labels > 1 {
        rm.pick_label(dir, flags)?;
    }
    Ok(rm)
}

/// The reward the flags name: `models` (each with its weight from
/// `weights`, see [`model_weights`], and its label choice from `labels`:
/// one for all or one per model) and an optional reward function
/// `(name, scorer)` weighted by `fn_weight` (default 1). One source without
/// weights is returned as itself; otherwise a [`RewardMix`].
pub fn reward_sources(
    gpu: &Arc<Gpu>,
    models: &[PathBuf],
    weights: &[f32],
    labels: &[RewardLabelArgs],
    function: Option<(&str, Box<dyn Scorer>)>,
    fn_weight: Option<f32>,
) -> Result<Box<dyn Scorer>> {
    let w = model_weights(models.len(), weights)?;
    let labels = per_model(models.len(), labels, "--reward-label/--reward-kind")?;
    let flags = |i: usize| labels[i].clone().unwrap_or_default();
    ensure!(
        function.is_some() || fn_weight.is_none(),
        "--reward-fn-weight weighs --reward-keyword or --reward-target-token: pass one of them"
    );
    let weighted = !weights.is_empty() || fn_weight.is_some();
    if !weighted && models.len() + function.is_some() as usize == 1 {
        return match (models.first(), function) {
            (Some(dir), _) => Ok(Box::new(RewardModelScorer::load_with(gpu, dir, &flags(0))?)),
            (None, Some((_, f))) => Ok(f),
            (None, None) => unreachable!("one source"),
        };
    }
    let mut components = Vec::with_capacity(models.len() + 1);
    for (i, (dir, &weight)) in models.iter().zip(&w).enumerate() {
        let scorer = Box::new(load_component(gpu, dir, &flags(i))?);
        let name = model_name(dir, &components);
        components.push(RewardComponent {
            name,
            weight,
            scorer,
        });
    }
    if let Some((name, scorer)) = function {
        components.push(RewardComponent {
            name: name.to_string(),
            weight: fn_weight.unwrap_or(1.0),
            scorer,
        });
    }
    Ok(Box::new(RewardMix::new(components)?))
}

/// A run-file key of [`RewardModelArgs`]: one value (as before mixing) or
/// a list.
pub fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(match Option::<Either<T>>::deserialize(d)? {
        None => Vec::new(),
        Some(Either::One(p)) => vec![p],
        Some(Either::Many(v)) => v,
    })
}
