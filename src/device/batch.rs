//! Command batching: the pending encoder, the compute pass its dispatches
//! share, and their params arena. [`Gpu`](super::Gpu) records through a
//! [`Batch`] and submits it whole.

use super::params::ParamsArena;

/// Commands recorded before a batch is submitted on its own (profiling
/// gives each timed pass two of the query set's slots).
pub(super) const MAX_BATCH: usize = 256;

/// A timed pass's (shader, entry point).
type Name = (&'static str, &'static str);

#[derive(Default)]
pub(super) struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    /// The compute pass consecutive untimed dispatches share: on an H200 a
    /// pass each cost 59 us per dispatch against 4 us in one pass, on
    /// lavapipe about 30 us more (examples/dispatch_cost.rs). wgpu still
    /// places a barrier between dispatches that touch the same buffer. While
    /// the pass is open the encoder takes no other command, so every other
    /// use ends it first.
    pass: Option<wgpu::ComputePass<'static>>,
    commands: usize,
    /// Profiling: the timed passes of this batch, in query-pair order.
    timed: Vec<Name>,
    pub(super) queries: Option<wgpu::QuerySet>,
    /// The params of this batch's dispatches (device/params.rs).
    pub(super) params: ParamsArena,
}

impl Batch {
    /// The pending encoder, created if needed, with the shared pass ended;
    /// also the timed pass names and the query set (profiling).
    pub(super) fn encoder(
        &mut self,
        device: &wgpu::Device,
    ) -> (
        &mut wgpu::CommandEncoder,
        &mut Vec<Name>,
        &mut Option<wgpu::QuerySet>,
    ) {
        self.pass = None;
        (
            open(&mut self.encoder, device),
            &mut self.timed,
            &mut self.queries,
        )
    }

    /// The shared compute pass, begun if needed.
    pub(super) fn shared_pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        let Batch { encoder, pass, .. } = self;
        pass.get_or_insert_with(|| {
            open(encoder, device)
                .begin_compute_pass(&Default::default())
                .forget_lifetime()
        })
    }

    /// Counts one recorded command; true once the batch is full.
    pub(super) fn count(&mut self) -> bool {
        self.commands += 1;
        self.commands >= MAX_BATCH
    }

    /// Ends the batch for a submit: its params go to the device (a queue
    /// write, so before the submit that follows), the shared pass ends, and
    /// the encoder and timed pass names come out. The batch starts over.
    pub(super) fn take(
        &mut self,
        queue: &wgpu::Queue,
    ) -> Option<(wgpu::CommandEncoder, Vec<Name>)> {
        self.params.finish(queue);
        self.pass = None;
        self.commands = 0;
        let enc = self.encoder.take()?;
        Some((enc, std::mem::take(&mut self.timed)))
    }
}

/// The pending encoder, created on first use.
fn open<'e>(
    encoder: &'e mut Option<wgpu::CommandEncoder>,
    device: &wgpu::Device,
) -> &'e mut wgpu::CommandEncoder {
    encoder.get_or_insert_with(|| device.create_command_encoder(&Default::default()))
}
