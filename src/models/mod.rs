//! Hugging Face model directories on the tape, layered bottom-up:
//!
//! - shared building blocks, which know no architecture: `checkpoint`
//!   (safetensors), `config` (ModelConfig, Head), `tokens` (padding and
//!   positions), `params` (named weights, LoRA vars), `layers` (norms,
//!   dense / LoRA / quantized linears, attention with a KV cache);
//! - `arch`: the [`Architecture`] trait each architecture file implements
//!   (`gpt2`, `gpt_neox`, `llama`; the encoder classifiers `bert`,
//!   `distilbert`, `roberta` through `encoder`), listed in `registry`;
//! - `lm`: [`CausalLm`], driving any registered architecture, with its heads,
//!   and `hf_files` (the tokenizer/generation files saved beside it);
//! - extensions of a `CausalLm`: `lora` (+ PEFT files), `quantized` (QLoRA),
//!   `init` / `fresh` (new models), `generate` / `sampling`;
//! - `outputs`: the guards that keep commands from overwriting by surprise.

pub mod arch;
pub mod bert;
pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod distilbert;
pub mod encoder;
pub mod fresh;
pub mod generate;
pub mod gpt2;
pub mod gpt_neox;
pub mod hf_files;
pub mod init;
pub mod kv_cache;
pub mod layers;
pub mod llama;
pub mod lm;
pub mod lora;
pub mod memory_plan;
pub mod outputs;
pub mod params;
pub mod quantized;
pub mod registry;
pub mod roberta;
pub mod sampling;
pub mod tokens;

pub use arch::Architecture;
pub use checkpoint::{Checkpoint, HostTensor};
pub use config::{Activation, Arch, ModelConfig};
pub use lm::CausalLm;
