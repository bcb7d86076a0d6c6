//! Interleaved timings of selected `engine bench` cases, for comparing kernels
//! on a noisy shared machine: every round times each selected case once (a
//! median of `runs` runs on fresh inputs), rounds alternate A B A B, and the
//! report is the median over rounds.
//!
//! `cargo run --release --example bench_ops -- [--rounds R] [--runs N] OP...`
//! where each OP selects the cases whose op name equals it (`all` = every case);
//! `--shape S` keeps only cases whose shape starts with S (e.g. `256x`).

use anyhow::{bail, Result};
use engine::bench::{cases, median_ms, Work};
use engine::{Gpu, GpuOptions};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let mut rounds = 5;
    let mut runs = 5;
    let mut ops = Vec::new();
    let mut shape = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().unwrap_or_default().parse()?,
            "--runs" => runs = args.next().unwrap_or_default().parse()?,
            "--shape" => shape = args.next().unwrap_or_default(),
            _ => ops.push(a),
        }
    }
    if ops.is_empty() {
        bail!("name at least one bench op (or `all`)");
    }
    let gpu = Gpu::new(&GpuOptions::from_env()?)?;
    eprintln!("adapter: {}", gpu.describe());
    let selected: Vec<_> = cases(false)
        .into_iter()
        .filter(|c| ops.iter().any(|o| o == "all" || o == c.op) && c.shape.starts_with(&shape))
        .collect();
    if selected.is_empty() {
        bail!("no bench case named {ops:?}");
    }
    let mut times = vec![Vec::new(); selected.len()];
    for round in 0..rounds {
        for (c, t) in selected.iter().zip(&mut times) {
            let ms = median_ms(&gpu, c, runs)?;
            eprintln!("round {round} {:<22} {:<22} {ms:>9.3} ms", c.op, c.shape);
            t.push(ms);
        }
    }
    println!(
        "{:<22} {:<22} {:>10} {:>16}",
        "op", "shape", "median ms", "rate"
    );
    for (c, t) in selected.iter().zip(&mut times) {
        let ms = median(t);
        let rate = match c.work {
            Work::Flops(f) => format!("{:.2} GFLOP/s", f / ms / 1e6),
            Work::Bytes(b) => format!("{:.2} GB/s", b / ms / 1e6),
        };
        println!("{:<22} {:<22} {ms:>10.3} {rate:>16}", c.op, c.shape);
    }
    Ok(())
}
