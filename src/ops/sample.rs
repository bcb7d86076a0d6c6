//! sample: next-token choice on the device (repetition penalty, temperature,
//! top-k, top-p, then argmax or a seeded draw; stop ids end a row). The math
//! and the RNG are described in `shaders/sample.wgsl`; the f64 reference is
//! `models::sampling::choose`, which draws from the same SplitMix64 stream
//! in the same order. The ids are not bit-identical to it: the device sums
//! the CDF in f32, so a draw within f32 resolution of one of the V CDF
//! boundaries can pick a neighbour (about V·1e-7 of draws; the tests see
//! none at V ≈ 300, the support-tiny demo about one per few thousand
//! tokens, from its 4th PPO step on). Runs stay reproducible per seed.
//!
//! Inference only: a [`DeviceSampler`] works on tensors, never on tape
//! variables, so it cannot join the tape. It owns every buffer it binds, so
//! both kernels are compiled and bound once ([`Prepared`]; again only when
//! [`DeviceSampler::keep_rows`] shrinks the batch); a token then costs one
//! logits copy, two dispatches and a B × 4-byte read-back, with no
//! pipeline, bind-group or uniform creation.

use anyhow::{ensure, Result};
use std::sync::Arc;

use crate::device::Gpu;
use crate::kernel::{groups_1d, prepare, Kernel, Prepared};
use crate::ops::row_gather::keep_rows;
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// What to do with one row of logits (transformers' names and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleSpec {
    /// Argmax of the penalised logits; temperature, top-k and top-p unused.
    pub greedy: bool,
    pub temperature: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1.0 disables.
    pub top_p: f32,
    /// 1.0 disables.
    pub repetition_penalty: f32,
}

/// Mirrors `SampleParams` in `shaders/sample.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SampleParams {
    pub batch: u32,
    pub stride: u32,
    pub valid: u32,
    pub greedy: u32,
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub penalty: f32,
    pub pad: u32,
    pub n_stop: u32,
    pub seen_words: u32,
    pub _pad0: u32,
}

/// Samples one token per row per [`DeviceSampler::step`].
pub struct DeviceSampler {
    gpu: Arc<Gpu>,
    batch: usize,
    pad: u32,
    stop_ids: Vec<u32>,
    /// [B, V] input: callers copy each step's logits here.
    logits: Tensor,
    chosen: Tensor,
    finished: Tensor,
    /// Host mirror of `finished` (the device sets it on stop ids, the host
    /// on stop strings).
    host_finished: Vec<bool>,
    stop: Tensor,
    /// [2 · streams] SplitMix64 states (lo, hi), one stream per seed.
    rng: Tensor,
    /// [B, seen_words] bitmaps (one unused word without a penalty).
    seen: Tensor,
    /// [B] the stream each row draws from.
    stream: Tensor,
    params: SampleParams,
    /// Invocations per row (the shader's WG; see [`DeviceSampler::set_workgroup_size`]).
    wg: u32,
    rows: Prepared,
    advance: Prepared,
}

/// The sampler's invocations per row on `gpu`: one SIMD row (8) on a CPU
/// adapter, where llvmpipe switches every invocation's coroutine at each
/// of the kernel's barriers (64 took about a third longer in the demo), 64
/// on a GPU.
fn default_workgroup_size(gpu: &Gpu) -> u32 {
    if gpu.is_cpu() {
        8
    } else {
        64
    }
}

impl DeviceSampler {
    /// A sampler for `batch` rows of `vocab` logits, of which the first
    /// `valid` may be chosen. `contexts` (one per row, ids < `valid` count)
    /// seed the repetition penalty. Row b draws from the stream that
    /// `Rng::new(seeds[b])` starts; rows with the same seed share its
    /// stream, in row order, so one batch of chunks with a seed each draws
    /// what the chunks would draw one at a time. Finished rows emit `pad`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Arc<Gpu>,
        batch: usize,
        vocab: usize,
        valid: usize,
        spec: &SampleSpec,
        stop_ids: &[u32],
        pad: u32,
        seeds: &[u64],
        contexts: &[Vec<u32>],
    ) -> Result<DeviceSampler> {
        ensure!(
            batch > 0 && valid > 0,
            "sampling needs at least one row and one token"
        );
        ensure!(
            valid <= vocab,
            "{valid} sampled ids exceed a vocab of {vocab}"
        );
        ensure!(
            contexts.len() == batch && seeds.len() == batch,
            "{} contexts and {} seeds for {batch} rows",
            contexts.len(),
            seeds.len()
        );
        ensure!(
            spec.greedy || spec.temperature > 0.0,
            "temperature must be > 0 (got {})",
            spec.temperature
        );
        ensure!(
            spec.top_p > 0.0 && spec.top_p <= 1.0,
            "top_p must be in (0, 1] (got {})",
            spec.top_p
        );
        ensure!(
            spec.repetition_penalty > 0.0,
            "repetition_penalty must be > 0"
        );
        let bytes = (batch * vocab * 4) as u64;
        ensure!(
            bytes <= gpu.max_binding(),
            "{batch} rows of {vocab} logits ({bytes} bytes) exceed one storage binding ({} bytes); sample fewer rows at a time",
            gpu.max_binding()
        );
        let words = if spec.repetition_penalty != 1.0 {
            valid.div_ceil(32)
        } else {
            0
        };
        let mut bits = vec![0u32; (batch * words).max(1)];
        for (b, ctx) in contexts.iter().enumerate().filter(|_| words > 0) {
            for &t in ctx.iter().filter(|&&t| (t as usize) < valid) {
                bits[b * words + (t as usize >> 5)] |= 1 << (t & 31);
            }
        }
        let u32_tensor = |data: &[u32]| {
            let ints: Vec<i32> = data.iter().map(|&x| x as i32).collect();
            Tensor::from_i32(gpu, &[data.len()], &ints)
        };
        // The streams in order of first use, and each row's.
        let mut streams: Vec<u64> = Vec::new();
        let mut row_stream = Vec::with_capacity(batch);
        for &seed in seeds {
            let s = match streams.iter().position(|&x| x == seed) {
                Some(s) => s,
                None => {
                    streams.push(seed);
                    streams.len() - 1
                }
            };
            row_stream.push(s as u32);
        }
        let states: Vec<u32> = streams
            .iter()
            .flat_map(|&seed| {
                let state = Rng::new(seed).state();
                [state as u32, (state >> 32) as u32]
            })
            .collect();
        let stop_list: Vec<u32> = if stop_ids.is_empty() {
            vec![u32::MAX]
        } else {
            stop_ids.to_vec()
        };
        let logits = Tensor::empty(gpu, &[batch, vocab], DType::F32)?;
        let chosen = Tensor::zeros(gpu, &[batch], DType::I32)?;
        let finished = Tensor::zeros(gpu, &[batch], DType::I32)?;
        let stop = u32_tensor(&stop_list)?;
        let rng = u32_tensor(&states)?;
        let stream = u32_tensor(&row_stream)?;
        let seen = u32_tensor(&bits)?;
        let seen = if words > 0 {
            seen.reshape(&[batch, words])?
        } else {
            seen
        };
        let params = SampleParams {
            batch: batch as u32,
            stride: vocab as u32,
            valid: valid as u32,
            greedy: spec.greedy as u32,
            temperature: spec.temperature,
            top_k: spec.top_k.min(u32::MAX as usize) as u32,
            top_p: spec.top_p,
            penalty: spec.repetition_penalty,
            pad,
            n_stop: stop_ids.len() as u32,
            seen_words: words as u32,
            _pad0: 0,
        };
        let wg = default_workgroup_size(gpu);
        let [rows, advance] = Self::prepare(
            gpu,
            &params,
            [&logits, &stop, &rng, &finished, &chosen, &seen, &stream],
            wg,
        )?;
        Ok(DeviceSampler {
            gpu: gpu.clone(),
            batch,
            pad,
            stop_ids: stop_ids.to_vec(),
            logits,
            chosen,
            finished,
            host_finished: vec![false; batch],
            stop,
            rng,
            seen,
            stream,
            params,
            wg,
            rows,
            advance,
        })
    }

    /// Compiles (or finds) both kernels for `wg` invocations per row and
    /// binds the sampler's buffers (bindings 1-7 in order).
    fn prepare(
        gpu: &Arc<Gpu>,
        params: &SampleParams,
        bufs: [&Tensor; 7],
        wg: u32,
    ) -> Result<[Prepared; 2]> {
        let binds: Vec<_> = (1..).zip(bufs).map(|(i, t)| t.bind(i)).collect();
        let penalty = (params.penalty != 1.0) as u32 as f64;
        let consts = [("WG", wg as f64), ("PENALTY", penalty)];
        let kernel = |entry| {
            let k = Kernel::new("sample", entry).with(&consts);
            prepare(gpu.as_ref(), &k, params, &binds)
        };
        Ok([kernel("sample_rows")?, kernel("sample_advance")?])
    }

    fn buffers(&self) -> [&Tensor; 7] {
        [
            &self.logits,
            &self.stop,
            &self.rng,
            &self.finished,
            &self.chosen,
            &self.seen,
            &self.stream,
        ]
    }

    /// Runs later steps with `wg` invocations per row (8 to 256, a power of
    /// two) instead of the adapter's default. The ids do not depend on it
    /// (the shader's sums are over fixed chunks); tests compare both forms.
    pub fn set_workgroup_size(&mut self, wg: u32) -> Result<()> {
        ensure!(
            wg.is_power_of_two() && (8..=256).contains(&wg),
            "sampler workgroup size must be a power of two in 8..=256, got {wg}"
        );
        self.wg = wg;
        [self.rows, self.advance] = Self::prepare(&self.gpu, &self.params, self.buffers(), wg)?;
        Ok(())
    }

    /// Keeps only rows `rows` (indices into the current batch, in that
    /// order) with their device state (finished flags, penalty bitmaps);
    /// the next [`step`](Self::step) takes `rows.len()` rows of logits.
    ///
    /// The draws stay the same when every dropped row has finished: row b
    /// draws with index k_b = unfinished rows of its stream before b, and
    /// `sample_advance` moves each stream past its unfinished rows, so
    /// finished rows count in neither (see `shaders/sample.wgsl`). Dropping
    /// an unfinished row shifts the draws of the rows after it.
    ///
    /// New buffers mean new bind groups: this re-prepares both kernels (the
    /// pipelines come from the cache). Generation does it a few times per
    /// call, never per token.
    pub fn keep_rows(&mut self, rows: &[usize]) -> Result<()> {
        ensure!(
            !rows.is_empty() && rows.iter().all(|&r| r < self.batch),
            "sampler: cannot keep rows {rows:?} of a batch of {}",
            self.batch
        );
        let batch = rows.len();
        let vocab = self.params.stride as usize;
        self.logits = Tensor::empty(&self.gpu, &[batch, vocab], DType::F32)?;
        self.chosen = Tensor::zeros(&self.gpu, &[batch], DType::I32)?;
        self.finished = keep_rows(&self.finished, rows)?;
        self.stream = keep_rows(&self.stream, rows)?;
        if self.params.seen_words > 0 {
            self.seen = keep_rows(&self.seen, rows)?;
        }
        self.host_finished = rows.iter().map(|&r| self.host_finished[r]).collect();
        self.batch = batch;
        self.params.batch = batch as u32;
        [self.rows, self.advance] =
            Self::prepare(&self.gpu, &self.params, self.buffers(), self.wg)?;
        Ok(())
    }

    /// Records one step on `logits` [B, V] (copied into the sampler's own
    /// buffer, so nothing is bound anew).
    pub fn record(&self, logits: &Tensor) -> Result<()> {
        ensure!(
            logits.dtype() == DType::F32 && logits.numel() == self.logits.numel(),
            "sampler expects {:?} logits, got {:?}",
            self.logits.shape(),
            logits
        );
        self.logits.copy_from(logits)?;
        let gpu = self.gpu.as_ref();
        self.rows.record(gpu, groups_1d(gpu, self.batch as u32));
        self.advance.record(gpu, [1, 1, 1]);
        Ok(())
    }

    /// Records a step and reads its ids back (B × 4 bytes; this submits).
    /// Rows that had finished before the step get `None`.
    pub fn step(&mut self, logits: &Tensor) -> Result<Vec<Option<u32>>> {
        self.record(logits)?;
        let bytes = self
            .gpu
            .read(self.chosen.buffer(), 0, self.batch as u64 * 4)?;
        let ids: &[u32] = bytemuck::cast_slice(&bytes);
        let mut out = Vec::with_capacity(self.batch);
        for (b, &id) in ids.iter().enumerate() {
            if self.host_finished[b] {
                out.push(None);
                continue;
            }
            // The device finished this row too (sample_advance).
            self.host_finished[b] = self.stop_ids.contains(&id);
            out.push(Some(id));
        }
        Ok(out)
    }

    /// Ends row `b` from the host (a stop string matched): it draws nothing
    /// and emits the pad id from the next step on.
    pub fn finish(&mut self, b: usize) {
        if !self.host_finished[b] {
            self.host_finished[b] = true;
            self.gpu
                .upload(self.finished.buffer(), b as u64 * 4, &1u32.to_le_bytes());
        }
    }

    pub fn finished(&self) -> &[bool] {
        &self.host_finished
    }

    /// The id finished rows emit.
    pub fn pad(&self) -> u32 {
        self.pad
    }
}
