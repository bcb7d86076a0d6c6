//! Criterion benchmarks: the same cases as `engine bench --quick`, each timed
//! through completion on fresh inputs. Sample counts are kept small because a
//! CPU adapter (llvmpipe) is slow; throughput is reported per case.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::bench::{cases, time_run, Work};
use engine::Gpu;
use std::time::Duration;

fn kernels(c: &mut Criterion) {
    let gpu = Gpu::shared().expect("no GPU adapter for the benchmarks (install Mesa: see README)");
    eprintln!("adapter: {}", gpu.describe());
    let mut group = c.benchmark_group("kernels");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    for case in cases(true) {
        match case.work {
            Work::Flops(f) => group.throughput(Throughput::Elements(f as u64)),
            Work::Bytes(b) => group.throughput(Throughput::Bytes(b as u64)),
        };
        group.bench_function(format!("{}/{}", case.op, case.shape), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let mut run = (case.prepare)(&gpu, i).unwrap();
                    total += Duration::from_secs_f64(time_run(&gpu, &mut run).unwrap() / 1e3);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);
