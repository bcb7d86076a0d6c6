//! DistilBERT (`model_type: distilbert`) as transformers'
//! DistilBertForSequenceClassification: the shared encoder trunk
//! ([`super::encoder`]) without token types, then on [CLS]:
//!
//! ```text
//! logits = classifier(relu(pre_classifier(h[:, 0])))
//! ```
//!
//! Quirks: the config spells sizes `dim`, `n_layers`, `n_heads`,
//! `hidden_dim`, the activation `activation`, and every LayerNorm's epsilon
//! is 1e-12 in the code, whatever the config says.

use anyhow::Result;
use serde_json::{json, Value};

use super::arch::Identity;
use super::bert::classifier_params;
use super::config::{str_key, usize_key, Activation, Arch, ModelConfig, ModelShape};
use super::encoder::{Encoder, Layout};
use super::layers::Fwd;
use crate::ops::elementwise::relu;
use crate::tape::Var;

pub struct DistilBert;

static LAYOUT: Layout = Layout {
    prefix: "distilbert.",
    layers: "distilbert.transformer.layer",
    token_types: false,
    block: [
        "attention.q_lin",
        "attention.k_lin",
        "attention.v_lin",
        "attention.out_lin",
        "sa_layer_norm",
        "ffn.lin1",
        "ffn.lin2",
        "output_layer_norm",
    ],
    linears: &[
        "attention.q_lin",
        "attention.k_lin",
        "attention.v_lin",
        "attention.out_lin",
        "ffn.lin1",
        "ffn.lin2",
    ],
    lora_targets: &["q_lin", "v_lin"],
};

impl Encoder for DistilBert {
    fn identity(&self) -> Identity {
        Identity {
            arch: Arch::DistilBert,
            model_types: &["distilbert"],
            causal_lm: "DistilBertModel",
            classifier: "DistilBertForSequenceClassification",
        }
    }

    fn layout(&self) -> &'static Layout {
        &LAYOUT
    }

    fn configure(&self, cfg: &mut ModelConfig, file: &str) -> Result<()> {
        let raw = &cfg.raw;
        cfg.intermediate = usize_key(raw, &["hidden_dim"], file)?;
        cfg.activation = Activation::parse(str_key(raw, "activation").unwrap_or("gelu"), file)?;
        cfg.layer_norm_eps = 1e-12;
        Ok(())
    }

    fn new_config(&self, s: &ModelShape) -> Value {
        json!({
            "architectures": ["DistilBertModel"],
            "model_type": "distilbert",
            "vocab_size": s.vocab_size,
            "dim": s.hidden,
            "n_layers": s.layers,
            "n_heads": s.heads,
            "hidden_dim": s.intermediate,
            "max_position_embeddings": s.context,
            "activation": "gelu",
            "initializer_range": 0.02,
            "dropout": 0.0,
            "attention_dropout": 0.0,
            "seq_classif_dropout": 0.0,
            "sinusoidal_pos_embds": false,
        })
    }

    fn head_params(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        let c = cfg.hidden;
        let mut out = vec![
            ("pre_classifier.weight".into(), vec![c, c]),
            ("pre_classifier.bias".into(), vec![c]),
        ];
        out.extend(classifier_params(cfg));
        out
    }

    fn head(&self, f: &Fwd, first: &Var) -> Result<Var> {
        let h = relu(f.tape, &f.linear(first, "pre_classifier", true)?)?;
        f.linear(&h, "classifier", true)
    }
}
