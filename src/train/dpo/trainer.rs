//! The direct-alignment trainer: DPO, IPO, KTO (unpaired) and kto_pair,
//! with TRL's losses (`engine::rl::preference`) and metric names.
//!
//! One step: the next seeded batch ([`EpochSampler`]), the policy's sequence
//! log-probs with gradient, the reference's without (LoRA adapters off, a
//! frozen model, or a cache computed before the first step), the loss, backward
//! and [`Optimizer::step`]. DPO, KTO and kto_pair sum the completion log-probs;
//! IPO averages them per token (as TRL does). KTO's KL estimate comes from the
//! mismatched pairs of [`crate::rl::kto_mismatched_indices`], cut from the data
//! in its file order with chunks of the batch size, and scored without
//! gradient under both models, as `KTOTrainer` does.
//!
//! The trainer owns no run config, checkpoint or CLI: [`DpoTrainer::state`] /
//! [`DpoTrainer::restore`] carry its scalar state (the step, the optimizer's
//! counters and any reference cache) for whoever checkpoints it, and the
//! optimizer's moments are saved through [`DpoTrainer::optimizer`].

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use super::config::{DpoConfig, Reference};
use super::data::{kl_indices, Built, DirectData, RefCache};
use super::metrics::{Acc, DpoEvalReport, DpoStepReport};
use crate::data::EpochSampler;
use crate::models::CausalLm;
use crate::ops::adamw::AdamwConfig;
use crate::tape::Tape;
use crate::train::logprobs::{pad_token, RefPass};
use crate::train::metrics::MetricsLog;
use crate::train::optim::{LrSchedule, Optimizer};
use crate::train::session::{weighted_backward, GradAccum};

pub struct DpoTrainer {
    model: CausalLm,
    cfg: DpoConfig,
    reference: Reference,
    train: DirectData,
    eval: Option<DirectData>,
    kl_train: Vec<usize>,
    kl_eval: Vec<usize>,
    sampler: EpochSampler,
    opt: Optimizer,
    step: u64,
    /// (train, eval) reference caches once computed or restored.
    cache: Option<(RefCache, Option<RefCache>)>,
    log: Option<MetricsLog>,
    pad: i32,
}

impl DpoTrainer {
    /// A trainer for `model` (with LoRA attached, the reference is its base
    /// with adapters off; without, the policy before the first step). KTO on
    /// preference pairs unpairs them; the other losses need pairs.
    pub fn new(model: CausalLm, cfg: DpoConfig, train: DirectData) -> Result<DpoTrainer> {
        ensure!(cfg.batch_size > 0, "batch size must be positive");
        ensure!(cfg.beta > 0.0, "beta must be positive (got {})", cfg.beta);
        let train = check_data(&cfg, train, "training")?;
        let reference = if model.lora.is_some() {
            Reference::AdaptersOff
        } else {
            Reference::InitialPolicy
        };
        let adamw = AdamwConfig {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        };
        let schedule = LrSchedule {
            base: cfg.lr,
            warmup_steps: cfg.warmup_steps,
            total_steps: cfg.total_steps.max(1),
            kind: cfg.schedule,
        };
        Ok(DpoTrainer {
            pad: pad_token(&model),
            sampler: EpochSampler::new(train.len(), cfg.batch_size, cfg.seed)?,
            kl_train: kl_indices(&train, cfg.batch_size),
            opt: Optimizer::new(adamw, schedule, cfg.max_grad_norm),
            model,
            reference,
            train,
            eval: None,
            kl_eval: Vec::new(),
            step: 0,
            cache: None,
            log: None,
            cfg,
        })
    }

    /// Uses `reference` instead of the default (before the first step).
    pub fn with_reference(mut self, reference: Reference) -> Result<DpoTrainer> {
        ensure!(
            self.step == 0,
            "the reference is fixed once training started"
        );
        if let Reference::Model(m) = &reference {
            ensure!(
                m.cfg.vocab_size == self.model.cfg.vocab_size,
                "reference vocab {} differs from the policy's {}",
                m.cfg.vocab_size,
                self.model.cfg.vocab_size
            );
        }
        self.reference = reference;
        self.cache = None;
        Ok(self)
    }

    /// Held-out examples for [`DpoTrainer::evaluate`].
    pub fn with_eval_data(mut self, eval: DirectData) -> Result<DpoTrainer> {
        ensure!(
            self.step == 0 || !self.precomputed(),
            "eval data for a precomputed reference must be given before the first step"
        );
        let eval = check_data(&self.cfg, eval, "eval")?;
        self.kl_eval = kl_indices(&eval, self.cfg.batch_size);
        self.eval = Some(eval);
        self.cache = None;
        Ok(self)
    }

    /// Writes every step's (and eval's) metrics to `log`.
    pub fn with_metrics_log(mut self, log: MetricsLog) -> DpoTrainer {
        self.log = Some(log);
        self
    }

    pub fn config(&self) -> &DpoConfig {
        &self.cfg
    }
    pub fn model(&self) -> &CausalLm {
        &self.model
    }
    pub fn model_mut(&mut self) -> &mut CausalLm {
        &mut self.model
    }
    pub fn into_model(self) -> CausalLm {
        self.model
    }
    pub fn optimizer(&self) -> &Optimizer {
        &self.opt
    }
    pub fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.opt
    }
    pub fn metrics(&self) -> Option<&MetricsLog> {
        self.log.as_ref()
    }
    /// Steps taken so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    fn precomputed(&self) -> bool {
        self.cfg.precompute_ref_log_probs || matches!(self.reference, Reference::InitialPolicy)
    }

    fn ref_pass(&self) -> RefPass<'_> {
        match &self.reference {
            Reference::AdaptersOff => RefPass::AdaptersOff(&self.model),
            Reference::Model(m) => RefPass::Model(m),
            Reference::InitialPolicy => RefPass::Model(&self.model),
        }
    }

    /// Scores the reference for the train and eval sets if they are to be
    /// precomputed and are not yet (called by the first step or eval).
    pub fn precompute_reference(&mut self) -> Result<()> {
        if !self.precomputed() || self.cache.is_some() {
            return Ok(());
        }
        ensure!(
            self.step == 0,
            "the initial policy is gone: restore the reference cache from the checkpoint's state"
        );
        let (bs, pad, pass) = (self.cfg.batch_size, self.pad, self.ref_pass());
        let train = RefCache::compute(&self.train, &self.kl_train, bs, pad, pass)?;
        let eval = match &self.eval {
            Some(e) => Some(RefCache::compute(e, &self.kl_eval, bs, pad, pass)?),
            None => None,
        };
        self.cache = Some((train, eval));
        Ok(())
    }

    /// One optimizer step on the next `grad_accum` batches.
    pub fn step(&mut self) -> Result<DpoStepReport> {
        self.precompute_reference()?;
        let bpe = self.sampler.batches_per_epoch() as u64;
        let accum = self.cfg.grad_accum.max(1) as u64;
        // Micro-batch m of the whole run is batch m % bpe of epoch m / bpe.
        let micro: Vec<Vec<usize>> = (0..accum)
            .map(|i| {
                let m = self.step * accum + i;
                self.sampler
                    .epoch(m / bpe)
                    .nth((m % bpe) as usize)
                    .context("empty epoch")
            })
            .collect::<Result<_>>()?;
        let epoch = self.step * accum / bpe;
        let total: usize = micro.iter().map(Vec::len).sum();
        let base_seed = self.cfg.seed ^ (self.step + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let (mut grads, mut acc, mut single) = (GradAccum::default(), Acc::default(), None);
        for (i, idx) in micro.iter().enumerate() {
            let built = Built::new(
                &self.train,
                &self.kl_train,
                idx,
                self.pad,
                self.model.cfg.n_ctx,
            )?;
            let refs = match &self.cache {
                Some((c, _)) => c.lookup(idx),
                None => built.reference(self.ref_pass())?,
            };
            let tape = Tape::new(self.model.gpu());
            let mut vars = self.model.vars(&tape);
            let dropout_seed = base_seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
            vars.set_lora_dropout_seed(Some(dropout_seed));
            let (loss, metrics) = built.loss(&self.model, &self.cfg, &tape, &vars, &refs)?;
            let value = loss.tensor().item()? as f64;
            let share = idx.len() as f32 / total as f32;
            grads.add(vars.grads(&weighted_backward(&tape, &loss, share)?))?;
            acc.add(idx.len() as f64, value, &metrics);
            single = Some((value, metrics));
        }
        // One micro-batch reports its own metrics; several, their weighted means.
        let (loss_value, metrics) = match single {
            Some(one) if accum == 1 => one,
            _ => {
                let r = acc.finish(total);
                (r.loss, r.metrics)
            }
        };
        let r = self
            .opt
            .step(&self.model.params, &grads.finish()?, loss_value as f32)?;
        self.step += 1;
        let report = DpoStepReport {
            step: self.step,
            epoch,
            loss: loss_value,
            metrics,
            grad_norm: r.grad_norm,
            lr: r.lr,
            applied: r.applied,
        };
        if let Some(log) = &mut self.log {
            log.write(self.step, &report.named())?;
        }
        Ok(report)
    }

    /// Loss and metrics over the eval set (no gradient), in file order and
    /// batches of `batch_size`, averaged with each batch weighted by its size.
    pub fn evaluate(&mut self) -> Result<DpoEvalReport> {
        self.precompute_reference()?;
        let data = self
            .eval
            .as_ref()
            .context("no eval data (with_eval_data)")?;
        let cache = self.cache.as_ref().and_then(|(_, e)| e.as_ref());
        let (mut acc, mut n) = (Acc::default(), 0usize);
        let all: Vec<usize> = (0..data.len()).collect();
        for idx in all.chunks(self.cfg.batch_size) {
            let built = Built::new(data, &self.kl_eval, idx, self.pad, self.model.cfg.n_ctx)?;
            let refs = match cache {
                Some(c) => c.lookup(idx),
                None => built.reference(self.ref_pass())?,
            };
            let tape = Tape::new(self.model.gpu());
            let _no_grad = tape.no_grad();
            let vars = self.model.vars(&tape);
            let (loss, m) = built.loss(&self.model, &self.cfg, &tape, &vars, &refs)?;
            acc.add(idx.len() as f64, loss.tensor().item()? as f64, &m);
            n += idx.len();
        }
        let report = acc.finish(n);
        if let Some(log) = &mut self.log {
            log.write(self.step, &report.named())?;
        }
        Ok(report)
    }

    /// The trainer's scalar state for a checkpoint (see [`DpoTrainer::restore`]).
    pub fn state(&self) -> Value {
        let (train, eval) = match &self.cache {
            Some((t, e)) => (
                t.to_json(),
                e.as_ref().map_or(Value::Null, RefCache::to_json),
            ),
            None => (Value::Null, Value::Null),
        };
        json!({
            "trainer": "dpo",
            "loss": self.cfg.loss.name(),
            "step": self.step,
            "optimizer_step": self.opt.step,
            "optimizer_skipped": self.opt.skipped,
            "ref_cache": {"train": train, "eval": eval},
        })
    }

    /// Continues from [`DpoTrainer::state`]. The weights and the optimizer's
    /// moments are restored separately (e.g. `optimizer_mut().load`).
    pub fn restore(&mut self, state: &Value) -> Result<()> {
        let field = |k: &str| state.get(k).and_then(Value::as_u64);
        ensure!(
            state.get("loss").and_then(Value::as_str) == Some(self.cfg.loss.name()),
            "state is for loss {:?}, not {}",
            state.get("loss"),
            self.cfg.loss.name()
        );
        let step = field("step").context("state has no step")?;
        let cache = &state["ref_cache"];
        self.cache = if cache["train"].is_null() {
            None
        } else {
            let train = RefCache::from_json(&cache["train"], self.train.len())?;
            let eval = match (&self.eval, &cache["eval"]) {
                (Some(e), v) if !v.is_null() => Some(RefCache::from_json(v, e.len())?),
                _ => None,
            };
            Some((train, eval))
        };
        ensure!(
            step == 0 || !self.precomputed() || self.cache.is_some(),
            "state has no reference cache, and the reference is precomputed"
        );
        self.step = step;
        self.opt.step = field("optimizer_step").unwrap_or(0) as u32;
        self.opt.skipped = field("optimizer_skipped").unwrap_or(0) as u32;
        Ok(())
    }
}

/// Unpairs KTO's pairs and checks the data suits the loss.
fn check_data(cfg: &DpoConfig, data: DirectData, what: &str) -> Result<DirectData> {
    let data = if cfg.loss.paired() {
        data
    } else {
        data.into_unpaired()
    };
    ensure!(!data.is_empty(), "no {what} examples");
    ensure!(
        !cfg.loss.paired() || matches!(data, DirectData::Pairs(_)),
        "loss {} needs preference pairs (prompt/chosen/rejected), got unpaired {what} data",
        cfg.loss.name()
    );
    Ok(data)
}
