//! `engine data ...`: dataset generators.

use anyhow::Result;
use engine::data::support::{generate, write_splits, SupportOptions, TONE_FILE};
use engine::train::config::bounds;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// The project's customer-support RLHF data: SFT, reward pairs, KTO,
    /// PPO prompts and held-out eval, with good, sensitive and rude replies.
    Support(SupportArgs),
}

#[derive(clap::Args)]
pub struct SupportArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Write into --out even when it exists and is not empty.
    #[arg(long)]
    pub force: bool,
    #[arg(long, default_value_t = SupportOptions::default().seed)]
    pub seed: u64,
    /// SFT rows.
    #[arg(long, default_value_t = SupportOptions::default().sft)]
    pub sft: usize,
    /// Preference pairs (chosen good; rejected sensitive, rude, or a quarter
    /// garbled: one sentence broken).
    #[arg(long, default_value_t = SupportOptions::default().pairs)]
    pub pairs: usize,
    /// KTO rows (half desirable).
    #[arg(long, default_value_t = SupportOptions::default().kto)]
    pub kto: usize,
    /// Distinct PPO prompts.
    #[arg(long, default_value_t = SupportOptions::default().prompts)]
    pub prompts: usize,
    /// Held-out eval prompts with good reference replies.
    #[arg(long, default_value_t = SupportOptions::default().eval)]
    pub eval: usize,
    /// Fraction of SFT completions that are sensitive or rude (2:1).
    #[arg(long, default_value_t = SupportOptions::default().unsafe_fraction, value_parser = bounds::unit::<f64>)]
    pub unsafe_fraction: f64,
    /// Fraction of the pairs whose rejected reply is a garbled good one (one
    /// sentence spliced, cut or stuttered), so a reward model learns fluency.
    #[arg(long, default_value_t = SupportOptions::default().garbled_pairs, value_parser = bounds::unit::<f64>)]
    pub garbled_pairs: f64,
    /// Rude/polite labelled transcripts for a tone classifier (tone.jsonl:
    /// `text`, `label` 0 = polite, 1 = rude; half rude). 0: none.
    #[arg(long, default_value_t = SupportOptions::default().tone)]
    pub tone: usize,
}

pub fn data_cmd(args: &DataArgs) -> Result<()> {
    match &args.command {
        DataCommand::Support(a) => support_cmd(a),
    }
}

fn support_cmd(a: &SupportArgs) -> Result<()> {
    engine::models::outputs::refuse_non_empty_dir(&a.out, "--out", a.force)?;
    let opts = SupportOptions {
        seed: a.seed,
        sft: a.sft,
        pairs: a.pairs,
        kto: a.kto,
        prompts: a.prompts,
        eval: a.eval,
        unsafe_fraction: a.unsafe_fraction,
        garbled_pairs: a.garbled_pairs,
        tone: a.tone,
    };
    let data = generate(&opts)?;
    let counts = [
        data.sft.len(),
        data.pairs.len(),
        data.kto.len(),
        data.prompts.len(),
        data.eval.len(),
    ];
    let paths = write_splits(&a.out, &data)?;
    for (i, path) in paths.iter().enumerate() {
        match counts.get(i) {
            Some(n) => println!("wrote {} ({n} rows)", path.display()),
            None if path.ends_with(TONE_FILE) => {
                println!("wrote {} ({} rows)", path.display(), data.tone.len())
            }
            None => println!("wrote {}", path.display()),
        }
    }
    Ok(())
}
