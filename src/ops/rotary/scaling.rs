//! `rope_scaling`: the inverse frequencies of the RoPE types that real
//! configs use, computed exactly as transformers v4.46 `modeling_rope_utils.py`
//! computes them, in the same float32 operations in the same order (Python
//! floats are doubles there; a scalar meeting an f32 tensor becomes f32):
//!
//! - default: `inv_freq[i] = 1 / base^((2i as f32) / dim)` (f32 pow).
//! - `linear`: default `/ factor` (positions divided by factor).
//! - `dynamic` (NTK): when the sequence length L exceeds
//!   `max_position_embeddings` M, the base becomes (in f64)
//!   `base · ((factor · L / M) - (factor - 1))^(dim / (dim - 2))`, then the
//!   default formula. transformers recomputes this per forward from L = max
//!   position + 1 (and keeps the larger table until L drops below M again);
//!   here a table is built for the positions it covers: L = its
//!   `max_positions`.
//! - `llama3`: with `wavelen = 2π / inv_freq`, low/high-frequency wavelengths
//!   `W_lo = orig / low_freq_factor`, `W_hi = orig / high_freq_factor`:
//!   wavelen < W_hi keeps inv_freq, wavelen > W_lo divides it by factor, and
//!   in between `s = (orig / wavelen - low) / (high - low)` interpolates:
//!   `(1 - s) · inv / factor + s · inv`.
//!
//! Every type here has transformers' attention_factor 1 (cos/sin unscaled).

use anyhow::{bail, ensure, Context, Result};

/// A `rope_scaling` entry of a Hugging Face config.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// No `rope_scaling`, or `rope_type: "default"`.
    Default,
    Linear {
        factor: f64,
    },
    Dynamic {
        factor: f64,
        max_position_embeddings: usize,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

impl RopeScaling {
    /// Parses a config's `rope_scaling` (`null`/absent is default; transformers
    /// 5's `rope_parameters` has the same keys). The type
    /// is `rope_type`, or the legacy `type` key as transformers reads it;
    /// `max_position_embeddings` is the config's own (dynamic needs it).
    pub fn from_hf(
        rope_scaling: Option<&serde_json::Value>,
        max_position_embeddings: usize,
    ) -> Result<RopeScaling> {
        let Some(v) = rope_scaling.filter(|v| !v.is_null()) else {
            return Ok(RopeScaling::Default);
        };
        let kind = v
            .get("rope_type")
            .or_else(|| v.get("type"))
            .and_then(|t| t.as_str())
            .context("rope_scaling: no `rope_type` (or `type`) string")?;
        let num = |key: &str| -> Result<f64> {
            v.get(key)
                .and_then(|x| x.as_f64())
                .with_context(|| format!("rope_scaling ({kind}): missing number `{key}`"))
        };
        let scaling = match kind {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear { factor: num("factor")? },
            "dynamic" => RopeScaling::Dynamic {
                factor: num("factor")?,
                max_position_embeddings,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")? as usize,
            },
            other => bail!("rope_scaling: unsupported rope_type `{other}` (default, linear, dynamic or llama3)"),
        };
        scaling.validate()?;
        Ok(scaling)
    }

    /// Checks the parameters as transformers' `rope_config_validation` does.
    pub fn validate(&self) -> Result<()> {
        match *self {
            RopeScaling::Default => {}
            RopeScaling::Linear { factor } | RopeScaling::Dynamic { factor, .. } => {
                ensure!(factor >= 1.0, "rope_scaling: factor {factor} must be >= 1");
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                ensure!(
                    factor >= 1.0,
                    "rope_scaling (llama3): factor {factor} must be >= 1"
                );
                ensure!(
                    high_freq_factor > low_freq_factor,
                    "rope_scaling (llama3): high_freq_factor {high_freq_factor} must exceed low_freq_factor {low_freq_factor}"
                );
                ensure!(
                    original_max_position_embeddings > 0,
                    "rope_scaling (llama3): original_max_position_embeddings must be positive"
                );
            }
        }
        Ok(())
    }

    /// The f32 inverse frequencies (dim/2 of them) for rotary dim `dim`,
    /// `rope_theta` `base` and sequence length `seq_len` (dynamic only).
    pub fn inv_freq(&self, dim: usize, base: f64, seq_len: usize) -> Vec<f32> {
        let default = |base: f64| -> Vec<f32> {
            let b = base as f32;
            (0..dim / 2)
                .map(|i| 1.0f32 / b.powf((2 * i) as f32 / dim as f32))
                .collect()
        };
        match *self {
            RopeScaling::Default => default(base),
            RopeScaling::Linear { factor } => {
                default(base).iter().map(|&f| f / factor as f32).collect()
            }
            RopeScaling::Dynamic {
                factor,
                max_position_embeddings: m,
            } => {
                let l = if seq_len > m { seq_len } else { m };
                let (dimf, lf, mf) = (dim as f64, l as f64, m as f64);
                default(base * ((factor * lf / mf) - (factor - 1.0)).powf(dimf / (dimf - 2.0)))
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: orig,
            } => {
                let (lo_wl, hi_wl) = ((orig as f64 / low) as f32, (orig as f64 / high) as f32);
                let (f, lo, span) = (factor as f32, low as f32, (high - low) as f32);
                default(base)
                    .iter()
                    .map(|&inv| {
                        // `scalar / tensor` is `tensor.reciprocal() * scalar` in torch.
                        let wavelen = (1.0 / inv) * (2.0 * std::f64::consts::PI) as f32;
                        let scaled = if wavelen > lo_wl { inv / f } else { inv };
                        if wavelen < hi_wl || wavelen > lo_wl {
                            return scaled;
                        }
                        let s = ((1.0 / wavelen) * orig as f32 - lo) / span;
                        (1.0 - s) * scaled / f + s * scaled
                    })
                    .collect()
            }
        }
    }
}
