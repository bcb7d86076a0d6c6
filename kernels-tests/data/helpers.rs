//! Fixture paths, the shared datasets (../shared/datasets, beside the
//! checkout) and the GPT-2 tokenizer (a copy in kernels-tests/fixtures/tokenizers).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tokenizers::Tokenizer;

pub use crate::scratch::Scratch;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kernels-tests/fixtures/data")
        .join(name)
}

/// `rel` under the shared read-only tree: `../shared` next to the
/// checkout, or one level further up from a worktree in a subfolder.
pub fn shared(rel: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    root.ancestors()
        .skip(1)
        .take(3)
        .map(|a| a.join("shared"))
        .find(|s| s.join("datasets").is_dir())
        .unwrap_or_else(|| root.join("../shared"))
        .join(rel)
}

pub fn gpt2() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("kernels-tests/fixtures/tokenizers/gpt2/tokenizer.json");
        Tokenizer::from_file(path).unwrap()
    })
}

pub fn ids(text: &str) -> Vec<i32> {
    let enc = gpt2().encode(text, false).unwrap();
    enc.get_ids().iter().map(|&i| i as i32).collect()
}

pub fn decode(ids: &[i32]) -> String {
    let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
    gpt2().decode(&ids, false).unwrap()
}

/// The error's whole message chain.
pub fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}
