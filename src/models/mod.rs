//! Hugging Face model directories: config, checkpoint files, and (next) the
//! GPT-2 and GPT-NeoX architectures on the tape.

pub mod checkpoint;
pub mod config;
pub mod params;
pub mod sampling;

pub use checkpoint::{Checkpoint, HostTensor};
pub use config::{Activation, Arch, ModelConfig};
