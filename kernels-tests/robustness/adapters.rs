//! PEFT adapters: options engine does not implement are refused by name
//! (never ignored with logits that differ from PEFT's), and adapters that do
//! not fit their base are named.

use crate::harness::*;
use serde_json::{json, Value};

fn with_adapter(case: &str, f: impl FnOnce(&std::path::Path), mentions: &[&str]) {
    let s = Scratch::new(case);
    let a = s.model("gpt2-tiny-lora", "adapter");
    f(&a);
    let args = words(
        &s,
        "generate --model @model/gpt2-tiny --adapter @tmp/adapter --prompt Hi --max-new-tokens 2",
    );
    expect_error(&s.0, &args, mentions);
}

fn edit_adapter_config(dir: &std::path::Path, f: impl FnOnce(&mut Value)) {
    let p = dir.join("adapter_config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

#[test]
fn rank_pattern_is_refused_by_name() {
    with_adapter(
        "rank-pattern",
        |a| edit_adapter_config(a, |c| c["rank_pattern"] = json!({"c_fc": 2})),
        &["adapter_config.json", "rank_pattern"],
    );
}

#[test]
fn alpha_pattern_is_refused_by_name() {
    with_adapter(
        "alpha-pattern",
        |a| edit_adapter_config(a, |c| c["alpha_pattern"] = json!({"c_fc": 16})),
        &["adapter_config.json", "alpha_pattern"],
    );
}

#[test]
fn layers_to_transform_is_refused_by_name() {
    with_adapter(
        "layers-to-transform",
        |a| edit_adapter_config(a, |c| c["layers_to_transform"] = json!([0])),
        &["adapter_config.json", "layers_to_transform"],
    );
}

#[test]
fn layers_pattern_is_refused_by_name() {
    with_adapter(
        "layers-pattern",
        |a| edit_adapter_config(a, |c| c["layers_pattern"] = json!("h")),
        &["adapter_config.json", "layers_pattern"],
    );
}

#[test]
fn a_rank_that_disagrees_with_the_tensors_names_a_tensor() {
    with_adapter(
        "rank-mismatch",
        |a| edit_adapter_config(a, |c| c["r"] = json!(3)),
        &["adapter_model.safetensors", "lora_A"],
    );
}

#[test]
fn an_adapter_config_that_is_not_json_is_named() {
    with_adapter(
        "adapter-garbage",
        |a| std::fs::write(a.join("adapter_config.json"), "{").unwrap(),
        &["adapter_config.json"],
    );
}

#[test]
fn an_adapter_without_weights_is_named() {
    with_adapter(
        "adapter-noweights",
        |a| std::fs::remove_file(a.join("adapter_model.safetensors")).unwrap(),
        &["adapter_model.safetensors"],
    );
}

#[test]
fn an_adapter_for_another_base_is_refused() {
    let s = Scratch::new("adapter-other-base");
    let args = words(&s, "generate --model @model/neox-parallel --adapter @model/gpt2-tiny-lora --prompt Hi --max-new-tokens 2");
    expect_error(&s.0, &args, &["adapter"]);
}
