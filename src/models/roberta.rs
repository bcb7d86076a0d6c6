//! RoBERTa (`model_type: roberta`) as transformers'
//! RobertaForSequenceClassification: BERT's trunk ([`super::encoder`], the
//! same block names under `roberta.`, no pooler), then on `<s>`:
//!
//! ```text
//! logits = classifier.out_proj(tanh(classifier.dense(h[:, 0])))
//! ```
//!
//! Quirk: position ids start after `padding_idx` (the pad id) and skip pads,
//! as fairseq's `create_position_ids_from_input_ids`: real tokens count
//! pad+1, pad+2, … and pads get `pad`; so a model with 514 position
//! embeddings takes 512 tokens.

use anyhow::Result;
use serde_json::Value;

use super::arch::Identity;
use super::bert::{BERT_BLOCK, BERT_LINEARS};
use super::config::{Arch, ModelConfig, ModelShape};
use super::encoder::{bert_style_config, bert_style_new_config, Encoder, Layout};
use super::layers::{Fwd, Tokens};
use crate::ops::elementwise::tanh;
use crate::tape::Var;

pub struct Roberta;

static LAYOUT: Layout = Layout {
    prefix: "roberta.",
    layers: "roberta.encoder.layer",
    token_types: true,
    block: BERT_BLOCK,
    linears: BERT_LINEARS,
    lora_targets: &["query", "value"],
};

/// `padding_idx` of the position embeddings: the config's pad id (1).
fn padding_idx(cfg: &ModelConfig) -> i32 {
    cfg.pad_token_id.unwrap_or(1) as i32
}

impl Encoder for Roberta {
    fn identity(&self) -> Identity {
        Identity {
            arch: Arch::Roberta,
            model_types: &["roberta"],
            causal_lm: "RobertaModel",
            classifier: "RobertaForSequenceClassification",
        }
    }

    fn layout(&self) -> &'static Layout {
        &LAYOUT
    }

    fn configure(&self, cfg: &mut ModelConfig, file: &str) -> Result<()> {
        bert_style_config(cfg, file)
    }

    fn new_config(&self, shape: &ModelShape) -> Value {
        let mut v = bert_style_new_config("RobertaModel", "roberta", shape);
        v["type_vocab_size"] = 1.into();
        v["pad_token_id"] = 1.into();
        v
    }

    fn head_params(&self, cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
        let (c, n) = (cfg.hidden, cfg.num_labels);
        vec![
            ("classifier.dense.weight".into(), vec![c, c]),
            ("classifier.dense.bias".into(), vec![c]),
            ("classifier.out_proj.weight".into(), vec![n, c]),
            ("classifier.out_proj.bias".into(), vec![n]),
        ]
    }

    fn head(&self, f: &Fwd, first: &Var) -> Result<Var> {
        let h = tanh(f.tape, &f.linear(first, "classifier.dense", true)?)?;
        f.linear(&h, "classifier.out_proj", true)
    }

    /// From the ids, as transformers does: `cumsum(ids != pad) · (ids != pad) + pad`.
    fn positions(&self, cfg: &ModelConfig, tokens: &Tokens) -> Result<Vec<i32>> {
        let pad = padding_idx(cfg);
        let mut out = Vec::with_capacity(tokens.ids.len());
        for row in tokens.ids.chunks(tokens.seq) {
            let mut count = 0;
            for &id in row {
                let real = (id != pad) as i32;
                count += real;
                out.push(count * real + pad);
            }
        }
        Ok(out)
    }
}
