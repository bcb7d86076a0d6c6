use anyhow::Result;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Continue a prompt with a Hugging Face GPT-2 / GPT-NeoX model directory.
    Generate(cli::models::GenerateArgs),
    /// Chat interactively, keeping the conversation history.
    Chat(cli::chat::ChatArgs),
    /// Mean next-token NLL and perplexity of a text file.
    Perplexity(cli::models::PerplexityArgs),
    /// A sequence classifier's logits, label and scores for texts.
    Classify(cli::classify::ClassifyArgs),
    /// Architecture, parameter count and memory per storage dtype.
    Info(cli::models::InfoArgs),
    /// Re-save a model directory in Hugging Face layout (optionally as f16/bf16).
    Export(cli::models::ExportArgs),
    /// Supervised fine-tuning (full, LoRA or QLoRA) on prompt/completion,
    /// text or conversation data.
    TrainSft(engine::train::sft::SftArgs),
    /// Train a reward model (Bradley-Terry on preferences, or a binary
    /// classifier on labelled texts).
    TrainReward(engine::train::reward::RewardArgs),
    /// PPO (TRL semantics) against a reward model or a simple reward
    /// function, full fine-tuning or LoRA.
    TrainPpo(engine::train::ppo::PpoArgs),
    /// Direct alignment from preferences: DPO, IPO, KTO or kto_pair.
    TrainDpo(engine::train::dpo::DpoArgs),
    /// Sample n responses per prompt, keep the reward model's best (JSONL).
    BestOfN(engine::train::sample::BestOfNArgs),
    /// Reward, ROUGE, distinct-n, length and KL of a model's responses.
    Eval(engine::train::sample::EvalArgs),
    /// Train a byte-level BPE tokenizer (tokenizer.json) on text files.
    TrainTokenizer(cli::build::TrainTokenizerArgs),
    /// Build the embedded default models from nothing (data, tokenizer, SFT,
    /// reward model): `engine pipeline --preset support-tiny`.
    Pipeline(engine::demo::pipeline::PipelineArgs),
    /// A new, randomly initialised GPT-2 / GPT-NeoX model directory.
    Init(cli::build::InitArgs),
    /// Generate datasets (`data support`: the customer-support RLHF data).
    Data(cli::data::DataArgs),
    /// A run's TRL equivalent: config kwargs, data mapping, launch lines
    /// (`export-run --to trl RUN_DIR`).
    ExportRun(cli::export_run::ExportRunArgs),
}

fn main() {
    // Training commands need the matches to tell given flags from defaults
    // (flags override the --config run file).
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = run(cli, &matches) {
        // The cause chain names the file, tensor or row; a backtrace helps no user.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli, matches: &ArgMatches) -> Result<()> {
    let mut opts = engine::GpuOptions::from_env()?;
    opts.device_filter = cli.device.clone();
    if let Some(b) = &cli.backend {
        opts.backends = Some(engine::device::parse_backends(b)?);
    }
    // The GPU is opened only by the commands that use it.
    let gpu = || engine::Gpu::new(&opts);
    // The matches of the subcommand clap dispatched (the trainers' flags).
    let sub = matches.subcommand().map_or(matches, |(_, m)| m);
    match cli.command {
        Command::Devices => cli::devices(&opts),
        Command::Bench(args) => cli::bench(&opts, &args),
        Command::Generate(a) => cli::models::generate_cmd(&gpu()?, &a),
        Command::Chat(a) => cli::chat::chat_cmd(&gpu()?, &a),
        Command::Perplexity(a) => cli::models::perplexity_cmd(&gpu()?, &a),
        Command::Classify(a) => cli::classify::classify_cmd(&gpu()?, &a),
        Command::Info(a) => cli::models::info_cmd(&gpu()?, &a),
        Command::Export(a) => cli::models::export_cmd(&gpu()?, &a),
        Command::TrainSft(a) => cli::train::sft_cmd(&gpu()?, a, sub),
        Command::TrainReward(a) => cli::train::reward_cmd(&gpu()?, a, sub),
        Command::TrainPpo(a) => cli::train::ppo_cmd(&gpu()?, a, sub),
        Command::TrainDpo(a) => cli::train::dpo_cmd(&gpu()?, a, sub),
        Command::BestOfN(a) => cli::train::best_of_n_cmd(&gpu()?, a, sub),
        Command::Eval(a) => cli::train::eval_cmd(&gpu()?, a, sub),
        Command::TrainTokenizer(a) => cli::build::train_tokenizer_cmd(&a),
        Command::Pipeline(a) => engine::demo::pipeline::run_pipeline(&gpu()?, &a).map(|_| ()),
        Command::Init(a) => cli::build::init_cmd(&gpu()?, &a),
        Command::Data(a) => cli::data::data_cmd(&a),
        Command::ExportRun(a) => cli::export_run::export_run_cmd(&a),
    }
}
