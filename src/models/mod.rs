//! Hugging Face model directories: config, checkpoint files, and (next) the
//! GPT-2 and GPT-NeoX architectures on the tape.

pub mod checkpoint;
pub mod config;
pub mod fresh;
pub mod generate;
pub mod gpt2;
pub mod gpt_neox;
pub mod init;
pub mod layers;
pub mod lm;
pub mod lora;
pub mod params;
pub mod quantized;
pub mod sampling;

pub use checkpoint::{Checkpoint, HostTensor};
pub use config::{Activation, Arch, ModelConfig};
pub use lm::CausalLm;
