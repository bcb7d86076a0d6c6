//! LoRA adapters on the models against PEFT (fixtures written by
//! kernels-tests/fixtures/make_peft_fixtures.py): a PEFT-saved adapter gives
//! PEFT's logits, adapters-off gives the base logits, merge gives the merged
//! logits and unmerge restores the base; save -> load is identical and in
//! PEFT's layout; PEFT's target-module rule; and a short training run that
//! lowers the loss while the base weights stay bit-identical.

use super::parity::{ids, root};
use crate::common::*;
use engine::models::layers::Tokens;
use engine::models::lora::{peft, LoraConfig};
use engine::models::{CausalLm, Checkpoint};
use engine::ops::adamw::{adamw_step, AdamwConfig};
use engine::{Tape, Tensor};
use serde_json::Value;
use std::path::PathBuf;

fn model(name: &str) -> CausalLm {
    CausalLm::load(&gpu(), &root().join("models/fixtures").join(name)).unwrap()
}

fn adapter_dir(name: &str) -> PathBuf {
    root().join("models/fixtures").join(format!("{name}-lora"))
}

/// The fixture's batch and reference logits.
fn refs(name: &str) -> (Tokens, Value, Checkpoint) {
    let dir = root().join("kernels-tests/fixtures");
    let text = std::fs::read_to_string(dir.join(format!("{name}-lora.json"))).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let st = Checkpoint::open_file(&dir.join(format!("{name}-lora.safetensors"))).unwrap();
    let tokens = Tokens::new(
        ids(&json["input_ids"]),
        json["input_shape"][0].as_u64().unwrap() as usize,
    )
    .unwrap();
    (tokens, json, st)
}

fn logits(m: &CausalLm, tokens: &Tokens, adapters: bool) -> Vec<f32> {
    let tape = Tape::new(&gpu());
    let vars = if adapters {
        m.vars(&tape)
    } else {
        m.reference_vars(&tape).unwrap()
    };
    m.forward(&tape, &vars, tokens)
        .unwrap()
        .1
        .tensor()
        .to_vec()
        .unwrap()
}

fn check_peft_parity(name: &str) {
    let (tokens, json, st) = refs(name);
    let mut m = model(name);
    let base_w: Vec<(String, Vec<f32>)> = m
        .params
        .iter()
        .map(|p| (p.name.clone(), p.tensor.to_vec().unwrap()))
        .collect();
    m.load_adapter(&adapter_dir(name)).unwrap();
    let adapted: Vec<&str> = json["adapted_modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = m
        .lora
        .as_ref()
        .unwrap()
        .modules
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(ours, adapted, "{name}: adapted modules");
    let want = |k: &str| to_f64(&st.get(k).unwrap().data);
    assert_close(
        &format!("{name} PEFT logits"),
        &logits(&m, &tokens, true),
        &want("logits"),
        1e-4,
        1e-4,
    );
    assert_close(
        &format!("{name} adapters off"),
        &logits(&m, &tokens, false),
        &want("base_logits"),
        1e-4,
        1e-4,
    );
    m.merge_lora().unwrap();
    assert!(
        m.reference_vars(&Tape::new(&gpu())).is_err(),
        "adapters-off while merged"
    );
    assert_close(
        &format!("{name} merged"),
        &logits(&m, &tokens, true),
        &want("merged_logits"),
        1e-4,
        1e-4,
    );
    m.unmerge_lora().unwrap();
    for (n, w) in &base_w {
        let now = m.params.get(n).unwrap().to_vec().unwrap();
        // W + s·ΔW - s·ΔW: within a few f32 ulps of the merged magnitude.
        let want: Vec<f64> = to_f64(w);
        assert_close(&format!("{name} unmerged {n}"), &now, &want, 2e-6, 1e-6);
    }
    assert_close(
        &format!("{name} after unmerge"),
        &logits(&m, &tokens, true),
        &want("logits"),
        1e-4,
        1e-4,
    );
}

#[test]
fn gpt2_peft_adapter_matches_peft() {
    check_peft_parity("gpt2-tiny");
}

#[test]
fn neox_peft_adapter_matches_peft() {
    check_peft_parity("neox-parallel");
}

/// PEFT adapters on the Llama family: every projection by name (GQA Llama),
/// and `all-linear`, which PEFT saves expanded into full module paths
/// (Qwen2 with q/k/v biases, tied MQA Llama).
#[test]
fn llama_family_peft_adapters_match_peft() {
    for name in ["llama-gqa", "qwen2-bias", "llama-mqa-tied"] {
        check_peft_parity(name);
    }
}

#[test]
fn save_load_round_trip_is_identical() {
    for name in ["gpt2-tiny", "neox-parallel"] {
        let mut m = model(name);
        m.load_adapter(&adapter_dir(name)).unwrap();
        let scratch = crate::common::Scratch::new(&format!("lora-{name}"));
        let dir = scratch.path("adapter");
        m.save_adapter(&dir).unwrap();
        // Same keys, shapes and values as PEFT's own file.
        let theirs = Checkpoint::open_file(&adapter_dir(name).join(peft::WEIGHTS_FILE)).unwrap();
        let ours = Checkpoint::open_file(&dir.join(peft::WEIGHTS_FILE)).unwrap();
        let mut keys: Vec<&str> = ours.names().collect();
        let mut want: Vec<&str> = theirs.names().collect();
        keys.sort();
        want.sort();
        assert_eq!(keys, want, "{name}: saved keys");
        for k in keys {
            assert_eq!(ours.get(k).unwrap(), theirs.get(k).unwrap(), "{name}: {k}");
        }
        let cfg = peft::read_config(&dir.join(peft::CONFIG_FILE)).unwrap();
        assert_eq!(&cfg, &m.lora.as_ref().unwrap().config);
        assert_eq!(cfg.fan_in_fan_out, name == "gpt2-tiny");
        let mut m2 = model(name);
        m2.load_adapter(&dir).unwrap();
        for p in m.params.iter() {
            let q = m2.params.get(&p.name).unwrap();
            assert_eq!(
                p.tensor.to_vec().unwrap(),
                q.to_vec().unwrap(),
                "{}",
                p.name
            );
        }
    }
}

#[test]
fn config_without_task_type_loads_and_bad_files_name_file_and_key() {
    let name = "gpt2-tiny";
    let scratch = crate::common::Scratch::new("lora-bad");
    let dir = scratch.path("adapter");
    std::fs::create_dir_all(&dir).unwrap();
    let src = adapter_dir(name);
    let text = std::fs::read_to_string(src.join(peft::CONFIG_FILE)).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).unwrap();
    let weights = std::fs::read(src.join(peft::WEIGHTS_FILE)).unwrap();
    std::fs::write(dir.join(peft::WEIGHTS_FILE), &weights).unwrap();
    for task in [None, Some(Value::Null)] {
        match &task {
            None => cfg.as_object_mut().unwrap().remove("task_type"),
            Some(v) => cfg
                .as_object_mut()
                .unwrap()
                .insert("task_type".into(), v.clone()),
        };
        std::fs::write(dir.join(peft::CONFIG_FILE), cfg.to_string()).unwrap();
        model(name).load_adapter(&dir).unwrap();
    }
    // A weights file for another model: every key is foreign to GPT-2.
    let neox = adapter_dir("neox-parallel").join(peft::WEIGHTS_FILE);
    std::fs::copy(neox, dir.join(peft::WEIGHTS_FILE)).unwrap();
    let err = format!("{:#}", model(name).load_adapter(&dir).unwrap_err());
    assert!(
        err.contains(peft::WEIGHTS_FILE) && err.contains("base_model.model.gpt_neox.layers."),
        "{err}"
    );
    cfg["use_dora"] = Value::Bool(true);
    std::fs::write(dir.join(peft::CONFIG_FILE), cfg.to_string()).unwrap();
    let err = format!("{:#}", model(name).load_adapter(&dir).unwrap_err());
    assert!(
        err.contains(peft::CONFIG_FILE) && err.contains("use_dora"),
        "{err}"
    );
}

#[test]
fn targets_follow_peft_suffix_rule_and_fresh_adapters_are_identity() {
    let mut g = model("gpt2-tiny");
    let names = |m: &CausalLm, t: &[&str]| -> Vec<String> {
        m.lora_targets(&LoraConfig::new(4, 8.0, t))
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect()
    };
    assert_eq!(
        names(&g, &["c_proj"]),
        [
            "transformer.h.0.attn.c_proj",
            "transformer.h.0.mlp.c_proj",
            "transformer.h.1.attn.c_proj",
            "transformer.h.1.mlp.c_proj"
        ]
    );
    assert_eq!(
        names(&g, &["attn.c_proj"]),
        ["transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj"]
    );
    assert_eq!(names(&g, &["mlp.c_proj", "h.1.attn.c_attn"]).len(), 3);
    assert_eq!(names(&g, &["all-linear"]).len(), 8);
    assert!(g
        .lora_targets(&LoraConfig::new(4, 8.0, &["lm_head"]))
        .is_err());
    assert!(
        g.lora_targets(&LoraConfig::new(4, 8.0, &["proj"])).is_err(),
        "suffixes match whole names"
    );
    let n = model("neox-parallel");
    assert_eq!(
        names(&n, &["dense"]),
        [
            "gpt_neox.layers.0.attention.dense",
            "gpt_neox.layers.1.attention.dense"
        ]
    );

    let (tokens, _, st) = refs("gpt2-tiny");
    let cfg = LoraConfig::new(8, 16.0, &["c_attn", "c_proj", "c_fc"]);
    g.attach_lora(&cfg, 3).unwrap();
    let a = g
        .params
        .get("transformer.h.0.attn.c_attn.lora_A.weight")
        .unwrap();
    assert_eq!(a.shape(), [8, 48]);
    let bound = 1.0 / 48f32.sqrt();
    assert!(a
        .to_vec()
        .unwrap()
        .iter()
        .all(|v| v.abs() <= bound && *v != 0.0));
    let b = g
        .params
        .get("transformer.h.0.attn.c_attn.lora_B.weight")
        .unwrap();
    assert_eq!(b.shape(), [144, 8]);
    assert!(b.to_vec().unwrap().iter().all(|&v| v == 0.0));
    let trainable: Vec<&str> = g
        .params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(trainable.len(), 16);
    assert!(trainable.iter().all(|n| n.contains(".lora_")));
    // B = 0: the adapted model is the base model.
    let base = to_f64(&st.get("base_logits").unwrap().data);
    assert_close(
        "fresh adapters",
        &logits(&g, &tokens, true),
        &base,
        1e-4,
        1e-4,
    );
}

#[test]
fn lora_training_lowers_loss_and_keeps_base_frozen() {
    let mut m = model("gpt2-tiny");
    let (tokens, _, _) = refs("gpt2-tiny");
    let cfg = LoraConfig {
        dropout: 0.05,
        ..LoraConfig::new(4, 8.0, &["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"])
    };
    m.attach_lora(&cfg, 1).unwrap();
    let frozen: Vec<(String, Vec<f32>)> = m
        .params
        .iter()
        .filter(|p| !p.trainable)
        .map(|p| (p.name.clone(), p.tensor.to_vec().unwrap()))
        .collect();
    let opt = AdamwConfig {
        lr: 1e-2,
        ..Default::default()
    };
    let train: Vec<_> = m.params.iter().filter(|p| p.trainable).collect();
    let zeros = |t: &Tensor| Tensor::zeros(&gpu(), t.shape(), engine::DType::F32).unwrap();
    let state: Vec<(Tensor, Tensor)> = train
        .iter()
        .map(|p| (zeros(&p.tensor), zeros(&p.tensor)))
        .collect();
    let mut losses = Vec::new();
    for step in 1..=25u32 {
        let tape = Tape::new(&gpu());
        let mut vars = m.vars(&tape);
        vars.set_lora_dropout_seed(Some(step as u64));
        let loss = m.lm_loss(&tape, &vars, &tokens, None).unwrap();
        losses.push(loss.tensor().item().unwrap());
        let grads = vars.grads(&tape.backward(&loss).unwrap());
        assert_eq!(
            grads.len(),
            train.len(),
            "gradients reach exactly the adapters"
        );
        for (p, (mm, vv)) in train.iter().zip(&state) {
            adamw_step(&p.tensor, &grads[&p.name], mm, vv, &opt, step).unwrap();
        }
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(
        last < 0.7 * first,
        "LoRA training: loss {first} -> {last} ({losses:?})"
    );
    for (n, w) in &frozen {
        let now = m.params.get(n).unwrap().to_vec().unwrap();
        assert!(
            now.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{n} changed"
        );
    }
}
