//! A Hugging Face model directory on the GPU: a registered architecture's
//! trunk (see [`super::registry`]) with its LM head, and optionally TRL's
//! value head or a sequence-classification (reward) head. The heads other
//! than the LM head (value, reward score) and the head swaps live in
//! `lm/heads.rs`; LoRA, QLoRA and PEFT files extend [`CausalLm`] from
//! `models::lora` and `models::quantized`, above this file.

use anyhow::{anyhow, bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

mod checks;
mod heads;

use super::arch::{param_shapes_with_head, Architecture, Buffers};
use super::checkpoint::{save_safetensors, write_atomic, Checkpoint, SaveDtype};
use super::config::ModelConfig;
use super::layers::{Fwd, KvCache, Tokens};
use super::params::{is_adapter_param, Adapters, ParamStore, ParamVars};
use super::registry;
use crate::device::Gpu;
use crate::ops::cross_entropy::cross_entropy;
use crate::ops::elementwise::scale;
use crate::ops::reduce::sum;
use crate::quant::QuantizedWeight;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub use super::config::Head;
pub use super::tokens::next_token_targets;

pub struct CausalLm {
    pub cfg: ModelConfig,
    pub head: Head,
    pub params: ParamStore,
    pub tokenizer: Option<tokenizers::Tokenizer>,
    /// The loaded tokenizer_config.json (with any chat_template.jinja), kept
    /// and completed on save (`models::hf_files`).
    pub tokenizer_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// The directory it was loaded from, as given: an adapter's
    /// `base_model_name_or_path` (transformers' `name_or_path`).
    pub name_or_path: Option<String>,
    /// `cfg.arch`'s implementation, and the buffers it built for `cfg`.
    arch: &'static dyn Architecture,
    buffers: Buffers,
    gpu: Arc<Gpu>,
    /// LoRA adapters (`models::lora`): attach, load, merge, save.
    pub lora: Option<Adapters>,
    /// Frozen quantized base weights by module (`models::quantized`); their
    /// f32 copies are dropped from `params`.
    pub quantized: Arc<BTreeMap<String, QuantizedWeight>>,
}

impl CausalLm {
    /// Loads config.json, the safetensors weights and tokenizer.json (if any).
    pub fn load(gpu: &Arc<Gpu>, dir: &Path) -> Result<CausalLm> {
        let cfg = ModelConfig::from_file(&dir.join("config.json"))?;
        let ck = Checkpoint::open(dir)?;
        let arch = registry::architecture(cfg.arch);
        // An encoder checkpoint is always a sequence classifier.
        let head = match arch.is_encoder() {
            true => Head::Reward,
            false => Head::detect(|name| ck.contains(name)),
        };
        // Everything is checked against the config before a GPU buffer exists.
        let shapes = param_shapes_with_head(arch, &cfg, head);
        let keys = checks::check_checkpoint(arch, &cfg, head, &ck, &shapes)?;
        let tokenizer = checks::load_tokenizer(dir, &cfg)?;
        let mut params = ParamStore::default();
        for ((name, shape), key) in shapes.iter().zip(&keys) {
            params.load(gpu, &ck, key, name, shape)?;
        }
        let mut lm = CausalLm::assemble(gpu, cfg, head, params, tokenizer)?;
        lm.tokenizer_config = super::hf_files::read_tokenizer_config(dir)?;
        if let Some(ids) = super::hf_files::read_generation_eos(dir)? {
            lm.cfg.eos_token_id = lm.cfg.eos_token_id.or(Some(ids[0]));
            lm.cfg.eos_token_ids = ids;
        }
        lm.name_or_path = Some(dir.to_string_lossy().into_owned());
        Ok(lm)
    }

    /// Puts the parts together, building the architecture's buffers.
    fn assemble(
        gpu: &Arc<Gpu>,
        cfg: ModelConfig,
        head: Head,
        params: ParamStore,
        tokenizer: Option<tokenizers::Tokenizer>,
    ) -> Result<CausalLm> {
        let arch = registry::architecture(cfg.arch);
        let buffers = arch.buffers(gpu, &cfg)?;
        Ok(CausalLm {
            cfg,
            head,
            params,
            tokenizer,
            tokenizer_config: None,
            name_or_path: None,
            arch,
            buffers,
            gpu: gpu.clone(),
            lora: None,
            quantized: Arc::default(),
        })
    }

    /// A model with freshly initialised weights (see [`super::init`]).
    pub fn random(gpu: &Arc<Gpu>, cfg: ModelConfig, head: Head, seed: u64) -> Result<CausalLm> {
        let params = super::init::random_params(gpu, &cfg, head, seed)?;
        CausalLm::assemble(gpu, cfg, head, params, None)
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// The architecture this model runs (from the registry).
    pub fn arch(&self) -> &'static dyn Architecture {
        self.arch
    }

    /// A frozen deep copy of this LM's weights (no value head, no adapters):
    /// a PPO reference model for full fine-tuning. It costs one more copy of
    /// the base weights in GPU memory (no gradients or optimizer state).
    pub fn frozen_copy(&self) -> Result<CausalLm> {
        ensure!(
            self.lora.is_none(),
            "with LoRA the reference is the same model with adapters off; no copy is needed"
        );
        ensure!(
            self.head != Head::Reward,
            "a reward model is not a PPO reference"
        );
        let mut params = ParamStore::default();
        for p in self
            .params
            .iter()
            .filter(|p| !p.name.starts_with("v_head."))
        {
            params.insert(&p.name, p.tensor.deep_copy()?);
        }
        params.set_trainable(|_| false);
        CausalLm::assemble(
            &self.gpu,
            self.cfg.clone(),
            Head::Lm,
            params,
            self.tokenizer.clone(),
        )
    }

    /// A fresh tape view of the parameters for one forward pass, adapters on
    /// (`models::lora`'s `reference_vars` gives the base model).
    pub fn vars(&self, tape: &Tape) -> ParamVars {
        let mut v = self.params.vars(tape);
        v.lora = self.lora.as_ref().map(Adapters::vars);
        v.quantized = self.quantized.clone();
        v
    }

    /// Final hidden states [B, T, C].
    pub fn hidden(&self, f: &Fwd, cache: Option<&mut KvCache>) -> Result<Var> {
        let t = f.tokens;
        let limit = cache.as_ref().map_or(t.seq, |c| c.len + t.seq);
        ensure!(
            limit <= self.cfg.n_ctx,
            "sequence of {limit} tokens exceeds the model's context of {}",
            self.cfg.n_ctx
        );
        self.arch.hidden(f, &self.cfg, &self.buffers, cache)
    }

    /// Logits [B, T, V] from hidden states.
    pub fn logits(&self, f: &Fwd, hidden: &Var) -> Result<Var> {
        ensure!(
            self.head != Head::Reward,
            "a sequence-classification checkpoint has no LM head"
        );
        self.arch.lm_head(f, &self.cfg, hidden)
    }

    /// Hidden states and logits for `tokens` in one pass.
    pub fn forward(&self, tape: &Tape, vars: &ParamVars, tokens: &Tokens) -> Result<(Var, Var)> {
        let f = Fwd::new(tape, vars, tokens, None)?;
        let h = self.hidden(&f, None)?;
        let l = self.logits(&f, &h)?;
        Ok((h, l))
    }

    /// Mean next-token cross-entropy over the predicted positions: each real
    /// token after the first predicts the next one; pads and positions where
    /// `loss_mask` is 0 (e.g. the prompt, for completion-only SFT) are skipped.
    pub fn lm_loss(
        &self,
        tape: &Tape,
        vars: &ParamVars,
        tokens: &Tokens,
        loss_mask: Option<&[i32]>,
    ) -> Result<Var> {
        let (_, logits) = self.forward(tape, vars, tokens)?;
        let targets = next_token_targets(tokens, loss_mask);
        let count = targets.iter().filter(|&&t| t >= 0).count();
        ensure!(
            count > 0,
            "no token to predict: sequences need at least two real tokens"
        );
        let v = logits.shape()[2];
        let logits = tape.reshape(&logits, &[tokens.batch * tokens.seq, v])?;
        let targets = Tensor::from_i32(&self.gpu, &[targets.len()], &targets)?;
        let per_token = cross_entropy(tape, &logits, &targets)?;
        scale(tape, &sum(tape, &per_token)?, 1.0 / count as f32, 0.0)
    }

    /// Writes config.json, model.safetensors, generation_config.json (and
    /// tokenizer.json, tokenizer_config.json, special_tokens_map.json) to
    /// `dir`, each atomically, in the layout transformers loads. LoRA adapters are
    /// not part of it (merged ones are, through the base weights; see
    /// [`CausalLm::save_adapter`]).
    pub fn save(&self, dir: &Path, dtype: SaveDtype) -> Result<()> {
        ensure!(
            self.quantized.is_empty(),
            "this model's base is quantized (frozen); save its LoRA adapter instead, or reload the f32 base"
        );
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = match dtype {
            SaveDtype::F32 => "float32",
            SaveDtype::F16 => "float16",
            SaveDtype::BF16 => "bfloat16",
        };
        // The weights first: a refused (non-finite) model leaves no config.
        let mut host = self.params.to_host()?;
        host.retain(|name, _| !is_adapter_param(name));
        save_safetensors(&dir.join("model.safetensors"), &host, dtype)?;
        let cfg = serde_json::to_string_pretty(&self.cfg.to_json(name))?;
        write_atomic(&dir.join("config.json"), cfg.as_bytes())?;
        if let Some(tok) = &self.tokenizer {
            let json = tok
                .to_string(true)
                .map_err(|e| anyhow!("serialising tokenizer: {e}"))?;
            write_atomic(&dir.join("tokenizer.json"), json.as_bytes())?;
        }
        self.save_hf_files(dir)
    }

    /// Token ids of `text` as the model's tokenizer produces them, with the
    /// special tokens its post-processor adds (Llama's BOS; GPT-2's and
    /// NeoX's byte-level post-processors add none), as `tokenizer(text)` does.
    pub fn encode(&self, text: &str) -> Result<Vec<i32>> {
        let tok = self
            .tokenizer
            .as_ref()
            .ok_or_else(|| anyhow!("the model directory has no tokenizer.json"))?;
        let enc = tok
            .encode(text, true)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().iter().map(|&i| i as i32).collect())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let tok = self
            .tokenizer
            .as_ref()
            .ok_or_else(|| anyhow!("the model directory has no tokenizer.json"))?;
        tok.decode(ids, false).map_err(|e| anyhow!("decoding: {e}"))
    }

    /// Tokens the sampler may pick: the tokenizer's size when the embedding
    /// is padded past it (Pythia), else the config's vocab.
    pub fn sampling_vocab(&self) -> usize {
        self.tokenizer.as_ref().map_or(self.cfg.vocab_size, |t| {
            t.get_vocab_size(true).min(self.cfg.vocab_size)
        })
    }
}

/// Fails unless `n` tokens fit the context, naming the input.
pub fn check_context(cfg: &ModelConfig, n: usize, what: &str) -> Result<()> {
    if n > cfg.n_ctx {
        bail!(
            "{what} is {n} tokens, longer than the model's context of {}",
            cfg.n_ctx
        );
    }
    Ok(())
}
