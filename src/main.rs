use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "engine",
    version,
    about = "GPU compute engine for RLHF on any wgpu adapter"
)]
struct Cli {
    /// Pick the adapter whose name contains this text (also ENGINE_DEVICE).
    #[arg(long, global = true, env = "ENGINE_DEVICE")]
    device: Option<String>,
    /// Restrict to one backend: vulkan, metal, dx12 or gl (also WGPU_BACKEND).
    #[arg(long, global = true, env = "WGPU_BACKEND")]
    backend: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter with its backend, type, driver, limits and features.
    Devices,
    /// Benchmark the kernels against the adapter's measured ceilings.
    Bench(cli::BenchArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut opts = engine::GpuOptions::from_env()?;
    opts.device_filter = cli.device.clone();
    if let Some(b) = &cli.backend {
        opts.backends = Some(engine::device::parse_backends(b)?);
    }
    match cli.command {
        Command::Devices => cli::devices(&opts),
        Command::Bench(args) => cli::bench(&opts, &args),
    }
}
