//! The GPU: device limits, command batching, buffer reuse and
//! explicit read-back (the adapter choice is in `device/adapter.rs`).
//!
//! One [`Gpu`] owns one wgpu device and queue. Work is recorded into a single
//! pending command encoder and submitted in batches ([`Gpu::flush`]), so a
//! training step is a handful of submits rather than one per kernel. Uploads go
//! through the same encoder (a staging copy), never `queue.write_buffer`, so
//! that every write lands in program order relative to the recorded kernels.
//! The one exception is the dispatches' params (`device/params.rs`): each
//! slice is written once, before the first batch that can read it.

use anyhow::{anyhow, bail, Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wgpu::util::DeviceExt;

use crate::kernel::{self, Bind, Dispatcher, Kernel, ParamsSlice, PipelineCache};

mod adapter;
mod batch;
mod params;
mod profile;
use crate::pool::{size_class, BufferPool};
use adapter::choose;
pub use adapter::{compute_support, describe, list_adapters, parse_backends, GpuOptions};
use batch::Batch;
use profile::Profiler;

/// A device with its queue, pipeline cache, buffer pool and pending commands.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    max_binding: u64,
    /// See [`GpuOptions::poison_allocations`].
    poison: bool,
    pub(crate) pipelines: PipelineCache,
    batch: Mutex<Batch>,
    pool: Mutex<BufferPool>,
    counters: [AtomicU64; 3],
    profiler: Mutex<Option<Profiler>>,
}

/// Running totals since the device opened (`engine bench` reports them per
/// generated token).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuCounters {
    pub dispatches: u64,
    pub submits: u64,
    /// Bytes copied back to the host.
    pub bytes_read: u64,
}

impl Gpu {
    /// Opens the best adapter allowed by `opts`.
    pub fn new(opts: &GpuOptions) -> Result<Arc<Gpu>> {
        let adapter = choose(opts)?;
        let info = adapter.get_info();
        // Ask for everything the adapter offers: the defaults cap storage bindings at 128 MiB.
        let limits = adapter.limits();
        let wanted =
            wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
        let features = adapter.features() & wanted;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("engine"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .with_context(|| format!("opening device on {}", describe(&info)))?;
        let hw_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let max_binding = opts
            .max_binding_override
            .map_or(hw_binding, |o| o.min(hw_binding));
        Ok(Arc::new(Gpu {
            device,
            queue,
            info,
            limits,
            features,
            max_binding,
            poison: opts.poison_allocations,
            pipelines: PipelineCache::default(),
            batch: Mutex::new(Batch::default()),
            pool: Mutex::new(BufferPool::default()),
            counters: Default::default(),
            profiler: Mutex::new(None),
        })
        .with_profile_from_env())
    }

    fn with_profile_from_env(self: Arc<Self>) -> Arc<Self> {
        if std::env::var("ENGINE_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0") {
            self.start_profile();
        }
        self
    }

    /// One device per process, configured from the environment. Tests share it,
    /// so each pipeline compiles once per test binary.
    pub fn shared() -> Result<Arc<Gpu>> {
        static SHARED: OnceLock<std::result::Result<Arc<Gpu>, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                GpuOptions::from_env()
                    .and_then(|o| Gpu::new(&o))
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
            .map_err(|e| anyhow!("{e}"))
    }

    /// True on CPU implementations (llvmpipe, lavapipe, WARP), where register
    /// blocking beats shared-memory tiling.
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    pub fn has_subgroups(&self) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP)
    }

    /// The narrowest subgroup the adapter may run (0 without subgroups):
    /// kernels that broadcast across N lanes need at least N.
    pub fn subgroup_min_size(&self) -> u32 {
        if self.has_subgroups() {
            self.info.subgroup_min_size
        } else {
            0
        }
    }

    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// The largest byte range one storage binding may cover.
    pub fn max_binding(&self) -> u64 {
        self.max_binding
    }

    /// Required alignment of a storage binding's offset.
    pub fn binding_alignment(&self) -> u64 {
        u64::from(self.limits.min_storage_buffer_offset_alignment)
    }

    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    /// Records one dispatch of `kernel` (see [`kernel::dispatch`]).
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel,
        params: &P,
        binds: &[Bind],
        groups: [u32; 3],
    ) -> Result<()> {
        kernel::dispatch(self, kernel, params, binds, groups)
    }

    /// Runs `f` with the pending encoder, creating it if needed.
    pub(crate) fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        self.record_in_batch(|enc, _, _| f(enc));
    }

    /// Records one command into the pending batch, with the batch's timed
    /// passes and query set at hand (profiling); submits a full batch.
    fn record_in_batch(
        &self,
        f: impl FnOnce(
            &mut wgpu::CommandEncoder,
            &mut Vec<(&'static str, &'static str)>,
            &mut Option<wgpu::QuerySet>,
        ),
    ) {
        let mut batch = self.batch.lock().unwrap();
        let (enc, timed, queries) = batch.encoder(&self.device);
        f(enc, timed, queries);
        if batch.count() {
            self.submit(&mut batch);
        }
    }

    /// Records one dispatch into the batch's shared compute pass.
    fn record_in_shared_pass(&self, f: &mut dyn FnMut(&mut wgpu::ComputePass<'_>)) {
        let mut batch = self.batch.lock().unwrap();
        f(batch.shared_pass(&self.device));
        if batch.count() {
            self.submit(&mut batch);
        }
    }

    fn submit(&self, batch: &mut Batch) {
        let Some((mut enc, timed)) = batch.take(&self.queue) else {
            return;
        };
        self.counters[1].fetch_add(1, Ordering::Relaxed);
        let mut prof = self.profiler.lock().unwrap();
        if let Some(p) = prof.as_mut() {
            p.submitted();
        }
        let staging = match (&batch.queries, timed.is_empty()) {
            (Some(q), false) => Some(self.resolve_timestamps(&mut enc, q, timed.len())),
            _ => None,
        };
        self.queue.submit([enc.finish()]);
        if let (Some(staging), Some(p)) = (staging, prof.as_mut()) {
            match self.read_mapped(&staging) {
                Ok(bytes) => {
                    let ticks: &[u64] = bytemuck::cast_slice(&bytes);
                    p.timed(&timed, ticks, self.queue.get_timestamp_period());
                }
                Err(e) => eprintln!("profile: reading timestamps failed: {e:#}"),
            }
        }
    }

    /// Dispatches, submits and read-back bytes so far.
    pub fn counters(&self) -> GpuCounters {
        let c = |i: usize| self.counters[i].load(Ordering::Relaxed);
        GpuCounters {
            dispatches: c(0),
            submits: c(1),
            bytes_read: c(2),
        }
    }

    /// Submits everything recorded so far (without waiting).
    pub fn flush(&self) {
        self.submit(&mut self.batch.lock().unwrap());
    }

    /// Submits and blocks until the device is idle.
    pub fn sync(&self) -> Result<()> {
        self.flush();
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("device poll failed: {e}"))?;
        Ok(())
    }

    /// A storage buffer of at least `bytes`, reused from the pool when possible.
    /// Contents are undefined: whatever the last tensor left (NaN everywhere
    /// on a poisoning device).
    pub(crate) fn alloc(&self, bytes: u64) -> Result<wgpu::Buffer> {
        let cap = size_class(bytes.max(4));
        if cap > self.limits.max_buffer_size {
            bail!(
                "a {bytes}-byte tensor exceeds this adapter's max buffer size of {} bytes",
                self.limits.max_buffer_size
            );
        }
        let pooled = self.pool.lock().unwrap().take(cap);
        let buf = match pooled {
            Some(buf) => buf,
            None => self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: cap,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        if self.poison {
            self.upload(&buf, 0, &vec![0xFF; cap as usize]);
        }
        Ok(buf)
    }

    /// Returns a buffer to the pool. Safe while commands that use it are still
    /// pending: every later use is recorded after them.
    pub(crate) fn release(&self, buf: wgpu::Buffer) {
        self.pool.lock().unwrap().put(buf);
    }

    /// Records a copy of `data` into `dst` at `offset` (in program order).
    pub(crate) fn upload(&self, dst: &wgpu::Buffer, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut padded;
        let bytes = if data.len().is_multiple_of(4) {
            data
        } else {
            padded = data.to_vec();
            padded.resize(data.len().next_multiple_of(4), 0);
            &padded
        };
        let staging = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytes,
                usage: wgpu::BufferUsages::COPY_SRC,
            });
        self.record(|enc| enc.copy_buffer_to_buffer(&staging, 0, dst, offset, bytes.len() as u64));
    }

    /// Records zero-filling of `size` bytes of `dst` from `offset`.
    pub(crate) fn clear(&self, dst: &wgpu::Buffer, offset: u64, size: u64) {
        self.record(|enc| enc.clear_buffer(dst, offset, Some(size)));
    }

    /// Copies `size` bytes (a multiple of 4) back to the host, waiting for all
    /// pending work first.
    pub(crate) fn read(&self, src: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        if size == 0 {
            return Ok(Vec::new());
        }
        self.counters[2].fetch_add(size, Ordering::Relaxed);
        if let Some(p) = self.profiler.lock().unwrap().as_mut() {
            p.read(size);
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.record(|enc| enc.copy_buffer_to_buffer(src, offset, &staging, 0, size));
        self.flush();
        self.read_mapped(&staging)
    }

    /// Maps a submitted MAP_READ buffer and copies it out.
    fn read_mapped(&self, staging: &wgpu::Buffer) -> Result<Vec<u8>> {
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("device poll failed: {e}"))?;
        rx.recv()?
            .map_err(|e| anyhow!("mapping read-back buffer failed: {e}"))?;
        let out = slice
            .get_mapped_range()
            .map_err(|e| anyhow!("reading mapped buffer: {e:?}"))?
            .to_vec();
        staging.unmap();
        Ok(out)
    }

    /// A uniform buffer holding `bytes`, padded to 16 bytes as WGSL requires.
    pub(crate) fn uniform(&self, bytes: &[u8]) -> wgpu::Buffer {
        let mut data = bytes.to_vec();
        data.resize(bytes.len().max(16).next_multiple_of(16), 0);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &data,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }
}

impl Dispatcher for Gpu {
    fn wgpu_device(&self) -> &wgpu::Device {
        &self.device
    }
    fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
    fn max_binding(&self) -> u64 {
        self.max_binding
    }
    fn pipeline_cache(&self) -> &PipelineCache {
        &self.pipelines
    }
    fn uniform(&self, bytes: &[u8]) -> wgpu::Buffer {
        Gpu::uniform(self, bytes)
    }
    fn params(&self, bytes: &[u8]) -> ParamsSlice {
        let align = u64::from(self.limits.min_uniform_buffer_offset_alignment);
        let mut batch = self.batch.lock().unwrap();
        batch.params.push(&self.device, &self.queue, align, bytes)
    }
    fn record_commands(&self, f: &mut dyn FnMut(&mut wgpu::CommandEncoder)) {
        self.record(f)
    }
    fn note_dispatch(&self) {
        self.counters[0].fetch_add(1, Ordering::Relaxed);
    }
    fn record_pass(
        &self,
        name: (&'static str, &'static str),
        f: &mut dyn FnMut(&mut wgpu::ComputePass<'_>),
    ) {
        self.record_timed_pass(name, f)
    }
}
