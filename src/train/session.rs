//! The loop scaffolding every trainer shares: [`Session`] opens the run
//! directory, builds the optimizer from [`CommonArgs`](super::config::CommonArgs), restores a
//! checkpoint on `--resume`, hands out steps and data batches, logs metrics
//! and progress, checkpoints on schedule, and at the end saves the final
//! model, the chart and the summary. [`GradAccum`] sums micro-batch
//! gradients; [`step_seed`] derives per-step seeds, so a resumed run draws
//! the same randomness without saving RNG streams.

use anyhow::{ensure, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::chart::write_chart;
use super::config::run_file::effective_config;
use super::config::{CommonArgs, TrainArgs};
use super::metrics::MetricsLog;
use super::optim::{LrSchedule, Optimizer, Schedule, StepReport};
use super::progress::Progress;
use super::run::{self, DataCursor, ExtraFiles, SavedModel, TrainerState};
use crate::data::{ChatTemplate, EpochSampler};
use crate::models::lm::CausalLm;
use crate::ops::adamw::AdamwConfig;
use crate::tensor::axpy::axpy;
use crate::tape::{Grads, Tape, Var};
use crate::tensor::Tensor;

/// A seed for (`step`, `stream`) of a run seeded `seed` (SplitMix64 mix).
pub fn step_seed(seed: u64, step: u64, stream: u64) -> u64 {
    let mut z = seed
        ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Metric names under `time/` are timings: they differ between runs and
/// are left out of resume comparisons.
pub fn is_timing_metric(key: &str) -> bool {
    key.starts_with("time/")
}

/// Backpropagates `loss · weight` (a micro-batch's share of the step).
pub fn weighted_backward(tape: &Tape, loss: &Var, weight: f32) -> Result<Grads> {
    let seed = Tensor::full(tape.gpu(), loss.shape(), weight)?;
    tape.backward_with(loss, seed)
}

/// Sum of micro-batch gradients (each already weighted by its share, e.g.
/// through [`weighted_backward`]), accumulated with `axpy` into the first
/// micro-batch's tensors.
#[derive(Default)]
pub struct GradAccum {
    sum: Option<BTreeMap<String, Tensor>>,
}

impl GradAccum {
    pub fn add(&mut self, grads: BTreeMap<String, Tensor>) -> Result<()> {
        match &mut self.sum {
            None => {
                // Accumulating in place must not write through a buffer two
                // gradients share (an op may hand the same tensor to both inputs).
                let mut owned: BTreeMap<String, Tensor> = BTreeMap::new();
                for (name, g) in grads {
                    let shared = owned.values().any(|o| o.same_storage(&g));
                    owned.insert(name, if shared { g.deep_copy()? } else { g });
                }
                self.sum = Some(owned);
            }
            Some(sum) => {
                for (name, g) in grads {
                    match sum.get(&name) {
                        Some(acc) => axpy(acc, 1.0, &g)?,
                        None => {
                            sum.insert(name, g.deep_copy()?);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Result<BTreeMap<String, Tensor>> {
        self.sum
            .ok_or_else(|| anyhow::anyhow!("no micro-batch gradients to apply"))
    }
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
}

/// What a finished (or stopped) run reports.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub trainer: String,
    pub out: PathBuf,
    pub steps: u64,
    pub total_steps: u64,
    /// False when stopped early (`--stop-after`).
    pub finished: bool,
    /// Non-finite steps the optimizer guard skipped (over the whole run).
    pub skipped_steps: u64,
    pub checkpoint: Option<PathBuf>,
    pub saved: SavedModel,
    pub chart: Option<PathBuf>,
    /// The last logged value of every metric.
    pub last: Map<String, Value>,
    pub seconds: f64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.finished { "done" } else { "stopped" };
        write!(
            f,
            "{} {state}: step {}/{}",
            self.trainer, self.steps, self.total_steps
        )?;
        for (k, v) in &self.last {
            if let (false, Some(x)) = (is_timing_metric(k) || k == "step", v.as_f64()) {
                write!(f, "  {k} {}", super::progress::fmt_value(x))?;
            }
        }
        if self.skipped_steps > 0 {
            write!(f, "  ({} non-finite steps skipped)", self.skipped_steps)?;
        }
        write!(f, "  [{:.1}s]", self.seconds)
    }
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
        let metrics = MetricsLog::open(&out, common.resume.is_some())?;
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
        if !report.applied {
            self.progress.warn(&format!(
                "step {}: non-finite loss {loss} or grad norm {}; update skipped",
                self.state.step + 1,
                report.grad_norm
            ));
        }
        Ok(report)
    }

    /// Ends `step`: logs `row` (with `step`), updates progress, and writes a
    /// checkpoint on `--save-every`, the last step, and `--stop-after`.
    /// `extra` writes trainer-specific files into the checkpoint.
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
        let every = self.common.save_every;
        let due = (every > 0 && step.is_multiple_of(every))
            || step == self.total_steps
            || self.common.stop_after == Some(step);
        if due {
            self.checkpoint(model, extra)?;
        }
        Ok(())
    }

    pub fn checkpoint(&mut self, model: &CausalLm, extra: Option<ExtraFiles>) -> Result<PathBuf> {
        run::save_checkpoint(
            &self.out,
            model,
            &self.opt,
            &self.state,
            self.common.keep_checkpoints,
            extra,
        )
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
        let ckpt = self.out.join(run::CHECKPOINT);
        let summary = RunSummary {
            trainer: self.state.trainer.clone(),
            out: self.out.clone(),
            steps: self.state.step,
            total_steps: self.total_steps,
            finished,
            skipped_steps: self.opt.skipped as u64,
            checkpoint: ckpt.exists().then_some(ckpt),
            saved,
            chart,
            last: self.metrics.rows.last().cloned().unwrap_or_default(),
            seconds: self.started.elapsed().as_secs_f64(),
        };
        let text = serde_json::to_string_pretty(&summary)? + "\n";
        crate::models::checkpoint::write_atomic(&self.out.join("summary.json"), text.as_bytes())?;
        self.progress.finish();
        Ok(summary)
    }
}
