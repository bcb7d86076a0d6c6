//! Quantized frozen bases under the models (QLoRA): the quantized forward is
//! exactly the forward with dequantized weights, stays within the format's
//! error budget of the f32 model; with adapters (the fused QLoRA op) its
//! logits and LoRA gradients equal the f32 LoRA model on the dequantized
//! weights; and LoRA trains on an NF4 base while the base stays bit-identical.

use super::parity::{fixture, ids};
use crate::common::*;
use engine::models::layers::Tokens;
use engine::models::lora::LoraConfig;
use engine::ops::adamw::AdamwConfig;
use engine::quant::QuantFormat;
use engine::train::optim::{LrSchedule, Optimizer};
use engine::{Tape, Tensor};
use std::collections::BTreeMap;

/// Replaces every linear weight of `deq` by `q`'s dequantized weight.
fn load_dequantized(deq: &mut engine::models::CausalLm, q: &engine::models::CausalLm) {
    for m in deq.linear_modules().unwrap() {
        let w = q.quantized[&m.name].dequantize_host().unwrap(); // [out, in]
        let (o, i) = (m.out_features, m.in_features);
        let data: Vec<f32> = if m.out_in {
            w
        } else {
            (0..i * o).map(|e| w[(e % o) * i + e / o]).collect()
        };
        let shape = if m.out_in { [o, i] } else { [i, o] };
        deq.params.insert(
            &format!("{}.weight", m.name),
            Tensor::from_f32(&gpu(), &shape, &data).unwrap(),
        );
    }
}

/// Logits and the gradients of the LM loss (trainable parameters only).
fn logits_and_grads(
    model: &engine::models::CausalLm,
    tokens: &Tokens,
) -> (Vec<f32>, BTreeMap<String, Vec<f32>>) {
    let tape = Tape::new(&gpu());
    let vars = model.vars(&tape);
    let logits = model.forward(&tape, &vars, tokens).unwrap().1;
    let logits = logits.tensor().to_vec().unwrap();
    let loss = model.lm_loss(&tape, &vars, tokens, None).unwrap();
    let grads = vars.grads(&tape.backward(&loss).unwrap());
    let grads = grads
        .into_iter()
        .map(|(k, t)| (k, t.to_vec().unwrap()))
        .collect();
    (logits, grads)
}

fn logits(model: &engine::models::CausalLm, tokens: &Tokens) -> Vec<f32> {
    let tape = Tape::new(&gpu());
    let _g = tape.no_grad();
    let vars = model.vars(&tape);
    model
        .forward(&tape, &vars, tokens)
        .unwrap()
        .1
        .tensor()
        .to_vec()
        .unwrap()
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

#[test]
fn quantized_forward_equals_dequantized_weights_and_stays_in_budget() {
    for name in ["gpt2-tiny", "neox-parallel"] {
        for (format, budget) in [(QuantFormat::Int8, 0.02), (QuantFormat::Nf4, 0.15)] {
            let (mut q, json, _) = fixture(name);
            let tokens = Tokens::new(ids(&json["input_ids"]), 2).unwrap();
            let (mut deq, _, _) = fixture(name);
            let exact = logits(&deq, &tokens);
            q.quantize_base(format).unwrap();
            // The same model with each weight replaced by its dequantized value.
            load_dequantized(&mut deq, &q);
            let got = logits(&q, &tokens);
            let want = logits(&deq, &tokens);
            assert_close(
                &format!("{name} {format:?} vs dequantized"),
                &got,
                &to_f64(&want),
                1e-4,
                1e-4,
            );
            let err = rel_err(&got, &exact);
            assert!(
                err < budget,
                "{name} {format:?}: logits relative error {err} over budget {budget}"
            );
        }
    }
}

/// The fused QLoRA op inside a model (forward and backward through the
/// dequantizing kernels with the LoRA epilogue) against the f32 fused LoRA
/// on the dequantized weights: the same logits and adapter gradients.
#[test]
fn qlora_logits_and_gradients_equal_lora_on_dequantized_weights() {
    let cases: [(&str, &[&str]); 2] = [
        ("gpt2-tiny", &["c_attn", "c_proj", "c_fc"]),
        (
            "neox-parallel",
            &["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
        ),
    ];
    for (name, targets) in cases {
        for format in [QuantFormat::Int8, QuantFormat::Nf4] {
            let (mut q, json, _) = fixture(name);
            let (mut deq, _, _) = fixture(name);
            let tokens = Tokens::new(ids(&json["input_ids"]), 2).unwrap();
            q.quantize_base(format).unwrap();
            load_dequantized(&mut deq, &q);
            let cfg = LoraConfig::new(4, 8.0, targets);
            q.attach_lora(&cfg, 5).unwrap();
            deq.attach_lora(&cfg, 5).unwrap();
            // B starts at zero: give both models the same non-zero B.
            let mut rng = Rng::new(77);
            let names: Vec<(String, Vec<usize>)> = q
                .params
                .iter()
                .filter(|p| p.name.contains(".lora_B."))
                .map(|p| (p.name.clone(), p.tensor.shape().to_vec()))
                .collect();
            assert!(!names.is_empty(), "{name}: no adapters attached");
            for (n, shape) in names {
                let v = rng.vec(shape.iter().product(), 0.2);
                for m in [&mut q, &mut deq] {
                    m.params
                        .insert(&n, Tensor::from_f32(&gpu(), &shape, &v).unwrap());
                }
            }
            let (got, got_g) = logits_and_grads(&q, &tokens);
            let (want, want_g) = logits_and_grads(&deq, &tokens);
            let what = format!("{name} {format:?}");
            assert_close(&format!("{what} logits"), &got, &to_f64(&want), 1e-4, 1e-4);
            assert_eq!(
                got_g.keys().collect::<Vec<_>>(),
                want_g.keys().collect::<Vec<_>>(),
                "{what}: the same parameters get gradients"
            );
            for (k, g) in &got_g {
                assert!(k.contains(".lora_"), "{what}: {k} got a gradient");
                let w = to_f64(&want_g[k]);
                let scale = w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                assert_close(&format!("{what} d{k}"), g, &w, 1e-4 * scale.max(1e-3), 1e-3);
            }
        }
    }
}

#[test]
fn lora_trains_on_an_nf4_base_which_stays_frozen() {
    let (mut model, json, _) = fixture("gpt2-tiny");
    model.quantize_base(QuantFormat::Nf4).unwrap();
    let before: Vec<Vec<f32>> = model
        .quantized
        .values()
        .map(|q| q.dequantize_host().unwrap())
        .collect();
    let bias_before = model
        .params
        .get("transformer.h.0.attn.c_attn.bias")
        .unwrap()
        .to_vec()
        .unwrap();
    model
        .attach_lora(&LoraConfig::new(8, 16.0, &["c_attn", "c_proj", "c_fc"]), 3)
        .unwrap();
    let tokens = Tokens::new(ids(&json["input_ids"]), 2).unwrap();
    let base_logits = {
        let tape = Tape::new(&gpu());
        let _g = tape.no_grad();
        let vars = model.reference_vars(&tape).unwrap();
        model
            .forward(&tape, &vars, &tokens)
            .unwrap()
            .1
            .tensor()
            .to_vec()
            .unwrap()
    };
    let mut opt = Optimizer::new(
        AdamwConfig {
            lr: 1e-2,
            ..Default::default()
        },
        LrSchedule::constant(1e-2),
        Some(1.0),
    );
    let mut losses = Vec::new();
    for _ in 0..25 {
        let tape = Tape::new(&gpu());
        let vars = model.vars(&tape);
        let loss = model.lm_loss(&tape, &vars, &tokens, None).unwrap();
        losses.push(loss.tensor().item().unwrap());
        let grads = vars.grads(&tape.backward(&loss).unwrap());
        assert!(
            grads.keys().all(|k| k.contains(".lora_")),
            "only adapters train: {:?}",
            grads.keys().collect::<Vec<_>>()
        );
        assert!(
            opt.step(&model.params, &grads, losses[losses.len() - 1])
                .unwrap()
                .applied
        );
    }
    assert!(
        losses[24] < 0.7 * losses[0],
        "QLoRA loss did not fall: {losses:?}"
    );
    let after: Vec<Vec<f32>> = model
        .quantized
        .values()
        .map(|q| q.dequantize_host().unwrap())
        .collect();
    assert_eq!(before, after, "the NF4 base changed");
    assert_eq!(
        bias_before,
        model
            .params
            .get("transformer.h.0.attn.c_attn.bias")
            .unwrap()
            .to_vec()
            .unwrap()
    );
    // Adapters off is the untouched quantized base.
    let tape = Tape::new(&gpu());
    let _g = tape.no_grad();
    let vars = model.reference_vars(&tape).unwrap();
    let off = model
        .forward(&tape, &vars, &tokens)
        .unwrap()
        .1
        .tensor()
        .to_vec()
        .unwrap();
    assert_eq!(off, base_logits);
    let dir = crate::common::Scratch::new("qsave");
    assert!(model
        .save(
            &dir.path("model"),
            engine::models::checkpoint::SaveDtype::F32
        )
        .is_err());
}

#[test]
fn nf4_memory_at_gpt2_small_shapes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kernels-tests/fixtures/configs/gpt2.config.json");
    let mut cfg = engine::models::ModelConfig::from_file(&path).unwrap();
    cfg.n_layer = 1;
    let mut model =
        engine::models::CausalLm::random(&gpu(), cfg, engine::models::lm::Head::Lm, 1).unwrap();
    model.quantize_base(QuantFormat::Nf4).unwrap();
    let weights: usize = model
        .quantized
        .values()
        .map(|q| q.shape().0 * q.shape().1)
        .sum();
    let bytes: u64 = model.quantized.values().map(|q| q.bytes().total()).sum();
    let per = bytes as f64 / weights as f64;
    assert!(
        per <= 0.55,
        "NF4 + double quant stores {per} bytes per quantized weight"
    );
    let report = model.memory_report();
    assert!(
        report.iter().any(|(k, _)| k.starts_with("nf4 codes")),
        "{report:?}"
    );
}
