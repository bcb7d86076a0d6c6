//! `engine train-ppo`: [`PpoArgs`] (the shared [`CommonArgs`] plus TRL's
//! `PPOConfig` options) and the driver [`train_ppo`], which runs
//! [`PpoTrainer`] through [`Session`]: checkpoints (`--save-every`, the last
//! step, `--stop-after`) hold the policy (HF layout, or its PEFT adapter)
//! with its value head `v_head.*` (in the model, or `heads.safetensors`
//! beside the adapter), Adam's moments, and in `trainer_state.json` the
//! trainer's state (step, seed, β of the KL controller, running score
//! moments, health monitor), the prompt cursor and the seed of the next
//! step's sampling. `--resume DIR` continues exactly: the prompts and every
//! random draw of step s are pure functions of (seed, s).

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

use super::options::PpoTrainConfig;
use super::prompts::{PromptCycle, PromptSource};
use super::rollout::RefSource;
use super::seeds::{derive_seed, SALT_GENERATE};
use super::trainer::PpoTrainer;
use crate::data::load_prompts;
use crate::device::Gpu;
use crate::models::lm::{CausalLm, Head};
use crate::rl::{KlEstimator, ScoreOptions};
use crate::train::config::adapt::apply_adaptation;
use crate::train::config::{bounds, train_args, CommonArgs};
use crate::train::driver::RlhfSummary;
use crate::train::driver::{bool_arg, no_model_error, prompt_encoder, resumed_extra};
use crate::train::optim::Schedule;
use crate::train::reward_fn::{Keyword, TargetTokenRate};
use crate::train::reward_mix::RewardModelArgs;
use crate::train::scoring::Scorer;
use crate::train::session::Session;

/// TRL `PPOConfig`'s learning rate.
pub const PPO_LR: f32 = 1.41e-5;

/// Keys drawn in the PPO chart.
pub const PPO_CHART: &[&str] = &["env/reward_mean", "objective/kl", "ppo/loss/total"];

/// Keys in the progress line and the summary.
const SHOWN: &[&str] = &[
    "env/reward_mean",
    "objective/kl",
    "objective/kl_coef",
    "ppo/loss/total",
];

/// KL estimator of the per-token penalty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KlEstimatorArg {
    K1,
    K3,
}

#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PpoArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub reward: RewardModelArgs,
    /// The weight of --reward-keyword / --reward-target-token when summed
    /// with reward models (default 1).
    #[arg(long, allow_negative_numbers = true, value_parser = bounds::finite::<f32>)]
    #[serde(default)]
    pub reward_fn_weight: Option<f32>,
    /// Reward function: +1 per keyword (comma list) found in the response.
    #[arg(long, value_delimiter = ',')]
    pub reward_keyword: Option<Vec<String>>,
    /// Reward function: the fraction of response tokens equal to this id.
    #[arg(long)]
    pub reward_target_token: Option<u32>,
    /// Initial KL coefficient β.
    #[arg(long, default_value_t = 0.2, value_parser = bounds::non_negative::<f64>)]
    pub init_kl_coef: f64,
    /// The adaptive KL controller's target KL.
    #[arg(long, default_value_t = 6.0, value_parser = bounds::positive::<f64>)]
    pub target_kl_value: f64,
    /// The adaptive KL controller's horizon.
    #[arg(long, default_value_t = 10000.0, value_parser = bounds::positive::<f64>)]
    pub horizon: f64,
    /// Adapt β toward --target-kl-value (false: fixed β).
    #[arg(long, default_value = "true", value_parser = bool_arg, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub adaptive_kl: bool,
    #[arg(long, default_value_t = 4)]
    pub ppo_epochs: usize,
    /// Sequences per forward/backward pass (default: --batch-size).
    #[arg(long)]
    pub mini_batch_size: Option<usize>,
    /// Mini-batches whose gradients are summed into one optimizer step
    /// (TRL: backward batch = mini-batch × this; default: --grad-accum).
    #[arg(long)]
    pub gradient_accumulation_steps: Option<usize>,
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 0.2, value_parser = bounds::positive::<f32>)]
    pub cliprange: f32,
    #[arg(long, default_value_t = 0.2, value_parser = bounds::positive::<f32>)]
    pub cliprange_value: f32,
    #[arg(long, default_value_t = 0.1, value_parser = bounds::non_negative::<f32>)]
    pub vf_coef: f32,
    #[arg(long, default_value_t = 0.0, value_parser = bounds::finite::<f32>)]
    pub ent_coef: f32,
    /// Per-token KL estimator of the penalty: k1 or k3.
    #[arg(long, value_enum, default_value_t = KlEstimatorArg::K1)]
    pub kl_estimator: KlEstimatorArg,
    /// Divide scores by the running std of all scores so far (TRL).
    #[arg(long, default_value = "false", value_parser = bool_arg, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub use_score_scaling: bool,
    /// With --use-score-scaling, also subtract the running mean (TRL).
    #[arg(long, default_value = "false", value_parser = bool_arg, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub use_score_norm: bool,
    /// Clip the (scaled) scores to [-X, X] (TRL).
    #[arg(long, value_parser = bounds::finite::<f64>)]
    pub score_clip: Option<f64>,
    /// Whiten the per-token rewards before GAE (TRL).
    #[arg(long, default_value = "false", value_parser = bool_arg, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub whiten_rewards: bool,
    /// Judge each step's responses against the sentences the support-data
    /// generator (`engine data support`) can write, and warn when that
    /// well-formed rate falls (on by default in the demo).
    #[arg(long, default_value = "false", value_parser = bool_arg, action = clap::ArgAction::Set, value_name = "BOOL")]
    #[serde(default)]
    pub well_formed_check: bool,
}

train_args!(PpoArgs, "ppo");

impl PpoArgs {
    /// The trainer's config from the flags.
    pub fn train_config(&self) -> Result<PpoTrainConfig> {
        let c = &self.common;
        let mut cfg = PpoTrainConfig::default();
        cfg.ppo.init_kl_coef = self.init_kl_coef;
        cfg.ppo.target = self.target_kl_value;
        cfg.ppo.horizon = self.horizon;
        cfg.ppo.adap_kl_ctrl = self.adaptive_kl;
        cfg.ppo.ppo_epochs = self.ppo_epochs;
        cfg.ppo.cliprange = self.cliprange;
        cfg.ppo.cliprange_value = self.cliprange_value;
        cfg.ppo.vf_coef = self.vf_coef;
        cfg.ppo.whiten_rewards = self.whiten_rewards;
        cfg.ppo.kl_penalty = match self.kl_estimator {
            KlEstimatorArg::K1 => KlEstimator::K1,
            KlEstimatorArg::K3 => KlEstimator::K3,
        };
        cfg.scores = ScoreOptions {
            use_score_scaling: self.use_score_scaling,
            use_score_norm: self.use_score_norm,
            score_clip: self.score_clip,
        };
        if let Some(clip) = self.score_clip {
            ensure!(clip >= 0.0, "--score-clip must be ≥ 0 (got {clip})");
        }
        cfg.batch_size = c.batch_size;
        cfg.mini_batch_size = self.mini_batch_size.unwrap_or(c.batch_size);
        cfg.gradient_accumulation_steps = self.gradient_accumulation_steps.unwrap_or(c.grad_accum);
        ensure!(
            cfg.mini_batch_size > 0 && cfg.gradient_accumulation_steps > 0,
            "--mini-batch-size and --gradient-accumulation-steps must be positive"
        );
        cfg.max_new_tokens = self.max_new_tokens;
        cfg.lr = c.lr_or(PPO_LR);
        cfg.schedule = c.schedule_or(Schedule::Constant);
        cfg.warmup_steps = c.warmup_steps;
        cfg.total_steps = c.steps.min(u32::MAX as u64) as u32;
        cfg.weight_decay = c.weight_decay;
        cfg.max_grad_norm = (c.max_grad_norm > 0.0).then_some(c.max_grad_norm);
        cfg.seed = c.seed;
        cfg.ent_coef = self.ent_coef;
        cfg.judge_well_formed = self.well_formed_check;
        Ok(cfg)
    }

    /// The reward the flags name: one source, or several summed with
    /// their weights ([`reward_sources`]).
    fn scorer(&self, gpu: &Arc<Gpu>) -> Result<Box<dyn Scorer>> {
        let function: Option<(&str, Box<dyn Scorer>)> =
            match (&self.reward_keyword, self.reward_target_token) {
                (Some(_), Some(_)) => {
                    bail!("pass only one of --reward-keyword, --reward-target-token")
                }
                (Some(words), None) => {
                    let w: Vec<&str> = words.iter().map(String::as_str).collect();
                    Some(("keyword", Box::new(Keyword::new(&w))))
                }
                (None, Some(token)) => Some(("target_token", Box::new(TargetTokenRate { token }))),
                (None, None) => None,
            };
        if self.reward.reward_model.is_empty() && function.is_none() {
            bail!("no reward: pass --reward-model DIR, --reward-keyword WORDS or --reward-target-token ID");
        }
        self.reward.sources(gpu, function, self.reward_fn_weight)
    }
}

/// Encoded prompts of --data (with data notes).
fn load_prompt_ids(
    c: &CommonArgs,
    policy: &CausalLm,
    template: &crate::data::ChatTemplate,
    max_new_tokens: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<Vec<i32>>> {
    let enc = prompt_encoder(policy, template, c.max_len_for(policy), max_new_tokens)?;
    let ds = load_prompts(c.data_file()?, &c.load_options()?)?;
    notes.push(ds.report.to_string());
    let (ex, skipped, reasons) =
        crate::data::encode_all(&ds.rows, c.format.skip_bad_rows, |r| enc.prompt(r))?;
    if skipped > 0 {
        notes.push(format!(
            "{skipped} prompts skipped while encoding: {reasons:?}"
        ));
    }
    ensure!(
        !ex.is_empty(),
        "{}: no usable prompts",
        c.data_file()?.display()
    );
    Ok(ex.into_iter().map(|e| e.prompt_ids).collect())
}

/// Runs PPO as `args` say; returns the trained policy and the summary.
pub fn train_ppo(gpu: &Arc<Gpu>, mut args: PpoArgs) -> Result<(CausalLm, RlhfSummary)> {
    let c = args.common.clone();
    if c.model.is_none() {
        return Err(no_model_error(
            "train-ppo",
            " and a reward (--reward-model DIR, --reward-keyword WORDS or --reward-target-token ID)",
        ));
    }
    let cfg = args.train_config()?;
    let scorer = args.scorer(gpu)?;
    let mut policy = CausalLm::load(gpu, c.model_dir()?)?;
    ensure!(
        policy.head != Head::Reward,
        "{} is a sequence-classification model; PPO needs a policy with an LM head",
        c.model_dir()?.display()
    );
    if policy.head != Head::LmWithValue {
        policy.add_value_head(c.seed)?;
    }
    apply_adaptation(&mut policy, &c)?;
    // The reference is the initial policy: taken before a resume restores
    // the trained weights.
    let reference = if policy.lora.is_some() {
        RefSource::AdaptersOff
    } else {
        RefSource::frozen_copy(&policy)?
    };
    let template = c.chat_template()?;
    let mut notes = Vec::new();
    let prompts = load_prompt_ids(&c, &policy, &template, cfg.max_new_tokens, &mut notes)?;
    let n_prompts = prompts.len();
    // TRL's PPOTrainer: episodes = epochs × prompts, a step takes a batch.
    let prompts_per_step = c.batch_size as f64;
    args.common
        .resolve_epochs_by(|epochs| epochs * n_prompts as f64 / prompts_per_step);
    let mut cfg = cfg;
    cfg.total_steps = args.common.steps.min(u32::MAX as u64) as u32;

    let opt_cfg = cfg.clone();
    let mut s = Session::start_with(&mut args, &mut policy, "ppo", PPO_LR, SHOWN, |_, _| {
        PpoTrainer::optimizer_for(&opt_cfg)
    })?;
    for n in &notes {
        s.progress.println(n);
    }
    let mut trainer = PpoTrainer::new(policy, reference, scorer, cfg)?;
    if c.resume.is_some() {
        let extra = &s.state.extra;
        trainer.restore(resumed_extra(extra, "ppo")?)?;
        ensure!(
            extra.get("prompts").and_then(|v| v.as_u64()) == Some(n_prompts as u64),
            "the checkpoint was trained on {} prompts, --data now gives {n_prompts}: \
             the resumed run would draw other prompts",
            extra.get("prompts").unwrap_or(&json!(null))
        );
        ensure!(
            trainer.steps_done() == s.state.step,
            "the checkpoint's PPO state is at step {}, its run at step {}",
            trainer.steps_done(),
            s.state.step
        );
    }
    let mut source = PromptCycle {
        prompts,
        seed: c.seed,
    };
    while let Some(step) = s.next_step() {
        let batch = source.batch(step, c.batch_size)?;
        // The trainer steps the session's optimizer, which checkpoints save.
        std::mem::swap(&mut s.opt, &mut trainer.optimizer);
        let rep = trainer.step(&batch);
        let state = trainer.state();
        std::mem::swap(&mut s.opt, &mut trainer.optimizer);
        let rep = rep?;
        for w in &rep.warnings {
            s.progress.warn(w); // each warning already names its step
        }
        let seed = trainer.cfg.seed;
        s.state.extra = json!({
            "ppo": state,
            "prompts": n_prompts,
            "prompt_cursor": step * c.batch_size as u64,
        });
        s.state.rng.insert(
            "ppo_next_sampling_seed".into(),
            derive_seed(seed, step + 1, SALT_GENERATE, 0),
        );
        let mut row = rep.rows();
        let epoch = step as f64 * prompts_per_step / n_prompts as f64;
        row.push(("epoch".to_string(), epoch));
        s.end_step(&trainer.policy, step, &row, None)?;
    }
    if let Some(table) = gpu.profile_table()? {
        s.progress.println(&table);
    }
    let warnings = trainer.health.summary();
    let mut policy = trainer.policy;
    let run = s.finish(&mut policy, false, Some(&template), PPO_CHART)?;
    Ok((
        policy,
        RlhfSummary::new("ppo", run, SHOWN, notes).with_warnings(warnings),
    ))
}
