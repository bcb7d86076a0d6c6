//! `engine classify`: a sequence classifier's logits, label and scores for
//! texts, tokenized as transformers' `tokenizer(text, truncation=True,
//! max_length=N)` does (special tokens included).

use anyhow::{ensure, Result};
use std::path::PathBuf;
use std::sync::Arc;

use engine::data::bpe::texts_of_file;
use engine::data::LoadOptions;
use engine::models::classifier::scores;
use engine::models::CausalLm;
use engine::Gpu;

#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// A sequence-classifier directory (BERT / DistilBERT / RoBERTa, or a
    /// GPT-2 / NeoX / Llama `*ForSequenceClassification`).
    #[arg(long)]
    pub model: PathBuf,
    /// One text to classify.
    #[arg(long, conflicts_with = "data", required_unless_present = "data")]
    pub text: Option<String>,
    /// A JSONL/CSV file (gzip allowed) whose `text` field is classified, row by row.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Truncate inputs to this many tokens, special tokens included
    /// (default: the tokenizer's model_max_length, else the model's positions).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// One JSON object per input: {"logits": [...], "label": ..., "scores": [...]}.
    #[arg(long)]
    pub json: bool,
}

pub fn classify_cmd(gpu: &Arc<Gpu>, a: &ClassifyArgs) -> Result<()> {
    let model = CausalLm::load(gpu, &a.model)?;
    ensure!(
        model.head == engine::models::lm::Head::Reward,
        "{}: not a sequence classifier (no classification head)",
        a.model.display()
    );
    let texts = match (&a.text, &a.data) {
        (Some(t), _) => vec![t.clone()],
        (None, Some(path)) => texts_of_file(path, &["text".into()], &LoadOptions::default())?,
        (None, None) => unreachable!("clap requires --text or --data"),
    };
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let logits = model.classify_texts(&refs, a.max_length)?;
    let names = model.cfg.id2label();
    let problem = model.cfg.problem_type()?;
    for (text, l) in texts.iter().zip(&logits) {
        let s = scores(l, problem);
        let best = (0..l.len())
            .max_by(|&i, &j| l[i].total_cmp(&l[j]))
            .unwrap_or(0);
        if a.json {
            let row = serde_json::json!({"logits": l, "label": names[best], "scores": s});
            println!("{row}");
        } else {
            let short: String = text.chars().take(60).collect();
            println!("{}\t{:.4}\t{short}", names[best], s[best]);
        }
    }
    Ok(())
}
