//! config.json and tokenizer.json are checked before anything is allocated
//! from them: integers positive and plausible, wrong types called invalid
//! (not missing), the tokenizer's vocabulary within the embedding table.

use crate::harness::*;
use serde_json::{json, Value};

/// `info` on a copy of gpt2-tiny whose config is edited by `f`.
fn info_with(case: &str, f: impl FnOnce(&mut Value), mentions: &[&str]) -> Outcome {
    let s = Scratch::new(case);
    let m = s.model("gpt2-tiny", "m");
    edit_config(&m, f);
    expect_error(
        &s.0,
        &os(&["info", "--model", &m.display().to_string()]),
        mentions,
    )
}

#[test]
fn a_million_layers_is_refused_before_allocating() {
    info_with(
        "n-layer-1e6",
        |c| c["n_layer"] = json!(1_000_000),
        &["config.json", "n_layer", "1000000"],
    );
}

#[test]
fn a_negative_layer_count_is_invalid_not_missing() {
    let o = info_with(
        "n-layer-neg",
        |c| c["n_layer"] = json!(-1),
        &["config.json", "n_layer", "invalid"],
    );
    assert!(!o.stderr.contains("missing"), "{}", o.stderr);
}

#[test]
fn a_fractional_head_count_is_invalid_not_missing() {
    let o = info_with(
        "n-head-frac",
        |c| c["n_head"] = json!(1.5),
        &["config.json", "n_head", "invalid"],
    );
    assert!(!o.stderr.contains("missing"), "{}", o.stderr);
}

#[test]
fn zero_heads_are_refused() {
    info_with(
        "n-head-0",
        |c| c["n_head"] = json!(0),
        &["config.json", "n_head"],
    );
}

#[test]
fn a_width_not_divisible_by_the_heads_is_refused() {
    info_with(
        "n-embd-odd",
        |c| c["n_embd"] = json!(47),
        &["config.json", "n_embd", "n_head"],
    );
}

#[test]
fn a_zero_vocabulary_is_refused() {
    info_with(
        "vocab-0",
        |c| c["vocab_size"] = json!(0),
        &["config.json", "vocab_size"],
    );
}

#[test]
fn an_absurd_context_length_is_refused() {
    info_with(
        "n-pos-huge",
        |c| c["n_positions"] = json!(4_000_000_000u64),
        &["config.json", "n_positions"],
    );
}

#[test]
fn a_string_where_a_number_belongs_is_invalid() {
    info_with(
        "n-layer-str",
        |c| c["n_layer"] = json!("two"),
        &["config.json", "n_layer", "invalid"],
    );
}

#[test]
fn a_non_finite_layer_norm_epsilon_is_refused() {
    let s = Scratch::new("eps-nan");
    let m = s.model("gpt2-tiny", "m");
    let p = m.join("config.json");
    let text = std::fs::read_to_string(&p).unwrap().replace("1e-05", "NaN");
    std::fs::write(&p, text).unwrap();
    expect_error(
        &s.0,
        &os(&["info", "--model", &m.display().to_string()]),
        &["config.json"],
    );
}

#[test]
fn an_unknown_model_type_is_named() {
    info_with(
        "model-type",
        |c| c["model_type"] = json!("mamba"),
        &["config.json", "mamba"],
    );
}

#[test]
fn a_config_that_is_not_json_is_named() {
    let s = Scratch::new("config-garbage");
    let m = s.model("gpt2-tiny", "m");
    std::fs::write(m.join("config.json"), "{ this is not json").unwrap();
    expect_error(
        &s.0,
        &os(&["info", "--model", &m.display().to_string()]),
        &["config.json"],
    );
}

#[test]
fn a_missing_config_is_named() {
    let s = Scratch::new("config-missing");
    let m = s.model("gpt2-tiny", "m");
    std::fs::remove_file(m.join("config.json")).unwrap();
    expect_error(
        &s.0,
        &os(&["info", "--model", &m.display().to_string()]),
        &["config.json"],
    );
}

/// A tokenizer.json whose vocabulary is `n` entries of a word-level model.
fn word_level_tokenizer(n: usize) -> String {
    let vocab: serde_json::Map<String, Value> =
        (0..n).map(|i| (format!("w{i}"), json!(i))).collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    })
    .to_string()
}

#[test]
fn a_tokenizer_larger_than_the_embedding_table_is_refused_by_file() {
    let s = Scratch::new("tok-huge");
    let m = s.model("gpt2-tiny", "m");
    std::fs::write(m.join("tokenizer.json"), word_level_tokenizer(200_000)).unwrap();
    let args = os(&[
        "generate",
        "--model",
        &m.display().to_string(),
        "--prompt",
        "w5 w199999",
        "--max-new-tokens",
        "1",
    ]);
    expect_error(&s.0, &args, &["tokenizer.json", "vocab_size", "160"]);
}

#[test]
fn an_empty_tokenizer_vocabulary_is_blamed_on_the_tokenizer() {
    let s = Scratch::new("tok-empty");
    let m = s.model("gpt2-tiny", "m");
    let tok = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": {}, "unk_token": "[UNK]"}
    });
    std::fs::write(m.join("tokenizer.json"), tok.to_string()).unwrap();
    let data = fixture_data("sft.jsonl").display().to_string();
    let args = os(&[
        "train-sft",
        "--model",
        &m.display().to_string(),
        "--data",
        &data,
        "--steps",
        "1",
        "--out",
        &s.path("run").display().to_string(),
    ]);
    expect_error(&s.0, &args, &["tokenizer.json", "empty"]);
}

#[test]
fn a_tokenizer_that_is_not_json_is_named() {
    let s = Scratch::new("tok-garbage");
    let m = s.model("gpt2-tiny", "m");
    std::fs::write(m.join("tokenizer.json"), "not a tokenizer").unwrap();
    let args = os(&[
        "generate",
        "--model",
        &m.display().to_string(),
        "--prompt",
        "Hi",
    ]);
    expect_error(&s.0, &args, &["tokenizer.json"]);
}

/// generation_config.json's `eos_token_id` is read (generation stops on its
/// list): a value that is not a token id names the file and the key.
#[test]
fn a_bad_generation_config_eos_names_the_file() {
    let s = Scratch::new("gen-eos-bad");
    let m = s.model("gpt2-tiny", "m");
    std::fs::write(
        m.join("generation_config.json"),
        r#"{"eos_token_id": ["x"]}"#,
    )
    .unwrap();
    expect_error(
        &s.0,
        &os(&["info", "--model", &m.display().to_string()]),
        &["generation_config.json", "eos_token_id", "invalid"],
    );
}

/// `info --ppo` plans from config.json alone; a --seq-len past the context is refused.
#[test]
fn a_plan_longer_than_the_context_names_the_flag() {
    let s = Scratch::new("plan-seq-len");
    let m = s.model("gpt2-tiny", "m");
    expect_error(
        &s.0,
        &os(&[
            "info",
            "--model",
            &m.display().to_string(),
            "--ppo",
            "--seq-len",
            "100000",
        ]),
        &["--seq-len", "100000", "context"],
    );
}
