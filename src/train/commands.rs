//! The RLHF commands' flags and drivers: `train-ppo`, `train-dpo`,
//! with `best-of-n` and `eval` in [`super::commands_sample`] (re-exported
//! here; the CLI in `src/cli/train.rs` calls these).
//!
//! `train-ppo` and `train-dpo` take [`CommonArgs`] (and the run file's
//! `[ppo]` / `[dpo]` tables through [`super::config::load_args`]) but do not
//! yet go through [`super::session::Session`]: they log `metrics.jsonl` in the
//! run directory, draw the chart and save the final model/adapter with
//! [`save_final`], and refuse `--resume` (not supported for them yet).

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::chart::write_chart;
use super::config::{apply_adaptation, effective_config, CommonArgs, TrainArgs};
use super::dpo::{DirectData, DirectLoss, DpoConfig, DpoTrainer};
use super::metrics::MetricsLog;
use super::ppo::{PpoTrainConfig, PpoTrainer, PromptCycle};
use super::ppo_rollout::RefSource;
use super::reward_fn::{Keyword, Scorer, TargetTokenRate};
use super::run::{default_out_dir, save_final, SavedModel};
use crate::data::{load_prompts, ChatTemplate, Encoder, Truncation};
use crate::device::Gpu;
use crate::models::lm::{CausalLm, Head};
use crate::rl::KlEstimator;

pub use super::commands_sample::{run_best_of_n, run_eval, BestOfNArgs, EvalArgs};

/// TRL `PPOConfig`'s learning rate.
pub const PPO_LR: f32 = 1.41e-5;
/// TRL `DPOConfig`'s learning rate.
pub const DPO_LR: f32 = 1e-6;

/// Keys drawn in the PPO chart.
pub const PPO_CHART: &[&str] = &["env/reward_mean", "objective/kl", "ppo/loss/total"];
/// Keys drawn in the DPO chart.
pub const DPO_CHART: &[&str] = &[
    "train/loss",
    "rewards/margins",
    "rewards/accuracies",
    "eval/loss",
];

fn bool_arg(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("`{s}`: expected true or false")),
    }
}

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
    /// Reward model directory (sequence-classification head).
    #[arg(long)]
    pub reward_model: Option<PathBuf>,
    /// Reward function: +1 per keyword (comma list) found in the response.
    #[arg(long, value_delimiter = ',')]
    pub reward_keyword: Option<Vec<String>>,
    /// Reward function: the fraction of response tokens equal to this id.
    #[arg(long)]
    pub reward_target_token: Option<u32>,
    /// Initial KL coefficient β.
    #[arg(long, default_value_t = 0.2)]
    pub init_kl_coef: f64,
    /// The adaptive KL controller's target KL.
    #[arg(long, default_value_t = 6.0)]
    pub target_kl_value: f64,
    /// The adaptive KL controller's horizon.
    #[arg(long, default_value_t = 10000.0)]
    pub horizon: f64,
    /// Adapt β toward --target-kl-value (false: fixed β).
    #[arg(long, default_value = "true", value_parser = bool_arg, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub adaptive_kl: bool,
    #[arg(long, default_value_t = 4)]
    pub ppo_epochs: usize,
    /// Sequences per optimizer step (default: --batch-size).
    #[arg(long)]
    pub mini_batch_size: Option<usize>,
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 0.2)]
    pub cliprange: f32,
    #[arg(long, default_value_t = 0.2)]
    pub cliprange_value: f32,
    #[arg(long, default_value_t = 0.1)]
    pub vf_coef: f32,
    #[arg(long, default_value_t = 0.0)]
    pub ent_coef: f32,
    /// Per-token KL estimator of the penalty: k1 or k3.
    #[arg(long, value_enum, default_value_t = KlEstimatorArg::K1)]
    pub kl_estimator: KlEstimatorArg,
}

impl TrainArgs for PpoArgs {
    const SECTION: &'static str = "ppo";
    fn common(&self) -> &CommonArgs {
        &self.common
    }
    fn common_mut(&mut self) -> &mut CommonArgs {
        &mut self.common
    }
}

#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DpoArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// dpo, ipo, kto or kto_pair.
    #[arg(long, default_value = "dpo", value_parser = parse_loss)]
    pub loss: String,
    /// β: the KL strength.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f32,
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// KTO's weight of desirable examples.
    #[arg(long, default_value_t = 1.0)]
    pub desirable_weight: f32,
    /// KTO's weight of undesirable examples.
    #[arg(long, default_value_t = 1.0)]
    pub undesirable_weight: f32,
}

fn parse_loss(s: &str) -> Result<String, String> {
    direct_loss(s).map(|_| s.to_string())
}

fn direct_loss(s: &str) -> Result<DirectLoss, String> {
    match s {
        "dpo" | "sigmoid" => Ok(DirectLoss::Dpo),
        "ipo" => Ok(DirectLoss::Ipo),
        "kto" => Ok(DirectLoss::Kto),
        "kto_pair" | "kto-pair" => Ok(DirectLoss::KtoPair),
        _ => Err(format!("`{s}`: expected dpo, ipo, kto or kto_pair")),
    }
}

impl TrainArgs for DpoArgs {
    const SECTION: &'static str = "dpo";
    fn common(&self) -> &CommonArgs {
        &self.common
    }
    fn common_mut(&mut self) -> &mut CommonArgs {
        &mut self.common
    }
}

/// What a PPO or DPO run left behind.
#[derive(Debug)]
pub struct RlhfSummary {
    pub trainer: &'static str,
    pub steps: u64,
    pub out: PathBuf,
    pub metrics: PathBuf,
    pub saved: SavedModel,
    pub chart: Option<PathBuf>,
    /// Last-step metrics shown in the summary.
    pub last: Vec<(String, f64)>,
    /// Health warnings (PPO) and data notes.
    pub notes: Vec<String>,
    /// The health warnings alone.
    pub warnings: Vec<String>,
}

impl std::fmt::Display for RlhfSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: {} steps done", self.trainer, self.steps)?;
        for (k, v) in &self.last {
            writeln!(f, "  {k:<24} {v:.6}")?;
        }
        if self.notes.is_empty() {
            write!(f, "no warnings")?;
        } else {
            write!(f, "notes and warnings:")?;
            for n in &self.notes {
                write!(f, "\n  {n}")?;
            }
        }
        Ok(())
    }
}

pub(super) fn no_model_error(cmd: &str, needs: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no model: the no-argument demo (embedded default models) is not available yet; \
         pass --model DIR and --data FILE{needs} (e.g. `engine {cmd} --model models/fixtures/gpt2-tiny \
         --data prompts.jsonl ...`)"
    )
}

/// The run directory, created, with the effective config stored.
fn prepare_out<T: Serialize>(c: &CommonArgs, args: &T, trainer: &str) -> Result<PathBuf> {
    refuse_resume(c, trainer)?;
    let out = c.out.clone().unwrap_or_else(default_out_dir);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let cfg = serde_json::to_string_pretty(&effective_config(args)?)?;
    std::fs::write(out.join("config.json"), cfg)?;
    Ok(out)
}

/// Prompts of a PPO/best-of-n/eval prompt file, encoded with the template;
/// prompts are cut to leave room for `max_new_tokens`.
pub(super) fn prompt_encoder<'a>(
    model: &'a CausalLm,
    template: &'a ChatTemplate,
    max_len: usize,
    max_new_tokens: usize,
) -> Result<Encoder<'a>> {
    let tok = model
        .tokenizer
        .as_ref()
        .context("the model directory has no tokenizer.json")?;
    let room = max_len.saturating_sub(max_new_tokens).max(1);
    Ok(Encoder::new(tok, template, Truncation::truncate(room)))
}

/// Fails on `--resume` (before the checkpoint is looked for): PPO and DPO
/// runs cannot resume yet.
pub fn refuse_resume(c: &CommonArgs, trainer: &str) -> Result<()> {
    ensure!(
        c.resume.is_none(),
        "--resume is not supported by {trainer} yet: start a new run (checkpoints are not written)"
    );
    Ok(())
}

/// Runs PPO as `args` say; returns the trained policy and the summary.
pub fn train_ppo(gpu: &Arc<Gpu>, args: PpoArgs) -> Result<(CausalLm, RlhfSummary)> {
    let c = args.common.clone();
    if c.model.is_none() {
        return Err(no_model_error(
            "train-ppo",
            " and a reward (--reward-model DIR, --reward-keyword WORDS or --reward-target-token ID)",
        ));
    }
    let rewards = [
        args.reward_model.is_some(),
        args.reward_keyword.is_some(),
        args.reward_target_token.is_some(),
    ];
    match rewards.iter().filter(|&&r| r).count() {
        0 => bail!(
            "no reward: pass --reward-model DIR, --reward-keyword WORDS or --reward-target-token ID"
        ),
        1 => {}
        _ => bail!("pass only one of --reward-model, --reward-keyword, --reward-target-token"),
    }
    let out = prepare_out(&c, &args, "train-ppo")?;
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
    let reference = if policy.lora.is_some() {
        RefSource::AdaptersOff
    } else {
        RefSource::frozen_copy(&policy)?
    };
    let scorer = if let Some(dir) = &args.reward_model {
        Scorer::reward_model(CausalLm::load(gpu, dir)?)
            .with_context(|| format!("reward model {}", dir.display()))?
    } else if let Some(words) = &args.reward_keyword {
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        Scorer::function(Keyword::new(&w))
    } else {
        Scorer::function(TargetTokenRate {
            token: args.reward_target_token.unwrap_or(0),
        })
    };

    let template = c.chat_template()?;
    let mut notes = Vec::new();
    let prompts: Vec<Vec<i32>> = {
        let enc = prompt_encoder(
            &policy,
            &template,
            c.max_len_for(&policy),
            args.max_new_tokens,
        )?;
        let ds = load_prompts(c.data_file()?, &c.load_options()?)?;
        notes.push(ds.report.to_string());
        let (ex, skipped, reasons) =
            crate::data::encode_all(&ds.rows, c.skip_bad_rows, |r| enc.prompt(r))?;
        if skipped > 0 {
            notes.push(format!(
                "{skipped} prompts skipped while encoding: {reasons:?}"
            ));
        }
        ex.into_iter().map(|e| e.prompt_ids).collect()
    };
    ensure!(
        !prompts.is_empty(),
        "{}: no usable prompts",
        c.data_file()?.display()
    );

    let mut cfg = PpoTrainConfig::default();
    cfg.ppo.init_kl_coef = args.init_kl_coef;
    cfg.ppo.target = args.target_kl_value;
    cfg.ppo.horizon = args.horizon;
    cfg.ppo.adap_kl_ctrl = args.adaptive_kl;
    cfg.ppo.ppo_epochs = args.ppo_epochs;
    cfg.ppo.cliprange = args.cliprange;
    cfg.ppo.cliprange_value = args.cliprange_value;
    cfg.ppo.vf_coef = args.vf_coef;
    cfg.ppo.kl_penalty = match args.kl_estimator {
        KlEstimatorArg::K1 => KlEstimator::K1,
        KlEstimatorArg::K3 => KlEstimator::K3,
    };
    cfg.batch_size = c.batch_size;
    cfg.mini_batch_size = args.mini_batch_size.unwrap_or(c.batch_size);
    cfg.max_new_tokens = args.max_new_tokens;
    cfg.lr = c.lr_or(PPO_LR);
    cfg.weight_decay = c.weight_decay;
    cfg.max_grad_norm = (c.max_grad_norm > 0.0).then_some(c.max_grad_norm);
    cfg.seed = c.seed;
    cfg.ent_coef = args.ent_coef;

    let mut trainer = PpoTrainer::new(policy, reference, scorer, cfg)?;
    let mut log = MetricsLog::open(&out, false)?;
    let mut source = PromptCycle {
        prompts,
        seed: c.seed,
    };
    let quiet = matches!(c.progress, super::progress::ProgressMode::Silent);
    let total = c.steps;
    let every = c.log_every.max(1);
    let mut last = Vec::new();
    let t0 = Instant::now();
    let health = trainer.run(total, &mut source, Some(&mut log), &mut |rep| {
        last = rep
            .metrics()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for w in &rep.warnings {
            eprintln!("warning (step {}): {w}", rep.step);
        }
        if !quiet && (rep.step % every == 0 || rep.step == total) {
            println!(
                "step {}/{total}  reward {:.4}  kl {:.4}  beta {:.4}  ({:.1}s)",
                rep.step,
                rep.reward_mean,
                rep.kl,
                rep.kl_coef,
                t0.elapsed().as_secs_f64()
            );
        }
    })?;
    notes.extend(health.iter().cloned());
    let chart = write_chart(&log, PPO_CHART, &out.join("chart.svg"), "ppo")?;
    let mut policy = trainer.policy;
    let saved = save_final(&out, &mut policy, false, Some(&template))?;
    let shown = [
        "env/reward_mean",
        "objective/kl",
        "objective/kl_coef",
        "ppo/loss/total",
    ];
    last.retain(|(k, _)| shown.contains(&k.as_str()));
    Ok((
        policy,
        RlhfSummary {
            trainer: "ppo",
            steps: total,
            metrics: log.path().to_path_buf(),
            out,
            saved,
            chart,
            last,
            notes,
            warnings: health,
        },
    ))
}

/// Runs DPO/IPO/KTO as `args` say; returns the trained model and the summary.
pub fn train_dpo(gpu: &Arc<Gpu>, args: DpoArgs) -> Result<(CausalLm, RlhfSummary)> {
    let c = args.common.clone();
    if c.model.is_none() {
        return Err(no_model_error("train-dpo", " (preference or KTO JSONL)"));
    }
    let loss = direct_loss(&args.loss).map_err(anyhow::Error::msg)?;
    let out = prepare_out(&c, &args, "train-dpo")?;
    let mut model = CausalLm::load(gpu, c.model_dir()?)?;
    ensure!(
        model.head != Head::Reward,
        "{} is a sequence-classification model; DPO needs an LM head",
        c.model_dir()?.display()
    );
    apply_adaptation(&mut model, &c)?;
    let template = c.chat_template()?;
    let opts = c.load_options()?;
    let (train, eval) = {
        let tok = model
            .tokenizer
            .as_ref()
            .context("the model directory has no tokenizer.json")?;
        let enc = Encoder::new(tok, &template, Truncation::truncate(c.max_len_for(&model)));
        let train = DirectData::load(c.data_file()?, loss, &enc, &opts)?;
        let eval = match &c.eval_data {
            Some(p) => Some(DirectData::load(p, loss, &enc, &opts)?),
            None => None,
        };
        (train, eval)
    };
    let cfg = DpoConfig {
        loss,
        beta: args.beta,
        label_smoothing: args.label_smoothing,
        desirable_weight: args.desirable_weight,
        undesirable_weight: args.undesirable_weight,
        batch_size: c.batch_size,
        lr: c.lr_or(DPO_LR),
        weight_decay: c.weight_decay,
        warmup_steps: c.warmup_steps,
        total_steps: c.steps.min(u32::MAX as u64) as u32,
        schedule: c.schedule,
        max_grad_norm: (c.max_grad_norm > 0.0).then_some(c.max_grad_norm),
        seed: c.seed,
        precompute_ref_log_probs: false,
    };
    let mut trainer =
        DpoTrainer::new(model, cfg, train)?.with_metrics_log(MetricsLog::open(&out, false)?);
    if let Some(e) = eval {
        trainer = trainer.with_eval_data(e)?;
    }
    let has_eval = c.eval_data.is_some();
    let quiet = matches!(c.progress, super::progress::ProgressMode::Silent);
    let every = c.log_every.max(1);
    let mut last: Vec<(String, f64)> = Vec::new();
    let mut notes = Vec::new();
    while trainer.steps_done() < c.steps {
        let rep = trainer.step()?;
        if !rep.applied {
            notes.push(format!("step {}: update skipped (non-finite)", rep.step));
        }
        last = rep
            .named()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        if has_eval && (rep.step == c.steps || (c.eval_every > 0 && rep.step % c.eval_every == 0)) {
            let e = trainer.evaluate()?;
            last.extend(e.named().into_iter().map(|(k, v)| (k.to_string(), v)));
        }
        if !quiet && (rep.step % every == 0 || rep.step == c.steps) {
            println!("step {}/{}  loss {:.4}", rep.step, c.steps, rep.loss);
        }
    }
    let log = trainer.metrics().context("metrics log")?;
    let metrics = log.path().to_path_buf();
    let chart = write_chart(log, DPO_CHART, &out.join("chart.svg"), loss.name())?;
    let mut model = trainer.into_model();
    let saved = save_final(&out, &mut model, false, Some(&template))?;
    last.retain(|(k, _)| {
        k.starts_with("train/loss") || k.starts_with("rewards/") || k == "eval/loss"
    });
    Ok((
        model,
        RlhfSummary {
            trainer: "dpo",
            steps: c.steps,
            out,
            metrics,
            saved,
            chart,
            last,
            notes,
            warnings: Vec::new(),
        },
    ))
}
