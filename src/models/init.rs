//! Fresh weights for a config, initialised as transformers does: normal(0,
//! initializer_range) matrices and embeddings, zero biases, unit LayerNorm
//! gains, and GPT-2's residual projections scaled by 1/√(2·n_layer).
//! Used for models trained from scratch and for shape-only benchmarks.

use anyhow::Result;
use std::sync::Arc;

use super::config::{Arch, ModelConfig};
use super::lm::Head;
use super::params::ParamStore;
use super::{gpt2, gpt_neox};
use crate::device::Gpu;
use crate::rng::Rng;
use crate::tensor::Tensor;

fn is_norm_gain(name: &str) -> bool {
    name.ends_with(".weight")
        && (name.contains(".ln_") || name.contains("layernorm") || name.contains("layer_norm"))
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
    let mut shapes = match cfg.arch {
        Arch::Gpt2 => gpt2::param_shapes(cfg),
        Arch::GptNeox => gpt_neox::param_shapes(cfg),
    };
    let c = cfg.hidden;
    match head {
        Head::Lm => {}
        Head::LmWithValue => shapes.extend([
            ("v_head.summary.weight".to_string(), vec![1, c]),
            ("v_head.summary.bias".to_string(), vec![1]),
        ]),
        Head::Reward => {
            shapes.retain(|(n, _)| n != "embed_out.weight");
            shapes.push(("score.weight".to_string(), vec![cfg.num_labels, c]));
        }
    }
    let mut rng = Rng::new(seed);
    let mut store = ParamStore::default();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if is_norm_gain(&name) {
            vec![1.0; n]
        } else if name.ends_with(".bias") {
            vec![0.0; n]
        } else {
            // GPT-2 scales the projections that write into the residual stream.
            let residual = cfg.arch == Arch::Gpt2 && name.ends_with("c_proj.weight");
            let s = if residual {
                std / (2.0 * cfg.n_layer as f32).sqrt()
            } else {
                std
            };
            rng.normals(n, s)
        };
        store.insert(&name, Tensor::from_f32(gpu, &shape, &data)?);
    }
    Ok(store)
}
