//! The sampling commands' flags and drivers: `best-of-n` (rejection
//! sampling into SFT-format JSONL) and `eval` (reward, ROUGE, distinct-n,
//! length and KL to a reference). They train nothing.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::best_of_n::{best_of_n, BestOfNConfig, BestOfNPrompt, BestOfNReport};
use super::commands::{no_model_error, prompt_encoder};
use super::eval::{evaluate, EvalConfig, EvalPrompt, EvalReport, KlReference};
use super::scoring;
use crate::data::{load_prompts, load_sft, ChatTemplate};
use crate::device::Gpu;
use crate::models::generate::GenerateConfig;
use crate::models::lm::CausalLm;
use crate::models::sampling::SamplingConfig;

#[derive(clap::Args, Clone, Debug)]
pub struct BestOfNArgs {
    /// Policy model directory.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Reward model directory.
    #[arg(long)]
    pub reward_model: PathBuf,
    /// Prompt file (JSONL/CSV, `prompt` or `messages`).
    #[arg(long)]
    pub data: PathBuf,
    /// Candidates per prompt.
    #[arg(long, default_value_t = 4)]
    pub n: usize,
    /// Output JSONL (prompt, best completion, score).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Prompts per generation pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Chat template (default: the model directory's).
    #[arg(long)]
    pub template: Option<String>,
}

fn template_for(template: &Option<String>, model_dir: &Path) -> Result<ChatTemplate> {
    match template {
        Some(t) if Path::new(t).is_file() || t.ends_with(".json") => {
            ChatTemplate::load(Path::new(t))
        }
        Some(t) => ChatTemplate::preset(t),
        None => ChatTemplate::for_model_dir(model_dir),
    }
}

fn generate_config(
    model: &CausalLm,
    max_new_tokens: usize,
    temperature: f32,
    seed: u64,
) -> GenerateConfig {
    let mut sampling = SamplingConfig::sample();
    sampling.temperature = temperature;
    GenerateConfig {
        max_new_tokens,
        sampling,
        eos: model.cfg.eos_token_id,
        seed,
        ..Default::default()
    }
}

/// Best-of-n sampling scored by a reward model; writes the JSONL.
pub fn run_best_of_n(gpu: &Arc<Gpu>, args: &BestOfNArgs) -> Result<(BestOfNReport, usize)> {
    let dir = args
        .model
        .as_deref()
        .ok_or_else(|| no_model_error("best-of-n", ", --reward-model DIR, --n N and --out FILE"))?;
    let policy = CausalLm::load(gpu, dir)?;
    let template = template_for(&args.template, dir)?;
    let enc = prompt_encoder(&policy, &template, policy.cfg.n_ctx, args.max_new_tokens)?;
    let ds = load_prompts(&args.data, &Default::default())?;
    let prompts = BestOfNPrompt::encode(&ds.rows, &enc)?;
    let scorer = scoring::RewardModelScorer::new(CausalLm::load(gpu, &args.reward_model)?)?;
    let cfg = BestOfNConfig {
        n: args.n,
        generate: generate_config(&policy, args.max_new_tokens, args.temperature, args.seed),
        batch_size: args.batch_size.max(1),
    };
    let report = best_of_n(&policy, &prompts, &scorer, &cfg)?;
    let written = report.write_jsonl(&args.out)?;
    Ok((report, written))
}

#[derive(clap::Args, Clone, Debug)]
pub struct EvalArgs {
    /// Model directory to evaluate.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompt file; prompt/completion rows give ROUGE references.
    #[arg(long)]
    pub data: PathBuf,
    /// Reward model directory (reward mean/std).
    #[arg(long)]
    pub reward_model: Option<PathBuf>,
    /// LoRA adapter to load onto --model (KL is then to the adapters-off base).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Reference model for KL (without --adapter).
    #[arg(long)]
    pub reference_model: Option<PathBuf>,
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Chat template (default: the model or adapter directory's).
    #[arg(long)]
    pub template: Option<String>,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Evaluates a model (see [`super::eval`]).
pub fn run_eval(gpu: &Arc<Gpu>, args: &EvalArgs) -> Result<EvalReport> {
    let dir = args
        .model
        .as_deref()
        .ok_or_else(|| no_model_error("eval", ""))?;
    let mut policy = CausalLm::load(gpu, dir)?;
    if let Some(a) = &args.adapter {
        policy
            .load_adapter(a)
            .with_context(|| format!("loading adapter {}", a.display()))?;
    }
    let tdir = match &args.adapter {
        Some(a) if a.join(crate::data::TEMPLATE_FILE).is_file() => a.as_path(),
        _ => dir,
    };
    let template = template_for(&args.template, tdir)?;
    let enc = prompt_encoder(&policy, &template, policy.cfg.n_ctx, args.max_new_tokens)?;
    let prompts = match load_sft(&args.data, &Default::default())
        .and_then(|ds| EvalPrompt::from_sft(&ds.rows, &enc))
    {
        Ok(p) => p,
        Err(_) => {
            let ds = load_prompts(&args.data, &Default::default())?;
            EvalPrompt::from_prompts(&ds.rows, &enc)?
        }
    };
    let scorer = match &args.reward_model {
        Some(d) => Some(scoring::RewardModelScorer::new(CausalLm::load(gpu, d)?)?),
        None => None,
    };
    let reference = match (&args.adapter, &args.reference_model) {
        (Some(_), _) => None,
        (None, Some(d)) => Some(CausalLm::load(gpu, d)?),
        (None, None) => None,
    };
    let kl = match (&args.adapter, &reference) {
        (Some(_), _) => Some(KlReference::AdaptersOff),
        (None, Some(m)) => Some(KlReference::Model(m)),
        _ => None,
    };
    let cfg = EvalConfig {
        generate: generate_config(&policy, args.max_new_tokens, args.temperature, args.seed),
        batch_size: args.batch_size.max(1),
    };
    evaluate(
        &policy,
        &prompts,
        &cfg,
        scorer.as_ref().map(|s| s as &dyn scoring::Scorer),
        kl,
    )
}
