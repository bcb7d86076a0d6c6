//! Fresh weights for a config, initialised as transformers does: normal(0,
//! initializer_range) matrices and embeddings, zero biases, unit LayerNorm
//! gains, and whatever an architecture scales (GPT-2's residual projections
//! by 1/√(2·n_layer); see `Architecture::init_std`).
//! Used for models trained from scratch and for shape-only benchmarks.

use anyhow::Result;
use std::sync::Arc;

use super::arch::param_shapes_with_head;
use super::config::{Head, ModelConfig};
use super::params::ParamStore;
use super::registry;
use crate::device::Gpu;
use crate::rng::Rng;
use crate::tensor::Tensor;

fn is_norm_gain(name: &str) -> bool {
    name.ends_with(".weight")
        && (name.contains(".ln_") || name.contains("layernorm") || name.contains("LayerNorm") || name.contains("layer_norm")
            // Llama's final RMSNorm, `model.norm`.
            || name.ends_with(".norm.weight"))
}

/// Every parameter of `cfg` with `head`, seeded.
pub fn random_params(
    gpu: &Arc<Gpu>,
    cfg: &ModelConfig,
    head: Head,
    seed: u64,
) -> Result<ParamStore> {
    let std = cfg
        .raw
        .get("initializer_range")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.02) as f32;
    let arch = registry::architecture(cfg.arch);
    let shapes = param_shapes_with_head(arch, cfg, head);
    let mut rng = Rng::new(seed);
    let mut store = ParamStore::default();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if is_norm_gain(&name) {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            rng.normals(n, arch.init_std(cfg, &name, std))
        };
        store.insert(&name, Tensor::from_f32(gpu, &shape, &data)?);
    }
    Ok(store)
}
