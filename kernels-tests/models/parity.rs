//! Parity with transformers, llm.c's test_gpt2 style: logits, loss, every
//! parameter gradient and a 10-step AdamW trajectory, plus greedy generation
//! (one at a time and as a left-padded batch) and perplexity, on the tiny
//! checkpoints that kernels-tests/fixtures/make_fixtures.py wrote.
//!
//! Tolerances (f32 end to end; transformers' own f32-vs-f64 noise is ≤ 4e-6
//! on logits): logits 1e-4 abs + 1e-4 rel, loss 1e-5, each gradient within
//! 1e-4 of its tensor's largest magnitude, trajectory 1e-4, tokens exact.

use crate::common::*;
use engine::models::generate::{generate, GenerateConfig};
use engine::models::layers::Tokens;
use engine::models::{CausalLm, Checkpoint};
use engine::ops::adamw::{adamw_step, AdamwConfig};
use engine::{Tape, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

pub fn fixture(name: &str) -> (CausalLm, Value, Option<Checkpoint>) {
    let model = CausalLm::load(&gpu(), &root().join("models/fixtures").join(name)).unwrap();
    let dir = root().join("kernels-tests/fixtures");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let st = dir.join(format!("{name}.safetensors"));
    let refs = st.exists().then(|| Checkpoint::open_file(&st).unwrap());
    (model, json, refs)
}

pub fn ids(v: &Value) -> Vec<i32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|x| match x {
            Value::Array(a) => a
                .iter()
                .map(|y| y.as_i64().unwrap() as i32)
                .collect::<Vec<_>>(),
            y => vec![y.as_i64().unwrap() as i32],
        })
        .collect()
}

pub fn batch_tokens(json: &Value) -> Tokens {
    Tokens::new(
        ids(&json["input_ids"]),
        json["input_shape"][0].as_u64().unwrap() as usize,
    )
    .unwrap()
}

pub fn check_forward_loss_and_grads(name: &str) {
    let (model, json, refs) = fixture(name);
    let refs = refs.unwrap();
    let tokens = batch_tokens(&json);
    let tape = Tape::new(&gpu());
    let vars = model.vars(&tape);
    let (_, logits) = model.forward(&tape, &vars, &tokens).unwrap();
    check_logits(name, &logits, &refs, 1e-4);

    let loss = model.lm_loss(&tape, &vars, &tokens, None).unwrap();
    let l = loss.tensor().item().unwrap() as f64;
    let want = json["loss"].as_f64().unwrap();
    assert!(
        (l - want).abs() < 1e-5,
        "{name} loss {l} vs transformers {want}"
    );

    let grads = vars.grads(&tape.backward(&loss).unwrap());
    check_every_grad(name, &json, &refs, &grads, |_| false);
}

/// `logits` against `refs`' `logits`, within `tol` absolute and relative.
pub fn check_logits(name: &str, logits: &engine::tape::Var, refs: &Checkpoint, tol: f64) {
    let want = refs.get("logits").unwrap();
    assert_eq!(logits.shape(), want.shape.as_slice(), "{name} logits");
    let got = logits.tensor().to_vec().unwrap();
    assert_close(
        &format!("{name} logits"),
        &got,
        &to_f64(&want.data),
        tol,
        tol,
    );
}

/// Every gradient `json["grad_names"]` lists against `grad.<name>` in
/// `refs`, within 1e-4 of that tensor's largest magnitude. Where `noise(n)`
/// (a gradient zero in exact arithmetic) both sides need only be below 1e-6.
pub fn check_every_grad(
    name: &str,
    json: &Value,
    refs: &Checkpoint,
    grads: &std::collections::BTreeMap<String, Tensor>,
    noise: impl Fn(&str) -> bool,
) {
    let names: Vec<String> = json["grad_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().into())
        .collect();
    assert_eq!(
        grads.len(),
        names.len(),
        "{name}: gradients for {:?}",
        grads.keys().collect::<Vec<_>>()
    );
    for n in names {
        let want = refs.get(&format!("grad.{n}")).unwrap();
        let got = grads
            .get(&n)
            .unwrap_or_else(|| panic!("{name}: no gradient for {n}"))
            .to_vec()
            .unwrap();
        if noise(&n) {
            let small = got.iter().chain(&want.data).all(|g| g.abs() < 1e-6);
            assert!(small, "{name} {n}: {got:?} vs {:?}", want.data);
            continue;
        }
        let scale = want.data.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        assert_close(
            &format!("{name} grad {n}"),
            &got,
            &to_f64(&want.data),
            1e-4 * scale.max(1e-6),
            0.0,
        );
    }
}

pub fn check_training_trajectory(name: &str) {
    let (model, json, _) = fixture(name);
    let traj = &json["trajectory"];
    let betas = traj["betas"].as_array().unwrap();
    let opt = AdamwConfig {
        lr: traj["lr"].as_f64().unwrap() as f32,
        beta1: betas[0].as_f64().unwrap() as f32,
        beta2: betas[1].as_f64().unwrap() as f32,
        eps: traj["eps"].as_f64().unwrap() as f32,
        weight_decay: traj["weight_decay"].as_f64().unwrap() as f32,
    };
    let tokens = batch_tokens(&json);
    let state: Vec<(Tensor, Tensor)> = model
        .params
        .iter()
        .map(|p| {
            (
                Tensor::zeros(&gpu(), p.tensor.shape(), engine::DType::F32).unwrap(),
                Tensor::zeros(&gpu(), p.tensor.shape(), engine::DType::F32).unwrap(),
            )
        })
        .collect();
    let want: Vec<f64> = traj["losses_before_step"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut got = Vec::new();
    for step in 1..=want.len() {
        let tape = Tape::new(&gpu());
        let vars = model.vars(&tape);
        let loss = model.lm_loss(&tape, &vars, &tokens, None).unwrap();
        got.push(loss.tensor().item().unwrap());
        let grads = vars.grads(&tape.backward(&loss).unwrap());
        for (p, (m, v)) in model.params.iter().zip(&state) {
            adamw_step(&p.tensor, &grads[&p.name], m, v, &opt, step as u32).unwrap();
        }
    }
    assert_close(
        &format!("{name} 10-step AdamW losses"),
        &got,
        &want,
        1e-4,
        1e-4,
    );
}

pub fn check_greedy_generation(name: &str) {
    let (model, json, _) = fixture(name);
    let g = &json["generation"];
    let prompts: Vec<Vec<i32>> = g["prompts"].as_array().unwrap().iter().map(ids).collect();
    let want: Vec<Vec<u32>> = g["new_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| ids(r).iter().map(|&t| t as u32).collect())
        .collect();
    let cfg = GenerateConfig {
        max_new_tokens: g["max_new_tokens"].as_u64().unwrap() as usize,
        ..Default::default()
    };
    for (p, w) in prompts.iter().zip(&want) {
        let out = generate(&model, std::slice::from_ref(p), &cfg).unwrap();
        assert_eq!(&out.new_ids[0], w, "{name}: greedy continuation of {p:?}");
    }
    let batched = generate(&model, &prompts, &cfg).unwrap();
    assert_eq!(
        batched.new_ids, want,
        "{name}: left-padded batch differs from one prompt at a time"
    );
}

pub fn check_perplexity(name: &str) {
    let (model, json, _) = fixture(name);
    let ppl_ids = ids(&json["ppl_ids"]);
    assert_eq!(
        model.encode(json["ppl_text"].as_str().unwrap()).unwrap(),
        ppl_ids,
        "{name}: tokenizer.json encoding"
    );
    let tape = Tape::new(&gpu());
    let _g = tape.no_grad();
    let vars = model.vars(&tape);
    let loss = model
        .lm_loss(&tape, &vars, &Tokens::new(ppl_ids, 1).unwrap(), None)
        .unwrap();
    let (got, want) = (
        loss.tensor().item().unwrap() as f64,
        json["ppl_mean_nll"].as_f64().unwrap(),
    );
    assert!(
        (got - want).abs() < 1e-5,
        "{name}: mean NLL {got} vs {want}"
    );
}

macro_rules! parity_suite {
    ($m:ident, $name:literal) => {
        mod $m {
            #[test]
            fn logits_loss_and_every_gradient() {
                super::check_forward_loss_and_grads($name);
            }
            #[test]
            fn ten_step_adamw_trajectory() {
                super::check_training_trajectory($name);
            }
            #[test]
            fn greedy_generation_single_and_batched() {
                super::check_greedy_generation($name);
            }
            #[test]
            fn perplexity() {
                super::check_perplexity($name);
            }
        }
    };
}

parity_suite!(gpt2_tiny, "gpt2-tiny");
parity_suite!(neox_parallel, "neox-parallel");
parity_suite!(neox_sequential, "neox-sequential");

#[test]
fn generation_stops_at_eos_and_stop_strings() {
    let (model, json, _) = fixture("gpt2-tiny");
    let g = &json["generation"];
    let prompt = ids(&g["prompts"][0]);
    let full: Vec<u32> = ids(&g["new_tokens"][0]).iter().map(|&t| t as u32).collect();
    // EOS: generation ends right after the first occurrence, keeping it.
    let eos = full[5];
    let first = full.iter().position(|&t| t == eos).unwrap();
    let cfg = GenerateConfig {
        max_new_tokens: 32,
        eos: Some(eos),
        ..Default::default()
    };
    let out = generate(&model, std::slice::from_ref(&prompt), &cfg).unwrap();
    assert_eq!(out.new_ids[0], full[..=first].to_vec());
    assert!(out.finished[0]);
    // A stop string ends generation at the first token whose text contains it.
    let text = g["new_text"][0].as_str().unwrap();
    let stop: String = text.chars().skip(8).take(3).collect();
    let cfg = GenerateConfig {
        max_new_tokens: 32,
        stop_strings: vec![stop.clone()],
        ..Default::default()
    };
    let out = generate(&model, std::slice::from_ref(&prompt), &cfg).unwrap();
    let n = out.new_ids[0].len();
    assert_eq!(out.new_ids[0], full[..n].to_vec());
    assert!(model.decode(&out.new_ids[0]).unwrap().contains(&stop));
    assert!(!model
        .decode(&out.new_ids[0][..n - 1])
        .unwrap()
        .contains(&stop));
    // Without either, the length cap ends it.
    let out = generate(
        &model,
        std::slice::from_ref(&prompt),
        &GenerateConfig {
            max_new_tokens: 4,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((out.new_ids[0].len(), out.finished[0]), (4, false));
}

#[test]
fn seeded_sampling_is_reproducible_across_batches() {
    use engine::models::sampling::SamplingConfig;
    let (model, json, _) = fixture("neox-parallel");
    let prompts: Vec<Vec<i32>> = json["generation"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids)
        .collect();
    let cfg = GenerateConfig {
        max_new_tokens: 12,
        sampling: SamplingConfig {
            top_k: 20,
            top_p: 0.9,
            temperature: 0.8,
            ..SamplingConfig::sample()
        },
        seed: 9,
        ..Default::default()
    };
    let a = generate(&model, &prompts, &cfg).unwrap();
    let b = generate(&model, &prompts, &cfg).unwrap();
    assert_eq!(a.new_ids, b.new_ids);
    let vocab = model.sampling_vocab() as u32;
    assert!(
        a.new_ids.iter().flatten().all(|&t| t < vocab),
        "padded vocab rows are never sampled"
    );
}
