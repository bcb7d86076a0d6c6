//! The KV cache of incremental decoding: every layer's keys and values,
//! the key mask and each sequence's next position.

use anyhow::{ensure, Result};
use std::sync::Arc;

use super::tokens::Tokens;
use crate::device::Gpu;
use crate::ops::qkv_heads::Dest;
use crate::ops::row_gather::keep_rows;
use crate::tensor::{DType, Tensor};

/// Keys and values of every layer for incremental decoding.
pub struct KvCache {
    /// Per layer, [B, capacity, H, D].
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Positions filled so far.
    pub len: usize,
    pub capacity: usize,
    /// [B, capacity] i32: 1 where a real token was cached.
    pub key_mask: Tensor,
    host_mask: Vec<i32>,
    /// Real tokens seen per sequence (the next token's position).
    pub next_position: Vec<i32>,
}

impl KvCache {
    pub fn new(
        gpu: &Arc<Gpu>,
        layers: usize,
        batch: usize,
        capacity: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<KvCache> {
        let shape = [batch, capacity, heads, head_dim];
        let mut k = Vec::with_capacity(layers);
        let mut v = Vec::with_capacity(layers);
        for _ in 0..layers {
            k.push(Tensor::zeros(gpu, &shape, DType::F32)?);
            v.push(Tensor::zeros(gpu, &shape, DType::F32)?);
        }
        Ok(KvCache {
            k,
            v,
            len: 0,
            capacity,
            key_mask: Tensor::zeros(gpu, &[batch, capacity], DType::I32)?,
            host_mask: vec![0; batch * capacity],
            next_position: vec![0; batch],
        })
    }

    /// Records `tokens`' padding in the key mask (before the layers run).
    pub(super) fn admit(&mut self, tokens: &Tokens) -> Result<()> {
        ensure!(
            self.len + tokens.seq <= self.capacity,
            "KV cache full: {} + {} tokens exceed its capacity of {}",
            self.len,
            tokens.seq,
            self.capacity
        );
        for b in 0..tokens.batch {
            for t in 0..tokens.seq {
                self.host_mask[b * self.capacity + self.len + t] = tokens.mask[b * tokens.seq + t];
            }
        }
        self.key_mask.write_i32(&self.host_mask)
    }

    /// Positions for `new_ids` appended to each sequence, all real tokens.
    pub fn next_tokens(&self, new_ids: &[i32]) -> Tokens {
        Tokens {
            batch: new_ids.len(),
            seq: 1,
            ids: new_ids.to_vec(),
            positions: self.next_position.clone(),
            mask: vec![1; new_ids.len()],
        }
    }

    /// Keeps only the sequences `rows` (in that order; indices into the
    /// current batch), dropping the others: keys, values, masks and
    /// positions move on the device by buffer copies (bit-exact), so a kept
    /// sequence continues exactly as it would have in the full batch.
    /// Generation calls this to stop computing rows that have finished.
    pub fn keep_rows(&mut self, rows: &[usize]) -> Result<()> {
        let batch = self.next_position.len();
        ensure!(
            !rows.is_empty() && rows.iter().all(|&r| r < batch),
            "KV cache: cannot keep rows {rows:?} of a batch of {batch}"
        );
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = keep_rows(t, rows)?;
        }
        self.key_mask = keep_rows(&self.key_mask, rows)?;
        let cap = self.capacity;
        self.host_mask = rows
            .iter()
            .flat_map(|&r| self.host_mask[r * cap..(r + 1) * cap].iter().copied())
            .collect();
        self.next_position = rows.iter().map(|&r| self.next_position[r]).collect();
        Ok(())
    }

    /// Where this pass's keys and values of `layer` go: rows `len ..` of
    /// every sequence ([`qkv_heads`](crate::ops::qkv_heads) writes them there).
    pub fn slots(&self, layer: usize) -> [Dest<'_>; 2] {
        // [B, capacity, H, D]: a cached row is H·D.
        let row: usize = self.k[layer].shape()[2..].iter().product();
        [&self.k[layer], &self.v[layer]].map(|tensor| Dest {
            tensor,
            offset: self.len * row,
            seq_stride: self.capacity * row,
        })
    }

    /// Advances past `tokens` once every layer has appended its keys.
    pub(super) fn commit(&mut self, tokens: &Tokens) {
        for b in 0..tokens.batch {
            self.next_position[b] += tokens.mask[b * tokens.seq..(b + 1) * tokens.seq]
                .iter()
                .sum::<i32>();
        }
        self.len += tokens.seq;
    }
}
