//! The encoder trunk BERT, DistilBERT and RoBERTa share, as transformers'
//! BertModel / DistilBertModel / RobertaModel compute it:
//!
//! ```text
//! x = LayerNorm(word[ids] + position[pos] + token_type[0])   (no token types: DistilBERT)
//! per block (post-LN):
//!     x = attn_norm(x + o(attention(q(x), k(x), v(x))))      bidirectional, pads masked as keys
//!     x = out_norm(x + fc2(gelu(fc1(x))))                    exact erf GELU unless the config says gelu_new
//! ```
//!
//! Each architecture file implements [`Encoder`] (its names, config keys,
//! positions and classification head on the first token); the blanket
//! implementation below makes every `Encoder` an [`Architecture`].
//! Inputs are single sequences, so token type ids are all 0 (what the
//! tokenizer gives one text), read from row 0 of `token_type_embeddings`.

use anyhow::{bail, ensure, Result};
use serde_json::{json, Value};

use super::arch::{Architecture, Buffers, Identity, Linears};
use super::config::{str_key, usize_key, Activation, ModelConfig, ModelShape};
use super::layers::{Fwd, KvCache, Tokens};
use crate::ops::elementwise::add;
use crate::ops::embedding::embedding_ids;
use crate::ops::gelu::gelu;
use crate::ops::row_gather::row_gather;
use crate::tape::Var;

/// Module names of one encoder family. Embeddings are
/// `<prefix>embeddings.{word_embeddings, position_embeddings,
/// token_type_embeddings, LayerNorm}` in all three.
pub struct Layout {
    /// The trunk's prefix, e.g. `bert.`.
    pub prefix: &'static str,
    /// The layer list, e.g. `bert.encoder.layer`.
    pub layers: &'static str,
    /// Whether the embeddings have `token_type_embeddings`.
    pub token_types: bool,
    /// Per block: query, key, value, attention output, the norm after
    /// attention, MLP in, MLP out, the norm after the MLP.
    pub block: [&'static str; 8],
    /// The block's linears (LoRA targets, in model order).
    pub linears: &'static [&'static str],
    /// PEFT's default LoRA targets for the family.
    pub lora_targets: &'static [&'static str],
}

/// One encoder classifier family; see the module docs.
pub trait Encoder: Sync {
    fn identity(&self) -> Identity;
    fn layout(&self) -> &'static Layout;
    /// The family's own config keys on top of [`ModelConfig::common`].
    fn configure(&self, cfg: &mut ModelConfig, file: &str) -> Result<()>;
    /// The config.json of a new trunk of `shape`.
    fn new_config(&self, shape: &ModelShape) -> Value;
    /// Trunk parameters after the blocks (BERT's pooler).
    fn trunk_extra(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        let _ = cfg;
        vec![]
    }
    /// The classification head's parameters.
    fn head_params(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)>;
    /// Logits [B, labels] from the first token's final hidden state [B, C].
    fn head(&self, f: &Fwd, first: &Var) -> Result<Var>;
    /// Position ids [B·T]: 0..T in every row (BERT, DistilBERT), whatever the padding.
    fn positions(&self, cfg: &ModelConfig, tokens: &Tokens) -> Result<Vec<i32>> {
        let _ = cfg;
        Ok((0..tokens.batch * tokens.seq)
            .map(|i| (i % tokens.seq) as i32)
            .collect())
    }
}

/// The shared keys of BERT-style configs (`intermediate_size`, `hidden_act`,
/// `layer_norm_eps` defaulting to BERT's 1e-12).
pub fn bert_style_config(cfg: &mut ModelConfig, file: &str) -> Result<()> {
    let raw = &cfg.raw;
    cfg.intermediate = usize_key(raw, &["intermediate_size"], file)?;
    cfg.activation = Activation::parse(str_key(raw, "hidden_act").unwrap_or("gelu"), file)?;
    if raw.get("layer_norm_eps").is_none() {
        cfg.layer_norm_eps = 1e-12;
    }
    Ok(())
}

/// BERT-style config.json of a new trunk (`class` and `model_type` named).
pub fn bert_style_new_config(class: &str, model_type: &str, s: &ModelShape) -> Value {
    s.hf_sizes(json!({
        "architectures": [class],
        "model_type": model_type,
        "vocab_size": s.vocab_size,
        "type_vocab_size": 2,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }))
}

/// `type_vocab_size` (BERT's default 2).
fn type_vocab(cfg: &ModelConfig) -> usize {
    cfg.raw
        .get("type_vocab_size")
        .and_then(Value::as_u64)
        .unwrap_or(2) as usize
}

fn embeddings_name(l: &Layout, what: &str) -> String {
    format!("{}embeddings.{what}", l.prefix)
}

impl<E: Encoder> Architecture for E {
    fn identity(&self) -> Identity {
        Encoder::identity(self)
    }

    fn parse_config(&self, cfg: &mut ModelConfig, file: &str) -> Result<()> {
        cfg.tie_word_embeddings = false;
        self.configure(cfg, file)?;
        if self.layout().token_types && type_vocab(cfg) == 0 {
            bail!("{file}: `type_vocab_size` must be at least 1");
        }
        Ok(())
    }

    fn new_config(&self, shape: &ModelShape) -> Value {
        Encoder::new_config(self, shape)
    }

    fn param_shapes(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        let l = self.layout();
        let (c, i) = (cfg.hidden, cfg.intermediate);
        let mut out = vec![
            (
                embeddings_name(l, "word_embeddings.weight"),
                vec![cfg.vocab_size, c],
            ),
            (
                embeddings_name(l, "position_embeddings.weight"),
                vec![cfg.n_ctx, c],
            ),
        ];
        if l.token_types {
            let name = embeddings_name(l, "token_type_embeddings.weight");
            out.push((name, vec![type_vocab(cfg), c]));
        }
        out.push((embeddings_name(l, "LayerNorm.weight"), vec![c]));
        out.push((embeddings_name(l, "LayerNorm.bias"), vec![c]));
        let [q, k, v, o, n1, fc1, fc2, n2] = l.block;
        for layer in 0..cfg.n_layer {
            let p = |m: &str, part: &str| format!("{}.{layer}.{m}.{part}", l.layers);
            // nn.Linear weights are stored [out, in].
            for (m, rows, cols) in [(q, c, c), (k, c, c), (v, c, c), (o, c, c)] {
                out.push((p(m, "weight"), vec![rows, cols]));
                out.push((p(m, "bias"), vec![rows]));
            }
            out.push((p(n1, "weight"), vec![c]));
            out.push((p(n1, "bias"), vec![c]));
            out.push((p(fc1, "weight"), vec![i, c]));
            out.push((p(fc1, "bias"), vec![i]));
            out.push((p(fc2, "weight"), vec![c, i]));
            out.push((p(fc2, "bias"), vec![c]));
            out.push((p(n2, "weight"), vec![c]));
            out.push((p(n2, "bias"), vec![c]));
        }
        out.extend(self.trunk_extra(cfg));
        out
    }

    fn lm_head_params(&self, _cfg: &ModelConfig) -> Vec<String> {
        vec![]
    }

    /// The `position_ids` / `token_type_ids` buffers some files carry.
    fn unused_tensor(&self, name: &str) -> bool {
        name.ends_with("embeddings.position_ids") || name.ends_with("embeddings.token_type_ids")
    }

    fn linears(&self) -> Linears {
        let l = self.layout();
        Linears {
            layers: l.layers,
            modules: l.linears,
            out_in: true,
        }
    }

    fn default_lora_targets(&self) -> &'static [&'static str] {
        self.layout().lora_targets
    }

    fn hidden(
        &self,
        f: &Fwd,
        cfg: &ModelConfig,
        _buffers: &Buffers,
        cache: Option<&mut KvCache>,
    ) -> Result<Var> {
        ensure!(
            cache.is_none(),
            "an encoder has no KV cache (it does not generate)"
        );
        let (tape, tokens, l) = (f.tape, f.tokens, self.layout());
        let (b, t) = (tokens.batch, tokens.seq);
        let eps = cfg.layer_norm_eps;
        let positions = self.positions(cfg, tokens)?;
        if let Some(&p) = positions.iter().max() {
            ensure!(
                (p as usize) < cfg.n_ctx,
                "a sequence of {t} tokens needs position {p}, beyond the model's {} position embeddings",
                cfg.n_ctx
            );
        }
        let emb = |what: &str| f.p(&embeddings_name(l, what));
        let mut x = embedding_ids(tape, emb("word_embeddings.weight")?, &tokens.ids, &[b, t])?;
        let pos = embedding_ids(
            tape,
            emb("position_embeddings.weight")?,
            &positions,
            &[b, t],
        )?;
        x = add(tape, &x, &pos)?;
        if l.token_types {
            let types = vec![0; b * t];
            let tt = embedding_ids(tape, emb("token_type_embeddings.weight")?, &types, &[b, t])?;
            x = add(tape, &x, &tt)?;
        }
        x = f.layernorm(&x, &embeddings_name(l, "LayerNorm"), eps)?;
        let (h, d) = (cfg.n_head, cfg.head_dim());
        let [q, k, v, o, n1, fc1, fc2, n2] = l.block;
        for layer in 0..cfg.n_layer {
            let m = |name: &str| format!("{}.{layer}.{name}", l.layers);
            let heads = |name: &str| -> Result<Var> {
                tape.reshape(&f.linear(&x, &m(name), true)?, &[b, t, h, d])
            };
            let a = f.bidirectional_attention(&heads(q)?, &heads(k)?, &heads(v)?)?;
            let a = f.linear(&a, &m(o), true)?;
            x = f.layernorm(&add(tape, &x, &a)?, &m(n1), eps)?;
            let y = gelu(
                tape,
                &f.linear(&x, &m(fc1), true)?,
                cfg.activation.gelu_kind(),
            )?;
            let y = f.linear(&y, &m(fc2), true)?;
            x = f.layernorm(&add(tape, &x, &y)?, &m(n2), eps)?;
        }
        Ok(x)
    }

    fn lm_head(&self, _f: &Fwd, _cfg: &ModelConfig, _hidden: &Var) -> Result<Var> {
        bail!(
            "{} is an encoder classifier: it has no LM head (it cannot generate or be a policy)",
            Encoder::identity(self).classifier
        )
    }

    fn is_encoder(&self) -> bool {
        true
    }

    fn classifier_params(&self, cfg: &ModelConfig) -> Option<Vec<(String, Vec<usize>)>> {
        Some(self.head_params(cfg))
    }

    /// The head reads each sequence's first token ([CLS] / `<s>`), which is
    /// real under right padding.
    fn classify(&self, f: &Fwd, cfg: &ModelConfig, hidden: &Var) -> Result<Option<Var>> {
        let t = f.tokens;
        let flat = f.tape.reshape(hidden, &[t.batch * t.seq, cfg.hidden])?;
        let idx: Vec<i32> = (0..t.batch).map(|b| (b * t.seq) as i32).collect();
        let first = row_gather(f.tape, &flat, &idx)?;
        self.head(f, &first).map(Some)
    }
}
