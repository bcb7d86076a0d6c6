//! `train-tokenizer` and `init`: a byte-level BPE trained on text, and a
//! fresh model of a chosen shape that loads back as the same model.

use engine::data::bpe::{train_bpe, EOS_TOKEN};
use engine::models::checkpoint::SaveDtype;
use engine::models::fresh::{fresh_model, ModelShape};
use engine::models::{Arch, CausalLm};
use std::process::Command;

use crate::common::{gpu, Scratch};

fn corpus() -> Vec<String> {
    let words = [
        "order", "refund", "invoice", "delivery", "account", "address", "payment",
    ];
    (0..400)
        .map(|i| {
            format!(
                "I need help with my {} number {} please, the {} is late",
                words[i % 7],
                i,
                words[(i * 3) % 7]
            )
        })
        .collect()
}

#[test]
fn bpe_learns_merges_and_round_trips_text() {
    let tok = train_bpe(corpus().into_iter(), 400).unwrap();
    assert_eq!(tok.token_to_id(EOS_TOKEN), Some(0));
    assert_eq!(tok.token_to_id("<|padding|>"), Some(1));
    assert!(tok.get_vocab_size(true) <= 400);
    let text = "I need help with my refund, café ✓ {{Order Number}}";
    let enc = tok.encode(text, false).unwrap();
    // Merges make common words single tokens; unseen bytes still encode.
    assert!(enc.get_ids().len() < text.len());
    assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), text);
    let eos = tok.encode(format!("late{EOS_TOKEN}"), false).unwrap();
    assert_eq!(eos.get_ids().last(), Some(&0));
}

#[test]
fn bpe_rejects_a_vocab_too_small_for_the_bytes() {
    let err = train_bpe(corpus().into_iter(), 100)
        .unwrap_err()
        .to_string();
    assert!(err.contains("vocab size 100"), "{err}");
}

#[test]
fn fresh_neox_and_gpt2_models_save_and_load_with_their_shape() {
    let gpu = gpu();
    let tok = train_bpe(corpus().into_iter(), 320).unwrap();
    for arch in [Arch::GptNeox, Arch::Gpt2] {
        let shape = ModelShape {
            arch,
            vocab_size: 320,
            hidden: 32,
            layers: 2,
            heads: 2,
            intermediate: 64,
            context: 48,
        };
        let model = fresh_model(&gpu, &shape, tok.clone(), 7).unwrap();
        let dir = Scratch::new(&format!("fresh-{arch:?}"));
        model.save(&dir, SaveDtype::F32).unwrap();
        let back = CausalLm::load(&gpu, &dir).unwrap();
        assert_eq!(back.cfg.arch, arch);
        assert_eq!(back.cfg.vocab_size, 320);
        assert_eq!(back.cfg.eos_token_id, Some(0));
        let counted: usize = back
            .params
            .to_host()
            .unwrap()
            .values()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        assert_eq!(counted, shape.param_count(), "{arch:?}");
        let ids = back.encode("refund please").unwrap();
        assert!(!ids.is_empty());
    }
}

#[test]
fn fresh_model_refuses_a_vocab_smaller_than_the_tokenizer() {
    let tok = train_bpe(corpus().into_iter(), 320).unwrap();
    let n = tok.get_vocab_size(true);
    let shape = ModelShape {
        arch: Arch::GptNeox,
        vocab_size: n - 1,
        hidden: 32,
        layers: 1,
        heads: 2,
        intermediate: 64,
        context: 16,
    };
    let err = fresh_model(&gpu(), &shape, tok, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tokenizer has"), "{err}");
}

#[test]
fn cli_trains_a_tokenizer_then_inits_a_model() {
    let dir = Scratch::new("cli-build");
    let data = dir.join("texts.jsonl");
    let rows: Vec<String> = corpus()
        .iter()
        .map(|t| serde_json::json!({ "prompt": t, "completion": "ok", "n": 3 }).to_string())
        .collect();
    std::fs::write(&data, rows.join("\n")).unwrap();
    let tok_dir = dir.join("tok");
    let engine = env!("CARGO_BIN_EXE_engine");
    let out = Command::new(engine)
        .args(["train-tokenizer", "--data"])
        .arg(&data)
        .args(["--vocab-size", "330", "--out"])
        .arg(&tok_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model_dir = dir.join("model");
    let out = Command::new(engine)
        .args([
            "init",
            "--hidden",
            "32",
            "--layers",
            "1",
            "--heads",
            "2",
            "--context",
            "32",
        ])
        .arg("--tokenizer")
        .arg(&tok_dir)
        .arg("--out")
        .arg(&model_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "engine_template.json",
    ] {
        assert!(model_dir.join(f).is_file(), "{f} missing");
    }
    // A missing field is an error naming it and the row.
    let out = Command::new(engine)
        .args(["train-tokenizer", "--fields", "text", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(dir.join("tok2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("texts.jsonl:1") && err.contains("text"),
        "{err}"
    );
}
