//! The loop scaffolding every trainer shares: [`Session`] opens the run
//! directory, builds the optimizer from [`CommonArgs`](super::config::CommonArgs), restores a
//! checkpoint on `--resume`, hands out steps and data batches, logs metrics
//! and progress, checkpoints on schedule, and at the end saves the final
//! model, the chart and the summary ([`RunSummary`]). After every step the
//! divergence guard (`train::divergence`) reads what the optimizer did and
//! stops a run gone non-finite; no checkpoint or final model is written
//! with a non-finite trainable weight. [`GradAccum`] sums micro-batch
//! gradients; [`step_seed`] derives per-step seeds, so a resumed run draws
//! the same randomness without saving RNG streams.

use anyhow::{anyhow, bail, ensure, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::chart::write_chart;
use super::config::run_file::effective_config;
use super::config::{CommonArgs, TrainArgs};
use super::divergence::{last_checkpoint_note, non_finite_parameter, DivergenceGuard, Stop};
use super::metrics::MetricsLog;
use super::optim::{LrSchedule, Optimizer, Schedule, StepReport};
use super::progress::Progress;
use super::run::{self, DataCursor, ExtraFiles, SavedModel, TrainerState};
mod grad_accum;
mod summary;

use crate::data::{ChatTemplate, EpochSampler};
use crate::models::lm::CausalLm;
use crate::ops::adamw::AdamwConfig;
use crate::tensor::Tensor;
pub use grad_accum::{weighted_backward, GradAccum};
pub use summary::{is_timing_metric, RunSummary};

/// A seed for (`step`, `stream`) of a run seeded `seed` (SplitMix64 mix).
pub fn step_seed(seed: u64, step: u64, stream: u64) -> u64 {
    let mut z = seed
        ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// AdamW at `lr` with the flags' weight decay, warm-up and decay schedule
/// over `--steps`, and gradient clipping.
pub fn default_optimizer(common: &CommonArgs, lr: f32) -> Optimizer {
    Optimizer::new(
        AdamwConfig {
            lr,
            weight_decay: common.weight_decay,
            ..AdamwConfig::default()
        },
        LrSchedule {
            base: lr,
            warmup_steps: common.warmup_steps,
            total_steps: common.steps as u32,
            kind: common.schedule_or(Schedule::Linear),
        },
        (common.max_grad_norm > 0.0).then_some(common.max_grad_norm),
    )
}

/// One run of a trainer; see the module docs and `train::sft` for use.
pub struct Session {
    pub out: PathBuf,
    pub metrics: MetricsLog,
    pub opt: Optimizer,
    pub state: TrainerState,
    pub progress: Progress,
    pub total_steps: u64,
    pub config: Value,
    common: CommonArgs,
    /// The current epoch's batches (cached), for `next_batch`.
    epoch_cache: Option<(u64, Vec<Vec<usize>>)>,
    started: Instant,
    guard: DivergenceGuard,
    /// The latest checkpoint written (or resumed from): (step, directory).
    last_checkpoint: Option<(u64, PathBuf)>,
}

impl Session {
    /// Starts (or resumes) a run. Fills `args`' learning rate (`default_lr`
    /// unless given) and out dir (`./runs/<UTC timestamp>` unless given),
    /// builds AdamW with the schedule, and on `--resume` restores the
    /// model's trained weights, the optimizer and the trainer state. The
    /// model must already be set up as the run was (adaptation applied).
    /// `shown` are the metric keys in the progress message.
    pub fn start<T: TrainArgs>(
        args: &mut T,
        model: &mut CausalLm,
        trainer: &str,
        default_lr: f32,
        shown: &[&str],
    ) -> Result<Session> {
        Session::start_with(args, model, trainer, default_lr, shown, default_optimizer)
    }

    /// [`Session::start`] with the optimizer built by `optimizer(common,
    /// lr)` (e.g. PPO's constant-rate Adam). Trainers that step their own
    /// optimizer (PPO, DPO) swap [`Session::opt`] in for their steps, so
    /// checkpoints hold what they stepped.
    pub fn start_with<T: TrainArgs>(
        args: &mut T,
        model: &mut CausalLm,
        trainer: &str,
        default_lr: f32,
        shown: &[&str],
        optimizer: impl FnOnce(&CommonArgs, f32) -> Optimizer,
    ) -> Result<Session> {
        let c = args.common_mut();
        c.validate()?;
        let lr = *c.lr.get_or_insert(default_lr);
        let resumed_dir = c.resume.as_deref().map(run::resumed_run_dir);
        let out = c
            .out
            .get_or_insert_with(|| resumed_dir.clone().unwrap_or_else(run::default_out_dir))
            .clone();
        let common = args.common().clone();
        let config = effective_config(args)?;
        let mut opt = optimizer(&common, lr);
        run::check_out_dir(&out, resumed_dir.as_deref(), common.force)?;
        let mut last_checkpoint = None;
        let state = match &common.resume {
            Some(path) => {
                let ckpt = run::checkpoint_dir(path)?;
                let mut st = run::restore_checkpoint(&ckpt, model, &mut opt)?;
                ensure!(
                    st.trainer == trainer,
                    "{} is a {} checkpoint, not {trainer}",
                    ckpt.display(),
                    st.trainer
                );
                run::rewind_metrics(&out, &ckpt, st.step)?;
                st.config = config.clone();
                last_checkpoint = Some((st.step, ckpt));
                st
            }
            None => {
                ensure!(
                    !out.join(run::CHECKPOINT).exists(),
                    "{} already holds a checkpoint: pass --resume {0} to continue it, or \
                     another --out",
                    out.display()
                );
                TrainerState::new(trainer, config.clone())
            }
        };
        let mut metrics = MetricsLog::open(&out, common.resume.is_some())?;
        metrics.report_to(&common.report_to)?;
        let text = serde_json::to_string_pretty(&config)? + "\n";
        crate::models::checkpoint::write_atomic(&out.join(run::RUN_CONFIG_FILE), text.as_bytes())?;
        let progress = Progress::new(
            common.progress,
            trainer,
            state.step,
            common.steps,
            common.log_every,
            shown,
        );
        let guard = DivergenceGuard::new(
            common.max_skipped_steps,
            state.divergence.clone(),
            opt.updates(),
        );
        Ok(Session {
            out,
            metrics,
            opt,
            total_steps: common.steps,
            state,
            progress,
            config,
            common,
            epoch_cache: None,
            started: Instant::now(),
            guard,
            last_checkpoint,
        })
    }

    pub fn common(&self) -> &CommonArgs {
        &self.common
    }

    /// The next step to run (1-based), or None when the run is done or
    /// stopped (`--stop-after`).
    pub fn next_step(&self) -> Option<u64> {
        let next = self.state.step + 1;
        let stop = self.common.stop_after.unwrap_or(u64::MAX);
        (next <= self.total_steps && self.state.step < stop).then_some(next)
    }

    /// The latest logged value of `key` (0 before any): for running totals
    /// such as `num_tokens`, which continue across `--resume`.
    pub fn last_metric(&self, key: &str) -> f64 {
        let value = self.metrics.rows.iter().rev().find_map(|r| r.get(key));
        value.and_then(Value::as_f64).unwrap_or(0.0)
    }

    /// True on eval steps: every `--eval-every` and the last step.
    pub fn is_eval_step(&self, step: u64) -> bool {
        let every = self.common.eval_every;
        step == self.total_steps || (every > 0 && step.is_multiple_of(every))
    }

    /// The next batch of example indices from `sampler`, advancing the
    /// data cursor kept in the trainer state (so a resumed run continues
    /// with the same batches).
    pub fn next_batch(&mut self, sampler: &EpochSampler) -> Result<Vec<usize>> {
        ensure!(
            sampler.batches_per_epoch() > 0,
            "no full batch of {} in {} examples",
            sampler.batch_size,
            sampler.n
        );
        loop {
            let DataCursor { epoch, batch } = self.state.cursor;
            if self.epoch_cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
                self.epoch_cache = Some((epoch, sampler.epoch(epoch).collect()));
            }
            let batches = &self.epoch_cache.as_ref().unwrap().1;
            if let Some(b) = batches.get(batch as usize) {
                self.state.cursor.batch += 1;
                return Ok(b.clone());
            }
            self.state.cursor = DataCursor {
                epoch: epoch + 1,
                batch: 0,
            };
        }
    }

    /// One optimizer update with the non-finite guard; skipped steps are
    /// counted (and warned about).
    pub fn apply(
        &mut self,
        model: &CausalLm,
        grads: &BTreeMap<String, Tensor>,
        loss: f32,
    ) -> Result<StepReport> {
        let report = self.opt.step(&model.params, grads, loss)?;
        if let (false, Some(fault)) = (report.applied, &self.opt.fault) {
            self.progress.warn(&format!(
                "step {}: {fault}; update skipped",
                self.state.step + 1
            ));
        }
        Ok(report)
    }

    /// Ends `step`: logs `row` (with `step`), updates progress, lets the
    /// divergence guard judge the step (an error stops a diverged run, after
    /// writing its summary), and writes a checkpoint on `--save-every`, the
    /// last step, and `--stop-after`. `extra` writes trainer-specific files
    /// into the checkpoint.
    pub fn end_step(
        &mut self,
        model: &CausalLm,
        step: u64,
        row: &[(String, f64)],
        extra: Option<ExtraFiles>,
    ) -> Result<()> {
        let pairs: Vec<(&str, f64)> = row.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.metrics.write(step, &pairs)?;
        self.progress.update(step, row);
        self.state.step = step;
        let stop = self.guard.observe(step, self.opt.updates());
        self.state.divergence = self.guard.state().clone();
        if let Some(stop) = stop {
            return Err(self.diverged(&stop));
        }
        let every = self.common.save_every;
        let due = (every > 0 && step.is_multiple_of(every))
            || step == self.total_steps
            || self.common.stop_after == Some(step);
        if due {
            self.checkpoint(model, extra)?;
        }
        Ok(())
    }

    /// Writes a checkpoint now (its trainable weights checked finite first).
    pub fn checkpoint(&mut self, model: &CausalLm, extra: Option<ExtraFiles>) -> Result<PathBuf> {
        self.ensure_finite(model, "checkpoint")?;
        let dir = run::save_checkpoint(
            &self.out,
            model,
            &self.opt,
            &self.state,
            self.common.keep_checkpoints,
            extra,
        )?;
        self.last_checkpoint = Some((self.state.step, dir.clone()));
        Ok(dir)
    }

    fn last_checkpoint(&self) -> Option<(u64, &Path)> {
        self.last_checkpoint
            .as_ref()
            .map(|(s, d)| (*s, d.as_path()))
    }

    /// Refuses to write `what` when a trainable weight is non-finite.
    fn ensure_finite(&self, model: &CausalLm, what: &str) -> Result<()> {
        if let Some(name) = non_finite_parameter(&model.params)? {
            bail!(
                "step {}: non-finite parameter `{name}`: not writing the {what}. {}",
                self.state.step,
                last_checkpoint_note(self.last_checkpoint())
            );
        }
        Ok(())
    }

    /// The error that stops a diverged run; its summary is written first.
    fn diverged(&mut self, stop: &Stop) -> anyhow::Error {
        let message = stop.message(self.last_checkpoint());
        let summary = self.summary(false, SavedModel::default(), None, Some(message.clone()));
        if let Err(e) = self.write_summary(&summary) {
            self.progress.warn(&format!("writing summary.json: {e:#}"));
        }
        self.progress.finish();
        anyhow!(message)
    }

    fn summary(
        &self,
        finished: bool,
        saved: SavedModel,
        chart: Option<PathBuf>,
        diverged: Option<String>,
    ) -> RunSummary {
        let ckpt = self.out.join(run::CHECKPOINT);
        RunSummary {
            trainer: self.state.trainer.clone(),
            out: self.out.clone(),
            steps: self.state.step,
            total_steps: self.total_steps,
            finished,
            skipped_steps: self.guard.state().skipped_steps,
            skipped_updates: self.opt.skipped as u64,
            diverged,
            checkpoint: ckpt.exists().then_some(ckpt),
            saved,
            chart,
            last: self.metrics.rows.last().cloned().unwrap_or_default(),
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }

    fn write_summary(&self, summary: &RunSummary) -> Result<()> {
        let text = serde_json::to_string_pretty(summary)? + "\n";
        crate::models::checkpoint::write_atomic(&self.out.join("summary.json"), text.as_bytes())
    }

    /// Ends the run: when all steps are done, saves the final model (see
    /// `run::save_final`; `merged` for LoRA) and the chart of `chart_keys`;
    /// writes `summary.json` and returns the summary.
    pub fn finish(
        self,
        model: &mut CausalLm,
        merged: bool,
        template: Option<&ChatTemplate>,
        chart_keys: &[&str],
    ) -> Result<RunSummary> {
        let finished = self.state.step >= self.total_steps;
        let (saved, chart) = if finished {
            self.ensure_finite(model, "final model")?;
            let saved = run::save_final(&self.out, model, merged, template)?;
            let title = format!("{} — {}", self.state.trainer, self.out.display());
            let chart = write_chart(
                &self.metrics,
                chart_keys,
                &self.out.join("chart.svg"),
                &title,
            )?;
            (saved, chart)
        } else {
            (SavedModel::default(), None)
        };
        let summary = self.summary(finished, saved, chart, None);
        self.write_summary(&summary)?;
        self.progress.finish();
        Ok(summary)
    }
}
