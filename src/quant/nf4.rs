//! NF4 with double quantization in bitsandbytes' layout, on the host.
//!
//! Layout (bnb `quantize_4bit(w, blocksize=64, quant_type="nf4",
//! compress_statistics=True)` on the flattened weight):
//! - `packed`: two 4-bit codes per byte, element `2i` in the HIGH nibble of
//!   byte `i`; an odd element count pads the last low nibble with the code of
//!   0.0 (7), as bnb does.
//! - one absmax per 64 consecutive elements (the last block may be short;
//!   bnb clamps a short block's absmax to 1e-38 and divides instead of
//!   multiplying by the reciprocal; both are reproduced).
//! - double quantization: `offset` = mean of the absmax vector; `absmax - offset`
//!   is quantized in blocks of 256 to the signed dynamic 8-bit map with one
//!   f32 `absmax2` per block, using bnb's CPU lookup-table rounding.
//! - dequantization: `absmax_i = code8[q_i] * absmax2[i / 256] + offset` and
//!   `w = nf4[c] * absmax_i`, each step rounded to f32 (bit-exact with bnb).
//!
//! The one deviation: bnb's offset is torch's f32 `mean()`, whose summation
//! order is torch's own. Here the mean is a fixed-order f32 tree sum that the
//! GPU quantizer reproduces bit for bit ([`absmax_mean`]); it can differ from
//! torch's by a few ulp, which moves an 8-bit absmax code only when a value
//! sits on a rounding boundary (none in the fixtures).

use anyhow::{ensure, Result};

use super::tables::{dynamic_lut, dynamic_map, lut_index, nf4_bounds, nf4_code};

pub const NF4_BLOCK: usize = 64;
pub const ABSMAX_BLOCK: usize = 256;
/// Group size of one level of the absmax tree sum (see [`absmax_mean`]).
pub const SUM_GROUP: usize = 64;

/// An NF4 weight in bnb's layout (`n` rows of `k`, flattened row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Nf4Host {
    pub n: usize,
    pub k: usize,
    /// `ceil(n*k / 2)` bytes.
    pub packed: Vec<u8>,
    /// One 8-bit code per 64-block.
    pub absmax_q: Vec<u8>,
    /// One f32 per 256 absmax values.
    pub absmax2: Vec<f32>,
    pub offset: f32,
    /// The 8-bit map `absmax_q` indexes (bnb's `state2.code`).
    pub code8: [f32; 256],
}

pub fn blocks(numel: usize) -> usize {
    numel.div_ceil(NF4_BLOCK)
}

/// Nearest NF4 code of a normalized value (ties to the lower code).
pub fn nf4_index(v: f32, bounds: &[f32; 15]) -> u8 {
    bounds.iter().filter(|&&b| b < v).count() as u8
}

/// 4-bit codes (one per element) and the f32 absmax of every 64-block,
/// exactly as bnb's `quantize_4bit` default (CPU) kernel computes them.
pub fn quantize_blocks(w: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let bounds = nf4_bounds();
    let mut codes = Vec::with_capacity(w.len());
    let mut absmax = Vec::with_capacity(blocks(w.len()));
    for blk in w.chunks(NF4_BLOCK) {
        let am = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if blk.len() == NF4_BLOCK {
            let r = 1.0f32 / am.max(1e-38);
            absmax.push(am);
            codes.extend(
                blk.iter()
                    .map(|&v| nf4_index((v * r).clamp(-1.0, 1.0), &bounds)),
            );
        } else {
            let am = am.max(1e-38);
            absmax.push(am);
            codes.extend(
                blk.iter()
                    .map(|&v| nf4_index((v / am).clamp(-1.0, 1.0), &bounds)),
            );
        }
    }
    (codes, absmax)
}

/// Packs codes two per byte, high nibble first, padding an odd count with
/// the code of 0.0.
pub fn pack(codes: &[u8]) -> Vec<u8> {
    let zero = nf4_index(0.0, &nf4_bounds());
    codes
        .chunks(2)
        .map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(zero))
        .collect()
}

/// One level of the fixed-order tree sum: each group of 64 values is summed
/// by 8 interleaved f32 accumulators combined pairwise. The GPU entry
/// `nf4_absmax_sum` does exactly this.
pub fn sum_level(v: &[f32]) -> Vec<f32> {
    v.chunks(SUM_GROUP)
        .map(|g| {
            let mut acc = [0.0f32; 8];
            for (i, x) in g.iter().enumerate() {
                acc[i % 8] += x;
            }
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        })
        .collect()
}

/// The double-quantization offset: the mean of the absmax vector by the
/// fixed-order tree sum, divided by the count in f32.
pub fn absmax_mean(absmax: &[f32]) -> f32 {
    let mut level = absmax.to_vec();
    while level.len() > 1 {
        level = sum_level(&level);
    }
    level.first().copied().unwrap_or(0.0) / absmax.len().max(1) as f32
}

/// bnb's CPU blockwise 8-bit quantization (blocks of 256, LUT rounding) of
/// `absmax - offset`: returns (codes, absmax2).
pub fn double_quantize(absmax: &[f32], offset: f32, code8: &[f32; 256]) -> (Vec<u8>, Vec<f32>) {
    let lut = dynamic_lut(code8);
    let centered: Vec<f32> = absmax.iter().map(|&a| a - offset).collect();
    let mut q = Vec::with_capacity(absmax.len());
    let mut am2 = Vec::with_capacity(absmax.len().div_ceil(ABSMAX_BLOCK));
    for blk in centered.chunks(ABSMAX_BLOCK) {
        let am = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        am2.push(am);
        if am == 0.0 {
            q.extend(std::iter::repeat_n(0u8, blk.len()));
            continue;
        }
        let inv = 1.0f32 / am;
        q.extend(blk.iter().map(|&v| lut[lut_index(v * inv)]));
    }
    (q, am2)
}

impl Nf4Host {
    /// Quantizes an `[n, k]` row-major weight (nn.Linear layout).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Result<Nf4Host> {
        ensure!(
            w.len() == n * k,
            "NF4 quantize: {} values for [{n}, {k}]",
            w.len()
        );
        ensure!(n * k > 0, "NF4 quantize: empty weight");
        let (codes, absmax) = quantize_blocks(w);
        let code8 = dynamic_map();
        let offset = absmax_mean(&absmax);
        let (absmax_q, absmax2) = double_quantize(&absmax, offset, &code8);
        Ok(Nf4Host {
            n,
            k,
            packed: pack(&codes),
            absmax_q,
            absmax2,
            offset,
            code8,
        })
    }

    pub fn numel(&self) -> usize {
        self.n * self.k
    }

    pub fn blocks(&self) -> usize {
        blocks(self.numel())
    }

    /// The 4-bit code of element `e`.
    pub fn code(&self, e: usize) -> u8 {
        let b = self.packed[e / 2];
        if e.is_multiple_of(2) {
            b >> 4
        } else {
            b & 15
        }
    }

    /// The dequantized absmax of every 64-block.
    pub fn absmax(&self) -> Vec<f32> {
        self.absmax_q
            .iter()
            .enumerate()
            .map(|(i, &q)| self.code8[q as usize] * self.absmax2[i / ABSMAX_BLOCK] + self.offset)
            .collect()
    }

    /// The f32 weight, bit-exact with bnb's `dequantize_4bit`.
    pub fn dequantize(&self) -> Vec<f32> {
        let code = nf4_code();
        let absmax = self.absmax();
        (0..self.numel())
            .map(|e| code[self.code(e) as usize] * absmax[e / NF4_BLOCK])
            .collect()
    }

    /// Checks that the parts are consistent with the shape.
    pub fn validate(&self) -> Result<()> {
        let nb = self.blocks();
        ensure!(
            self.packed.len() == self.numel().div_ceil(2),
            "NF4 weight [{}, {}]: {} packed bytes, expected {}",
            self.n,
            self.k,
            self.packed.len(),
            self.numel().div_ceil(2)
        );
        ensure!(
            self.absmax_q.len() == nb,
            "NF4: {} absmax codes for {nb} blocks",
            self.absmax_q.len()
        );
        ensure!(
            self.absmax2.len() == nb.div_ceil(ABSMAX_BLOCK),
            "NF4: {} absmax2 values for {nb} blocks",
            self.absmax2.len()
        );
        Ok(())
    }
}
