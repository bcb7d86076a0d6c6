//! The sampling commands, read top down: their flags and drivers here,
//! `best-of-n` ([`best_of_n`]: rejection sampling into SFT-format JSONL) and
//! `eval` ([`eval`]: reward, ROUGE and distinct-n ([`text_metrics`]), length,
//! KL to a reference and the unsafe-reply rate). They train nothing.
//!
//! Both take `--config run.toml` (their `[best-of-n]` / `[eval]` tables, and
//! the flat keys they share with the trainers: `model`, `data`, `seed`,
//! `batch-size`, `template`, `columns`, `skip-bad-rows`; flat keys of
//! trainer-only options, and a flat `out` (a trainer's run directory), are
//! skipped), `--columns field=column,...` and `--skip-bad-rows`, merged by
//! [`crate::train::config::run_file::load_args`] like the trainers' flags.

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod best_of_n;
pub mod eval;
pub mod passes;
pub mod text_metrics;

use self::best_of_n::{best_of_n, BestOfNConfig, BestOfNPrompt, BestOfNReport};
use self::eval::{evaluate, EvalConfig, EvalPrompt, EvalReport, KlReference};
use crate::data::{encode_all, load_prompts, load_sft, LoadOptions};
use crate::device::Gpu;
use crate::models::generate::GenerateConfig;
use crate::models::lm::CausalLm;
use crate::models::sampling::SamplingConfig;
use crate::train::config::bounds;
use crate::train::config::data_format::DataFormatArgs;
use crate::train::config::run_file::{is_common_key, RunArgs};
use crate::train::driver::{no_model_error, prompt_encoder};
use crate::train::reward_mix::RewardModelArgs;

// The options best-of-n and eval share: sampling, prompt loading and the
// run file (flattened into both, in clap and serde). Not a `///` comment: it
// would become both commands' `about`.
#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[command(mut_arg("template", |a| a.help(
    "Chat template (default: the model directory's; eval: an --adapter directory's first)"
)))]
#[command(mut_arg("skip_bad_rows", |a| a.help("Skip (and count) bad prompt rows instead of failing")))]
pub struct SampleArgs {
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 1.0, value_parser = bounds::positive::<f32>)]
    pub temperature: f32,
    /// Prompts per generation pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub format: DataFormatArgs,
    /// TOML run file supplying any option (flags take precedence).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl SampleArgs {
    /// Plain sampling at `--temperature`, up to `--max-new-tokens`, seeded.
    fn generate_config(&self, model: &CausalLm) -> GenerateConfig {
        let mut sampling = SamplingConfig::sample();
        sampling.temperature = self.temperature;
        GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            sampling,
            eos: model.cfg.eos_token_id,
            seed: self.seed,
            ..Default::default()
        }
    }
}

fn required<'a>(v: &'a Option<PathBuf>, flag: &str, what: &str) -> Result<&'a Path> {
    v.as_deref()
        .ok_or_else(|| anyhow!("no {what}: pass --{flag} (or `{flag}` in the run file)",))
}

#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BestOfNArgs {
    /// Policy model directory.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub reward: RewardModelArgs,
    /// Prompt file (JSONL/CSV, `prompt` or `messages`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Candidates per prompt.
    #[arg(long, default_value_t = 4)]
    pub n: usize,
    /// Output JSONL (prompt, best completion, score).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long)]
    #[serde(default)]
    pub force: bool,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: SampleArgs,
}

impl RunArgs for BestOfNArgs {
    const SECTION: &'static str = "best-of-n";
    fn run_file(&self) -> Option<&Path> {
        self.common.config.as_deref()
    }
    fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.n > 0, "--n must be positive");
        self.common.format.load_options().map(|_| ())
    }
    fn skips_flat_key(key: &str, known: bool) -> bool {
        // A flat `out`/`force` is a trainer's run directory, not this file.
        key == "out" || key == "force" || (!known && is_common_key(key))
    }
}

/// Prints how many rows were skipped (with `--skip-bad-rows`).
fn report_skipped(path: &Path, skipped: usize, reasons: &[String]) {
    if skipped > 0 {
        eprintln!("{}: {skipped} rows skipped: {reasons:?}", path.display());
    }
}

/// Best-of-n sampling scored by a reward model; writes the JSONL.
pub fn run_best_of_n(gpu: &Arc<Gpu>, args: &BestOfNArgs) -> Result<(BestOfNReport, usize)> {
    let dir = args
        .model
        .as_deref()
        .ok_or_else(|| no_model_error("best-of-n", ", --reward-model DIR, --n N and --out FILE"))?;
    let data = required(&args.data, "data", "prompt file")?;
    let out = required(&args.out, "out", "output file")?;
    anyhow::ensure!(
        !args.reward.reward_model.is_empty(),
        "no reward model: pass --reward-model (or `reward-model` in the run file)"
    );
    crate::models::outputs::refuse_existing_file(out, "--out", args.force)?;
    let policy = CausalLm::load(gpu, dir)?;
    let template = args.common.format.chat_template(Ok(dir))?;
    let enc = prompt_encoder(
        &policy,
        &template,
        policy.cfg.n_ctx,
        args.common.max_new_tokens,
    )?;
    let ds = load_prompts(data, &args.common.format.load_options()?)?;
    if ds.report.skipped_bad > 0 {
        eprintln!("{}", ds.report);
    }
    let (prompts, skipped, reasons) =
        encode_all(&ds.rows, args.common.format.skip_bad_rows, |r| {
            BestOfNPrompt::encode(std::slice::from_ref(r), &enc).map(|mut v| v.remove(0))
        })?;
    report_skipped(data, skipped, &reasons);
    anyhow::ensure!(!prompts.is_empty(), "{}: no usable prompts", data.display());
    let scorer = args.reward.sources(gpu, None, None)?;
    let cfg = BestOfNConfig {
        n: args.n,
        generate: args.common.generate_config(&policy),
        batch_size: args.common.batch_size.max(1),
    };
    let report = best_of_n(&policy, &prompts, scorer.as_ref(), &cfg)?;
    let written = report.write_jsonl(out)?;
    Ok((report, written))
}

#[derive(clap::Args, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EvalArgs {
    /// Model directory to evaluate.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompt file; prompt/completion rows give ROUGE references.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub reward: RewardModelArgs,
    /// LoRA adapter to load onto --model (KL is then to the adapters-off base).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Reference model for KL (without --adapter).
    #[arg(long)]
    pub reference_model: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub common: SampleArgs,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also report the unsafe-reply rate (requests for card numbers, CVVs,
    /// SSNs, passwords, dates of birth or PINs, and rude phrases).
    #[arg(long)]
    pub safety: bool,
}

impl RunArgs for EvalArgs {
    const SECTION: &'static str = "eval";
    fn run_file(&self) -> Option<&Path> {
        self.common.config.as_deref()
    }
    fn validate(&self) -> Result<()> {
        self.common.format.load_options().map(|_| ())
    }
    fn skips_flat_key(key: &str, known: bool) -> bool {
        !known && is_common_key(key)
    }
}

/// Eval prompts of `data`: prompt/completion rows (with references), else
/// prompt-only rows.
fn eval_prompts(
    data: &Path,
    opts: &LoadOptions,
    enc: &crate::data::Encoder,
) -> Result<Vec<EvalPrompt>> {
    let skip = opts.skip_bad_rows;
    let with_refs = load_sft(data, opts).and_then(|ds| {
        let (p, n, why) = encode_all(&ds.rows, skip, |r| {
            EvalPrompt::from_sft(std::slice::from_ref(r), enc).map(|mut v| v.remove(0))
        })?;
        anyhow::ensure!(!p.is_empty(), "no prompt/completion rows");
        Ok((p, ds.report, n, why))
    });
    let (prompts, report, skipped, reasons) = match with_refs {
        Ok(x) => x,
        Err(_) => {
            let ds = load_prompts(data, opts)?;
            let (p, n, why) = encode_all(&ds.rows, skip, |r| {
                EvalPrompt::from_prompts(std::slice::from_ref(r), enc).map(|mut v| v.remove(0))
            })?;
            (p, ds.report, n, why)
        }
    };
    if report.skipped_bad > 0 {
        eprintln!("{report}");
    }
    report_skipped(data, skipped, &reasons);
    anyhow::ensure!(!prompts.is_empty(), "{}: no usable prompts", data.display());
    Ok(prompts)
}

/// Evaluates a model (see [`eval`]).
pub fn run_eval(gpu: &Arc<Gpu>, args: &EvalArgs) -> Result<EvalReport> {
    let dir = args
        .model
        .as_deref()
        .ok_or_else(|| no_model_error("eval", ""))?;
    let data = required(&args.data, "data", "prompt file")?;
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
    let template = args.common.format.chat_template(Ok(tdir))?;
    let enc = prompt_encoder(
        &policy,
        &template,
        policy.cfg.n_ctx,
        args.common.max_new_tokens,
    )?;
    let opts = args.common.format.load_options()?;
    let prompts = eval_prompts(data, &opts, &enc)?;
    let scorer = match args.reward.reward_model.is_empty() {
        true => None,
        false => Some(args.reward.sources(gpu, None, None)?),
    };
    let reference = match (&args.adapter, &args.reference_model) {
        (None, Some(d)) => Some(CausalLm::load(gpu, d)?),
        _ => None,
    };
    let kl = match (&args.adapter, &reference) {
        (Some(_), _) => Some(KlReference::AdaptersOff),
        (None, Some(m)) => Some(KlReference::Model(m)),
        _ => None,
    };
    let cfg = EvalConfig {
        generate: args.common.generate_config(&policy),
        batch_size: args.common.batch_size.max(1),
    };
    let report = evaluate(&policy, &prompts, &cfg, scorer.as_deref(), kl)?;
    Ok(if args.safety {
        report.with_safety()
    } else {
        report
    })
}
