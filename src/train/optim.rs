//! The optimizer loop shared by every trainer: AdamW on the trainable
//! parameters, a learning-rate schedule, global grad-norm clipping, and a
//! guard that skips any step whose loss or gradients are not finite.
//!
//! The guard checks before anything is written, so a skipped step leaves
//! weights and optimizer moments exactly as they were. A vetoed update
//! records what was non-finite ([`Optimizer::fault`]), which the
//! divergence guard (`train::divergence`) reads to stop a diverged run.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

use crate::models::checkpoint::{save_safetensors, Checkpoint, HostTensor, SaveDtype};
use crate::models::params::ParamStore;
use crate::ops::adamw::{adamw_step_scaled, AdamwConfig};
use crate::ops::grad_clip::norm_and_scale;
use crate::tensor::{DType, Tensor};
use crate::train::divergence::{first_non_finite, non_finite_parameter, NonFinite, Updates};

/// Learning-rate schedule over optimizer steps (1-based).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    /// Linear warm-up, then linear decay to 0 at the last step.
    Linear,
    /// Linear warm-up, then half-cosine decay to 0 at the last step.
    Cosine,
}

#[derive(Clone, Copy, Debug)]
pub struct LrSchedule {
    pub base: f32,
    pub warmup_steps: u32,
    pub total_steps: u32,
    pub kind: Schedule,
}

impl LrSchedule {
    pub fn constant(base: f32) -> LrSchedule {
        LrSchedule {
            base,
            warmup_steps: 0,
            total_steps: 1,
            kind: Schedule::Constant,
        }
    }

    /// As transformers' get_{linear,cosine}_schedule_with_warmup.
    pub fn lr_at(&self, step: u32) -> f32 {
        let s = step.saturating_sub(1) as f64;
        let w = self.warmup_steps as f64;
        if s < w {
            return (self.base as f64 * s / w.max(1.0)) as f32;
        }
        let total = (self.total_steps as f64 - w).max(1.0);
        let progress = ((s - w) / total).clamp(0.0, 1.0);
        let f = match self.kind {
            Schedule::Constant => 1.0,
            Schedule::Linear => 1.0 - progress,
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        (self.base as f64 * f) as f32
    }
}

/// What one call to [`Optimizer::step`] did.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    pub lr: f32,
    /// False when the step was skipped for a non-finite loss or gradient.
    pub applied: bool,
}

pub struct Optimizer {
    pub cfg: AdamwConfig,
    pub schedule: LrSchedule,
    pub max_grad_norm: Option<f32>,
    /// Optimizer steps applied so far (AdamW's t).
    pub step: u32,
    /// Steps skipped by the non-finite guard.
    pub skipped: u32,
    /// What made the latest update non-finite; None once one is applied.
    /// Not checkpointed (a resumed run starts from an applied state).
    pub fault: Option<NonFinite>,
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

impl Optimizer {
    pub fn new(cfg: AdamwConfig, schedule: LrSchedule, max_grad_norm: Option<f32>) -> Optimizer {
        Optimizer {
            cfg,
            schedule,
            max_grad_norm,
            step: 0,
            skipped: 0,
            fault: None,
            moments: BTreeMap::new(),
        }
    }

    /// Applies one AdamW update to every trainable parameter that has a
    /// gradient, unless `loss` or the gradient norm is not finite.
    pub fn step(
        &mut self,
        params: &ParamStore,
        grads: &BTreeMap<String, Tensor>,
        loss: f32,
    ) -> Result<StepReport> {
        let trainable: Vec<_> = params
            .iter()
            .filter(|p| p.trainable && grads.contains_key(&p.name))
            .collect();
        let list: Vec<&Tensor> = trainable.iter().map(|p| &grads[&p.name]).collect();
        let gpu = match trainable.first() {
            Some(p) => p.tensor.gpu().clone(),
            None => bail!("no trainable parameter received a gradient"),
        };
        // The norm is read before clipping so a non-finite one can veto the
        // step; the clipping scale comes from the same pass.
        let max_norm = self.max_grad_norm.unwrap_or(f32::INFINITY);
        let (norm, scale) = norm_and_scale(&gpu, &list, max_norm)?;
        let norm = norm.item()?;
        let lr = self.schedule.lr_at(self.step + 1);
        if !loss.is_finite() || !norm.is_finite() {
            let fault = if let Some(name) = non_finite_parameter(params)? {
                NonFinite::Parameter(name)
            } else if !loss.is_finite() {
                NonFinite::Loss(loss)
            } else {
                let named = trainable.iter().map(|p| (p.name.as_str(), &grads[&p.name]));
                NonFinite::GradNorm {
                    norm,
                    first: first_non_finite(&gpu, named)?,
                }
            };
            self.veto(fault);
            return Ok(StepReport {
                grad_norm: norm,
                lr,
                applied: false,
            });
        }
        // Clipping scales each gradient as AdamW reads it (the gradients
        // themselves are left unclipped).
        let scale = self.max_grad_norm.map(|_| scale);
        self.step += 1;
        self.fault = None;
        let cfg = AdamwConfig { lr, ..self.cfg };
        for p in trainable {
            if !self.moments.contains_key(&p.name) {
                let z = || Tensor::zeros(&gpu, p.tensor.shape(), DType::F32);
                self.moments.insert(p.name.clone(), (z()?, z()?));
            }
            let (m, v) = &self.moments[&p.name];
            let g = &grads[&p.name];
            adamw_step_scaled(&p.tensor, g, m, v, &cfg, self.step, scale.as_ref())?;
        }
        Ok(StepReport {
            grad_norm: norm,
            lr,
            applied: true,
        })
    }

    /// Counts an update vetoed as non-finite (by [`Optimizer::step`], or by
    /// a trainer before it got here) and records why.
    pub fn veto(&mut self, fault: NonFinite) {
        self.skipped += 1;
        self.fault = Some(fault);
    }

    /// The counters the divergence guard reads after each trainer step.
    pub fn updates(&self) -> Updates<'_> {
        Updates {
            applied: self.step,
            vetoed: self.skipped,
            fault: self.fault.as_ref(),
        }
    }

    /// Writes the moments (`<name>.exp_avg`, `<name>.exp_avg_sq`) atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut out = BTreeMap::new();
        for (name, (m, v)) in &self.moments {
            out.insert(
                format!("{name}.exp_avg"),
                HostTensor::new(m.shape(), m.to_vec()?),
            );
            out.insert(
                format!("{name}.exp_avg_sq"),
                HostTensor::new(v.shape(), v.to_vec()?),
            );
        }
        save_safetensors(path, &out, SaveDtype::F32)
    }

    /// Restores moments saved by [`Optimizer::save`] for `params`.
    pub fn load(&mut self, path: &Path, params: &ParamStore, step: u32) -> Result<()> {
        let ck = Checkpoint::open_file(path)
            .with_context(|| format!("optimizer state {}", path.display()))?;
        self.moments.clear();
        for p in params.iter().filter(|p| p.trainable) {
            let (mk, vk) = (
                format!("{}.exp_avg", p.name),
                format!("{}.exp_avg_sq", p.name),
            );
            if !ck.contains(&mk) {
                continue;
            }
            let gpu = p.tensor.gpu();
            let m = Tensor::from_f32(
                gpu,
                p.tensor.shape(),
                &ck.get_shaped(&mk, p.tensor.shape())?.data,
            )?;
            let v = Tensor::from_f32(
                gpu,
                p.tensor.shape(),
                &ck.get_shaped(&vk, p.tensor.shape())?.data,
            )?;
            self.moments.insert(p.name.clone(), (m, v));
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The learning rates of `kind` at optimizer steps 1..=total.
    fn rates(kind: Schedule, base: f32, warmup_steps: u32, total_steps: u32) -> Vec<f32> {
        let s = LrSchedule {
            base,
            warmup_steps,
            total_steps,
            kind,
        };
        (1..=total_steps).map(|step| s.lr_at(step)).collect()
    }

    #[test]
    fn schedules_match_transformers() {
        let got = rates(Schedule::Linear, 1.0, 2, 6);
        // get_linear_schedule_with_warmup at optimizer steps 0..5: 0, .5, 1, .75, .5, .25
        assert_eq!(got, vec![0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
        let got = rates(Schedule::Cosine, 2.0, 0, 4);
        let want = [
            2.0,
            1.0 + (std::f64::consts::PI / 4.0).cos(),
            1.0,
            1.0 - (std::f64::consts::PI / 4.0).cos(),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?}");
        }
        assert_eq!(LrSchedule::constant(0.3).lr_at(100), 0.3);
    }
}
