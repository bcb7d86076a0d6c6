//! `train-tokenizer --kind wordpiece|roberta` and `init --arch distilbert|bert|roberta`: a
//! BERT-style WordPiece and a fresh encoder classifier that loads back, pads
//! with `[PAD]` and classifies `[CLS] … [SEP]` text with its labels.
//! (Checked once by hand against transformers 5.23: AutoModelForSequenceClassification
//! and AutoTokenizer load such a directory and give the same ids and logits.)

use engine::data::wordpiece::train_wordpiece;
use engine::models::checkpoint::SaveDtype;
use engine::models::fresh::{fresh_classifier, ModelShape};
use engine::models::{Arch, CausalLm};
use std::process::Command;

use crate::common::gpu;
use crate::common::Scratch;

fn reviews() -> Vec<String> {
    let words = [
        "great",
        "awful",
        "boring",
        "moving",
        "funny",
        "slow",
        "brilliant",
    ];
    (0..300)
        .map(|i| {
            format!(
                "This Movie was {} and the acting was {}, {} stars.",
                words[i % 7],
                words[(i * 3) % 7],
                i % 10
            )
        })
        .collect()
}

fn labels() -> Vec<String> {
    vec!["NEGATIVE".into(), "POSITIVE".into()]
}

#[test]
fn wordpiece_lowercases_and_wraps_text_in_cls_and_sep() {
    let tok = train_wordpiece(reviews().into_iter(), 200).unwrap();
    assert_eq!(tok.token_to_id("[PAD]"), Some(0));
    let (cls, sep) = (tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]"));
    let enc = tok.encode("THIS movie was great", true).unwrap();
    let ids = enc.get_ids();
    assert_eq!(Some(ids[0]), cls);
    assert_eq!(ids.last().copied(), sep);
    let plain = tok.encode("this movie was great", false).unwrap();
    assert_eq!(&ids[1..ids.len() - 1], plain.get_ids());
    assert_eq!(
        tok.decode(plain.get_ids(), true).unwrap(),
        "this movie was great"
    );
    // Unseen characters become [UNK] rather than failing.
    let unk = tok.token_to_id("[UNK]").unwrap();
    assert!(tok.encode("✓", false).unwrap().get_ids().contains(&unk));
}

#[test]
fn wordpiece_rejects_a_tiny_vocab() {
    let err = train_wordpiece(reviews().into_iter(), 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("vocab size 10"), "{err}");
}

#[test]
fn fresh_distilbert_and_bert_classifiers_save_load_and_classify() {
    let gpu = gpu();
    let tok = train_wordpiece(reviews().into_iter(), 200).unwrap();
    for arch in [Arch::DistilBert, Arch::Bert] {
        let shape = ModelShape {
            arch,
            vocab_size: 256,
            hidden: 32,
            layers: 2,
            heads: 4,
            intermediate: 48,
            context: 40,
        };
        let model = fresh_classifier(&gpu, &shape, tok.clone(), &labels(), 3).unwrap();
        let dir = Scratch::new(&format!("fresh-cls-{arch:?}"));
        model.save(&dir, SaveDtype::F32).unwrap();
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert!(raw["architectures"][0]
            .as_str()
            .unwrap()
            .ends_with("ForSequenceClassification"));
        assert_eq!(raw["id2label"]["1"], "POSITIVE");
        assert_eq!(raw["label2id"]["NEGATIVE"], 0);
        assert_eq!(raw["pad_token_id"], 0);
        let back = CausalLm::load(&gpu, &dir).unwrap();
        assert_eq!(back.cfg.arch, arch);
        assert_eq!(back.cfg.num_labels, 2);
        let counted: usize = back
            .params
            .to_host()
            .unwrap()
            .values()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        let expected: usize = model
            .params
            .to_host()
            .unwrap()
            .values()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        assert_eq!(counted, expected, "{arch:?}");
        let logits = back
            .classify_texts(&["a great film", "an awful, slow film"], None)
            .unwrap();
        assert_eq!(logits.len(), 2);
        assert!(logits.iter().flatten().all(|x| x.is_finite()), "{logits:?}");
        assert!(logits.iter().all(|row| row.len() == 2));
    }
}

#[test]
fn fresh_classifier_refuses_a_causal_lm_and_a_tokenizer_without_pad() {
    let gpu = gpu();
    let tok = train_wordpiece(reviews().into_iter(), 200).unwrap();
    let mut shape = ModelShape {
        arch: Arch::Gpt2,
        vocab_size: 256,
        hidden: 32,
        layers: 1,
        heads: 4,
        intermediate: 48,
        context: 40,
    };
    let err = fresh_classifier(&gpu, &shape, tok, &labels(), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not an encoder"), "{err}");
    shape.arch = Arch::DistilBert;
    let bpe = engine::data::bpe::train_bpe(reviews().into_iter(), 320).unwrap();
    shape.vocab_size = 320;
    let err = fresh_classifier(&gpu, &shape, bpe, &labels(), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("[PAD]"), "{err}");
}

#[test]
fn cli_trains_a_wordpiece_then_inits_and_runs_a_distilbert_classifier() {
    let dir = Scratch::new("cli-build-encoder");
    let data = dir.join("reviews.jsonl");
    let rows: Vec<String> = reviews()
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({ "text": t, "label": i % 2 }).to_string())
        .collect();
    std::fs::write(&data, rows.join("\n")).unwrap();
    let engine = env!("CARGO_BIN_EXE_engine");
    let run = |args: &[&str]| {
        let out = Command::new(engine).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "engine {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (d, tok, model) = (data.to_str().unwrap(), dir.join("tok"), dir.join("cls"));
    let (tok, model) = (tok.to_str().unwrap(), model.to_str().unwrap());
    run(&[
        "train-tokenizer",
        "--kind",
        "wordpiece",
        "--fields",
        "text",
        "--vocab-size",
        "200",
        "--data",
        d,
        "--out",
        tok,
    ]);
    run(&[
        "init",
        "--arch",
        "distilbert",
        "--tokenizer",
        tok,
        "--hidden",
        "32",
        "--layers",
        "1",
        "--heads",
        "4",
        "--context",
        "64",
        "--labels",
        "bad,good",
        "--out",
        model,
    ]);
    let out = run(&[
        "classify",
        "--model",
        model,
        "--text",
        "A GREAT film",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["logits"].as_array().unwrap().len(), 2);
    assert!(
        ["bad", "good"].contains(&v["label"].as_str().unwrap()),
        "{v}"
    );
}

/// `train-tokenizer --kind roberta` and `init --arch roberta`: RoBERTa's
/// special ids and `<s> … </s>` wrapping; the new classifier has two more
/// position rows than its context (positions start after `<pad>` = 1), its
/// tokenizer_config's `model_max_length` is the context, and a text longer
/// than that is cut to fit.
#[test]
fn a_roberta_tokenizer_and_classifier_from_scratch() {
    let gpu = gpu();
    let tok = engine::data::bpe::train_roberta_bpe(reviews().into_iter(), 320).unwrap();
    for (id, t) in ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        .iter()
        .enumerate()
    {
        assert_eq!(tok.token_to_id(t), Some(id as u32), "{t}");
    }
    let ids = tok
        .encode("This movie was great", true)
        .unwrap()
        .get_ids()
        .to_vec();
    assert_eq!((ids[0], *ids.last().unwrap()), (0, 2), "{ids:?}");
    let plain = tok.encode("This movie was great", false).unwrap();
    assert_eq!(&ids[1..ids.len() - 1], plain.get_ids());
    assert_eq!(
        tok.decode(plain.get_ids(), true).unwrap(),
        "This movie was great"
    );

    let shape = ModelShape {
        arch: Arch::Roberta,
        vocab_size: 320,
        hidden: 32,
        layers: 1,
        heads: 4,
        intermediate: 48,
        context: 12,
    };
    let model = fresh_classifier(&gpu, &shape, tok, &labels(), 3).unwrap();
    let dir = Scratch::new("fresh-cls-roberta");
    model.save(&dir, SaveDtype::F32).unwrap();
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap()
    };
    let raw = read("config.json");
    assert_eq!(raw["architectures"][0], "RobertaForSequenceClassification");
    assert_eq!(raw["pad_token_id"], 1);
    assert_eq!(raw["max_position_embeddings"], 14);
    assert_eq!(read("tokenizer_config.json")["model_max_length"], 12);
    let back = CausalLm::load(&gpu, &dir).unwrap();
    assert_eq!((back.cfg.arch, back.max_length()), (Arch::Roberta, 12));
    let long = reviews()[..3].join(" ");
    let enc = back.encode_truncated(&[long.as_str()], None).unwrap();
    assert_eq!(enc[0].len(), 12);
    let logits = back
        .classify_texts(&[long.as_str(), "great"], None)
        .unwrap();
    assert!(logits.iter().flatten().all(|x| x.is_finite()), "{logits:?}");
}
