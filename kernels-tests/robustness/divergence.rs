//! Divergence and non-finite values: a run that goes NaN stops with the step,
//! the quantity and the last good checkpoint; no model or adapter with a
//! non-finite value is ever written; non-finite weights in any loaded
//! checkpoint are refused by name; a reward that is NaN/Inf fails the step.

use crate::harness::*;

/// The fixture data mixes string and conversational rows; gpt2-tiny has no
/// chat_template of its own, so the runs name engine's gpt2 template.
const SFT: &str = "--batch-size 2 --progress plain --template gpt2";

fn trainer(s: &Scratch, cmd: &str, data: &str, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let model = fixture_model("gpt2-tiny");
    let mut a = vec![
        cmd.to_string(),
        "--model".into(),
        model.display().to_string(),
        "--out".into(),
        s.path("run").display().to_string(),
    ];
    if !data.is_empty() {
        a.push("--data".into());
        a.push(fixture_data(data).display().to_string());
    }
    a.extend(line_with(SFT, extra).into_iter().map(String::from));
    a.iter().map(Into::into).collect()
}

#[test]
fn sft_with_a_huge_learning_rate_stops_and_saves_nothing_non_finite() {
    let s = Scratch::new("sft-lr-1e9");
    let args = trainer(
        &s,
        "train-sft",
        "sft.jsonl",
        &["--steps", "6", "--lr", "1e9"],
    );
    expect_error(
        &s.0,
        &args,
        &["step", "non-finite", "checkpoint", "--max-skipped-steps"],
    );
    assert!(no_nonfinite_weights_under(&s.path("run")));
    assert!(
        !s.path("run/model/model.safetensors").exists(),
        "a diverged run wrote its model"
    );
}

#[test]
fn max_skipped_steps_of_one_stops_at_the_first_non_finite_step() {
    let s = Scratch::new("sft-skip-1");
    let args = trainer(
        &s,
        "train-sft",
        "sft.jsonl",
        &line("--steps 6 --lr 1e9 --max-skipped-steps 1"),
    );
    expect_error(&s.0, &args, &["step", "non-finite"]);
}

#[test]
fn reward_training_with_a_huge_learning_rate_stops() {
    let s = Scratch::new("rm-lr-1e9");
    let args = trainer(
        &s,
        "train-reward",
        "prefs.jsonl",
        &["--steps", "6", "--lr", "1e9"],
    );
    expect_error(&s.0, &args, &["step", "non-finite"]);
    assert!(no_nonfinite_weights_under(&s.path("run")));
}

#[test]
fn dpo_with_a_huge_learning_rate_stops() {
    let s = Scratch::new("dpo-lr-1e9");
    let args = trainer(
        &s,
        "train-dpo",
        "prefs.jsonl",
        &["--steps", "6", "--lr", "1e9"],
    );
    expect_error(&s.0, &args, &["step", "non-finite"]);
    assert!(no_nonfinite_weights_under(&s.path("run")));
}

#[test]
fn ppo_with_a_huge_learning_rate_stops() {
    let s = Scratch::new("ppo-lr-1e9");
    let args = trainer(
        &s,
        "train-ppo",
        "prompts.jsonl",
        &line("--steps 5 --lr 1e9 --reward-keyword a --max-new-tokens 4 --mini-batch-size 2 --ppo-epochs 1"),
    );
    expect_error(&s.0, &args, &["step", "non-finite"]);
    assert!(no_nonfinite_weights_under(&s.path("run")));
}

fn poisoned_model(s: &Scratch, fixture: &str, tensor: &str, value: f32) -> String {
    let dir = s.model(fixture, "model");
    edit_f32(&dir.join("model.safetensors"), tensor, |v| v[3] = value);
    dir.display().to_string()
}

#[test]
fn generate_refuses_a_nan_weight_by_file_and_tensor() {
    let s = Scratch::new("gen-nan");
    let m = poisoned_model(&s, "gpt2-tiny", "transformer.h.1.mlp.c_fc.weight", f32::NAN);
    let args = os(&[
        "generate",
        "--model",
        &m,
        "--prompt",
        "Hello",
        "--max-new-tokens",
        "3",
    ]);
    expect_error(
        &s.0,
        &args,
        &[
            "model.safetensors",
            "transformer.h.1.mlp.c_fc.weight",
            "non-finite",
        ],
    );
}

#[test]
fn perplexity_refuses_an_infinite_weight() {
    let s = Scratch::new("ppl-inf");
    let m = poisoned_model(&s, "gpt2-tiny", "transformer.ln_f.weight", f32::INFINITY);
    let text = s.write("t.txt", "Hello world, this is a test.");
    let args = os(&[
        "perplexity",
        "--model",
        &m,
        "--text",
        &text.display().to_string(),
    ]);
    expect_error(
        &s.0,
        &args,
        &["model.safetensors", "transformer.ln_f.weight"],
    );
}

#[test]
fn training_refuses_a_nan_weight_in_the_base() {
    let s = Scratch::new("sft-nan-base");
    let m = poisoned_model(&s, "neox-parallel", "gpt_neox.embed_in.weight", f32::NAN);
    let data = fixture_data("sft.jsonl").display().to_string();
    let args = os(&[
        "train-sft",
        "--model",
        &m,
        "--data",
        &data,
        "--template",
        "gpt2",
        "--steps",
        "1",
        "--batch-size",
        "2",
    ]);
    expect_error(
        &s.0,
        &args,
        &["model.safetensors", "gpt_neox.embed_in.weight"],
    );
}

#[test]
fn eval_refuses_a_reward_model_with_a_nan_head() {
    let s = Scratch::new("eval-nan-rm");
    let rm = poisoned_model(&s, "gpt2-tiny-reward", "score.weight", f32::NAN);
    let policy = fixture_model("gpt2-tiny").display().to_string();
    let data = fixture_data("prompts.jsonl").display().to_string();
    let args = os(&[
        "eval",
        "--model",
        &policy,
        "--reward-model",
        &rm,
        "--data",
        &data,
        "--template",
        "gpt2",
        "--max-new-tokens",
        "3",
    ]);
    expect_error(&s.0, &args, &["model.safetensors", "score.weight"]);
}

#[test]
fn an_adapter_with_a_nan_weight_is_refused_by_file_and_tensor() {
    let s = Scratch::new("adapter-nan");
    let dir = s.model("gpt2-tiny-lora", "adapter");
    let file = dir.join("adapter_model.safetensors");
    let name = read_tensors(&file)
        .keys()
        .find(|k| k.contains("lora_B"))
        .unwrap()
        .clone();
    edit_f32(&file, &name, |v| v[0] = f32::NAN);
    let base = fixture_model("gpt2-tiny").display().to_string();
    let args = os(&[
        "generate",
        "--model",
        &base,
        "--adapter",
        &dir.display().to_string(),
        "--prompt",
        "Hi",
        "--max-new-tokens",
        "2",
    ]);
    expect_error(&s.0, &args, &["adapter_model.safetensors", &name]);
}

/// A reward head of huge but finite weights scores +-inf: PPO must fail the
/// step rather than log NaN rewards and report no skipped steps.
fn overflowing_reward_model(s: &Scratch) -> String {
    let dir = s.model("gpt2-tiny-reward", "rm");
    edit_f32(&dir.join("model.safetensors"), "score.weight", |v| {
        v.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = if i % 2 == 0 { 3e38 } else { -3e38 })
    });
    dir.display().to_string()
}

#[test]
fn ppo_fails_the_step_when_the_reward_model_scores_non_finite() {
    let s = Scratch::new("ppo-inf-reward");
    let rm = overflowing_reward_model(&s);
    let policy = fixture_model("gpt2-tiny").display().to_string();
    let data = fixture_data("prompts.jsonl").display().to_string();
    let args = os(&[
        "train-ppo",
        "--model",
        &policy,
        "--reward-model",
        &rm,
        "--data",
        &data,
        "--template",
        "gpt2",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--mini-batch-size",
        "2",
        "--max-new-tokens",
        "3",
        "--progress",
        "plain",
        "--out",
        &s.path("run").display().to_string(),
    ]);
    expect_error(&s.0, &args, &["reward", "non-finite", "step"]);
}

#[test]
fn best_of_n_fails_when_the_reward_model_scores_non_finite() {
    let s = Scratch::new("bon-inf-reward");
    let rm = overflowing_reward_model(&s);
    let policy = fixture_model("gpt2-tiny").display().to_string();
    let data = fixture_data("prompts.jsonl").display().to_string();
    let args = os(&[
        "best-of-n",
        "--model",
        &policy,
        "--reward-model",
        &rm,
        "--data",
        &data,
        "--template",
        "gpt2",
        "--n",
        "2",
        "--max-new-tokens",
        "3",
        "--out",
        &s.path("best.jsonl").display().to_string(),
    ]);
    expect_error(&s.0, &args, &["reward", "non-finite"]);
}

#[test]
fn export_refuses_to_write_a_non_finite_model() {
    let s = Scratch::new("export-nan");
    let m = poisoned_model(&s, "gpt2-tiny", "transformer.wpe.weight", f32::NAN);
    let out = s.path("out").display().to_string();
    let args = os(&["export", "--model", &m, "--out", &out]);
    expect_error(&s.0, &args, &["transformer.wpe.weight"]);
    assert!(!s.path("out/model.safetensors").exists());
}
