//! `engine train-sft`, `train-reward`, `train-ppo`, `train-dpo`, `best-of-n`
//! and `eval`: the flags (CommonArgs plus
//! each trainer's own) merged with `--config run.toml` and a resumed
//! checkpoint's config, then the trainer; prints the summary and where
//! everything went.

use anyhow::Result;
use clap::ArgMatches;
use std::path::PathBuf;
use std::sync::Arc;

use engine::train::config::run_file::{load_args, merge_args, RunArgs};
use engine::train::dpo::{train_dpo, DpoArgs};
use engine::train::driver::RlhfSummary;
use engine::train::ppo::{train_ppo, PpoArgs};
use engine::train::reward::{train_reward, RewardArgs};
use engine::train::run::SavedModel;
use engine::train::sample::{run_best_of_n, run_eval, BestOfNArgs, EvalArgs};
use engine::train::session::RunSummary;
use engine::train::sft::{train_sft, SftArgs};
use engine::Gpu;

/// Prints the end-of-run lines every training command shares.
pub fn print_summary(s: &RunSummary) {
    println!("{s}");
    print_outputs(&s.saved, &s.checkpoint, &s.chart, s.finished);
    println!("output dir {}", s.out.display());
}

/// Where the model, adapter, checkpoint and chart went, and how to resume
/// an unfinished run.
fn print_outputs(
    saved: &SavedModel,
    checkpoint: &Option<PathBuf>,
    chart: &Option<PathBuf>,
    finished: bool,
) {
    for (what, p) in [
        ("model", &saved.model),
        ("adapter", &saved.adapter),
        ("checkpoint", checkpoint),
        ("chart", chart),
    ] {
        if let Some(p) = p {
            println!("{what:<10} {}", p.display());
        }
    }
    if let (false, Some(c)) = (finished, checkpoint) {
        println!("resume with --resume {}", c.display());
    }
}

/// The flags of one subcommand with the run file and resumed config merged.
pub fn resolve<T: RunArgs>(args: T, matches: &ArgMatches) -> Result<T> {
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

fn print_rlhf(s: &RlhfSummary) {
    println!("{s}");
    let run = &s.run;
    print_outputs(&run.saved, &run.checkpoint, &run.chart, run.finished);
    println!("metrics    {}", s.metrics().display());
    println!("output dir {}", run.out.display());
}

pub fn ppo_cmd(gpu: &Arc<Gpu>, args: PpoArgs, matches: &ArgMatches) -> Result<()> {
    // The demo runs when neither the flags nor a --config file name a model,
    // a reward or a run to resume (checked before validation: the demo's
    // own run file supplies settings such as the LoRA rank).
    let merged = merge_args(args.clone(), matches)?;
    if engine::demo::ppo_default::is_demo(&merged) {
        let report = engine::demo::ppo_default::run_default_ppo(gpu, args, matches)?;
        println!("report: {}", report.display());
        return Ok(());
    }
    merged.validate()?;
    let (_, summary) = train_ppo(gpu, merged)?;
    print_rlhf(&summary);
    Ok(())
}

pub fn dpo_cmd(gpu: &Arc<Gpu>, args: DpoArgs, matches: &ArgMatches) -> Result<()> {
    let (_, summary) = train_dpo(gpu, resolve(args, matches)?)?;
    print_rlhf(&summary);
    Ok(())
}

pub fn best_of_n_cmd(gpu: &Arc<Gpu>, args: BestOfNArgs, matches: &ArgMatches) -> Result<()> {
    let args = resolve(args, matches)?;
    let (r, written) = run_best_of_n(gpu, &args)?;
    println!(
        "best-of-{}: {} prompts, mean best score {:.4} vs mean score {:.4} ({:+.4})",
        r.n,
        r.samples.len(),
        r.mean_best,
        r.mean_score,
        r.mean_best - r.mean_score
    );
    for (name, mean) in &r.reward_components {
        println!("reward component {name}: mean {mean:.4}");
    }
    if r.blank > 0 {
        println!(
            "{} prompts had a blank best completion (not written)",
            r.blank
        );
    }
    if let Some(out) = &args.out {
        println!("wrote {written} rows to {}", out.display());
    }
    Ok(())
}

pub fn eval_cmd(gpu: &Arc<Gpu>, args: EvalArgs, matches: &ArgMatches) -> Result<()> {
    let args = resolve(args, matches)?;
    let r = run_eval(gpu, &args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r.to_json())?);
        return Ok(());
    }
    println!("prompts    {}", r.prompts);
    for (k, v) in r.named() {
        println!("{k:<24} {v:.6}");
    }
    for (name, v) in &r.reward_components {
        println!("{:<24} {v:.6}", format!("eval/reward_component/{name}"));
    }
    if r.kl.is_none() {
        println!("(no KL: pass --adapter DIR or --reference-model DIR)");
    }
    Ok(())
}
