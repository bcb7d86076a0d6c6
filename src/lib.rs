//! engine: a GPU compute engine on wgpu for the RLHF workflow.
//!
//! Layers, bottom up: [`device`] (adapter, batching, buffers), [`kernel`] (the
//! one dispatch helper), [`tensor`], [`ops`] (one WGSL kernel file and one Rust
//! file per op, each with forward and backward), and [`tape`] (autograd).
//! [`rl`] holds the RLHF math (PPO, preference and reward losses) on top.

pub mod bench;
pub mod data;
pub mod demo;
pub mod device;
pub mod kernel;
pub mod models;
pub mod ops;
mod pool;
pub mod quant;
pub mod rl;
pub mod rng;
pub mod shader;
pub mod tape;
pub mod tensor;
pub mod train;

pub use device::{Gpu, GpuOptions};
pub use tape::{Grads, Tape, Var};
pub use tensor::{DType, Tensor};
