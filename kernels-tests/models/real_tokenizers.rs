//! The real 50k tokenizers (copied into kernels-tests/fixtures/tokenizers/), read by the tokenizers crate the way
//! model directories' tokenizer.json files are.

use std::path::Path;
use tokenizers::Tokenizer;

fn load(rel: &str) -> Tokenizer {
    Tokenizer::from_file(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("kernels-tests/fixtures/tokenizers")
            .join(rel),
    )
    .unwrap()
}

#[test]
fn gpt2_tokenizer_matches_openai_ids() {
    let tok = load("gpt2/tokenizer.json");
    assert_eq!(tok.get_vocab_size(true), 50257);
    let enc = tok.encode("Hello world", false).unwrap();
    assert_eq!(enc.get_ids(), &[15496, 995]);
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(50256));
    let text = "Refunds take 5–7 days, café ☕.";
    let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
    assert_eq!(
        tok.decode(&ids, false).unwrap(),
        text,
        "byte-level BPE round-trips any text"
    );
}

#[test]
fn neox_tokenizer_has_pythia_specials() {
    let tok = load("gpt-neox-20b/20B_tokenizer.json");
    assert_eq!(tok.get_vocab_size(true), 50277);
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(0));
    assert_eq!(tok.token_to_id("<|padding|>"), Some(1));
    let text = "Hello world\n  indented";
    let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
}
