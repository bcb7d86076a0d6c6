//! Encoder classifiers (`engine classify`, `--reward-model` with a BERT-style
//! classifier, `train-reward` on one): a model without a classification
//! head, rows without text, a label the classifier does not have, a missing
//! `--reward-label`, preference data, generating with an encoder, and a new
//! encoder from a tokenizer without a pad token are
//! refused with errors naming the culprit.

use crate::harness::*;

const DISTILBERT: &str = "@model/distilbert-tiny-cls";

#[test]
fn classifying_with_a_causal_lm_is_refused() {
    refused(
        "classify-lm",
        &["classify", "--model", "@model/gpt2-tiny", "--text", "hi"],
        &["gpt2-tiny", "not a sequence classifier"],
    );
}

#[test]
fn a_classify_row_without_text_is_named() {
    let s = Scratch::new("classify-row");
    s.write("d.jsonl", "{\"text\": \"fine\"}\n{\"label\": 1}\n");
    let raw = ["classify", "--model", DISTILBERT, "--data", "@tmp/d.jsonl"];
    expect_error(&s.0, &args(&s, &raw), &["d.jsonl:2", "text"]);
}

#[test]
fn a_zero_max_length_is_refused() {
    let raw = ["classify", "--model", DISTILBERT, "--text", "hi"];
    let raw = [&raw[..], &["--max-length", "0"]].concat();
    refused("classify-max-len", &raw, &["--max-length"]);
}

#[test]
fn generating_with_an_encoder_is_refused() {
    let raw = ["generate", "--model", DISTILBERT, "--prompt", "The"];
    refused("encoder-generate", &raw, &["no LM head"]);
}

const PPO: &[&str] = &[
    "train-ppo",
    "--model",
    "@model/gpt2-tiny",
    "--data",
    "@data/prompts.jsonl",
    "--template",
    "plain",
    "--steps",
    "1",
    "--out",
    "@tmp/run",
    "--reward-model",
    DISTILBERT,
];

#[test]
fn an_encoder_reward_needs_a_label_it_has() {
    refused(
        "reward-label-missing",
        PPO,
        &["--reward-label", "NEGATIVE, POSITIVE"],
    );
    let raw = [PPO, &["--reward-label", "happy"]].concat();
    refused("reward-label-unknown", &raw, &["--reward-label", "happy"]);
}

/// Repeated `--reward-model` with a `--reward-weight` count that does not
/// match, a `--reward-fn-weight` without a reward function, and a
/// non-finite weight are refused naming the flags.
#[test]
fn mismatched_reward_weights_are_refused() {
    let two = [PPO, &["--reward-model", "@model/gpt2-tiny-reward"]].concat();
    let raw = [
        &two[..],
        &["--reward-label", "POSITIVE", "--reward-weight", "1"],
    ]
    .concat();
    refused(
        "reward-weight-count",
        &raw,
        &["1 --reward-weight", "2 --reward-model"],
    );
    let raw = [PPO, &["--reward-label", "1", "--reward-fn-weight", "2"]].concat();
    refused(
        "reward-fn-weight-alone",
        &raw,
        &["--reward-fn-weight", "--reward-keyword"],
    );
    let raw = [PPO, &["--reward-weight", "nan"]].concat();
    refused("reward-weight-nan", &raw, &["--reward-weight"]);
    // Per-model labels pair by position: one for all, or one per model.
    let raw = [
        &two[..],
        &[
            "--reward-label",
            "0",
            "--reward-label",
            "1",
            "--reward-label",
            "1",
        ],
    ]
    .concat();
    refused(
        "reward-label-count",
        &raw,
        &["3 --reward-label", "2 --reward-model"],
    );
}

#[test]
fn training_an_encoder_on_preference_pairs_is_refused() {
    let raw = [
        "train-reward",
        "--model",
        DISTILBERT,
        "--data",
        "@data/prefs.jsonl",
        "--steps",
        "1",
        "--out",
        "@tmp/run",
    ];
    refused("encoder-prefs", &raw, &["labelled texts"]);
}

#[test]
fn a_new_encoder_needs_a_tokenizer_with_a_pad_token() {
    // GPT-2's byte-level BPE has no [PAD] / <pad>: `init --arch distilbert`
    // wants a `train-tokenizer --kind wordpiece`.
    let raw = [
        "init",
        "--arch",
        "distilbert",
        "--tokenizer",
        "@model/gpt2-tiny",
        "--hidden",
        "32",
        "--out",
        "@tmp/cls",
    ];
    refused("init-encoder-no-pad", &raw, &["gpt2-tiny", "[PAD]"]);
}
