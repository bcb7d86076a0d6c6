//! Command batching: the pending encoder, the compute pass its dispatches
//! share, their params arena, and the submit.

use std::sync::atomic::Ordering;

use super::params::ParamsArena;
use super::profile::MAX_TIMED;
use super::Gpu;

#[derive(Default)]
pub(super) struct Batch {
    pub(super) encoder: Option<wgpu::CommandEncoder>,
    /// The compute pass consecutive dispatches share (untimed ones): a pass
    /// each cost about 50 us more per dispatch on lavapipe
    /// (examples/dispatch_cost.rs). wgpu still places a barrier between
    /// dispatches that touch the same buffer. While it is open the encoder
    /// takes no other command, so every other use ends it first.
    pub(super) pass: Option<wgpu::ComputePass<'static>>,
    pub(super) commands: usize,
    /// Profiling: the timed passes of this batch, in query-pair order.
    pub(super) timed: Vec<(&'static str, &'static str)>,
    pub(super) queries: Option<wgpu::QuerySet>,
    /// The params of this batch's dispatches (device/params.rs).
    pub(super) params: ParamsArena,
}

/// Commands recorded before a batch is submitted on its own (at most one
/// timed pass each).
const MAX_BATCH: usize = MAX_TIMED as usize;

impl Gpu {
    /// Runs `f` with the pending encoder, creating it if needed.
    pub(crate) fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        self.record_in_batch(|enc, _, _| f(enc));
    }

    /// Records one command into the pending batch, with the batch's timed
    /// passes and query set at hand (profiling); submits a full batch.
    pub(super) fn record_in_batch(
        &self,
        f: impl FnOnce(
            &mut wgpu::CommandEncoder,
            &mut Vec<(&'static str, &'static str)>,
            &mut Option<wgpu::QuerySet>,
        ),
    ) {
        let mut guard = self.batch.lock().unwrap();
        let Batch {
            encoder,
            pass,
            commands,
            timed,
            queries,
            ..
        } = &mut *guard;
        *pass = None;
        let enc =
            encoder.get_or_insert_with(|| self.device.create_command_encoder(&Default::default()));
        f(enc, timed, queries);
        *commands += 1;
        if *commands >= MAX_BATCH {
            self.submit(&mut guard);
        }
    }

    /// Records one dispatch into the batch's shared compute pass.
    pub(super) fn record_in_shared_pass(&self, f: &mut dyn FnMut(&mut wgpu::ComputePass<'_>)) {
        let mut guard = self.batch.lock().unwrap();
        let Batch {
            encoder,
            pass,
            commands,
            ..
        } = &mut *guard;
        let pass = pass.get_or_insert_with(|| {
            encoder
                .get_or_insert_with(|| self.device.create_command_encoder(&Default::default()))
                .begin_compute_pass(&Default::default())
                .forget_lifetime()
        });
        f(pass);
        *commands += 1;
        if *commands >= MAX_BATCH {
            self.submit(&mut guard);
        }
    }

    pub(super) fn submit(&self, batch: &mut Batch) {
        // Before the submit: the batch's dispatches read their params from it.
        batch.params.finish(&self.queue);
        batch.pass = None;
        if let Some(mut enc) = batch.encoder.take() {
            self.counters[1].fetch_add(1, Ordering::Relaxed);
            let mut prof = self.profiler.lock().unwrap();
            if let Some(p) = prof.as_mut() {
                p.submitted();
            }
            let timed = std::mem::take(&mut batch.timed);
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
        batch.commands = 0;
    }
}
