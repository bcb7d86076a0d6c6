//! SFT: loss falls, eval loss/perplexity, completion-only masking, gradient
//! accumulation equal to one big batch, LoRA training only adapters, and an
//! interrupted-and-resumed run identical to a straight one.

use super::{fixture, metric, metric_rows, model_dir, parse, scratch};
use engine::models::CausalLm;
use engine::train::sft::loss::{sft_eval, sft_grads, target_count};
use engine::train::sft::{load_sft_data, train_sft, SftArgs};
use std::path::Path;

fn base_flags(out: &Path) -> Vec<String> {
    [
        "--model",
        &model_dir("gpt2-tiny"),
        "--data",
        &fixture("sft_train.jsonl"),
        "--eval-data",
        &fixture("sft_eval.jsonl"),
        "--out",
        &out.display().to_string(),
        "--progress",
        "silent",
        "--lr",
        "1e-2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn sft_args(out: &Path, extra: &[&str]) -> SftArgs {
    let mut flags = base_flags(out);
    flags.extend(extra.iter().map(|s| s.to_string()));
    parse(&flags.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn loss_falls_and_eval_is_reported() {
    let out = scratch("sft-falls");
    let args = sft_args(
        &out,
        &["--steps", "8", "--batch-size", "4", "--eval-every", "4"],
    );
    let (_, summary) = train_sft(&crate::common::gpu(), args).unwrap();
    assert!(summary.finished && summary.steps == 8);
    let rows = metric_rows(&out);
    assert_eq!(rows.len(), 8);
    let (first, last) = (metric(&rows[0], "loss"), metric(&rows[7], "loss"));
    assert!(last < 0.6 * first, "train loss {first} -> {last}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.contains_key("eval_loss"), i == 3 || i == 7, "row {i}");
        assert!(metric(row, "grad_norm") > 0.0);
        assert!(metric(row, "learning_rate") > 0.0);
    }
    let (l4, l8) = (metric(&rows[3], "eval_loss"), metric(&rows[7], "eval_loss"));
    assert!(l8 < l4, "eval loss {l4} -> {l8}");
    assert!((metric(&rows[7], "eval_ppl") - l8.exp()).abs() < 1e-9 * l8.exp());
    // The final model is an HF directory that loads back.
    let dir = summary.saved.model.clone().unwrap();
    let m = CausalLm::load(&crate::common::gpu(), &dir).unwrap();
    assert_eq!(m.head, engine::models::lm::Head::Lm);
    hf_files_are_complete(&dir, &m);
    // The chart: a complete SVG with a line per panel.
    let chart = std::fs::read_to_string(summary.chart.unwrap()).unwrap();
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    assert!(chart.contains(">\neval_loss\n<") && chart.contains(">\ngrad_norm\n<"));
    assert!(chart.contains("<polyline"), "no series drawn");
}

/// transformers' save_pretrained files: special tokens, model_max_length,
/// tokenizer_class; no engine template unless one was asked for.
fn hf_files_are_complete(dir: &Path, m: &CausalLm) {
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    let tc = read("tokenizer_config.json");
    for key in ["bos_token", "eos_token", "pad_token", "tokenizer_class"] {
        assert!(tc[key].is_string(), "tokenizer_config.json {key}: {tc}");
    }
    assert_eq!(tc["model_max_length"], m.cfg.n_ctx);
    let st = read("special_tokens_map.json");
    assert_eq!(st["eos_token"], tc["eos_token"]);
    assert_eq!(st["pad_token"], tc["pad_token"]);
    let gen = read("generation_config.json");
    let tok = m.tokenizer.as_ref().unwrap();
    for (id, token) in [
        ("eos_token_id", "eos_token"),
        ("bos_token_id", "bos_token"),
        ("pad_token_id", "pad_token"),
    ] {
        assert_eq!(
            gen[id],
            tok.token_to_id(tc[token].as_str().unwrap()).unwrap(),
            "{id}"
        );
    }
    assert!(
        !dir.join("engine_template.json").exists(),
        "no engine template was asked for"
    );
}

#[test]
fn an_engine_template_is_written_as_the_chat_template() {
    let out = scratch("sft-template");
    let args = sft_args(
        &out,
        &["--steps", "1", "--batch-size", "2", "--template", "plain"],
    );
    let (_, summary) = train_sft(&crate::common::gpu(), args).unwrap();
    let dir = summary.saved.model.unwrap();
    assert!(dir.join("engine_template.json").is_file());
    let tc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
            .unwrap();
    let jinja = engine::data::EngineTemplate::plain().to_jinja();
    assert_eq!(tc["chat_template"], jinja.as_str());
}

#[test]
fn completion_only_masks_the_prompt() {
    let gpu = crate::common::gpu();
    let out = scratch("sft-mask");
    let model = CausalLm::load(&gpu, Path::new(&model_dir("gpt2-tiny"))).unwrap();
    let only: SftArgs = sft_args(&out, &[]);
    let all: SftArgs = sft_args(&out, &["--completion-only", "false"]);
    let template = only.common.chat_template().unwrap();
    let a = load_sft_data(&only, &model, &template).unwrap();
    let b = load_sft_data(&all, &model, &template).unwrap();
    for (x, y) in a.train.iter().zip(&b.train) {
        assert_eq!(x.ids, y.ids);
        assert!(y.loss_mask.iter().all(|&m| m == 1));
        let zeros = x.loss_mask.iter().take_while(|&&m| m == 0).count();
        assert!(zeros > 3, "the prompt is masked: {:?}", x.loss_mask);
        assert!(x.loss_mask[zeros..].iter().all(|&m| m == 1));
    }
    let ba = engine::data::sft_batch(&a.train[..4], a.pad).unwrap();
    let bb = engine::data::sft_batch(&b.train[..4], b.pad).unwrap();
    assert!(target_count(&ba) < target_count(&bb));
    let (la, _) = sft_eval(&model, &a.train[..4], 4, a.pad).unwrap();
    let (lb, _) = sft_eval(&model, &b.train[..4], 4, b.pad).unwrap();
    assert!(
        (la - lb).abs() > 1e-3,
        "same loss {la} with and without the mask"
    );
}

#[test]
fn grad_accumulation_equals_one_big_batch() {
    let gpu = crate::common::gpu();
    let out = scratch("sft-accum");
    let model = CausalLm::load(&gpu, Path::new(&model_dir("gpt2-tiny"))).unwrap();
    let args = sft_args(&out, &[]);
    let d = load_sft_data(&args, &model, &args.common.chat_template().unwrap()).unwrap();
    let ex = &d.train[..4];
    let batch = |e: &[engine::data::SftExample]| engine::data::sft_batch(e, d.pad).unwrap();
    let (l1, g1) = sft_grads(&model, &[batch(ex)], |_| None).unwrap();
    let (l2, g2) = sft_grads(&model, &[batch(&ex[..2]), batch(&ex[2..])], |_| None).unwrap();
    assert!((l1 - l2).abs() < 1e-5, "loss {l1} vs {l2}");
    assert_eq!(g1.len(), g2.len());
    for (name, a) in &g1 {
        let (a, b) = (a.to_vec().unwrap(), g2[name].to_vec().unwrap());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5,
                "{name}[{i}]: one batch {x} vs accumulated {y}"
            );
        }
    }
}

#[test]
fn lora_sft_trains_only_adapters() {
    let gpu = crate::common::gpu();
    let out = scratch("sft-lora");
    let args = sft_args(
        &out,
        &["--steps", "2", "--batch-size", "4", "--lora-r", "4"],
    );
    let (model, summary) = train_sft(&gpu, args).unwrap();
    let fresh = CausalLm::load(&gpu, Path::new(&model_dir("gpt2-tiny"))).unwrap();
    let mut adapters = 0;
    for p in model.params.iter() {
        let now = p.tensor.to_vec().unwrap();
        if p.name.contains("lora_") {
            adapters += 1;
            if p.name.contains("lora_B") {
                assert!(now.iter().any(|&x| x != 0.0), "{} did not train", p.name);
            }
        } else {
            assert_eq!(
                now,
                fresh.params.get(&p.name).unwrap().to_vec().unwrap(),
                "{}",
                p.name
            );
        }
    }
    assert_eq!(adapters, 4, "c_attn A and B in 2 layers");
    let adapter = summary.saved.adapter.unwrap();
    assert!(adapter.join("adapter_config.json").is_file());
    // AutoPeftModelForCausalLM finds the base model, and the tokenizer is saved beside.
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        cfg["base_model_name_or_path"],
        model_dir("gpt2-tiny").as_str()
    );
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        assert!(adapter.join(f).is_file(), "{f}");
    }
    assert!(summary.saved.model.is_none());
    assert!(out
        .join("checkpoint/adapter/adapter_model.safetensors")
        .is_file());
    assert!(!out.join("checkpoint/model").exists());
}

/// Straight vs interrupted at step 3 and resumed: same non-timing metrics,
/// bit-identical final weights (`weights` names the file to compare).
fn check_resume(name: &str, extra: &[&str], weights: &str) {
    let gpu = crate::common::gpu();
    let (a, b) = (scratch(&format!("{name}-a")), scratch(&format!("{name}-b")));
    let mut flags = vec![
        "--steps",
        "6",
        "--batch-size",
        "2",
        "--grad-accum",
        "2",
        "--warmup-steps",
        "2",
        "--schedule",
        "cosine",
        "--eval-every",
        "2",
    ];
    flags.extend_from_slice(extra);
    train_sft(&gpu, sft_args(&a, &flags)).unwrap();

    let mut stop = flags.clone();
    stop.extend_from_slice(&["--stop-after", "3"]);
    let (_, s) = train_sft(&gpu, sft_args(&b, &stop)).unwrap();
    assert!(!s.finished && s.steps == 3 && s.saved.model.is_none() && s.saved.adapter.is_none());
    // A row logged after the checkpoint (a crash mid-step 4) is redone.
    let mut log = std::fs::read_to_string(b.join("metrics.jsonl")).unwrap();
    log.push_str("{\"step\":4,\"loss\":123}\n");
    std::fs::write(b.join("metrics.jsonl"), log).unwrap();
    // Only --resume: every other setting comes from the checkpoint.
    let ckpt = b.join("checkpoint").display().to_string();
    let resumed: SftArgs = parse(&["--resume", &ckpt, "--progress", "silent"]);
    assert_eq!(resumed.common.out.as_deref(), Some(&*b));
    let (_, s) = train_sft(&gpu, resumed).unwrap();
    assert!(s.finished && s.steps == 6);

    assert_eq!(
        metric_rows(&a),
        metric_rows(&b),
        "metrics differ after resume"
    );
    let wa = std::fs::read(a.join(weights)).unwrap();
    let wb = std::fs::read(b.join(weights)).unwrap();
    assert!(wa == wb, "{weights} differs after resume");
    let oa = std::fs::read(a.join("checkpoint/optimizer.safetensors")).unwrap();
    let ob = std::fs::read(b.join("checkpoint/optimizer.safetensors")).unwrap();
    assert!(oa == ob, "optimizer state differs after resume");
}

#[test]
fn resume_is_exact() {
    check_resume("sft-resume", &[], "model/model.safetensors");
}

#[test]
fn resume_is_exact_with_lora_dropout() {
    check_resume(
        "sft-resume-lora",
        &[
            "--lora-r",
            "2",
            "--lora-dropout",
            "0.1",
            "--lora-targets",
            "c_attn,c_fc",
        ],
        "adapter/adapter_model.safetensors",
    );
}
