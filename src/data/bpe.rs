//! Training a small byte-level BPE tokenizer (GPT-2 style) with the
//! `tokenizers` crate, for models engine builds from scratch (the embedded
//! support-tiny default, the IMDB example).
//!
//! The result is a plain Hugging Face `tokenizer.json`: byte-level
//! pre-tokenizer without a prefix space (as GPT-2), byte-level decoder, and
//! the special tokens first (`<|endoftext|>` = 0, `<|padding|>` = 1, as in
//! GPT-NeoX), so every ChatTemplate that ends turns with `<|endoftext|>` works.
//!
//! [`train_roberta_bpe`] trains the same byte-level BPE with RoBERTa's
//! special tokens (`<s>` = 0, `<pad>` = 1, `</s>` = 2, `<unk>` = 3,
//! `<mask>`) and post-processor (`<s> $A </s>`), as roberta-base's
//! tokenizer.json, for `engine init --arch roberta`.

use anyhow::{anyhow, ensure, Context, Result};
use std::path::Path;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::dataset::LoadOptions;
use super::fields::Fields;
use super::source::load;

/// The end-of-text token: the EOS of every template and generation.
pub const EOS_TOKEN: &str = "<|endoftext|>";
/// The padding token (never trained on).
pub const PAD_TOKEN: &str = "<|padding|>";

/// RoBERTa's special tokens, in roberta-base's id order (`<mask>` is last
/// there; here it follows `<unk>`).
pub const ROBERTA_SPECIAL_TOKENS: [&str; 5] = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];

/// Trains a byte-level BPE of `vocab_size` entries (special tokens and the
/// 256 byte symbols included) on `texts`.
pub fn train_bpe<I, S>(texts: I, vocab_size: usize) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    let mut tok = train_byte_level(texts, vocab_size, &[EOS_TOKEN, PAD_TOKEN])?;
    tok.with_post_processor(Some(ByteLevel::default().trim_offsets(false)));
    ensure!(
        tok.token_to_id(EOS_TOKEN) == Some(0),
        "the trained tokenizer does not map {EOS_TOKEN} to 0"
    );
    Ok(tok)
}

/// [`train_bpe`] with RoBERTa's special tokens and its `<s> $A </s>`
/// post-processor (a classifier reads `<s>` at position 0).
pub fn train_roberta_bpe<I, S>(texts: I, vocab_size: usize) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    let mut tok = train_byte_level(texts, vocab_size, &ROBERTA_SPECIAL_TOKENS)?;
    for (id, t) in ROBERTA_SPECIAL_TOKENS.iter().enumerate() {
        ensure!(
            tok.token_to_id(t) == Some(id as u32),
            "the trained tokenizer does not map {t} to {id}"
        );
    }
    let post = RobertaProcessing::new(("</s>".into(), 2), ("<s>".into(), 0))
        .trim_offsets(true)
        .add_prefix_space(false);
    tok.with_post_processor(Some(post));
    Ok(tok)
}

/// A byte-level BPE (GPT-2's pre-tokenizer, no prefix space) with
/// `special` first, in order.
fn train_byte_level<I, S>(texts: I, vocab_size: usize, special: &[&str]) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    ensure!(
        (300..=1 << 20).contains(&vocab_size),
        "vocab size {vocab_size}: expected 300 ..= 1048576 (256 byte symbols, special tokens and merges)"
    );
    let specials: Vec<AddedToken> = special.iter().map(|t| AddedToken::from(*t, true)).collect();
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.train(&mut trainer, texts)
        .map_err(|e| anyhow!("training the BPE tokenizer: {e}"))?;
    tok.add_special_tokens(&specials);
    Ok(tok)
}

/// Every string value of `fields` (or of every field when empty) in the rows
/// of a JSONL/CSV/TSV file (gzip allowed); conversations contribute each
/// message's content.
pub fn texts_of_file(path: &Path, fields: &[String], opts: &LoadOptions) -> Result<Vec<String>> {
    let ds = load(path, opts, |row: &Fields| {
        let mut out = Vec::new();
        let names: Vec<String> = if fields.is_empty() {
            row.names()
        } else {
            fields.to_vec()
        };
        for f in &names {
            if !row.has(f) {
                if fields.is_empty() {
                    continue;
                }
                return Err(format!("missing field `{}`", row.name(f)));
            }
            match row.messages(f) {
                Ok(msgs) => out.extend(msgs.into_iter().map(|m| m.content)),
                Err(_) => {
                    if let Ok(t) = row.text(f) {
                        out.push(t);
                    } else if !fields.is_empty() {
                        return Err(format!("field `{}` is not text", row.name(f)));
                    }
                }
            }
        }
        Ok(Some(out))
    })?;
    ensure!(
        !ds.rows.is_empty(),
        "{}: no rows to train the tokenizer on",
        path.display()
    );
    Ok(ds.rows.into_iter().flat_map(|r| r.record).collect())
}

/// Saves `tok` as `dir/tokenizer.json` (atomically).
pub fn save_tokenizer(tok: &Tokenizer, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = tok
        .to_string(true)
        .map_err(|e| anyhow!("serialising the tokenizer: {e}"))?;
    crate::models::checkpoint::write_atomic(&dir.join("tokenizer.json"), json.as_bytes())
}
