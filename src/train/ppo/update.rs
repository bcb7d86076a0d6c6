//! The update phase of a PPO step: `ppo_epochs` passes over the rollout in
//! shuffled backward batches of `mini_batch_size × gradient_accumulation_steps`
//! sequences (TRL's `backward_batch_size`), each split into micro-batches of
//! `mini_batch_size`: per micro-batch a forward with gradients, TRL's loss
//! and a backward weighted 1/(micro-batches), the gradients summed
//! ([`GradAccum`]), then one optimizer step per backward batch. As in TRL,
//! each micro-batch's loss is its own masked mean (so the accumulated update
//! equals one pass over the union when the micro-batches hold as many
//! response tokens), and statistics are logged per micro-batch.
//!
//! Skip rules (engine's choices, where TRL differs):
//! - **Ratio guard**: a micro-batch whose masked mean ratio exceeds
//!   `ratio_threshold` is skipped outright: no backward (and no optimizer
//!   step when every micro-batch of the backward batch is skipped).
//!   TRL multiplies its loss by 0 and still calls `optimizer.step()`, so
//!   Adam's moments decay and its weights still move on a "skipped"
//!   minibatch; engine leaves weights and moments untouched. Its statistics
//!   are logged with zero losses, as TRL does.
//! - **Early stop** (`early_stopping`): after each epoch, stop when that
//!   epoch's last minibatch has `policykl > 1.5·target_kl` (TRL).
//! - **Non-finite**: a backward batch whose loss or gradient norm is NaN/Inf is
//!   not applied (the guard of [`Optimizer::step`]; weights and moments as
//!   they were) and is counted; the others still train. After the epochs, if any
//!   trainable weight is not finite (a NaN that got written anyway), all of
//!   them are restored from the snapshot taken before the epochs (Adam's
//!   moments are not; reload a checkpoint if that ever happens), and the
//!   step counts as vetoed ([`Optimizer::veto`]) for the divergence guard.
//!
//! Read-backs (each one a wait for the device): one per micro-batch, after
//! its forward (the new log-probs, values, entropy and loss together: the
//! ratio guard and the optimizer's non-finite guard need them before the
//! backward / step; the statistics are computed on the host from it and the
//! rollout's host arrays, which are uploaded and never read back), the
//! optimizer's gradient norm per backward batch (its non-finite veto must
//! see it before Adam runs), and the non-finite weight check once after the
//! epochs.
//!
//! LoRA dropout (when the adapters have some) is on in these passes only,
//! seeded per minibatch from `(seed, step)`; the rollout's passes run
//! without it, so the first minibatch's ratio is not exactly 1 then.

use anyhow::Result;
use std::time::Instant;

use super::options::PpoTrainConfig;
use super::readback::read_together;
use super::report::PpoStepReport;
use super::rollout::{pad_of, response_forward, ResponseBatch, Rollout};
use super::seeds::{derive_seed, SALT_DROPOUT, SALT_SHUFFLE};
use crate::data::shuffled;
use crate::models::lm::CausalLm;
use crate::ops::elementwise as ew;
use crate::ops::reduce;
use crate::rl::{self, Advantages, PpoLossStats, PpoMinibatch};
use crate::tape::Tape;
use crate::tensor::Tensor;
use crate::train::divergence::{non_finite_parameter, NonFinite};
use crate::train::optim::Optimizer;
use crate::train::session::{weighted_backward, GradAccum};

/// Deliberate faults for tests of the guards (not for normal use).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Multiply every minibatch loss by NaN (NaN loss and gradients).
    NanLoss,
    /// Write a NaN into the first trainable weight after the updates.
    NanWeight,
}

/// What the update phase works on, borrowed from the trainer for one step.
pub(super) struct UpdatePhase<'a> {
    pub(super) policy: &'a CausalLm,
    /// Already set to the step's learning rate.
    pub(super) optimizer: &'a mut Optimizer,
    pub(super) cfg: &'a PpoTrainConfig,
    pub(super) fault: Option<Fault>,
}

/// One micro-batch's outcome.
struct Micro {
    stats: PpoLossStats,
    entropy: f64,
    bonus: f64,
    skipped_ratio: bool,
    /// Its weighted loss (0 when skipped).
    loss: f32,
    /// Seconds of its forward (with loss and statistics) and backward.
    forward_s: f64,
    backward_s: f64,
}

impl UpdatePhase<'_> {
    /// The epochs over rollout `ro` with its advantages `adv`, filling the
    /// update's statistics into `rep`.
    pub(super) fn run(
        &mut self,
        ro: &Rollout,
        adv: &Advantages,
        step: u64,
        rep: &mut PpoStepReport,
    ) -> Result<()> {
        let snapshot = if self.cfg.snapshot_weights {
            self.trainable()
                .iter()
                .map(|t| t.deep_copy())
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let b = ro.responses.len();
        let (mut all, mut entropies, mut bonuses, mut norms) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        rep.epochs = 0;
        for epoch in 0..self.cfg.ppo.ppo_epochs {
            let order = shuffled(
                b,
                derive_seed(self.cfg.seed, step, SALT_SHUFFLE, epoch as u64),
            );
            let mut last_policykl = f64::NAN;
            let (mbs, accum) = (
                self.cfg.mini_batch_size,
                self.cfg.gradient_accumulation_steps,
            );
            for (i, backward) in order.chunks(mbs * accum).enumerate() {
                let micro: Vec<&[usize]> = backward.chunks(mbs).collect();
                let weight = 1.0 / micro.len() as f32;
                let mut acc = GradAccum::default();
                let (mut loss, mut any) = (0.0f32, false);
                for (j, rows) in micro.iter().enumerate() {
                    let index = (epoch * b + i * accum + j) as u64;
                    let dropout_seed = derive_seed(self.cfg.seed, step, SALT_DROPOUT, index);
                    let mb = self.micro_batch(ro, adv, rows, dropout_seed, weight, &mut acc)?;
                    rep.times.train_forward += mb.forward_s;
                    rep.times.train_backward += mb.backward_s;
                    last_policykl = mb.stats.policy.policykl;
                    rep.minibatches += 1;
                    rep.skipped_ratio += mb.skipped_ratio as usize;
                    any |= !mb.skipped_ratio;
                    loss += mb.loss;
                    all.push(mb.stats);
                    entropies.push(mb.entropy);
                    bonuses.push(mb.bonus);
                }
                rep.lr = self.optimizer.schedule.lr_at(self.optimizer.step + 1) as f64;
                if any {
                    self.policy.gpu().profile_phase("optimizer")?;
                    let clock = Instant::now();
                    let grads = acc.finish()?;
                    let r = self.optimizer.step(&self.policy.params, &grads, loss)?;
                    self.phase_end()?;
                    rep.times.optimizer += clock.elapsed().as_secs_f64();
                    if r.applied {
                        norms.push(r.grad_norm as f64);
                    } else {
                        rep.skipped_nonfinite += 1;
                    }
                }
            }
            rep.epochs += 1;
            if self.cfg.ppo.early_stopping && rl::early_stop(last_policykl, self.cfg.ppo.target_kl)
            {
                rep.early_stopped = true;
                break;
            }
        }
        let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
        rep.loss = PpoLossStats::mean(&all);
        rep.policy_entropy = mean(&entropies);
        rep.entropy_bonus = mean(&bonuses);
        rep.grad_norm = mean(&norms);

        if self.fault == Some(Fault::NanWeight) {
            let w = self.trainable()[0];
            let mut host = w.to_vec()?;
            host[0] = f32::NAN;
            w.write(&host)?;
        }
        if !snapshot.is_empty() {
            if let Some(name) = non_finite_parameter(&self.policy.params)? {
                for (w, s) in self.trainable().into_iter().zip(&snapshot) {
                    w.copy_from(s)?;
                }
                rep.restored = true;
                // The step's updates are undone: it counts as a skipped one.
                self.optimizer.veto(NonFinite::Other(format!(
                    "parameter `{name}` after the update (restored to before the step)"
                )));
            }
        }
        Ok(())
    }

    /// With `sync_phases`, waits until the device has done the work
    /// recorded so far, so that it counts in the phase that recorded it.
    fn phase_end(&self) -> Result<()> {
        if self.cfg.sync_phases {
            self.policy.gpu().sync()?;
        }
        Ok(())
    }

    /// The trainable weights, in parameter order.
    fn trainable(&self) -> Vec<&Tensor> {
        self.policy
            .params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| &p.tensor)
            .collect()
    }

    /// Forward, loss and (unless the ratio guard skips it) the backward of
    /// one micro-batch, its gradients weighted by `weight` into `acc`.
    fn micro_batch(
        &self,
        ro: &Rollout,
        adv: &Advantages,
        rows: &[usize],
        dropout_seed: u64,
        weight: f32,
        acc: &mut GradAccum,
    ) -> Result<Micro> {
        let t = ro.t;
        let pick = |x: &[f32]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| x[r * t..(r + 1) * t].iter().copied())
                .collect()
        };
        let qs: Vec<Vec<i32>> = rows.iter().map(|&r| ro.queries[r].clone()).collect();
        let rs: Vec<Vec<u32>> = rows.iter().map(|&r| ro.responses[r].clone()).collect();
        let batch = ResponseBatch::new(&qs, &rs, t, pad_of(self.policy))?;
        let gpu = self.policy.gpu().clone();
        gpu.profile_phase("train forward")?;
        let clock = Instant::now();
        let shape = [rows.len(), t];
        // The rollout's side stays on the host too, for the statistics:
        // what is uploaded here is never read back.
        let (old_host, values_host, adv_host, returns_host) = (
            pick(&ro.logp),
            pick(&adv.values),
            pick(&adv.advantages),
            pick(&adv.returns),
        );
        let up = |x: &[f32]| Tensor::from_f32(&gpu, &shape, x);
        let logp_old = up(&old_host)?;
        let values = up(&values_host)?;
        let advantages = up(&adv_host)?;
        let returns = up(&returns_host)?;
        let mask = up(&batch.mask)?;

        let tape = Tape::new(&gpu);
        let mut vars = self.policy.vars(&tape);
        vars.set_lora_dropout_seed(Some(dropout_seed));
        let out = response_forward(self.policy, &tape, &vars, &batch, true)?;
        let v_new = out.values.clone().expect("asked for values");
        let mb = PpoMinibatch {
            logp_old: &logp_old,
            values: &values,
            advantages: &advantages,
            returns: &returns,
            mask: &mask,
        };
        let p = &self.cfg.ppo;
        let mut loss = mb.loss(
            &tape,
            &out.logp,
            &v_new,
            p.cliprange,
            p.cliprange_value,
            p.vf_coef,
        )?;
        let ent = out.entropy(&tape)?;
        let ent = reduce::masked_mean(&tape, &ent, &tape.constant(mask.clone()))?;
        let coef = self.cfg.ent_coef;
        if coef != 0.0 {
            loss = ew::sub(&tape, &loss, &ew::scale(&tape, &ent, coef, 0.0)?)?;
        }
        if self.fault == Some(Fault::NanLoss) {
            loss = ew::scale(&tape, &loss, f32::NAN, 0.0)?;
        }
        // The micro-batch's one read-back, needed here rather than once per
        // step: the ratio guard decides from the new log-probs (TRL's
        // `avg_ratio.item()`) whether its backward runs, and the optimizer's
        // non-finite guard takes its loss. The values and the entropy come
        // along in the same read.
        let read = read_together(&[
            out.logp.tensor(),
            v_new.tensor(),
            ent.tensor(),
            loss.tensor(),
        ])?;
        let wide = |x: &[f32]| x.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let m = wide(&batch.mask);
        let (new, old, adv) = (wide(&read[0]), wide(&old_host), wide(&adv_host));
        let policy = rl::policy_stats(&new, &old, &adv, &m, p.cliprange)?;
        let (v, vo, r) = (wide(&read[1]), wide(&values_host), wide(&returns_host));
        let value = rl::value_stats(&v, &vo, &r, &m, p.cliprange_value)?;
        let stats = PpoLossStats::new(policy, value, p.vf_coef);
        let (ent_value, loss_value) = (read[2][0] as f64, read[3][0]);
        let mut out = Micro {
            stats,
            entropy: ent_value,
            bonus: -(coef as f64) * ent_value,
            skipped_ratio: false,
            loss: 0.0,
            forward_s: 0.0,
            backward_s: 0.0,
        };
        if rl::skip_minibatch(out.stats.policy.ratio_mean, p.ratio_threshold) {
            out.stats = out.stats.skipped();
            out.skipped_ratio = true;
            out.forward_s = clock.elapsed().as_secs_f64();
            return Ok(out);
        }
        out.loss = weight * loss_value;
        out.forward_s = clock.elapsed().as_secs_f64();
        gpu.profile_phase("train backward")?;
        let clock = Instant::now();
        acc.add(vars.grads(&weighted_backward(&tape, &loss, weight)?))?;
        self.phase_end()?;
        out.backward_s = clock.elapsed().as_secs_f64();
        Ok(out)
    }
}
