//! Opt-in profiling (`ENGINE_PROFILE=1`, or [`Gpu::start_profile`](super::Gpu::start_profile)):
//! device time per kernel from timestamp queries, and per phase the
//! dispatches, submits, read-backs and wall time.
//!
//! Every dispatch is its own compute pass (`kernel::Prepared::record`), so
//! with `TIMESTAMP_QUERY` each pass gets a begin and an end timestamp in the
//! pending batch's query set. When the batch is submitted the set is
//! resolved and read back at once (a blocking wait per submit: profiled runs
//! are slower, but each pass's own time is what the table shows). Without
//! the feature, kernels are only counted and phases are timed by the host
//! clock, the device waited on at each phase boundary.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Instant;

/// Passes per batch that can be timed: two queries each. `Gpu` submits a
/// batch at this many commands anyway.
pub(crate) const MAX_TIMED: u32 = super::batch::MAX_BATCH as u32;

type Name = (&'static str, &'static str);

#[derive(Default, Clone, Copy)]
struct KernelStat {
    count: u64,
    ns: f64,
}

#[derive(Default, Clone, Copy)]
struct PhaseStat {
    dispatches: u64,
    submits: u64,
    reads: u64,
    bytes_read: u64,
    device_ns: f64,
    wall_s: f64,
}

/// Totals since profiling started.
pub(crate) struct Profiler {
    pub(crate) timestamps: bool,
    kernels: HashMap<(usize, Name), KernelStat>,
    phases: Vec<(&'static str, PhaseStat)>,
    phase: usize,
    since: Instant,
}

impl Profiler {
    pub(crate) fn new(timestamps: bool) -> Self {
        Profiler {
            timestamps,
            kernels: HashMap::new(),
            phases: vec![("(none)", PhaseStat::default())],
            phase: 0,
            since: Instant::now(),
        }
    }

    fn current(&mut self) -> &mut PhaseStat {
        &mut self.phases[self.phase].1
    }

    /// Closes the current phase's wall time and makes `name` current.
    pub(crate) fn set_phase(&mut self, name: &'static str) {
        let now = Instant::now();
        self.current().wall_s += (now - self.since).as_secs_f64();
        self.since = now;
        self.phase = match self.phases.iter().position(|(n, _)| *n == name) {
            Some(i) => i,
            None => {
                self.phases.push((name, PhaseStat::default()));
                self.phases.len() - 1
            }
        };
    }

    pub(crate) fn dispatched(&mut self, name: Name) {
        self.current().dispatches += 1;
        self.kernels.entry((self.phase, name)).or_default().count += 1;
    }

    pub(crate) fn submitted(&mut self) {
        self.current().submits += 1;
    }

    pub(crate) fn read(&mut self, bytes: u64) {
        let p = self.current();
        p.reads += 1;
        p.bytes_read += bytes;
    }

    /// Adds the resolved `[begin, end]` ticks of each pass named in `names`.
    pub(crate) fn timed(&mut self, names: &[Name], ticks: &[u64], period_ns: f32) {
        for (name, t) in names.iter().zip(ticks.chunks_exact(2)) {
            let ns = t[1].saturating_sub(t[0]) as f64 * f64::from(period_ns);
            self.kernels.entry((self.phase, *name)).or_default().ns += ns;
            self.current().device_ns += ns;
        }
    }

    /// The kernel table (by device time, else by count) and the phase table.
    pub(crate) fn table(&mut self) -> String {
        self.set_phase(self.phases[self.phase].0);
        let mut s = kernel_table(
            "profile by kernel",
            self.timestamps,
            self.kernels.iter().map(|((_, n), k)| (*n, *k)),
            usize::MAX,
        );
        let _ = writeln!(s, "\nprofile by phase");
        let _ = writeln!(
            s,
            "{:<16} {:>10} {:>8} {:>8} {:>12} {:>11} {:>10}",
            "phase", "dispatches", "submits", "reads", "bytes read", "device ms", "wall s"
        );
        for (name, p) in &self.phases {
            if p.dispatches + p.submits + p.reads == 0 && p.wall_s < 1e-3 {
                continue;
            }
            let _ = writeln!(
                s,
                "{:<16} {:>10} {:>8} {:>8} {:>12} {:>11.1} {:>10.3}",
                name,
                p.dispatches,
                p.submits,
                p.reads,
                p.bytes_read,
                p.device_ns / 1e6,
                p.wall_s
            );
        }
        for (i, (phase, p)) in self.phases.iter().enumerate() {
            if p.dispatches == 0 {
                continue;
            }
            let rows = self
                .kernels
                .iter()
                .filter(|((at, _), _)| *at == i)
                .map(|((_, n), k)| (*n, *k));
            s.push('\n');
            s.push_str(&kernel_table(
                &format!("phase {phase}: top kernels"),
                self.timestamps,
                rows,
                8,
            ));
        }
        s
    }
}

/// Kernels merged by name, the `top` largest by device time (else count).
fn kernel_table(
    title: &str,
    timestamps: bool,
    stats: impl Iterator<Item = (Name, KernelStat)>,
    top: usize,
) -> String {
    let mut merged: HashMap<Name, KernelStat> = HashMap::new();
    for (n, k) in stats {
        let m = merged.entry(n).or_default();
        m.count += k.count;
        m.ns += k.ns;
    }
    let mut rows: Vec<(Name, KernelStat)> = merged.into_iter().collect();
    rows.sort_by(|a, b| b.1.ns.total_cmp(&a.1.ns).then(b.1.count.cmp(&a.1.count)));
    let total_ns: f64 = rows.iter().map(|r| r.1.ns).sum();
    let total_n: u64 = rows.iter().map(|r| r.1.count).sum();
    let mut s = String::new();
    let clock = if timestamps {
        "device timestamps"
    } else {
        "no timestamp queries: counts only"
    };
    let _ = writeln!(s, "{title} ({clock})");
    let _ = writeln!(
        s,
        "{:<44} {:>9} {:>11} {:>7} {:>9}",
        "kernel", "count", "total ms", "share", "us/call"
    );
    for ((shader, entry), k) in rows.iter().take(top) {
        let share = if total_ns > 0.0 {
            100.0 * k.ns / total_ns
        } else {
            100.0 * k.count as f64 / total_n.max(1) as f64
        };
        let _ = writeln!(
            s,
            "{:<44} {:>9} {:>11.1} {:>6.1}% {:>9.1}",
            format!("{shader}::{entry}"),
            k.count,
            k.ns / 1e6,
            share,
            k.ns / 1e3 / k.count.max(1) as f64
        );
    }
    let _ = writeln!(
        s,
        "{:<44} {:>9} {:>11.1}",
        "all kernels",
        total_n,
        total_ns / 1e6
    );
    s
}

impl super::Gpu {
    /// Starts (or restarts) profiling: kernels are timed from here on when
    /// the adapter has timestamp queries.
    pub fn start_profile(&self) {
        let timestamps = self.features.contains(wgpu::Features::TIMESTAMP_QUERY);
        *self.profiler.lock().unwrap() = Some(Profiler::new(timestamps));
    }

    pub fn is_profiling(&self) -> bool {
        self.profiler.lock().unwrap().is_some()
    }

    /// When profiling: waits for the device, so that its work counts in the
    /// phase that recorded it, and makes `name` the current phase.
    pub fn profile_phase(&self, name: &'static str) -> anyhow::Result<()> {
        if self.is_profiling() {
            self.sync()?;
            if let Some(p) = self.profiler.lock().unwrap().as_mut() {
                p.set_phase(name);
            }
        }
        Ok(())
    }

    /// The tables so far (None when not profiling).
    pub fn profile_table(&self) -> anyhow::Result<Option<String>> {
        if !self.is_profiling() {
            return Ok(None);
        }
        self.sync()?;
        Ok(self.profiler.lock().unwrap().as_mut().map(Profiler::table))
    }

    /// Records one dispatch: into the batch's shared compute pass, or, when
    /// profiling on an adapter with timestamp queries, into a pass of its own
    /// that writes a begin and an end timestamp.
    pub(super) fn record_timed_pass(
        &self,
        name: Name,
        f: &mut dyn FnMut(&mut wgpu::ComputePass<'_>),
    ) {
        let mut timed = false;
        if let Some(p) = self.profiler.lock().unwrap().as_mut() {
            p.dispatched(name);
            timed = p.timestamps;
        }
        if !timed {
            self.record_in_shared_pass(f);
            return;
        }
        self.record_in_batch(|enc, timed, queries| {
            let queries = queries.get_or_insert_with(|| {
                self.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * MAX_TIMED,
                })
            });
            let at = 2 * timed.len() as u32;
            timed.push(name);
            f(&mut enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: queries,
                    beginning_of_pass_write_index: Some(at),
                    end_of_pass_write_index: Some(at + 1),
                }),
            }));
        });
    }

    /// Records the resolution of the first `passes` query pairs into a
    /// buffer the host can map once the batch is done.
    pub(super) fn resolve_timestamps(
        &self,
        enc: &mut wgpu::CommandEncoder,
        queries: &wgpu::QuerySet,
        passes: usize,
    ) -> wgpu::Buffer {
        let bytes = 16 * passes as u64;
        let buffer = |usage| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile"),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let resolved = buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
        let staging = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
        enc.resolve_query_set(queries, 0..2 * passes as u32, &resolved, 0);
        enc.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
        staging
    }
}
