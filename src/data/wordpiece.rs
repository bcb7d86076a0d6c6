//! Training a small WordPiece tokenizer (BERT / DistilBERT style) with the
//! `tokenizers` crate, for encoder classifiers engine builds from scratch
//! (`engine init --arch distilbert`, the IMDB example).
//!
//! The result is the `tokenizer.json` transformers' `BertTokenizerFast`
//! writes: BERT's normalizer (clean text, lower-case), BERT's pre-tokenizer,
//! `##` continuation pieces, the special tokens first (`[PAD]` = 0, `[UNK]`,
//! `[CLS]`, `[SEP]`, `[MASK]`) and the post-processor `[CLS] $A [SEP]`, so a
//! classifier reads `[CLS]` at position 0 as DistilBERT's head expects.

use anyhow::{anyhow, ensure, Result};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// BERT's special tokens, in BERT's order (`[PAD]` = 0).
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Trains a lower-casing WordPiece of `vocab_size` entries (special tokens
/// and the alphabet included) on `texts`.
pub fn train_wordpiece<I, S>(texts: I, vocab_size: usize) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    ensure!(
        (100..=1 << 20).contains(&vocab_size),
        "vocab size {vocab_size}: expected 100 ..= 1048576 (special tokens, the alphabet and word pieces)"
    );
    let specials = SPECIAL_TOKENS.map(|t| AddedToken::from(t, true));
    let mut trainer: TrainerWrapper = WordPieceTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.to_vec())
        .build()
        .into();
    let model = WordPiece::builder()
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| anyhow!("building WordPiece: {e}"))?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, true)));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_decoder(Some(WordPieceDecoder::default()));
    tok.train(&mut trainer, texts)
        .map_err(|e| anyhow!("training the WordPiece tokenizer: {e}"))?;
    tok.add_special_tokens(&specials);
    let id = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| anyhow!("the trained tokenizer has no {t}"))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    ensure!(
        id("[PAD]")? == 0,
        "the trained tokenizer does not map [PAD] to 0"
    );
    let post = TemplateProcessing::builder()
        .try_single("[CLS]:0 $A:0 [SEP]:0")
        .and_then(|b| b.try_pair("[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1"))
        .map_err(|e| anyhow!("the [CLS]/[SEP] template: {e}"))?
        .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
        .build()
        .map_err(|e| anyhow!("the [CLS]/[SEP] template: {e}"))?;
    tok.with_post_processor(Some(post));
    Ok(tok)
}
