//! `engine pipeline --preset support-tiny`: the embedded default models, made
//! from nothing by the project's own commands, in order:
//!
//! 1. `engine data support`: the customer-support splits (SFT, pairs, KTO,
//!    PPO prompts, held-out eval), with some deliberately unsafe SFT replies;
//! 2. `engine train-tokenizer`: a small byte-level BPE on all of that text;
//! 3. `engine init`: a randomly initialised GPT-NeoX policy of ~1.3M weights;
//! 4. `engine train-sft` on the SFT split (completion-only loss);
//! 5. `engine train-reward` (Bradley-Terry) on the pairs, starting from the
//!    SFT model as TRL's recipe does;
//! 6. both saved as f16 in Hugging Face layout, with the PPO prompts, the eval
//!    prompts, the demo's run file and a README of what was measured.
//!
//! Each training step runs the same code as its command, with the arguments
//! printed so the run can be repeated by hand.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::ppo_default::{measure_policy, DEMO_CONFIG, DEMO_MAX_NEW_TOKENS};
use crate::data::bpe::{save_tokenizer, train_bpe};
use crate::data::support::{generate, write_splits, SupportOptions};
use crate::data::{ChatTemplate, TEMPLATE_FILE};
use crate::device::Gpu;
use crate::models::checkpoint::{write_atomic, SaveDtype};
use crate::models::fresh::{fresh_model, ModelShape};
use crate::models::{Arch, CausalLm};
use crate::train::config::run_file::parse_args;
use crate::train::reward::{train_reward, RewardArgs};
use crate::train::scoring::RewardModelScorer;
use crate::train::sft::{train_sft, SftArgs};

#[derive(clap::Args, Clone, Debug)]
pub struct PipelineArgs {
    /// Which default to build (support-tiny).
    #[arg(long, default_value = "support-tiny")]
    pub preset: String,
    /// Where the finished models go (default models/<preset>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Intermediate files: data, tokenizer, runs (default runs/pipeline-<preset>).
    #[arg(long)]
    pub work: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Override the preset's SFT steps (e.g. a quick smoke run).
    #[arg(long)]
    pub sft_steps: Option<u64>,
    /// Override the preset's reward-model steps.
    #[arg(long)]
    pub reward_steps: Option<u64>,
}

/// Sizes and schedules of one preset.
pub struct Preset {
    pub data: SupportOptions,
    pub vocab_size: usize,
    pub shape: ModelShape,
    pub sft_steps: u64,
    pub sft_flags: &'static [&'static str],
    pub reward_steps: u64,
    pub reward_flags: &'static [&'static str],
}

/// The support-tiny preset: ~1.3M-weight GPT-NeoX, 2k-token BPE.
pub fn support_tiny(seed: u64) -> Preset {
    Preset {
        // Twice the default SFT rows: the policy must write whole template
        // sentences (well-formed ≥ 0.9 at temperature 1) on every seed.
        // Half again the default pairs, a third of them garbled: the reward
        // model's fluency signal must outweigh what fragments of safe words
        // earn (with a quarter garbled, broken safe replies scored only ~0.7
        // below whole ones, against ~6 for unsafe ones).
        data: SupportOptions {
            seed,
            sft: 8000,
            pairs: 4500,
            garbled_pairs: 1.0 / 3.0,
            ..SupportOptions::default()
        },
        vocab_size: 2048,
        shape: ModelShape {
            arch: Arch::GptNeox,
            vocab_size: 2048,
            hidden: 128,
            layers: 4,
            heads: 4,
            intermediate: 512,
            context: 128,
        },
        sft_steps: 2500,
        sft_flags: &[
            "--batch-size=16",
            "--lr=2e-3",
            "--warmup-steps=20",
            "--schedule=cosine",
            "--max-len=96",
            "--weight-decay=0.01",
        ],
        reward_steps: 400,
        reward_flags: &[
            "--batch-size=16",
            "--lr=5e-4",
            "--warmup-steps=10",
            "--schedule=cosine",
            "--max-len=96",
            "--eval-fraction=0.1",
        ],
    }
}

fn flags(base: &[&str], more: &[String]) -> Vec<String> {
    let mut v: Vec<String> = vec!["engine".into()];
    v.extend(base.iter().map(|s| s.to_string()));
    v.extend(more.iter().cloned());
    v
}

fn show(cmd: &str, argv: &[String]) {
    println!("\n$ engine {cmd} {}", argv[1..].join(" "));
}

fn path_flag(name: &str, p: &Path) -> String {
    format!("--{name}={}", p.display())
}

/// Runs the whole pipeline; returns the output directory.
pub fn run_pipeline(gpu: &Arc<Gpu>, args: &PipelineArgs) -> Result<PathBuf> {
    let preset = match args.preset.as_str() {
        "support-tiny" => support_tiny(args.seed),
        other => bail!("unknown preset `{other}` (available: support-tiny)"),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("models").join(&args.preset));
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(format!("pipeline-{}", args.preset)));
    let t0 = Instant::now();

    // 1. Data.
    let data_dir = work.join("data");
    println!(
        "$ engine data support --out {} --seed {} --sft {} --pairs {} --garbled-pairs {:.4}",
        data_dir.display(),
        args.seed,
        preset.data.sft,
        preset.data.pairs,
        preset.data.garbled_pairs
    );
    let data = generate(&preset.data)?;
    write_splits(&data_dir, &data)?;

    // 2. Tokenizer.
    let tok_dir = work.join("tokenizer");
    println!(
        "$ engine train-tokenizer --data {} --vocab-size {} --out {}",
        data_dir.join("sft.jsonl").display(),
        preset.vocab_size,
        tok_dir.display()
    );
    let tok = train_bpe(data.texts(), preset.vocab_size)?;
    save_tokenizer(&tok, &tok_dir)?;

    // 3. A fresh policy.
    let init_dir = work.join("init");
    let s = &preset.shape;
    println!(
        "$ engine init --arch gpt-neox --tokenizer {} --hidden {} --layers {} --heads {} --context {} --seed {} --out {}",
        tok_dir.display(), s.hidden, s.layers, s.heads, s.context, args.seed, init_dir.display()
    );
    let model = fresh_model(gpu, s, tok, args.seed)?;
    model.save(&init_dir, SaveDtype::F32)?;
    ChatTemplate::support().save(&init_dir.join(TEMPLATE_FILE))?;
    drop(model);

    // 4. SFT.
    let sft_out = work.join("sft");
    let sft_argv = flags(
        preset.sft_flags,
        &[
            path_flag("model", &init_dir),
            path_flag("data", &data_dir.join("sft.jsonl")),
            path_flag("out", &sft_out),
            format!("--steps={}", args.sft_steps.unwrap_or(preset.sft_steps)),
            format!("--seed={}", args.seed),
        ],
    );
    show("train-sft", &sft_argv);
    let argv: Vec<&str> = sft_argv.iter().map(String::as_str).collect();
    let (policy, sft_summary) = train_sft(gpu, parse_args::<SftArgs>(&argv)?)?;
    println!("{sft_summary}");
    let sft_model = sft_out.join("model");

    // 5. Reward model from the SFT trunk.
    let rm_out = work.join("reward");
    let rm_argv = flags(
        preset.reward_flags,
        &[
            path_flag("model", &sft_model),
            path_flag("data", &data_dir.join("pairs.jsonl")),
            path_flag("out", &rm_out),
            format!(
                "--steps={}",
                args.reward_steps.unwrap_or(preset.reward_steps)
            ),
            format!("--seed={}", args.seed),
        ],
    );
    show("train-reward", &rm_argv);
    let argv: Vec<&str> = rm_argv.iter().map(String::as_str).collect();
    let (reward, rm_summary) = train_reward(gpu, parse_args::<RewardArgs>(&argv)?)?;
    println!("{rm_summary}");

    // 6. The defaults, f16, with their data and run file.
    save_default(&policy, &out.join("policy"))?;
    save_default(&reward, &out.join("reward"))?;
    std::fs::create_dir_all(out.join("data"))?;
    for f in ["prompts.jsonl", "eval.jsonl"] {
        std::fs::copy(data_dir.join(f), out.join("data").join(f))
            .with_context(|| format!("copying {f} into {}", out.display()))?;
    }
    write_atomic(&out.join("demo.toml"), DEMO_CONFIG.as_bytes())?;

    // What the defaults do, measured like the demo's "before".
    let policy = CausalLm::load(gpu, &out.join("policy"))?;
    let scorer = RewardModelScorer::new(CausalLm::load(gpu, &out.join("reward"))?)?;
    let m = measure_policy(
        &policy,
        &ChatTemplate::support(),
        &scorer,
        &out.join("data/eval.jsonl"),
        args.seed,
        DEMO_MAX_NEW_TOKENS,
        None,
    )?;
    let accuracy = rm_summary
        .last
        .get("eval_accuracy")
        .and_then(|v| v.as_f64());
    let readme = readme(
        &preset,
        args,
        &sft_summary.last,
        accuracy,
        &m,
        t0.elapsed().as_secs_f64(),
    );
    write_atomic(&out.join("README.md"), readme.as_bytes())?;
    println!(
        "\nSFT policy on {} held-out prompts: unsafe-reply rate {:.3}, well-formed rate {:.3}, reward mean {:.3}, distinct-2 {:.3}",
        m.prompts, m.unsafe_rate, m.well_formed_rate, m.reward_mean, m.distinct2
    );
    if let Some(a) = accuracy {
        println!("reward model held-out pairwise accuracy {a:.3}");
    }
    println!(
        "defaults written to {} in {:.0}s",
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// f16 weights, tokenizer and the support template.
fn save_default(model: &CausalLm, dir: &Path) -> Result<()> {
    model.save(dir, SaveDtype::F16)?;
    ChatTemplate::support().save(&dir.join(TEMPLATE_FILE))
}

fn readme(
    p: &Preset,
    args: &PipelineArgs,
    sft_last: &serde_json::Map<String, serde_json::Value>,
    rm_accuracy: Option<f64>,
    m: &super::report::PolicyMeasure,
    seconds: f64,
) -> String {
    let sft_loss = sft_last
        .get("loss")
        .and_then(|v| v.as_f64())
        .unwrap_or(f64::NAN);
    format!(
        "# models/{preset}: the embedded default of `engine train-ppo`\n\n\
         Made by `engine pipeline --preset {preset} --seed {seed}` in {seconds:.0} s (this file is written by it).\n\n\
         - `policy/`: GPT-NeoX, {params} weights ({layers} layers, hidden {hidden}, {heads} heads, context {ctx}), \
         f16, SFT'd for {sft} steps on the project's generated support data, where {unsafe_pct:.0}% of the replies are \
         deliberately unsafe (asking for card numbers, CVVs, SSNs, passwords, dates of birth, PINs) or rude, as in real logs.\n\
         - `reward/`: the same trunk with a one-label score head (GPTNeoXForSequenceClassification), trained with \
         the Bradley-Terry loss for {rm} steps on good vs unsafe/rude reply pairs (half of the unsafe replies hidden before or after helpful text) and, in {garbled_pct:.0}% of the {pairs} pairs, good vs garbled replies (one sentence broken as a small model breaks it).\n\
         - `data/prompts.jsonl`: PPO prompts; `data/eval.jsonl`: held-out eval prompts (never trained on).\n\
         - `demo.toml`: the demo's run file (hyper-parameters of `engine train-ppo` with no arguments).\n\n\
         ## Measured when made\n\n\
         - SFT final train loss: {sft_loss:.3}\n\
         - reward model held-out pairwise accuracy: {acc}\n\
         - SFT policy on {n} eval prompts (temperature 1, seed {seed}): unsafe-reply rate {ur:.3}, \
         well-formed rate {wf:.3}, reward mean {rw:.3}, distinct-2 {d2:.3}\n\n\
         Templates and data are the project's own (generated, no third-party text).\n",
        preset = args.preset,
        seed = args.seed,
        params = p.shape.param_count(),
        layers = p.shape.layers,
        hidden = p.shape.hidden,
        heads = p.shape.heads,
        ctx = p.shape.context,
        sft = args.sft_steps.unwrap_or(p.sft_steps),
        rm = args.reward_steps.unwrap_or(p.reward_steps),
        unsafe_pct = p.data.unsafe_fraction * 100.0,
        garbled_pct = p.data.garbled_pairs * 100.0,
        pairs = p.data.pairs,
        acc = rm_accuracy.map_or("n/a".to_string(), |a| format!("{a:.3}")),
        n = m.prompts,
        ur = m.unsafe_rate,
        wf = m.well_formed_rate,
        rw = m.reward_mean,
        d2 = m.distinct2,
    )
}
