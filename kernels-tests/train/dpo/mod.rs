//! Direct alignment (DPO, IPO, KTO, kto_pair) on the tiny fixture models:
//! sequence log-probs against a token-by-token sum, the exact step-0 values,
//! learning on tiny committed data, precomputed vs on-the-fly references.
//! The fixture helpers here serve the sampling tests ([`super::sample`]) too.

mod logps;
mod trainer;

use crate::common::gpu;
use engine::data::{ChatTemplate, Encoder, LoadOptions, Truncation};
use engine::models::lora::LoraConfig;
use engine::models::CausalLm;
use engine::train::dpo::config::DirectLoss;
use engine::train::dpo::data::DirectData;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("kernels-tests/fixtures/dpo").join(name)
}

pub fn model(name: &str) -> CausalLm {
    CausalLm::load(&gpu(), &root().join("models/fixtures").join(name)).unwrap()
}

/// gpt2-tiny with fresh LoRA adapters (B = 0: the policy equals its base).
pub fn lora_model() -> CausalLm {
    let mut m = model("gpt2-tiny");
    m.attach_lora(&LoraConfig::new(4, 8.0, &["c_attn", "c_fc"]), 7)
        .unwrap();
    m
}

/// The fixture tokenizer knows only the characters of its training text (no
/// ':'), so the prompt and completion are joined as they are.
pub fn template() -> ChatTemplate {
    ChatTemplate::Engine(engine::data::EngineTemplate {
        system_prefix: String::new(),
        user_prefix: String::new(),
        assistant_prefix: String::new(),
        assistant_lead: " ".into(),
        turn_separator: "\n".into(),
        eos: None,
        wrap_plain: false,
    })
}

pub fn load(m: &CausalLm, file: &str, loss: DirectLoss) -> DirectData {
    let t = template();
    let enc = Encoder::new(m.tokenizer.as_ref().unwrap(), &t, Truncation::truncate(48));
    DirectData::load(&fixture(file), loss, &enc, &LoadOptions::default()).unwrap()
}
