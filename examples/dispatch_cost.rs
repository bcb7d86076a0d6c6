//! What one dispatch costs the host, piece by piece, on this adapter.
//!
//! `cargo run --release --example dispatch_cost [-- N]` times N tiny
//! dispatches four ways, each back to back with one sync at the end:
//! - engine: `axpy` on 4 floats, the whole dispatch path (pipeline lookup,
//!   params slice, bind group, one compute pass);
//! - and the wgpu calls that path makes, alone: a uniform buffer of its own
//!   (`create_buffer_init`, what each dispatch did before device/params.rs),
//!   a bind group, one compute pass per dispatch, and all N dispatches in one
//!   pass.
//!
//! On a GPU the device time of such a dispatch is a few microseconds, so the
//! rates say how much of a decoding step is host overhead.

use anyhow::Result;
use engine::tensor::axpy::axpy;
use engine::{Gpu, GpuOptions, Tensor};
use std::time::Instant;
use wgpu::util::DeviceExt;

const SHADER: &str = "
@group(0) @binding(0) var<uniform> p: vec4<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(4)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
    y[g.x] += p.x;
}";

fn per_call_us(n: usize, t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() -> Result<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(5000), |a| a.parse())?;
    let gpu = Gpu::new(&GpuOptions::from_env()?)?;
    println!("adapter: {}", gpu.describe());
    let x = Tensor::from_f32(&gpu, &[4], &[1.0; 4])?;
    let y = Tensor::from_f32(&gpu, &[4], &[0.0; 4])?;
    for round in 0..2 {
        axpy(&y, 1.0, &x)?;
        gpu.sync()?;
        let t = Instant::now();
        for _ in 0..n {
            axpy(&y, 1.0, &x)?;
        }
        let record = per_call_us(n, t);
        gpu.sync()?;
        println!(
            "round {round}: engine axpy: {record:.1} us/dispatch to record, {:.1} with the run",
            per_call_us(n, t)
        );
    }

    let dev = &gpu.device;
    let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: None,
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let layout = pipeline.get_bind_group_layout(0);
    let storage = y.buffer();
    let params = [1.0f32, 0.0, 0.0, 0.0];
    let uniform = |_: usize| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(&params),
            usage: wgpu::BufferUsages::UNIFORM,
        })
    };
    let t = Instant::now();
    let uniforms: Vec<_> = (0..n).map(uniform).collect();
    println!(
        "create_buffer_init (16 B uniform): {:.1} us",
        per_call_us(n, t)
    );
    let t = Instant::now();
    let groups: Vec<_> = uniforms
        .iter()
        .map(|u| {
            dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: u.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: storage,
                            offset: 0,
                            size: std::num::NonZeroU64::new(16),
                        }),
                    },
                ],
            })
        })
        .collect();
    println!("create_bind_group: {:.1} us", per_call_us(n, t));
    for one_pass in [false, true] {
        gpu.sync()?;
        let t = Instant::now();
        let mut enc = dev.create_command_encoder(&Default::default());
        if one_pass {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            for g in &groups {
                pass.set_bind_group(0, g, &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
        } else {
            for g in &groups {
                let mut pass = enc.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, g, &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
        }
        let record = per_call_us(n, t);
        gpu.queue.submit([enc.finish()]);
        let submit = per_call_us(n, t);
        gpu.sync()?;
        let what = if one_pass {
            "one pass for all"
        } else {
            "a pass each"
        };
        println!(
            "{what}: {record:.1} us/dispatch to record, {submit:.1} with the submit, {:.1} with the run",
            per_call_us(n, t)
        );
    }
    Ok(())
}
