//! The settings of [`super::trainer::DpoTrainer`]: the loss, its
//! hyper-parameters (TRL's defaults) and where its reference log-probs come
//! from.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::models::CausalLm;
use crate::train::logprobs::LogpReduce;
use crate::train::optim::Schedule;

/// The direct-alignment loss (`train-dpo --loss`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectLoss {
    /// TRL `loss_type="sigmoid"` (with optional label smoothing).
    Dpo,
    /// TRL `loss_type="ipo"`, on token-averaged log-probs.
    Ipo,
    /// KTOTrainer: unpaired, labelled completions.
    Kto,
    /// TRL ≤ 0.9 `loss_type="kto_pair"`, on preference pairs.
    KtoPair,
}

impl DirectLoss {
    pub fn name(self) -> &'static str {
        match self {
            DirectLoss::Dpo => "dpo",
            DirectLoss::Ipo => "ipo",
            DirectLoss::Kto => "kto",
            DirectLoss::KtoPair => "kto_pair",
        }
    }

    /// Whether the loss trains on preference pairs (all but KTO).
    pub fn paired(self) -> bool {
        self != DirectLoss::Kto
    }
}

impl std::str::FromStr for DirectLoss {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<DirectLoss> {
        Ok(match s {
            "dpo" | "sigmoid" => DirectLoss::Dpo,
            "ipo" => DirectLoss::Ipo,
            "kto" => DirectLoss::Kto,
            "kto_pair" => DirectLoss::KtoPair,
            _ => bail!("unknown loss `{s}`: expected dpo, ipo, kto or kto_pair"),
        })
    }
}

/// Hyper-parameters (TRL's defaults; every field optional in TOML/JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DpoConfig {
    pub loss: DirectLoss,
    /// β (TRL 0.1): the KL strength; rewards are `β·(log π − log ref)`.
    pub beta: f32,
    /// DPO's label smoothing ε (cDPO), 0 = off.
    pub label_smoothing: f32,
    /// KTO's λ_D and λ_U.
    pub desirable_weight: f32,
    pub undesirable_weight: f32,
    /// Pairs (or KTO rows) per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step (TRL's `gradient_accumulation_steps`):
    /// the step's loss is their size-weighted mean, and so is its gradient.
    pub grad_accum: usize,
    pub lr: f32,
    pub weight_decay: f32,
    pub warmup_steps: u32,
    /// Steps of the schedule (ignored by `constant`).
    pub total_steps: u32,
    pub schedule: Schedule,
    /// Global grad-norm clipping (HF default 1.0).
    pub max_grad_norm: Option<f32>,
    pub seed: u64,
    /// Score the reference once for the whole data set before the first step
    /// (TRL's `precompute_ref_log_probs`). Forced when there is neither a
    /// LoRA adapter nor a reference model: the policy before training is the
    /// reference then.
    pub precompute_ref_log_probs: bool,
}

impl Default for DpoConfig {
    fn default() -> Self {
        DpoConfig {
            loss: DirectLoss::Dpo,
            beta: 0.1,
            label_smoothing: 0.0,
            desirable_weight: 1.0,
            undesirable_weight: 1.0,
            batch_size: 8,
            grad_accum: 1,
            lr: 1e-6,
            weight_decay: 0.0,
            warmup_steps: 0,
            total_steps: 1,
            schedule: Schedule::Constant,
            max_grad_norm: Some(1.0),
            seed: 42,
            precompute_ref_log_probs: false,
        }
    }
}

impl DpoConfig {
    pub(super) fn reduce(&self) -> LogpReduce {
        match self.loss {
            DirectLoss::Ipo => LogpReduce::Mean,
            _ => LogpReduce::Sum,
        }
    }
}

/// Where reference log-probs come from.
pub enum Reference {
    /// The policy's base weights with its LoRA adapters off.
    AdaptersOff,
    /// A separate frozen model (e.g. the SFT checkpoint loaded again).
    Model(Box<CausalLm>),
    /// The policy as it is before the first step, scored once (a precomputed
    /// reference without a second copy of the weights).
    InitialPolicy,
}
