//! Fixture paths, the shared datasets (../shared/datasets, beside the
//! checkout) and the GPT-2 tokenizer (a copy in kernels-tests/fixtures/tokenizers).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tokenizers::Tokenizer;

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

/// Writes `text` to a fresh file named `name` in a per-test temp folder.
pub fn temp_file(test: &str, name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("engine-data-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The error's whole message chain.
pub fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}
