//! GPU-resident quantized weights. The buffers are frozen: nothing here is a
//! [`Var`](crate::Var), so a quantized weight can never receive a gradient.

use anyhow::{ensure, Result};
use std::sync::Arc;

use super::int8::Int8Host;
use super::nf4::{Nf4Host, ABSMAX_BLOCK, NF4_BLOCK};
use super::tables::nf4_pairs;
use crate::device::Gpu;
use crate::tensor::{DType, Tensor};

/// Index of the offset and of absmax2[0] in the NF4 `stats` region (after
/// the 256-entry 8-bit map); mirrors `common/nf4.wgsl`.
pub const NF4_OFFSET: usize = 256;
pub const NF4_ABSMAX2: usize = 260;
/// f32s of the byte-pair NF4 table that starts the tables buffer (2 KiB, so
/// the stats region that follows starts binding-aligned).
pub const NF4_PAIRS: usize = 512;

/// Device memory of one quantized weight, by component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuantBytes {
    /// Packed codes (4-bit or 8-bit).
    pub codes: u64,
    /// Scales: NF4's 8-bit absmax codes + absmax2 + offset; int8's row stats.
    pub scales: u64,
    /// Per-weight lookup tables (NF4 byte-pair table and 8-bit map).
    pub tables: u64,
}

impl QuantBytes {
    pub fn total(&self) -> u64 {
        self.codes + self.scales + self.tables
    }

    /// What an [n, k] weight of `format` allocates (the buffers of
    /// `Nf4Weight::alloc` / `Int8Weight::alloc`), without allocating it.
    pub fn planned(format: super::QuantFormat, n: usize, k: usize) -> QuantBytes {
        let numel = n * k;
        match format {
            super::QuantFormat::Nf4 => {
                let nb = numel.div_ceil(NF4_BLOCK);
                let nb2 = nb.div_ceil(ABSMAX_BLOCK);
                QuantBytes {
                    codes: 32 * nb as u64,
                    scales: 256 * nb2 as u64 + 4 * (NF4_ABSMAX2 - NF4_OFFSET + nb2) as u64,
                    tables: 4 * (NF4_PAIRS + NF4_OFFSET) as u64,
                }
            }
            super::QuantFormat::Int8 => QuantBytes {
                codes: 4 * numel.div_ceil(4) as u64,
                scales: 4 * n as u64,
                tables: 0,
            },
        }
    }

    /// Adds `other`'s components.
    pub fn add(&mut self, other: &QuantBytes) {
        self.codes += other.codes;
        self.scales += other.scales;
        self.tables += other.tables;
    }
}

fn words(bytes: &[u8], n_words: usize) -> Vec<i32> {
    let mut w = vec![0i32; n_words];
    bytemuck::cast_slice_mut::<i32, u8>(&mut w)[..bytes.len()].copy_from_slice(bytes);
    w
}

fn check_fits(gpu: &Gpu, what: &str, t_bytes: u64) -> Result<()> {
    ensure!(
        t_bytes <= gpu.max_binding(),
        "{what}: {t_bytes} bytes exceed one storage binding ({} bytes); quantized weights must fit one",
        gpu.max_binding()
    );
    Ok(())
}

/// An NF4 weight [n, k] on the GPU (bitsandbytes layout, double quantization).
/// Cloning shares the buffers.
#[derive(Clone)]
pub struct Nf4Weight {
    pub(crate) n: usize,
    pub(crate) k: usize,
    /// 8 words per 64-block (`codes` of bnb, padded to whole blocks).
    pub(crate) codes: Tensor,
    /// 64 words per 256 blocks: the 8-bit absmax codes.
    pub(crate) absmax_q: Tensor,
    /// `[pairs (512) | code8 (256) | offset | pad (3) | absmax2 (blocks2)]` f32.
    pub(crate) tables: Tensor,
}

impl Nf4Weight {
    pub fn blocks(&self) -> usize {
        (self.n * self.k).div_ceil(NF4_BLOCK)
    }

    pub fn blocks2(&self) -> usize {
        self.blocks().div_ceil(ABSMAX_BLOCK)
    }

    /// Allocates the buffers of an [n, k] weight with the lookup tables
    /// filled in (codes, offset and absmax2 come from the host or the GPU).
    pub(crate) fn alloc(
        gpu: &Arc<Gpu>,
        n: usize,
        k: usize,
        code8: &[f32; 256],
    ) -> Result<Nf4Weight> {
        let numel = n * k;
        ensure!(numel > 0, "NF4 weight [{n}, {k}] is empty");
        ensure!(
            numel < (1usize << 32) - 64,
            "NF4 weight [{n}, {k}]: more than 2^32 elements"
        );
        let nb = numel.div_ceil(NF4_BLOCK);
        let nb2 = nb.div_ceil(ABSMAX_BLOCK);
        check_fits(gpu, "NF4 codes", nb as u64 * 32)?;
        let codes = Tensor::empty(gpu, &[nb * 8], DType::I32)?;
        let absmax_q = Tensor::empty(gpu, &[nb2 * 64], DType::I32)?;
        let mut t = nf4_pairs();
        t.extend_from_slice(code8);
        t.resize(NF4_PAIRS + NF4_ABSMAX2 + nb2, 0.0);
        let tables = Tensor::from_f32(gpu, &[t.len()], &t)?;
        Ok(Nf4Weight {
            n,
            k,
            codes,
            absmax_q,
            tables,
        })
    }

    pub fn from_host(gpu: &Arc<Gpu>, h: &Nf4Host) -> Result<Nf4Weight> {
        h.validate()?;
        let w = Nf4Weight::alloc(gpu, h.n, h.k, &h.code8)?;
        w.codes.write_i32(&words(&h.packed, w.codes.numel()))?;
        w.absmax_q
            .write_i32(&words(&h.absmax_q, w.absmax_q.numel()))?;
        let mut t = w.tables.to_vec()?;
        t[NF4_PAIRS + NF4_OFFSET] = h.offset;
        t[NF4_PAIRS + NF4_ABSMAX2..].copy_from_slice(&h.absmax2);
        w.tables.write(&t)?;
        Ok(w)
    }

    /// Reads the weight back in bnb's layout.
    pub fn to_host(&self) -> Result<Nf4Host> {
        let numel = self.n * self.k;
        let codes = self.codes.to_i32_vec()?;
        let aq = self.absmax_q.to_i32_vec()?;
        let t = self.tables.to_vec()?;
        let s = &t[NF4_PAIRS..];
        Ok(Nf4Host {
            n: self.n,
            k: self.k,
            packed: bytemuck::cast_slice::<i32, u8>(&codes)[..numel.div_ceil(2)].to_vec(),
            absmax_q: bytemuck::cast_slice::<i32, u8>(&aq)[..self.blocks()].to_vec(),
            absmax2: s[NF4_ABSMAX2..].to_vec(),
            offset: s[NF4_OFFSET],
            code8: std::array::from_fn(|i| s[i]),
        })
    }

    /// (n, k): output and input features.
    pub fn shape(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    pub fn bytes(&self) -> QuantBytes {
        // Allocated sizes: codes and absmax codes are padded to whole blocks.
        QuantBytes {
            codes: self.codes.bytes(),
            scales: self.absmax_q.bytes() + 4 * (NF4_ABSMAX2 - NF4_OFFSET + self.blocks2()) as u64,
            tables: 4 * (NF4_PAIRS + NF4_OFFSET) as u64,
        }
    }
}

/// An int8 weight [n, k] on the GPU (bitsandbytes' vector-wise layout).
/// Cloning shares the buffers.
#[derive(Clone)]
pub struct Int8Weight {
    pub(crate) n: usize,
    pub(crate) k: usize,
    /// `ceil(n·k / 4)` words of codes, flat row-major.
    pub(crate) codes: Tensor,
    /// Row absmax [n].
    pub(crate) stats: Tensor,
}

impl Int8Weight {
    pub(crate) fn alloc(gpu: &Arc<Gpu>, n: usize, k: usize) -> Result<Int8Weight> {
        let numel = n * k;
        ensure!(numel > 0, "int8 weight [{n}, {k}] is empty");
        ensure!(
            numel < (1usize << 32) - 4,
            "int8 weight [{n}, {k}]: more than 2^32 elements"
        );
        check_fits(gpu, "int8 codes", numel.div_ceil(4) as u64 * 4)?;
        Ok(Int8Weight {
            n,
            k,
            codes: Tensor::empty(gpu, &[numel.div_ceil(4)], DType::I32)?,
            stats: Tensor::empty(gpu, &[n], DType::F32)?,
        })
    }

    pub fn from_host(gpu: &Arc<Gpu>, h: &Int8Host) -> Result<Int8Weight> {
        ensure!(
            h.codes.len() == h.n * h.k && h.stats.len() == h.n,
            "int8 weight [{}, {}]: {} codes, {} stats",
            h.n,
            h.k,
            h.codes.len(),
            h.stats.len()
        );
        let w = Int8Weight::alloc(gpu, h.n, h.k)?;
        w.codes
            .write_i32(&words(bytemuck::cast_slice(&h.codes), w.codes.numel()))?;
        w.stats.write(&h.stats)?;
        Ok(w)
    }

    pub fn to_host(&self) -> Result<Int8Host> {
        let codes = self.codes.to_i32_vec()?;
        Ok(Int8Host {
            n: self.n,
            k: self.k,
            codes: bytemuck::cast_slice::<i32, i8>(&codes)[..self.n * self.k].to_vec(),
            stats: self.stats.to_vec()?,
        })
    }

    pub fn shape(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    pub fn bytes(&self) -> QuantBytes {
        QuantBytes {
            codes: self.codes.bytes(),
            scales: self.stats.bytes(),
            tables: 0,
        }
    }
}
