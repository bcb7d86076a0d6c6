//! What an architecture is to engine: one file per architecture implements
//! [`Architecture`], and [`super::registry`] lists them.
//!
//! The shared building blocks sit below this trait and know no architecture:
//! [`super::config`] (ModelConfig, Head), [`super::params`] (named weights,
//! LoRA and quantized views), [`super::layers`] (norms, linears incl. LoRA and
//! quantized, attention with a KV cache) and [`super::tokens`]. Above it,
//! [`super::lm::CausalLm`] drives loading, saving, heads and losses through
//! the trait without naming an architecture.

use anyhow::Result;
use serde_json::Value;
use std::sync::Arc;

use super::checkpoint::Checkpoint;
use super::config::{Arch, Head, ModelConfig, ModelShape};
use super::layers::{Fwd, KvCache};
use crate::device::Gpu;
use crate::ops::rotary::{RopeScaling, RotaryTable};
use crate::tape::Var;

/// The KV cache a forward pass appends to, if any (incremental decoding).
pub type Cache<'a> = Option<&'a mut KvCache>;

/// Buffers an architecture builds once per model from its config (not
/// parameters: never loaded, saved or trained). A new kind of buffer gets a
/// field here.
#[derive(Default)]
pub struct Buffers {
    /// The cos/sin table of rotary position embeddings.
    pub rope: Option<RotaryTable>,
}

impl Buffers {
    /// A rotary table over `cfg`'s context: the first `rotary_pct` of each
    /// head rotates, with base `rotary_base` (`rope_theta`), scaled by `scaling`.
    pub fn rotary(gpu: &Arc<Gpu>, cfg: &ModelConfig, scaling: &RopeScaling) -> Result<Buffers> {
        let dim = cfg.head_dim();
        let (pct, base) = (cfg.rotary_pct as f64, cfg.rotary_base as f64);
        let rope = RotaryTable::new_scaled(gpu, dim, pct, base, scaling, cfg.n_ctx)?;
        Ok(Buffers { rope: Some(rope) })
    }

    /// The rotary table, which a rotary architecture (`who`) built in `buffers`.
    pub fn rope(&self, who: &str) -> Result<&RotaryTable> {
        self.rope
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{who} needs its rotary table"))
    }
}

/// The block linears of an architecture: the modules LoRA can adapt and a
/// quantized base replaces.
pub struct Linears {
    /// The module path of the layer list, e.g. `transformer.h`; module
    /// names are `<layers>.<l>.<module>`.
    pub layers: &'static str,
    /// Each layer's linears in model order, e.g. `attn.c_attn`.
    pub modules: &'static [&'static str],
    /// Weights stored `[out, in]` (nn.Linear) rather than `[in, out]`
    /// (GPT-2's Conv1D; PEFT's `fan_in_fan_out`).
    pub out_in: bool,
}

/// What names an architecture: its config identity and transformers' names.
#[derive(Clone, Copy)]
pub struct Identity {
    pub arch: Arch,
    /// The `model_type` values of config.json it reads (first: the one it writes).
    pub model_types: &'static [&'static str],
    /// The class of the causal LM (`*ForCausalLM` / `*LMHeadModel`).
    pub causal_lm: &'static str,
    /// The class with a sequence-classification head (`*ForSequenceClassification`).
    pub classifier: &'static str,
}

impl Identity {
    /// `arch`, its `model_type`s, and the causal-LM and classifier classes.
    pub const fn new(
        arch: Arch,
        model_types: &'static [&'static str],
        classes: [&'static str; 2],
    ) -> Identity {
        let [causal_lm, classifier] = classes;
        Identity {
            arch,
            model_types,
            causal_lm,
            classifier,
        }
    }
}

/// One transformer architecture, as transformers names and lays it out.
///
/// Parameters keep the checkpoint's own names, so load and save are copies
/// by name; [`Architecture::checkpoint_key`] maps the spellings a file may
/// use (prefix variants, tied or renamed heads) onto them. The forward pass
/// is written against the shared layers in [`Fwd`].
///
/// How the next architectures plug in (each is one file plus its line in
/// the registry):
/// - **Llama / Qwen2 / Mistral**: `parse_config` reads `rms_norm_eps`,
///   `num_key_value_heads`, `rope_theta` / `rope_scaling`, `attention_bias`
///   (Qwen2's q/k/v biases) and `tie_word_embeddings` into new `ModelConfig`
///   fields; `buffers` builds the (scaled) rotary table; `hidden` is written
///   with RMSNorm, SwiGLU and grouped-query attention, which join `layers` as
///   shared blocks (`Fwd::linear` already takes optional biases);
///   `checkpoint_key` maps the `model.` prefix (as GPT-2's does
///   `transformer.`) and, when tied, `lm_head` reads `model.embed_tokens`;
///   when untied, `param_shapes` lists `lm_head.weight` and `lm_head_params`
///   names it, so `*ForSequenceClassification` files, whose head is the same
///   `score` as here ([`Head::Reward`]), drop it. `linears` lists
///   `q_proj`..`down_proj`; `default_lora_targets` is `q_proj`, `v_proj`.
/// - **Encoder classifiers (BERT / DistilBERT / RoBERTa)** plug in through
///   [`super::encoder::Encoder`]: post-LN blocks under bidirectional
///   attention, every checkpoint a sequence classifier whose head the
///   architecture names ([`Architecture::classifier_params`]) and runs
///   ([`Architecture::classify`]); they have no LM head.
pub trait Architecture: Sync {
    /// Its config identity, `model_type`s and transformers' class names.
    fn identity(&self) -> Identity;

    /// transformers' class name for `head` (the config's `architectures`).
    fn class_name(&self, head: Head) -> &'static str {
        let id = self.identity();
        match head {
            Head::Lm | Head::LmWithValue => id.causal_lm,
            Head::Reward => id.classifier,
        }
    }

    /// transformers' class name for `head` on a model of `cfg`: a family
    /// whose `model_type`s have classes of their own (Qwen2, Mistral)
    /// overrides it (default: [`Architecture::class_name`]).
    fn class_name_for(&self, cfg: &ModelConfig, head: Head) -> &'static str {
        let _ = cfg;
        self.class_name(head)
    }

    /// Reads this architecture's spellings and defaults of config.json into
    /// `cfg`, which holds the shared keys already ([`ModelConfig::common`]), and
    /// checks them.
    fn parse_config(&self, cfg: &mut ModelConfig, file: &str) -> Result<()>;

    /// The config.json keys of this architecture for a new model of `shape`
    /// (`architectures`, `model_type`, `vocab_size`, special tokens and dtype
    /// are added by `ModelShape::hf_config`).
    fn new_config(&self, shape: &ModelShape) -> Value;

    /// Every parameter of the trunk and the LM head, with its shape, in
    /// checkpoint order (a tied LM head adds none).
    fn param_shapes(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)>;

    /// The parameters only the LM head uses (an untied output embedding):
    /// absent under a sequence-classification head.
    fn lm_head_params(&self, cfg: &ModelConfig) -> Vec<String>;

    /// The tensor to read parameter `name` from in `ck` (default: `name`).
    fn checkpoint_key(&self, ck: &Checkpoint, name: &str) -> String {
        let _ = ck;
        name.to_string()
    }

    /// Whether checkpoint tensor `name` is a known non-parameter (a mask or
    /// rotary buffer, a tied head's copy) that loading skips without a
    /// warning (default: none is).
    fn unused_tensor(&self, name: &str) -> bool {
        let _ = name;
        false
    }

    /// The normal init's standard deviation for `name`, given the config's
    /// `initializer_range` (default: that range).
    fn init_std(&self, cfg: &ModelConfig, name: &str, std: f32) -> f32 {
        let _ = (cfg, name);
        std
    }

    /// The block linears (LoRA targets, quantized base).
    fn linears(&self) -> Linears;

    /// PEFT's default `target_modules` for this architecture.
    fn default_lora_targets(&self) -> &'static [&'static str];

    /// Per-model buffers built from the config (rotary tables).
    fn buffers(&self, gpu: &Arc<Gpu>, cfg: &ModelConfig) -> Result<Buffers> {
        let _ = (gpu, cfg);
        Ok(Buffers::default())
    }

    /// The final hidden states [B, T, C] (after the final norm).
    fn hidden(&self, f: &Fwd, cfg: &ModelConfig, buffers: &Buffers, cache: Cache) -> Result<Var>;

    /// Logits [B, T, V] from the final hidden states.
    fn lm_head(&self, f: &Fwd, cfg: &ModelConfig, hidden: &Var) -> Result<Var>;

    /// An encoder (bidirectional, no LM head): its checkpoints are sequence
    /// classifiers only (default: a causal LM).
    fn is_encoder(&self) -> bool {
        false
    }

    /// The sequence-classification head's parameters, when the architecture
    /// has its own head (default: None, the causal LMs' `score.weight`).
    fn classifier_params(&self, cfg: &ModelConfig) -> Option<Vec<(String, Vec<usize>)>> {
        let _ = cfg;
        None
    }

    /// Classification logits [B, labels] from the final hidden states with
    /// the architecture's own head (default: None, the `score` head at each
    /// sequence's last real token).
    fn classify(&self, f: &Fwd, cfg: &ModelConfig, hidden: &Var) -> Result<Option<Var>> {
        let _ = (f, cfg, hidden);
        Ok(None)
    }
}

/// Every parameter of a model of `arch` with `head`, in load order: the
/// trunk and LM head (without the LM head's own weights under a score head),
/// then the head's parameters.
pub fn param_shapes_with_head(
    arch: &dyn Architecture,
    cfg: &ModelConfig,
    head: Head,
) -> Vec<(String, Vec<usize>)> {
    let mut shapes = arch.param_shapes(cfg);
    if head == Head::Reward {
        let lm_only = arch.lm_head_params(cfg);
        shapes.retain(|(name, _)| !lm_only.contains(name));
    }
    match arch.classifier_params(cfg) {
        Some(own) if head == Head::Reward => shapes.extend(own),
        _ => shapes.extend(head.param_shapes(cfg)),
    }
    shapes
}
