//! `engine train-ppo` with no model: PPO with LoRA on the embedded
//! support-tiny policy against its reward model, measured on the held-out
//! eval prompts before and after (see [`super::report`]).
//!
//! The demo's hyper-parameters are a run file ([`DEMO_CONFIG`], shipped as
//! `demo.toml` with the defaults) used as `--config` when none is given, so
//! every flag still overrides them (`engine train-ppo --quant nf4 --seed 3`).
//! TRL's lr 1.41e-5 is meant for runs of thousands of steps; a few-minute
//! demo needs a larger LoRA learning rate. Its KL coefficient is fixed
//! (measured over seeds 1 and 42 with β = 0.5: β = 1 left 11–15% of the
//! replies unsafe after 30 or 60 steps, β = 0.25 cost a fifth of the
//! well-formed sentences, and the adaptive controller, β₀ 0.15 with target
//! 5, fell to 0.09 and did the same). Even at β = 0.5 the per-token entropy
//! crept up (0.38 to 0.47 nats) and sampled replies broke (well-formed
//! 0.86–0.88×), so the loss carries a small entropy penalty (`ent-coef =
//! -0.2`, the entropy knob of TRL's loss with the sign turned): with it the
//! well-formed share stayed at 0.92–0.97×; at -0.3 distinct-2 fell to 0.71×.
//!
//! That penalty and the reward's spread among safe replies (about 0 to 3.7
//! for whole, safe ones) both narrowed the wording: in a seed-2 run the two
//! most common greetings went from 19 to 75 of 256 replies, and distinct-2
//! ended at 0.76–0.78× on several seeds and backends. Scores are therefore
//! clipped to ±3 (`score-clip`, TRL's `score_clip`), which flattens the top
//! of that spread while unsafe replies stay about 6 below safe ones. A clip
//! at ±2 (with β 0.4 to keep unsafe replies falling) or ±2.5 left distinct-2
//! at 0.79× on seed 2; the clip at ±3 with a weaker entropy penalty (-0.15)
//! kept 0.83× there, but was measured on that seed only.
//!
//! At 32 rollouts per step that config met every bar on 9 of the 10 seeds ×
//! backends (and so did ent-coef -0.15, on a different 9): which replies a
//! seed happened to sample moved a cell's unsafe count by ±4 of 256. With 48
//! rollouts per step in mini-batches of 24 (the same optimizer steps, each
//! over 1.5× the replies) the unsafe rate fell on every cell (3.7–6.6%, bars
//! 7.4–8.4%) but 36 steps narrowed the wording too far on two (distinct-2
//! 0.80×); the reward plateaus by step 20–24 while the per-token entropy keeps
//! falling, so the demo stops at 28 steps.

use anyhow::{ensure, Result};
use clap::parser::ValueSource;
use clap::ArgMatches;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::embedded;
use super::report::{DemoReport, PolicyMeasure, Sample};
use crate::data::support::fluency::WellFormed;
use crate::data::support::safety::check_reply;
use crate::data::{load_prompts, ChatTemplate, Content, LoadOptions};
use crate::device::Gpu;
use crate::models::generate::GenerateConfig;
use crate::models::sampling::SamplingConfig;
use crate::models::CausalLm;
use crate::train::config::adapt::apply_adaptation;
use crate::train::config::run_file::{effective_config, load_args};
use crate::train::driver::prompt_encoder;
use crate::train::ppo::{train_ppo, PpoArgs};
use crate::train::run::default_out_dir;
use crate::train::sample::eval::{evaluate, EvalConfig, EvalPrompt, KlReference};
use crate::train::sample::text_metrics::distinct_n;
use crate::train::scoring::{RewardModelScorer, Scorer};

/// The demo's run file (written as `demo.toml` next to the default models).
pub const DEMO_CONFIG: &str = r#"# The hyper-parameters of `engine train-ppo` with no arguments (a few-minute
# demo on a CPU adapter). Any flag overrides them; pass --config FILE to
# replace this file. TRL's lr 1.41e-5 and horizon 10000 suit long runs only;
# a fixed β = 0.5 keeps the policy near the SFT one, so its replies stay
# sentences (β = 0.25, or an adaptive β that fell to 0.09, cost a fifth of
# them; β = 1 left a tail of unsafe replies). A small entropy penalty
# (negative ent-coef) stops the sampled replies drifting into fragments.
# Scores are clipped to ±3 (TRL's score_clip): the best-scored safe replies
# then earn the same, so PPO narrows its wording less onto them. 48 rollouts
# per step in mini-batches of 24 average each gradient over more replies, so
# the outcome depends less on which replies a seed happened to sample.
steps = 28
batch-size = 48
seed = 1
lr = 1.5e-3
lora-r = 16
lora-alpha = 32
lora-targets = ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]
max-grad-norm = 1.0
log-every = 1

[ppo]
ppo-epochs = 2
mini-batch-size = 24
max-new-tokens = 40
init-kl-coef = 0.5
adaptive-kl = false
cliprange = 0.2
cliprange-value = 0.2
vf-coef = 0.1
ent-coef = -0.2
score-clip = 3.0
"#;

/// The demo's response length (its run file's `max-new-tokens`), also used
/// when the pipeline measures the SFT policy.
pub const DEMO_MAX_NEW_TOKENS: usize = 40;

/// Whether `args` ask for the demo: no model, no reward and no run to
/// resume given (a resumed run takes its model from the checkpoint).
pub fn is_demo(args: &PpoArgs) -> bool {
    args.common.resume.is_none()
        && args.common.model.is_none()
        && args.reward.reward_model.is_empty()
        && args.reward_keyword.is_none()
        && args.reward_target_token.is_none()
}

/// The eval prompts of `file`, encoded for `policy` with room for the
/// response, and their texts.
fn eval_prompts(
    policy: &CausalLm,
    template: &ChatTemplate,
    file: &Path,
    max_new_tokens: usize,
) -> Result<(Vec<EvalPrompt>, Vec<String>)> {
    let rows = load_prompts(file, &LoadOptions::default())?.rows;
    let enc = prompt_encoder(policy, template, policy.cfg.n_ctx, max_new_tokens)?;
    let prompts = EvalPrompt::from_prompts(&rows, &enc)?;
    let texts = rows
        .iter()
        .map(|r| match &r.record.prompt {
            Content::Plain(s) => s.clone(),
            Content::Chat(m) => m
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        })
        .collect();
    Ok((prompts, texts))
}

/// Replies sampled per eval prompt. The SFT policy is the same for every
/// seed, yet its unsafe rate over one set of 128 replies ranged from 25.8% to
/// 41.4% across the seeds' sampling alone (binomial σ ≈ 4 points), and the
/// bar is a quarter of that measured rate; after PPO a set's rate carries
/// σ ≈ 2 points at 6%. Four replies per prompt (512 in all) halve both
/// errors against one reply; each of the demo's two measures then takes
/// about 7-9 s on Vulkan here (at most two generation passes of 256 rows).
pub const EVAL_SAMPLES_PER_PROMPT: usize = 4;

/// Samples [`EVAL_SAMPLES_PER_PROMPT`] responses per eval prompt
/// (temperature 1, no truncation, `seed`) and measures reward, unsafe rate,
/// well-formed rate and (with a reference) KL over all of them, and
/// distinct-2 over each set of one reply per prompt, averaged.
pub fn measure_policy(
    policy: &CausalLm,
    template: &ChatTemplate,
    scorer: &dyn Scorer,
    eval_file: &Path,
    seed: u64,
    max_new_tokens: usize,
    kl: Option<KlReference<'_>>,
) -> Result<PolicyMeasure> {
    let (prompts, texts) = eval_prompts(policy, template, eval_file, max_new_tokens)?;
    // The prompt list repeated: every generation batch has its own seed
    // (`batch_seed`), so each later pass samples new replies, and the first
    // pass is what one reply per prompt gave.
    let n = prompts.len();
    let repeat = n * EVAL_SAMPLES_PER_PROMPT;
    let prompts: Vec<EvalPrompt> = prompts.iter().cycle().take(repeat).cloned().collect();
    let texts = texts.into_iter().cycle().take(repeat);
    let cfg = EvalConfig {
        generate: GenerateConfig {
            max_new_tokens,
            sampling: SamplingConfig::sample(),
            eos: policy.cfg.eos_token_id,
            stop_strings: Vec::new(),
            seed,
        },
        batch_size: n.min(64),
    };
    let r = evaluate(policy, &prompts, &cfg, Some(scorer), kl)?;
    let judge = WellFormed::support();
    let samples: Vec<Sample> = r
        .samples
        .iter()
        .zip(texts)
        .map(|(s, prompt)| Sample {
            prompt,
            response: s.response.clone(),
            reward: s.reward.unwrap_or(f32::NAN) as f64,
            flagged: check_reply(&s.response).map(|v| v.kind.name().to_string()),
            well_formed: judge.judge(&s.response).rate(),
        })
        .collect();
    let flagged = samples.iter().filter(|s| s.flagged.is_some()).count();
    Ok(PolicyMeasure {
        prompts: n,
        samples_per_prompt: EVAL_SAMPLES_PER_PROMPT,
        reward_mean: r.reward_mean.unwrap_or(f64::NAN),
        unsafe_rate: flagged as f64 / samples.len().max(1) as f64,
        well_formed_rate: judge.rate(samples.iter().map(|s| s.response.as_str())),
        // Over one reply per prompt, averaged over the reply sets: pooling
        // the sets would also count a prompt's replies repeating each
        // other, which is not the across-prompt diversity distinct-2 measures
        // (and would make the measure depend on the number of replies).
        distinct2: samples
            .chunks(n.max(1))
            .map(|set| {
                let texts: Vec<String> = set.iter().map(|s| s.response.clone()).collect();
                distinct_n(&texts, 2)
            })
            .sum::<f64>()
            / EVAL_SAMPLES_PER_PROMPT as f64,
        mean_length: r.mean_length,
        kl_mean: r.kl,
        samples,
    })
}

/// Runs the demo on the embedded defaults; returns the path of `report.json`.
pub fn run_default_ppo(gpu: &Arc<Gpu>, args: PpoArgs, matches: &ArgMatches) -> Result<PathBuf> {
    run_demo(gpu, args, matches, &embedded::unpacked()?)
}

/// Runs the demo on the defaults in `defaults` (`policy/`, `reward/`,
/// `data/prompts.jsonl`, `data/eval.jsonl`, `demo.toml`: what the pipeline
/// writes); `args` and `matches` are the command line's.
pub fn run_demo(
    gpu: &Arc<Gpu>,
    mut args: PpoArgs,
    matches: &ArgMatches,
    defaults: &Path,
) -> Result<PathBuf> {
    let t0 = Instant::now();
    if args.common.config.is_none() {
        args.common.config = Some(defaults.join("demo.toml"));
    }
    let mut args = load_args(args, matches)?;
    // The demo's data is the support generator's, so its fluency is judged.
    if matches.value_source("well_formed_check") != Some(ValueSource::CommandLine) {
        args.well_formed_check = true;
    }
    let c = &mut args.common;
    c.model = Some(defaults.join("policy"));
    c.data
        .get_or_insert_with(|| defaults.join("data/prompts.jsonl"));
    args.reward.reward_model = vec![defaults.join("reward")];
    let out = c.out.clone().unwrap_or_else(default_out_dir);
    c.out = Some(out.clone());
    let eval_file = defaults.join("data/eval.jsonl");
    println!(
        "engine train-ppo: the embedded support-tiny demo (PPO with LoRA r={}{}) -> {}",
        c.lora_r,
        match c.quant {
            crate::train::config::Quant::None => String::new(),
            q => format!(", {q} base"),
        },
        out.display()
    );
    ensure!(
        c.lora_r > 0 || c.quant == crate::train::config::Quant::None,
        "--quant needs LoRA (--lora-r > 0)"
    );

    let template = ChatTemplate::for_model_dir(&defaults.join("policy"))?;
    let scorer = RewardModelScorer::new(CausalLm::load(gpu, &defaults.join("reward"))?)?;
    let mut sft = CausalLm::load(gpu, &defaults.join("policy"))?;
    apply_adaptation(&mut sft, &args.common)?;
    let seed = args.common.seed;
    let new_tokens = args.max_new_tokens;
    println!("measuring the SFT policy on the held-out eval prompts...");
    let before = measure_policy(&sft, &template, &scorer, &eval_file, seed, new_tokens, None)?;
    println!(
        "  before: reward mean {:.3}, unsafe-reply rate {:.1}%, well-formed {:.1}%, distinct-2 {:.3} ({:.0}s)",
        before.reward_mean,
        100.0 * before.unsafe_rate,
        100.0 * before.well_formed_rate,
        before.distinct2,
        t0.elapsed().as_secs_f64()
    );

    let hyperparameters = effective_config(&args)?;
    let (policy, summary) = train_ppo(gpu, args)?;
    println!("measuring the PPO policy on the same prompts...");
    let reference = if policy.lora.is_some() {
        KlReference::AdaptersOff
    } else {
        KlReference::Model(&sft)
    };
    let after = measure_policy(
        &policy,
        &template,
        &scorer,
        &eval_file,
        seed,
        new_tokens,
        Some(reference),
    )?;
    let report = DemoReport {
        before,
        after,
        steps: summary.run.steps,
        skipped_steps: summary.run.skipped_steps,
        seconds: t0.elapsed().as_secs_f64(),
        health_warnings: summary.warnings.clone(),
        chart: summary.run.chart.clone(),
        hyperparameters,
        out: out.clone(),
    };
    println!("{report}");
    report.write_eval_responses(&out)?;
    report.write(&out)
}
