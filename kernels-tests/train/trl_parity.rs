//! Trainer-level parity with TRL 1.16.0: the token ids TRL built and the
//! metrics its DPOTrainer and RewardTrainer logged over 3 full-batch steps
//! on the tiny GPT-2 fixtures (fixtures/trl/parity.json, written by
//! fixtures/make_trl_parity.py), replayed by engine's trainers with the same
//! data, model and hyper-parameters, within 1e-4.

use super::{metric, metric_rows, model_dir, parse, root, scratch};
use engine::data::{
    load_preferences, ChatTemplate, Encoder, LoadOptions, PreferenceExample, Truncation,
};
use engine::models::CausalLm;
use engine::train::dpo::config::{DirectLoss, DpoConfig};
use engine::train::dpo::data::DirectData;
use engine::train::dpo::trainer::DpoTrainer;
use engine::train::optim::Schedule;
use engine::train::reward::{train_reward, RewardArgs};
use serde_json::Value;
use std::path::{Path, PathBuf};

const TOL: f64 = 1e-4;

pub(super) fn fixture() -> Value {
    let path = root().join("kernels-tests/fixtures/trl/parity.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn data() -> PathBuf {
    root().join("kernels-tests/fixtures/dpo/prefs.jsonl")
}

pub(super) fn ids(v: &Value) -> Vec<i32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() as i32)
        .collect()
}

/// TRL's DPOConfig(max_length=64) (TRL 1.16 has no max_prompt_length).
fn truncation() -> Truncation {
    Truncation::truncate(64)
}

fn lm(name: &str) -> (CausalLm, ChatTemplate) {
    let dir = Path::new(&model_dir(name)).to_path_buf();
    let m = CausalLm::load(&crate::common::gpu(), &dir).unwrap();
    (m, ChatTemplate::for_model_dir(&dir).unwrap())
}

/// `ours` within [`TOL`] of TRL's logged `theirs` (shared with the KTO parity test).
pub(super) fn close(what: &str, step: usize, ours: f64, theirs: &Value) {
    let t = theirs.as_f64().unwrap_or_else(|| panic!("no {what}"));
    assert!(
        (ours - t).abs() <= TOL,
        "step {step} {what}: engine {ours} vs TRL {t}"
    );
}

#[test]
fn dpo_and_reward_tokens_match_trl() {
    let fx = fixture();
    let (m, template) = lm("gpt2-tiny");
    let enc = Encoder::new(m.tokenizer.as_ref().unwrap(), &template, truncation());
    let rows = load_preferences(&data(), &LoadOptions::default()).unwrap();
    let pairs: Vec<PreferenceExample> = rows
        .rows
        .iter()
        .map(|r| enc.preference(r).unwrap())
        .collect();
    let trl = fx["dpo"]["tokens"].as_array().unwrap();
    assert_eq!(pairs.len(), trl.len());
    for (e, t) in pairs.iter().zip(trl) {
        // One shared prompt, no BOS (GPT-2's tokenizer adds none), each
        // completion ending with the EOS id.
        assert_eq!(
            e.prompt_ids,
            ids(&t["prompt_ids"]),
            "prompt of {}",
            e.origin
        );
        assert_eq!(
            e.chosen_ids,
            ids(&t["chosen_ids"]),
            "chosen of {}",
            e.origin
        );
        assert_eq!(
            e.rejected_ids,
            ids(&t["rejected_ids"]),
            "rejected of {}",
            e.origin
        );
    }
    let (rm, rt) = lm("gpt2-tiny-reward");
    let enc = Encoder::new(
        rm.tokenizer.as_ref().unwrap(),
        &rt,
        Truncation::truncate(64),
    );
    for (r, t) in rows
        .rows
        .iter()
        .zip(fx["reward"]["tokens"].as_array().unwrap())
    {
        let e = enc.reward_pair(r).unwrap();
        assert_eq!(e.chosen_ids, ids(&t["chosen"]));
        assert_eq!(e.rejected_ids, ids(&t["rejected"]));
    }
}

#[test]
fn dpo_three_full_batch_steps_match_trl() {
    let fx = fixture();
    let (m, template) = lm("gpt2-tiny");
    let enc = Encoder::new(m.tokenizer.as_ref().unwrap(), &template, truncation());
    let train = DirectData::load(&data(), DirectLoss::Dpo, &enc, &LoadOptions::default()).unwrap();
    // TRL's settings: AdamW lr 1e-3 constant, no warmup or decay, clip 1.0;
    // the reference is the initial policy (TRL's copy of the model).
    let cfg = DpoConfig {
        batch_size: 8,
        lr: 1e-3,
        weight_decay: 0.0,
        warmup_steps: 0,
        total_steps: 3,
        schedule: Schedule::Constant,
        max_grad_norm: Some(1.0),
        ..Default::default()
    };
    let mut t = DpoTrainer::new(m, cfg, train).unwrap();
    for (i, s) in fx["dpo"]["steps"].as_array().unwrap().iter().enumerate() {
        let r = t.step().unwrap();
        let m = &r.metrics;
        println!("step {}: {r:?}", i + 1);
        close("loss", i + 1, r.loss, &s["loss_exact"]);
        close("grad_norm", i + 1, r.grad_norm as f64, &s["grad_norm"]);
        close(
            "rewards/chosen",
            i + 1,
            m.rewards_chosen,
            &s["rewards/chosen"],
        );
        close(
            "rewards/rejected",
            i + 1,
            m.rewards_rejected,
            &s["rewards/rejected"],
        );
        close(
            "rewards/margins",
            i + 1,
            m.rewards_margins,
            &s["rewards/margins"],
        );
        let acc = m.rewards_accuracies.unwrap();
        close("rewards/accuracies", i + 1, acc, &s["rewards/accuracies"]);
        close("logps/chosen", i + 1, m.logps_chosen, &s["logps/chosen"]);
        close(
            "logps/rejected",
            i + 1,
            m.logps_rejected,
            &s["logps/rejected"],
        );
        // The token-weighted mean logit at the scored positions (TRL 1.16).
        close("logits/chosen", i + 1, m.logits_chosen, &s["logits/chosen"]);
        close(
            "logits/rejected",
            i + 1,
            m.logits_rejected,
            &s["logits/rejected"],
        );
    }
}

#[test]
fn reward_three_full_batch_steps_match_trl() {
    let fx = fixture();
    let out = scratch("trl-parity-rm");
    let (m, d, o) = (
        model_dir("gpt2-tiny-reward"),
        data().display().to_string(),
        out.join("run").display().to_string(),
    );
    let args: RewardArgs = parse(&[
        "--model",
        &m,
        "--data",
        &d,
        "--out",
        &o,
        "--progress",
        "silent",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--schedule",
        "constant",
        "--warmup-steps",
        "0",
        "--weight-decay",
        "0",
        "--max-grad-norm",
        "1",
        "--log-every",
        "1",
        "--max-len",
        "64",
    ]);
    train_reward(&crate::common::gpu(), args).unwrap();
    let rows = metric_rows(&out.join("run"));
    let steps = fx["reward"]["steps"].as_array().unwrap();
    assert_eq!(rows.len(), steps.len(), "{rows:?}");
    for (i, (row, s)) in rows.iter().zip(steps).enumerate() {
        println!("step {}: {row:?}", i + 1);
        close("loss", i + 1, metric(row, "loss"), &s["loss_exact"]);
        close(
            "grad_norm",
            i + 1,
            metric(row, "grad_norm"),
            &s["grad_norm"],
        );
        for key in ["accuracy", "margin"] {
            close(key, i + 1, metric(row, key), &s[key]);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// `rel` under the shared tree (../shared beside the checkout, or further up
/// from a worktree).
fn shared(rel: &str) -> PathBuf {
    root()
        .ancestors()
        .skip(1)
        .take(3)
        .map(|a| a.join("shared"))
        .find(|s| s.join("datasets").is_dir())
        .unwrap_or_else(|| root().join("../shared"))
        .join(rel)
}

/// TRL's RewardTrainer trains on pairs that share no prompt (whole texts):
/// so does engine, on HH-RLHF rows cut to their last 600 characters.
#[test]
fn reward_training_on_hh_rlhf_cut_to_600_characters_runs() {
    use std::io::Read;
    let mut text = String::new();
    let gz = std::fs::File::open(shared("datasets/hh-rlhf/harmless-base-test.jsonl.gz")).unwrap();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .unwrap();
    let tail = |s: &str| {
        let mut i = s.len().saturating_sub(600);
        while !s.is_char_boundary(i) {
            i += 1;
        }
        s[i..].to_string()
    };
    let out = scratch("hh600-rm");
    let mut rows = String::new();
    for line in text.lines().take(6) {
        let v: Value = serde_json::from_str(line).unwrap();
        let (c, r) = (
            v["chosen"].as_str().unwrap(),
            v["rejected"].as_str().unwrap(),
        );
        rows += &format!(
            "{}\n",
            serde_json::json!({"chosen": tail(c), "rejected": tail(r)})
        );
    }
    let data = out.join("hh600.jsonl");
    std::fs::write(&data, rows).unwrap();
    let rows = two_reward_steps(&out, &data, &[]);
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|r| metric(r, "loss").is_finite()),
        "{rows:?}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Two reward-model steps of batch 3 on `data` from gpt2-tiny, into
/// `out/run`; the rows of its metrics.jsonl.
fn two_reward_steps(
    out: &Path,
    data: &Path,
    extra: &[&str],
) -> Vec<serde_json::Map<String, Value>> {
    let (m, d, o) = (
        model_dir("gpt2-tiny"),
        data.display().to_string(),
        out.join("run").display().to_string(),
    );
    let mut flags = vec![
        "--model",
        &m,
        "--data",
        &d,
        "--out",
        &o,
        "--progress",
        "silent",
        "--steps",
        "2",
        "--batch-size",
        "3",
        "--lr",
        "1e-3",
        "--log-every",
        "1",
    ];
    flags.extend_from_slice(extra);
    let args: RewardArgs = parse(&flags);
    train_reward(&crate::common::gpu(), args).unwrap();
    metric_rows(&out.join("run"))
}

/// TRL's RewardTrainer renders conversational pairs that share no prompt
/// whole through the chat template: engine's train-reward trains on them.
#[test]
fn reward_training_on_conversations_without_a_shared_prefix_runs() {
    let out = scratch("no-prefix-chat-rm");
    let jinja = out.join("chatml.jinja");
    std::fs::write(
        &jinja,
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' \
         + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}\
         {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    )
    .unwrap();
    let mut rows = String::new();
    for (a, b) in [("cats", "dogs"), ("tea", "coffee"), ("rain", "sun")] {
        let side = |q: &str, r: &str| {
            serde_json::json!([{"role": "user", "content": format!("About {q}?")},
                               {"role": "assistant", "content": r}])
        };
        let row = serde_json::json!({"chosen": side(a, "Lovely."), "rejected": side(b, "No.")});
        rows += &format!("{row}\n");
    }
    let data = out.join("chat.jsonl");
    std::fs::write(&data, rows).unwrap();
    let rows = two_reward_steps(&out, &data, &["--template", jinja.to_str().unwrap()]);
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|r| metric(r, "loss").is_finite()),
        "{rows:?}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
