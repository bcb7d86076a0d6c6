//! The opt-in profiler (`ENGINE_PROFILE=1`): after a few dispatches in a
//! named phase, its tables name each kernel with its count, and with device
//! time where the adapter has timestamp queries (lavapipe and llvmpipe do).

use engine::ops::gelu::{gelu_forward, GeluKind};
use engine::{Gpu, GpuOptions, Tensor};

#[test]
fn profile_tables_count_and_time_each_kernel_by_phase() {
    // Its own device, so the tests sharing `Gpu::shared` are not profiled.
    let gpu = Gpu::new(&GpuOptions::from_env().unwrap()).unwrap();
    assert_eq!(gpu.profile_table().unwrap(), None, "off unless asked for");
    gpu.start_profile();
    gpu.profile_phase("gelu phase").unwrap();
    let x = Tensor::from_f32(&gpu, &[3, 37], &vec![0.5; 111]).unwrap();
    for _ in 0..3 {
        gelu_forward(&x, GeluKind::Tanh).unwrap();
    }
    let y = gelu_forward(&x, GeluKind::Tanh).unwrap().to_vec().unwrap();
    assert_eq!(y.len(), 111);
    let table = gpu.profile_table().unwrap().expect("profiling is on");
    let timed = gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY);
    let row = table
        .lines()
        .find(|l| l.starts_with("gelu::gelu_forward"))
        .unwrap_or_else(|| panic!("no gelu row in\n{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "4", "count in {row}");
    if timed {
        let ms: f64 = cols[2].parse().unwrap();
        let us_per_call: f64 = cols[4].parse().unwrap();
        assert!(ms >= 0.0 && us_per_call > 0.0, "no device time in {row}");
    }
    let phase = table
        .lines()
        .find(|l| l.starts_with("gelu phase"))
        .unwrap_or_else(|| panic!("no phase row in\n{table}"));
    let cols: Vec<&str> = phase.split_whitespace().collect();
    // phase name (two words), dispatches, submits, reads, bytes read.
    assert_eq!(cols[2], "4", "dispatches in {phase}");
    assert_eq!(cols[4], "1", "one read-back in {phase}");
    assert_eq!(cols[5], "444", "bytes read in {phase}");
    assert!(table.contains("phase gelu phase: top kernels"), "{table}");
}
