//! Subcommand implementations for the `engine` binary.

pub mod build;
pub mod chat;
pub mod classify;
pub mod data;
pub mod export_run;
pub mod models;
pub mod plan;
pub mod train;

use anyhow::Result;
use engine::device::{compute_support, describe, list_adapters};
use engine::{Gpu, GpuOptions};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// A short run (about a minute on llvmpipe) that still includes matmul at 1024³.
    #[arg(long)]
    pub quick: bool,
    /// One JSON object per line on stdout; the adapter line goes to stderr.
    #[arg(long)]
    pub json: bool,
    /// Run only the cases whose op name starts with this (repeatable, e.g.
    /// `--only rmsnorm --only gqa`); the two ceilings always run.
    #[arg(long, value_name = "OP")]
    pub only: Vec<String>,
    /// Time PPO steps at TRL 0.11's example shape (seconds per phase, MFU)
    /// instead of the kernels.
    #[arg(long)]
    pub ppo: bool,
}

pub fn devices(opts: &GpuOptions) -> Result<()> {
    let adapters = list_adapters(opts.backends);
    if adapters.is_empty() {
        anyhow::bail!(
            "no adapters found (install Mesa: libegl1-mesa for GL, mesa-vulkan-drivers for Vulkan)"
        );
    }
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let l = a.limits();
        let f = a.features();
        println!("[{i}] {}", describe(&info));
        if let Err(why) = compute_support(&info) {
            println!("    compute shaders       no: {why}");
        }
        println!("    max buffer            {} bytes", l.max_buffer_size);
        println!(
            "    max storage binding   {} bytes",
            l.max_storage_buffer_binding_size
        );
        println!(
            "    workgroup storage     {} bytes",
            l.max_compute_workgroup_storage_size
        );
        println!(
            "    invocations/workgroup {}",
            l.max_compute_invocations_per_workgroup
        );
        println!(
            "    workgroup size        {}x{}x{}",
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_workgroup_size_z
        );
        println!(
            "    storage buffers/stage {}",
            l.max_storage_buffers_per_shader_stage
        );
        println!(
            "    features              shader-f16={} subgroups={} timestamp-query={}",
            f.contains(wgpu::Features::SHADER_F16),
            f.contains(wgpu::Features::SUBGROUP),
            f.contains(wgpu::Features::TIMESTAMP_QUERY)
        );
    }
    let gpu = Gpu::new(opts)?;
    println!("selected: {}", gpu.describe());
    Ok(())
}

pub fn bench(opts: &GpuOptions, args: &BenchArgs) -> Result<()> {
    let gpu = Gpu::new(opts)?;
    engine::bench::run(&gpu, args.quick, args.json, &args.only, args.ppo)
}
