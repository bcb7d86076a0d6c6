//! The one dispatch helper every op goes through.
//!
//! A kernel is named by shader stem, entry point and `override` constants
//! ([`Kernel`]). Its pipeline is compiled once per device and cached: on
//! llvmpipe every distinct pipeline costs 40-400 ms of LLVM time. The pipeline
//! layout is reflected from the shader with naga, so ops only say which buffer
//! goes to which `@binding`; binding 0 is always the op's uniform params struct.
//!
//! This is the bottom layer: it knows a device only through [`Dispatcher`],
//! which `device::Gpu` implements, so `device` imports `kernel` and never the
//! reverse.

use anyhow::{anyhow, Context, Result};
use std::sync::Arc;

use crate::shader::BindingKind;

mod pipelines;
use pipelines::Compiled;
pub use pipelines::PipelineCache;

/// What the dispatch path needs from a device: its wgpu handles, limits,
/// pipeline cache, uniform buffers and the pending command encoder.
pub trait Dispatcher {
    fn wgpu_device(&self) -> &wgpu::Device;
    fn limits(&self) -> &wgpu::Limits;
    /// The largest byte range one storage binding may cover.
    fn max_binding(&self) -> u64;
    fn pipeline_cache(&self) -> &PipelineCache;
    /// A uniform buffer holding `bytes`.
    fn uniform(&self, bytes: &[u8]) -> wgpu::Buffer;
    /// Binds one dispatch's params for commands recorded from now on (not
    /// for replays: see [`Prepared`]). By default a buffer of their own; a
    /// device may hand out slices of a shared buffer instead.
    fn params(&self, bytes: &[u8]) -> ParamsSlice {
        let buffer = self.uniform(bytes);
        ParamsSlice {
            offset: 0,
            size: buffer.size(),
            buffer,
        }
    }
    /// Runs `f` with the pending command encoder.
    fn record_commands(&self, f: &mut dyn FnMut(&mut wgpu::CommandEncoder));
    /// Counts one recorded dispatch (for `engine bench`'s per-token figures).
    fn note_dispatch(&self) {}
    /// Records one compute pass of kernel `name` (shader, entry point);
    /// a device may time it.
    fn record_pass(
        &self,
        _name: (&'static str, &'static str),
        f: &mut dyn FnMut(&mut wgpu::ComputePass<'_>),
    ) {
        self.record_commands(&mut |enc| {
            f(&mut enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default()))
        });
    }

    /// Required alignment of a storage binding's offset.
    fn binding_alignment(&self) -> u64 {
        u64::from(self.limits().min_storage_buffer_offset_alignment)
    }
}

/// Where one dispatch's uniform params are bound.
pub struct ParamsSlice {
    pub buffer: wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

impl<D: Dispatcher + ?Sized> Dispatcher for Arc<D> {
    fn wgpu_device(&self) -> &wgpu::Device {
        (**self).wgpu_device()
    }
    fn limits(&self) -> &wgpu::Limits {
        (**self).limits()
    }
    fn max_binding(&self) -> u64 {
        (**self).max_binding()
    }
    fn pipeline_cache(&self) -> &PipelineCache {
        (**self).pipeline_cache()
    }
    fn uniform(&self, bytes: &[u8]) -> wgpu::Buffer {
        (**self).uniform(bytes)
    }
    fn params(&self, bytes: &[u8]) -> ParamsSlice {
        (**self).params(bytes)
    }
    fn record_commands(&self, f: &mut dyn FnMut(&mut wgpu::CommandEncoder)) {
        (**self).record_commands(f)
    }
    fn note_dispatch(&self) {
        (**self).note_dispatch()
    }
    fn record_pass(
        &self,
        name: (&'static str, &'static str),
        f: &mut dyn FnMut(&mut wgpu::ComputePass<'_>),
    ) {
        (**self).record_pass(name, f)
    }
}

/// A compute entry point plus its specialisation constants.
#[derive(Clone, Copy, Debug)]
pub struct Kernel<'a> {
    pub shader: &'static str,
    pub entry: &'static str,
    pub constants: &'a [(&'static str, f64)],
}

impl Kernel<'static> {
    pub const fn new(shader: &'static str, entry: &'static str) -> Self {
        Kernel {
            shader,
            entry,
            constants: &[],
        }
    }
}

impl<'a> Kernel<'a> {
    pub fn with<'b>(self, constants: &'b [(&'static str, f64)]) -> Kernel<'b> {
        Kernel {
            shader: self.shader,
            entry: self.entry,
            constants,
        }
    }
}

/// One buffer range bound at `binding`.
#[derive(Clone, Copy)]
pub struct Bind<'a> {
    pub binding: u32,
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
}

/// The range of `b` bound at `binding` as `array<vec4<f32>>` (kernels that
/// also read or write a range four elements at a time): the size rounds up
/// to 16 bytes, which stays inside the buffer (pooled buffers come in
/// 256-byte multiples).
pub fn as_vec4(b: Bind, binding: u32) -> Bind {
    let size = b.size.next_multiple_of(16).min(b.buffer.size() - b.offset);
    Bind { binding, size, ..b }
}

/// `binds` followed by the vec4 view ([`as_vec4`]) of each bind at a `from`
/// binding of `twins`, bound at its `to` (entries that read some ranges four
/// elements at a time; binds absent from `binds` are skipped).
pub fn with_vec4_twins<'a>(binds: &[Bind<'a>], twins: &[(u32, u32)]) -> Vec<Bind<'a>> {
    let mut all = binds.to_vec();
    for &(from, to) in twins {
        all.extend(
            binds
                .iter()
                .filter(|b| b.binding == from)
                .map(|&b| as_vec4(b, to)),
        );
    }
    all
}

/// Workgroup counts for `n` groups along one logical axis, folded into y when
/// `n` exceeds the per-dimension limit. Shaders recover the linear group id
/// as `wg.x + wg.y * num_workgroups.x` and bound-check it.
pub fn groups_1d(gpu: &(impl Dispatcher + ?Sized), n: u32) -> [u32; 3] {
    let max = gpu.limits().max_compute_workgroups_per_dimension.max(1);
    if n <= max {
        [n.max(1), 1, 1]
    } else {
        [max, n.div_ceil(max), 1]
    }
}

/// Splits `n` 4-byte elements into ranges that each fit one storage binding.
/// Boundaries are multiples of the binding alignment, so every range binds
/// with no residual offset. Elementwise ops loop over these.
pub fn elem_chunks(gpu: &(impl Dispatcher + ?Sized), n: usize) -> Vec<(usize, usize)> {
    let align = (gpu.binding_alignment() / 4).max(1) as usize;
    let step = ((gpu.max_binding() / 4) as usize / align * align).max(align);
    (0..n.max(1))
        .step_by(step)
        .map(|lo| (lo, (lo + step).min(n)))
        .collect()
}

/// A kernel with its bind group made once: record it as often as needed
/// with no pipeline, bind-group or uniform creation per use (token loops).
/// The params uniform is fixed at [`prepare`] time, so anything that changes
/// between uses lives in a storage buffer.
pub struct Prepared {
    compiled: Arc<Compiled>,
    bind_group: wgpu::BindGroup,
    _uniform: wgpu::Buffer,
}

/// Compiles (or finds) `kernel` and binds `params` and `binds` once (see
/// [`dispatch`] for the binding rules).
pub fn prepare<P: bytemuck::Pod>(
    gpu: &(impl Dispatcher + ?Sized),
    kernel: &Kernel,
    params: &P,
    binds: &[Bind],
) -> Result<Prepared> {
    let compiled = compiled(gpu, kernel)?;
    let uniform = gpu.uniform(bytemuck::bytes_of(params));
    let slice = ParamsSlice {
        offset: 0,
        size: uniform.size(),
        buffer: uniform.clone(),
    };
    let bind_group = bind_group(gpu, &compiled, &slice, binds)?;
    Ok(Prepared {
        compiled,
        bind_group,
        _uniform: uniform,
    })
}

fn compiled(gpu: &(impl Dispatcher + ?Sized), kernel: &Kernel) -> Result<Arc<Compiled>> {
    gpu.pipeline_cache()
        .compiled(gpu.wgpu_device(), kernel)
        .with_context(|| format!("compiling {}::{}", kernel.shader, kernel.entry))
}

/// `params` at the uniform binding, `binds` at the storage bindings the
/// entry point reflects.
fn bind_group(
    gpu: &(impl Dispatcher + ?Sized),
    c: &Compiled,
    params: &ParamsSlice,
    binds: &[Bind],
) -> Result<wgpu::BindGroup> {
    let mut entries = Vec::with_capacity(c.bindings.len());
    for &(binding, kind) in &c.bindings {
        let (buffer, offset, size) = if kind == BindingKind::Uniform {
            (&params.buffer, params.offset, params.size)
        } else {
            let b = binds.iter().find(|b| b.binding == binding).ok_or_else(|| {
                anyhow!(
                    "{}::{} needs a buffer at @binding({binding})",
                    c.name.0,
                    c.name.1
                )
            })?;
            (b.buffer, b.offset, b.size.max(4))
        };
        entries.push(wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset,
                size: Some(std::num::NonZeroU64::new(size).unwrap()),
            }),
        });
    }
    Ok(gpu
        .wgpu_device()
        .create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &c.layout,
            entries: &entries,
        }))
}

impl Prepared {
    /// Records one dispatch over `groups` workgroups.
    pub fn record(&self, gpu: &(impl Dispatcher + ?Sized), groups: [u32; 3]) {
        record(gpu, &self.compiled, &self.bind_group, groups);
    }
}

fn record(
    gpu: &(impl Dispatcher + ?Sized),
    c: &Compiled,
    bind_group: &wgpu::BindGroup,
    groups: [u32; 3],
) {
    if groups.contains(&0) {
        return;
    }
    gpu.note_dispatch();
    gpu.record_pass(c.name, &mut |pass| {
        pass.set_pipeline(&c.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    });
}

/// Records one dispatch of `kernel` over `groups` workgroups. `params` goes
/// to binding 0 as a uniform; `binds` supplies every storage binding the
/// entry point uses (extra ones are ignored).
pub fn dispatch<P: bytemuck::Pod>(
    gpu: &(impl Dispatcher + ?Sized),
    kernel: &Kernel,
    params: &P,
    binds: &[Bind],
    groups: [u32; 3],
) -> Result<()> {
    let c = compiled(gpu, kernel)?;
    if groups.contains(&0) {
        // Compiled all the same, so a bad kernel fails the same way at any size.
        return Ok(());
    }
    let bind_group = bind_group(gpu, &c, &gpu.params(bytemuck::bytes_of(params)), binds)?;
    record(gpu, &c, &bind_group, groups);
    Ok(())
}
