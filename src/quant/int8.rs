//! int8 weight-only quantization, bitsandbytes' vector-wise layout (LLM.int8
//! weights, `int8_vectorwise_quant` with threshold 0), on the host.
//!
//! Per output row n of W [N, K]: `stats[n] = max_k |W[n, k]|`,
//! `code = round_half_even(W * (127 / stats))` (each step rounded to f32, as
//! torch does), and `W ≈ code * stats * (1/127)` (bnb's
//! `int8_vectorwise_dequant`: `A * stats * 7.874015718698502e-3`, left to
//! right in f32). An all-zero row has stats 0 and codes 0 (bnb computes
//! 0·inf = NaN there and casts it to 0).

use anyhow::{ensure, Result};

/// `1/127` as bnb writes it (7.874015718698502e-3), rounded to f32.
#[allow(clippy::excessive_precision)]
pub const INV_127: f32 = 7.874_015_718_698_502e-3;

#[derive(Clone, Debug, PartialEq)]
pub struct Int8Host {
    pub n: usize,
    pub k: usize,
    /// `n*k` codes, row-major.
    pub codes: Vec<i8>,
    /// Row absmax, one per output row.
    pub stats: Vec<f32>,
}

impl Int8Host {
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Result<Int8Host> {
        ensure!(
            w.len() == n * k,
            "int8 quantize: {} values for [{n}, {k}]",
            w.len()
        );
        ensure!(n * k > 0, "int8 quantize: empty weight");
        let mut codes = Vec::with_capacity(n * k);
        let mut stats = Vec::with_capacity(n);
        for row in w.chunks(k) {
            let am = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            stats.push(am);
            let s = 127.0f32 / am;
            codes.extend(row.iter().map(|&v| {
                let c = (v * s).round_ties_even();
                if c.is_nan() {
                    0
                } else {
                    c.clamp(-127.0, 127.0) as i8
                }
            }));
        }
        Ok(Int8Host { n, k, codes, stats })
    }

    pub fn dequantize(&self) -> Vec<f32> {
        self.codes
            .iter()
            .enumerate()
            .map(|(e, &c)| c as f32 * self.stats[e / self.k] * INV_127)
            .collect()
    }
}
