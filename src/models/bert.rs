//! BERT (`model_type: bert`) as transformers' BertForSequenceClassification:
//! the shared encoder trunk ([`super::encoder`]) with token-type embeddings,
//! then the pooler and the classifier on [CLS]:
//!
//! ```text
//! pooled = tanh(bert.pooler.dense(h[:, 0]))
//! logits = classifier(pooled)
//! ```

use anyhow::Result;
use serde_json::Value;

use super::arch::Identity;
use super::config::{Arch, ModelConfig, ModelShape};
use super::encoder::{bert_style_config, bert_style_new_config, Encoder, Layout};
use super::layers::Fwd;
use crate::ops::elementwise::tanh;
use crate::tape::Var;

pub struct Bert;

/// BertLayer's module names (shared with RoBERTa, under its own prefix).
pub const BERT_BLOCK: [&str; 8] = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "output.dense",
    "output.LayerNorm",
];
pub const BERT_LINEARS: &[&str] = &[
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
];

static LAYOUT: Layout = Layout {
    prefix: "bert.",
    layers: "bert.encoder.layer",
    token_types: true,
    block: BERT_BLOCK,
    linears: BERT_LINEARS,
    lora_targets: &["query", "value"],
};

/// The head's nn.Linear(C, labels) `classifier`, shared by BERT and DistilBERT.
pub fn classifier_params(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    vec![
        ("classifier.weight".into(), vec![cfg.num_labels, cfg.hidden]),
        ("classifier.bias".into(), vec![cfg.num_labels]),
    ]
}

impl Encoder for Bert {
    fn identity(&self) -> Identity {
        Identity {
            arch: Arch::Bert,
            model_types: &["bert"],
            causal_lm: "BertModel",
            classifier: "BertForSequenceClassification",
        }
    }

    fn layout(&self) -> &'static Layout {
        &LAYOUT
    }

    fn configure(&self, cfg: &mut ModelConfig, file: &str) -> Result<()> {
        bert_style_config(cfg, file)
    }

    fn new_config(&self, shape: &ModelShape) -> Value {
        bert_style_new_config("BertModel", "bert", shape)
    }

    /// BertModel's pooler belongs to the trunk.
    fn trunk_extra(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        let c = cfg.hidden;
        vec![
            ("bert.pooler.dense.weight".into(), vec![c, c]),
            ("bert.pooler.dense.bias".into(), vec![c]),
        ]
    }

    fn head_params(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        classifier_params(cfg)
    }

    fn head(&self, f: &Fwd, first: &Var) -> Result<Var> {
        let pooled = tanh(f.tape, &f.linear(first, "bert.pooler.dense", true)?)?;
        f.linear(&pooled, "classifier", true)
    }
}
