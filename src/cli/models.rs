//! `engine generate`, `perplexity` and `info`, and the model and sampling
//! flags they share with `chat` ([`super::chat`]).

use anyhow::{bail, ensure, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;

use engine::models::generate::{generate, GenerateConfig};
use engine::models::layers::Tokens;
use engine::models::sampling::SamplingConfig;
use engine::models::CausalLm;
use engine::train::config::bounds;
use engine::{DType, Gpu, Tape};

/// A base model plus optional quantization and a PEFT adapter.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// A Hugging Face model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Quantize the frozen base: none, int8 or nf4.
    #[arg(long, default_value = "none")]
    pub quant: String,
    /// A PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

impl ModelArgs {
    pub fn load(&self, gpu: &Arc<Gpu>) -> Result<CausalLm> {
        let mut model = CausalLm::load(gpu, &self.model)?;
        if let Some(format) = engine::models::quantized::parse_quant(&self.quant)? {
            model.quantize_base(format)?;
        }
        if let Some(dir) = &self.adapter {
            model.load_adapter(dir)?;
        }
        Ok(model)
    }
}

#[derive(clap::Args)]
pub struct SamplingArgs {
    /// Greedy decoding (the default when no sampling flag is given).
    #[arg(long)]
    pub greedy: bool,
    #[arg(long, value_parser = bounds::positive::<f32>)]
    pub temperature: Option<f32>,
    /// 0 means off, as in transformers.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// 1 means off, as in transformers.
    #[arg(long, value_parser = bounds::probability::<f32>)]
    pub top_p: Option<f32>,
    #[arg(long, default_value_t = 1.0, value_parser = bounds::positive::<f32>)]
    pub repetition_penalty: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Stop once the generated text contains this (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    pub fn config(&self, model: &CausalLm) -> Result<GenerateConfig> {
        let sampled = self.temperature.is_some() || self.top_k.is_some() || self.top_p.is_some();
        ensure!(
            !(self.greedy && sampled),
            "--greedy cannot be combined with --temperature/--top-k/--top-p"
        );
        let sampling = SamplingConfig {
            greedy: !sampled,
            temperature: self.temperature.unwrap_or(1.0),
            top_k: self.top_k.unwrap_or(0),
            top_p: self.top_p.unwrap_or(1.0),
            repetition_penalty: self.repetition_penalty,
        };
        Ok(GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            sampling,
            eos: model.cfg.eos_token_id,
            stop_strings: self.stop.clone(),
            seed: self.seed,
        })
    }
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub prompt: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// One JSON line: {"prompt_ids", "new_ids", "text"}.
    #[arg(long)]
    pub json: bool,
}

pub fn generate_cmd(gpu: &Arc<Gpu>, a: &GenerateArgs) -> Result<()> {
    let model = a.model.load(gpu)?;
    let prompt = model.encode(&a.prompt)?;
    ensure!(!prompt.is_empty(), "the prompt encodes to no tokens");
    let out = generate(
        &model,
        std::slice::from_ref(&prompt),
        &a.sampling.config(&model)?,
    )?;
    let new_ids = &out.new_ids[0];
    let text = model.decode(new_ids)?;
    if a.json {
        let line = serde_json::json!({"prompt_ids": prompt, "new_ids": new_ids, "text": text});
        println!("{line}");
    } else {
        println!("{}{}", a.prompt, text);
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A text file, tokenized as the model's tokenizer.json does.
    #[arg(long)]
    pub text: PathBuf,
    /// Keep the first N tokens (default and maximum: the model's context).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

pub fn perplexity_cmd(gpu: &Arc<Gpu>, a: &PerplexityArgs) -> Result<()> {
    let model = a.model.load(gpu)?;
    let text = std::fs::read_to_string(&a.text)
        .with_context(|| format!("reading {}", a.text.display()))?;
    let mut ids = model.encode(&text)?;
    let n = a.max_tokens.unwrap_or(model.cfg.n_ctx);
    if n > model.cfg.n_ctx {
        bail!(
            "--max-tokens {n} exceeds the model's context of {}",
            model.cfg.n_ctx
        );
    }
    ids.truncate(n);
    ensure!(
        ids.len() >= 2,
        "{} has fewer than two tokens",
        a.text.display()
    );
    let tokens = ids.len();
    let tape = Tape::new(gpu);
    let _g = tape.no_grad();
    let vars = model.vars(&tape);
    let nll = model
        .lm_loss(&tape, &vars, &Tokens::new(ids, 1)?, None)?
        .tensor()
        .item()? as f64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"tokens": tokens, "mean_nll": nll, "ppl": nll.exp()})
        );
    } else {
        println!(
            "tokens {tokens}  mean NLL {nll:.6}  perplexity {:.4}",
            nll.exp()
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Also attach fresh LoRA adapters of this rank to report their memory.
    #[arg(long)]
    pub lora_r: Option<usize>,
    /// Modules for --lora-r (comma-separated; default: every linear layer).
    #[arg(long, default_value = "all-linear")]
    pub lora_targets: String,
    /// One JSON object with the same facts.
    #[arg(long)]
    pub json: bool,
    /// Plan a PPO run from config.json alone (policy, reference, value head, optimizer, KV cache).
    #[arg(long)]
    pub ppo: bool,
    /// Sequences in the planned KV cache.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Positions per sequence in the planned KV cache (prompt + response; default: the context).
    #[arg(long)]
    pub seq_len: Option<usize>,
}

pub fn info_cmd(gpu: &Arc<Gpu>, a: &InfoArgs) -> Result<()> {
    if a.ppo || a.seq_len.is_some() {
        return super::plan::plan_cmd(a);
    }
    let mut model = a.model.load(gpu)?;
    if let Some(r) = a.lora_r {
        let targets: Vec<&str> = a.lora_targets.split(',').map(str::trim).collect();
        model
            .attach_lora(
                &engine::models::lora::LoraConfig::new(r, 2.0 * r as f32, &targets),
                0,
            )
            .with_context(|| format!("--lora-r {r}"))?;
    }
    if a.json {
        let quantized: usize = model
            .quantized
            .values()
            .map(|q| q.shape().0 * q.shape().1)
            .sum();
        let memory: serde_json::Map<String, serde_json::Value> = model
            .memory_report()
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect();
        let c = &model.cfg;
        let v = serde_json::json!({
            "architecture": format!("{:?}", c.arch), "head": format!("{:?}", model.head),
            "layers": c.n_layer, "hidden": c.hidden, "heads": c.n_head, "context": c.n_ctx,
            "vocab": c.vocab_size, "tokenizer_vocab": model.sampling_vocab(),
            "parameters": model.params.numel(), "quantized_parameters": quantized,
            "bytes": memory,
            "bytes_f32": model.params.dtype_bytes(DType::F32), "bytes_f16": model.params.dtype_bytes(DType::F16),
        });
        println!("{v}");
        return Ok(());
    }
    let c = &model.cfg;
    println!("architecture   {:?} ({:?} head)", c.arch, model.head);
    println!(
        "layers {}  hidden {}  heads {} (head dim {})  context {}",
        c.n_layer,
        c.hidden,
        c.n_head,
        c.head_dim(),
        c.n_ctx
    );
    println!(
        "vocab          {} (tokenizer {})",
        c.vocab_size,
        model.sampling_vocab()
    );
    let quantized: usize = model
        .quantized
        .values()
        .map(|q| q.shape().0 * q.shape().1)
        .sum();
    println!(
        "parameters     {} (+ {quantized} quantized)",
        model.params.numel()
    );
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    if model.quantized.is_empty() && model.lora.is_none() {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            println!(
                "memory {:<7} {:.2} MiB",
                dtype.name(),
                mib(model.params.dtype_bytes(dtype))
            );
        }
        return Ok(());
    }
    let mut total = 0;
    for (what, bytes) in model.memory_report() {
        println!("  {what:<58} {bytes:>11} bytes {:>9.2} MiB", mib(bytes));
        total += bytes;
    }
    println!(
        "  {:<58} {total:>11} bytes {:>9.2} MiB",
        "total on the device",
        mib(total)
    );
    if quantized > 0 {
        let qbytes: u64 = model.quantized.values().map(|q| q.bytes().total()).sum();
        println!(
            "  bytes per quantized weight: {:.4}",
            qbytes as f64 / quantized as f64
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Storage dtype of the written weights: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Write into a non-empty --out (never into --model itself).
    #[arg(long)]
    pub force: bool,
}

/// Re-saves a model directory in Hugging Face layout (config.json,
/// model.safetensors, tokenizer.json), e.g. to convert its dtype.
pub fn export_cmd(gpu: &Arc<Gpu>, a: &ExportArgs) -> Result<()> {
    use engine::models::checkpoint::SaveDtype;
    let dtype = match a.dtype.as_str() {
        "f32" | "float32" => SaveDtype::F32,
        "f16" | "float16" => SaveDtype::F16,
        "bf16" | "bfloat16" => SaveDtype::BF16,
        other => bail!("unknown --dtype `{other}` (f32, f16 or bf16)"),
    };
    // Exporting over the source would rewrite it lossily (e.g. to f16) and,
    // on a failure half-way, leave neither version: never, even with --force.
    if engine::models::outputs::same_path(&a.out, &a.model) {
        bail!(
            "--out {} is the --model directory {}; export writes a copy, choose another --out",
            a.out.display(),
            a.model.display()
        );
    }
    engine::models::outputs::refuse_non_empty_dir(&a.out, "--out", a.force)?;
    let model = CausalLm::load(gpu, &a.model)?;
    model.save(&a.out, dtype)?;
    println!("wrote {}", a.out.display());
    Ok(())
}
