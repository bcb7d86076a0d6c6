//! `engine train-tokenizer` and `engine init`: the two steps that start a
//! model from nothing (a byte-level BPE trained on your data, then a randomly
//! initialised GPT-2 / GPT-NeoX / Llama of a chosen size in Hugging Face
//! layout, or an encoder classifier: BERT or DistilBERT with a WordPiece).

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;

use engine::data::bpe::{save_tokenizer, texts_of_file, train_bpe, train_roberta_bpe};
use engine::data::wordpiece::train_wordpiece;
use engine::data::{ChatTemplate, LoadOptions, TEMPLATE_FILE};
use engine::models::checkpoint::SaveDtype;
use engine::models::fresh::{fresh_classifier, fresh_model, ModelShape};
use engine::models::outputs::{refuse_existing_file, refuse_non_empty_dir};
use engine::models::Arch;
use engine::Gpu;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TokenizerKind {
    /// GPT-2's byte-level BPE (for causal LMs).
    Bpe,
    /// BERT's lower-casing WordPiece with [CLS] … [SEP] (for encoder classifiers).
    Wordpiece,
    /// RoBERTa's byte-level BPE with <s> … </s> and <pad> = 1 (for --arch roberta).
    Roberta,
}

#[derive(clap::Args)]
pub struct TrainTokenizerArgs {
    /// JSONL, CSV or TSV files (gzip allowed), comma-separated.
    #[arg(long, required = true, value_delimiter = ',')]
    pub data: Vec<PathBuf>,
    /// Text fields to learn from, comma-separated (default: every string field).
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<String>,
    /// bpe (byte-level, GPT-2's) or wordpiece (BERT's, for `init --arch distilbert|bert`).
    #[arg(long, value_enum, default_value_t = TokenizerKind::Bpe)]
    pub kind: TokenizerKind,
    /// Vocabulary size, special tokens included (and, for bpe, the 256 byte symbols).
    #[arg(long, default_value_t = 4096)]
    pub vocab_size: usize,
    /// Use at most this many rows of each file.
    #[arg(long)]
    pub max_rows: Option<usize>,
    /// Output directory (tokenizer.json is written there).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing tokenizer.json in --out.
    #[arg(long)]
    pub force: bool,
}

pub fn train_tokenizer_cmd(args: &TrainTokenizerArgs) -> Result<()> {
    refuse_existing_file(&args.out.join("tokenizer.json"), "--out", args.force)?;
    let opts = LoadOptions {
        max_rows: args.max_rows,
        ..LoadOptions::default()
    };
    let mut texts = Vec::new();
    for f in &args.data {
        texts.extend(texts_of_file(f, &args.fields, &opts)?);
    }
    let n = texts.len();
    let (tok, kind) = match args.kind {
        TokenizerKind::Bpe => (
            train_bpe(texts.into_iter(), args.vocab_size)?,
            "byte-level BPE",
        ),
        TokenizerKind::Wordpiece => (
            train_wordpiece(texts.into_iter(), args.vocab_size)?,
            "WordPiece",
        ),
        TokenizerKind::Roberta => (
            train_roberta_bpe(texts.into_iter(), args.vocab_size)?,
            "RoBERTa byte-level BPE",
        ),
    };
    save_tokenizer(&tok, &args.out)?;
    println!(
        "trained a {}-token {kind} on {n} texts",
        tok.get_vocab_size(true)
    );
    println!("tokenizer {}", args.out.join("tokenizer.json").display());
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ArchArg {
    Gpt2,
    GptNeox,
    Llama,
    /// A DistilBertForSequenceClassification (labels from --labels).
    Distilbert,
    /// A BertForSequenceClassification (labels from --labels).
    Bert,
    /// A RobertaForSequenceClassification (labels from --labels; give it a
    /// `train-tokenizer --kind roberta`).
    Roberta,
}

#[derive(clap::Args)]
pub struct InitArgs {
    /// gpt2, gpt-neox (Pythia's layout) or llama: a causal LM; distilbert,
    /// bert or roberta: an encoder classifier (give it a `train-tokenizer
    /// --kind wordpiece`, or `--kind roberta` for roberta).
    #[arg(long, value_enum, default_value_t = ArchArg::GptNeox)]
    pub arch: ArchArg,
    /// tokenizer.json (or a directory holding one); it fixes the vocabulary.
    #[arg(long)]
    pub tokenizer: PathBuf,
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// MLP width (default 4 × hidden).
    #[arg(long)]
    pub intermediate: Option<usize>,
    /// Longest sequence in tokens.
    #[arg(long, default_value_t = 256)]
    pub context: usize,
    /// Vocabulary rows (default: the tokenizer's size rounded up to 64).
    #[arg(long)]
    pub vocab_size: Option<usize>,
    /// Class names of an encoder classifier, comma-separated (its id2label).
    #[arg(long, value_delimiter = ',', default_value = "NEGATIVE,POSITIVE")]
    pub labels: Vec<String>,
    /// Chat template stored with the model: gpt2, plain, hh or a JSON file.
    #[arg(long)]
    pub template: Option<String>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output model directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Write into --out even when it exists and is not empty.
    #[arg(long)]
    pub force: bool,
}

pub fn init_cmd(gpu: &Arc<Gpu>, args: &InitArgs) -> Result<()> {
    refuse_non_empty_dir(&args.out, "--out", args.force)?;
    let path = if args.tokenizer.is_dir() {
        args.tokenizer.join("tokenizer.json")
    } else {
        args.tokenizer.clone()
    };
    let tok = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let vocab = tok.get_vocab_size(true);
    let shape = ModelShape {
        arch: match args.arch {
            ArchArg::Gpt2 => Arch::Gpt2,
            ArchArg::GptNeox => Arch::GptNeox,
            ArchArg::Llama => Arch::Llama,
            ArchArg::Distilbert => Arch::DistilBert,
            ArchArg::Bert => Arch::Bert,
            ArchArg::Roberta => Arch::Roberta,
        },
        vocab_size: args.vocab_size.unwrap_or(vocab.div_ceil(64) * 64),
        hidden: args.hidden,
        layers: args.layers,
        heads: args.heads,
        intermediate: args.intermediate.unwrap_or(4 * args.hidden),
        context: args.context,
    };
    let encoder = matches!(
        args.arch,
        ArchArg::Distilbert | ArchArg::Bert | ArchArg::Roberta
    );
    let model = if encoder {
        fresh_classifier(gpu, &shape, tok, &args.labels, args.seed)
    } else {
        fresh_model(gpu, &shape, tok, args.seed)
    };
    let mut model =
        model.with_context(|| format!("initialising a model with {}", path.display()))?;
    if encoder {
        model.save(&args.out, SaveDtype::F32)?;
        let params: usize = model
            .params
            .to_host()?
            .values()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        println!(
            "{params} parameters: {} classifier, {} layers, hidden {}, {} heads, vocab {}, context {}, labels {}",
            model.arch().identity().classifier,
            shape.layers,
            shape.hidden,
            shape.heads,
            shape.vocab_size,
            shape.context,
            args.labels.join(",")
        );
        println!("model     {}", args.out.display());
        return Ok(());
    }
    // A new model has no chat template of its own: engine's gpt2 unless asked.
    let template = match &args.template {
        Some(t) => ChatTemplate::preset_or_file(t)?,
        None => ChatTemplate::gpt2(),
    };
    model.set_chat_template(template.jinja_source());
    model.save(&args.out, SaveDtype::F32)?;
    template.save(&args.out.join(TEMPLATE_FILE))?;
    println!(
        "{} parameters ({} layers, hidden {}, {} heads, vocab {}, context {})",
        shape.param_count(),
        shape.layers,
        shape.hidden,
        shape.heads,
        shape.vocab_size,
        shape.context
    );
    println!("model     {}", args.out.display());
    Ok(())
}
