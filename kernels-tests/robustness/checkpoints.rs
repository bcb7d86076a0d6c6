//! Checkpoint files: corrupt safetensors are named with what is wrong, weights
//! that disagree with config.json are errors (never silent truncation), and
//! unknown extra tensors are listed in a warning as transformers does.

use crate::harness::*;

fn info(s: &Scratch, m: &std::path::Path) -> Vec<std::ffi::OsString> {
    let _ = s;
    os(&["info", "--model", &m.display().to_string()])
}

fn corrupt(case: &str, f: impl FnOnce(&mut Vec<u8>), mentions: &[&str]) {
    let s = Scratch::new(case);
    let m = s.model("gpt2-tiny", "m");
    let file = m.join("model.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    f(&mut bytes);
    std::fs::write(&file, bytes).unwrap();
    expect_error(&s.0, &info(&s, &m), mentions);
}

fn header_len(b: &[u8]) -> usize {
    u64::from_le_bytes(b[..8].try_into().unwrap()) as usize
}

#[test]
fn a_truncated_file_is_named() {
    corrupt(
        "st-truncated",
        |b| b.truncate(b.len() / 2),
        &["model.safetensors"],
    );
}

#[test]
fn an_empty_file_is_named() {
    corrupt("st-empty", |b| b.clear(), &["model.safetensors"]);
}

#[test]
fn a_header_length_past_the_end_is_refused_without_allocating_it() {
    corrupt(
        "st-hdr-huge",
        |b| b[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes()),
        &["model.safetensors"],
    );
}

#[test]
fn a_header_that_is_not_json_is_named() {
    corrupt(
        "st-hdr-garbage",
        |b| {
            let n = header_len(b);
            b[8..8 + n].fill(b'#');
        },
        &["model.safetensors"],
    );
}

#[test]
fn offsets_beyond_the_data_are_named() {
    corrupt(
        "st-offsets",
        |b| {
            let n = header_len(b);
            let data_len = b.len() - 8 - n;
            b.truncate(8 + n + data_len - 64);
        },
        &["model.safetensors"],
    );
}

#[test]
fn a_tensor_of_the_wrong_shape_names_the_tensor_and_both_shapes() {
    let s = Scratch::new("st-shape");
    let m = s.model("gpt2-tiny", "m");
    let file = m.join("model.safetensors");
    let mut t = read_tensors(&file);
    let (d, _, b) = t.remove("transformer.ln_f.weight").unwrap();
    t.insert(
        "transformer.ln_f.weight".into(),
        (d, vec![24], b[..96].to_vec()),
    );
    write_tensors(&file, &t);
    expect_error(
        &s.0,
        &info(&s, &m),
        &["model.safetensors", "transformer.ln_f.weight", "48"],
    );
}

#[test]
fn a_weight_stored_as_integers_is_refused() {
    let s = Scratch::new("st-dtype");
    let m = s.model("gpt2-tiny", "m");
    let file = m.join("model.safetensors");
    let mut t = read_tensors(&file);
    let (_, shape, b) = t.remove("transformer.ln_f.weight").unwrap();
    t.insert(
        "transformer.ln_f.weight".into(),
        (safetensors::Dtype::I32, shape, b),
    );
    write_tensors(&file, &t);
    expect_error(&s.0, &info(&s, &m), &["transformer.ln_f.weight"]);
}

#[test]
fn a_missing_tensor_is_named() {
    let s = Scratch::new("st-missing");
    let m = s.model("gpt2-tiny", "m");
    let file = m.join("model.safetensors");
    let mut t = read_tensors(&file);
    t.remove("transformer.h.1.attn.c_proj.bias").unwrap();
    write_tensors(&file, &t);
    expect_error(&s.0, &info(&s, &m), &["transformer.h.1.attn.c_proj.bias"]);
}

/// Copies layer 1's tensors to layer 2: the file now holds 3 layers, the
/// config says 2.
fn add_third_layer(file: &std::path::Path) {
    let mut t = read_tensors(file);
    let extra: Vec<_> = t
        .iter()
        .filter(|(k, _)| k.starts_with("transformer.h.1."))
        .map(|(k, v)| (k.replace("transformer.h.1.", "transformer.h.2."), v.clone()))
        .collect();
    t.extend(extra);
    write_tensors(file, &t);
}

#[test]
fn more_layers_than_n_layer_is_an_error_not_a_silent_truncation() {
    let s = Scratch::new("st-extra-layer");
    let m = s.model("gpt2-tiny", "m");
    add_third_layer(&m.join("model.safetensors"));
    expect_error(&s.0, &info(&s, &m), &["transformer.h.2", "n_layer"]);
}

#[test]
fn fewer_layers_in_the_config_than_in_the_file_is_an_error_for_neox_too() {
    let s = Scratch::new("st-neox-layers");
    let m = s.model("neox-parallel", "m");
    edit_config(&m, |c| c["num_hidden_layers"] = serde_json::json!(1));
    expect_error(
        &s.0,
        &info(&s, &m),
        &["gpt_neox.layers.1", "num_hidden_layers"],
    );
}

#[test]
fn unknown_extra_tensors_are_listed_in_a_warning() {
    let s = Scratch::new("st-unknown");
    let m = s.model("gpt2-tiny", "m");
    let file = m.join("model.safetensors");
    let mut t = read_tensors(&file);
    let ln = t["transformer.ln_f.weight"].clone();
    t.insert("classifier.dense.weight".into(), ln.clone());
    t.insert("transformer.extra_norm.weight".into(), ln);
    write_tensors(&file, &t);
    expect_success(
        &s.0,
        &info(&s, &m),
        &[
            "warning",
            "classifier.dense.weight",
            "transformer.extra_norm.weight",
        ],
    );
}

#[test]
fn a_sharded_index_naming_a_missing_shard_is_named() {
    let s = Scratch::new("st-shard");
    let m = s.model("gpt2-tiny", "m");
    let t = read_tensors(&m.join("model.safetensors"));
    std::fs::remove_file(m.join("model.safetensors")).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = t
        .keys()
        .map(|k| {
            (
                k.clone(),
                serde_json::json!("model-00001-of-00002.safetensors"),
            )
        })
        .collect();
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(m.join("model.safetensors.index.json"), index.to_string()).unwrap();
    expect_error(&s.0, &info(&s, &m), &["model-00001-of-00002.safetensors"]);
}

#[test]
fn a_directory_without_weights_is_named() {
    let s = Scratch::new("st-none");
    let m = s.model("gpt2-tiny", "m");
    std::fs::remove_file(m.join("model.safetensors")).unwrap();
    expect_error(&s.0, &info(&s, &m), &["safetensors"]);
}
