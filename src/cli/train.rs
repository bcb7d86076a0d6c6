//! `engine train-sft` and `engine train-reward`: the flags (CommonArgs plus
//! each trainer's own) merged with `--config run.toml` and a resumed
//! checkpoint's config, then the trainer; prints the summary and where
//! everything went.

use anyhow::Result;
use clap::ArgMatches;
use std::sync::Arc;

use engine::train::config::{load_args, TrainArgs};
use engine::train::reward::{train_reward, RewardArgs};
use engine::train::session::RunSummary;
use engine::train::sft::{train_sft, SftArgs};
use engine::Gpu;

/// Prints the end-of-run lines every training command shares.
pub fn print_summary(s: &RunSummary) {
    println!("{s}");
    for (what, p) in [
        ("model", &s.saved.model),
        ("adapter", &s.saved.adapter),
        ("checkpoint", &s.checkpoint),
        ("chart", &s.chart),
    ] {
        if let Some(p) = p {
            println!("{what:<10} {}", p.display());
        }
    }
    if !s.finished {
        if let Some(c) = &s.checkpoint {
            println!("resume with --resume {}", c.display());
        }
    }
    println!("output dir {}", s.out.display());
}

/// The flags of one subcommand with the run file and resumed config merged.
pub fn resolve<T: TrainArgs>(args: T, matches: &ArgMatches) -> Result<T> {
    load_args(args, matches)
}

pub fn sft_cmd(gpu: &Arc<Gpu>, args: SftArgs, matches: &ArgMatches) -> Result<()> {
    let (_, summary) = train_sft(gpu, resolve(args, matches)?)?;
    print_summary(&summary);
    Ok(())
}

pub fn reward_cmd(gpu: &Arc<Gpu>, args: RewardArgs, matches: &ArgMatches) -> Result<()> {
    let (_, summary) = train_reward(gpu, resolve(args, matches)?)?;
    print_summary(&summary);
    Ok(())
}
