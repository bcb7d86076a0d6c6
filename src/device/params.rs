//! Dispatch params as slices of one uniform buffer per batch.
//!
//! Every dispatch binds its `#[repr(C)]` params struct as a uniform. A buffer
//! of its own per dispatch costs a buffer creation each time (3-4 us of host
//! time on lavapipe and on an H200: examples/dispatch_cost.rs), and a PPO
//! step records tens of thousands of dispatches. Instead the pending batch owns an
//! arena: each dispatch appends its params on the host, at an offset aligned
//! to `min_uniform_buffer_offset_alignment`, and binds that slice. When the
//! batch is submitted (or the arena fills up), the host bytes go to the device
//! in one `queue.write_buffer`.
//!
//! Why that write is always in time: `queue.write_buffer` lands before the
//! next `queue.submit`, and an arena is finished no later than the submit of
//! the batch that recorded its first dispatch. A dispatch that binds a slice
//! is recorded into that batch or a later one (another thread may submit in
//! between), so every slice is on the device before any command that reads
//! it. A finished arena is never written again; its buffer lives on in the bind
//! groups that use it. Kernels recorded once and replayed ([`crate::kernel::Prepared`])
//! keep a uniform buffer of their own instead.

use crate::kernel::ParamsSlice;

/// Bytes per arena: 256 dispatches at the usual 256-byte alignment, one batch.
const ARENA_BYTES: u64 = 64 << 10;

#[derive(Default)]
pub(super) struct ParamsArena {
    buffer: Option<wgpu::Buffer>,
    bytes: Vec<u8>,
}

impl ParamsArena {
    /// Appends `params` (zero-padded to 16 bytes, as WGSL uniforms require)
    /// and says where they will be.
    pub(super) fn push(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        align: u64,
        params: &[u8],
    ) -> ParamsSlice {
        let size = (params.len() as u64).max(16).next_multiple_of(16);
        let mut offset = (self.bytes.len() as u64).next_multiple_of(align.max(16));
        let buffer = match &self.buffer {
            Some(b) if offset + size <= b.size() => b.clone(),
            _ => {
                self.finish(queue);
                offset = 0;
                let b = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params"),
                    size: ARENA_BYTES.max(size),
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                self.buffer = Some(b.clone());
                b
            }
        };
        self.bytes.resize(offset as usize, 0);
        self.bytes.extend_from_slice(params);
        self.bytes.resize((offset + size) as usize, 0);
        ParamsSlice {
            buffer,
            offset,
            size,
        }
    }

    /// Sends the arena's bytes to the device (before the next submit) and
    /// starts a new arena at the next push.
    pub(super) fn finish(&mut self, queue: &wgpu::Queue) {
        if let Some(buffer) = self.buffer.take() {
            if !self.bytes.is_empty() {
                queue.write_buffer(&buffer, 0, &self.bytes);
            }
        }
        self.bytes.clear();
    }
}
