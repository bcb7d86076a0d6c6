//! A model directory's parts checked against its config.json before any GPU
//! buffer is allocated: every tensor the config implies must be in the
//! safetensors headers with its shape; layers beyond the config's layer count
//! are an error (never silently dropped); other unknown tensors are listed in
//! a warning, as transformers does; the tokenizer's ids must fit the
//! embedding table.

use anyhow::{anyhow, bail, ensure, Result};
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use crate::models::arch::Architecture;
use crate::models::checkpoint::Checkpoint;
use crate::models::config::{Head, ModelConfig};

/// Checks `ck` against the parameters `shapes` (from the config) and returns
/// the checkpoint key each parameter is read from, in the same order.
pub(super) fn check_checkpoint(
    arch: &dyn Architecture,
    cfg: &ModelConfig,
    head: Head,
    ck: &Checkpoint,
    shapes: &[(String, Vec<usize>)],
) -> Result<Vec<String>> {
    let mut keys = Vec::with_capacity(shapes.len());
    for (name, shape) in shapes {
        let key = arch.checkpoint_key(ck, name);
        ck.check_shape(&key, shape)?;
        keys.push(key);
    }
    let expected: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let mut extra_layers = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for name in ck.names() {
        if expected.contains(name) || arch.unused_tensor(name) {
            continue;
        }
        match beyond_last_layer(name, cfg.n_layer, &expected) {
            Some(layer) => extra_layers.insert(layer),
            None => unknown.insert(name),
        };
    }
    if !extra_layers.is_empty() {
        let layers: Vec<String> = extra_layers.into_iter().collect();
        bail!(
            "{}: holds tensors of `{}`, beyond the {} layers that config.json's `{}` says; \
             the config and the weights disagree",
            ck.describe(),
            layers.join("`, `"),
            cfg.n_layer,
            cfg.layer_key()
        );
    }
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.into_iter().collect();
        eprintln!(
            "warning: {}: some weights were not used when initializing {}: {}",
            ck.describe(),
            arch.class_name_for(cfg, head),
            names.join(", ")
        );
    }
    Ok(keys)
}

/// The layer prefix (`transformer.h.2`) of a tensor that belongs to a layer
/// at or past `n_layer`: one of its numeric name parts is that large, and the
/// same name with layer 0 there is a tensor the config expects.
fn beyond_last_layer(name: &str, n_layer: usize, expected: &HashSet<&str>) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    parts.iter().enumerate().find_map(|(i, p)| {
        let l: usize = p.parse().ok()?;
        let mut first = parts.clone();
        first[i] = "0";
        (l >= n_layer && expected.contains(first.join(".").as_str())).then(|| parts[..=i].join("."))
    })
}

/// Reads `dir/tokenizer.json` (None without one); its vocabulary must be
/// non-empty and every id must be a row of the `vocab_size` embedding table.
pub(super) fn load_tokenizer(
    dir: &Path,
    cfg: &ModelConfig,
) -> Result<Option<tokenizers::Tokenizer>> {
    let path = dir.join("tokenizer.json");
    if !path.exists() {
        return Ok(None);
    }
    let tok =
        tokenizers::Tokenizer::from_file(&path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let vocab = tok.get_vocab(true);
    ensure!(
        !vocab.is_empty(),
        "{}: the tokenizer's vocabulary is empty",
        path.display()
    );
    let (token, &id) = vocab.iter().max_by_key(|(_, &id)| id).expect("non-empty");
    ensure!(
        (id as usize) < cfg.vocab_size,
        "{}: token `{token}` has id {id}, beyond the model's embedding table \
         (config.json `vocab_size` = {}); {} tokens in all",
        path.display(),
        cfg.vocab_size,
        vocab.len()
    );
    Ok(Some(tok))
}
