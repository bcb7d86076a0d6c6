//! The divergence guard (`engine::train::divergence`): K skipped steps in a
//! row stop a run, a finite step starts the count over, a non-finite weight
//! stops it at once; the stop names the step, the first non-finite quantity
//! and the last good checkpoint; the summary counts skipped steps; nothing
//! non-finite is saved; a non-finite reward is an error.

use super::{fixture, model_dir, parse, scratch, Scratch};
use engine::models::checkpoint::{save_safetensors, HostTensor, SaveDtype};
use engine::models::CausalLm;
use engine::ops::adamw::AdamwConfig;
use engine::train::divergence::{DivergenceGuard, GuardState, NonFinite};
use engine::train::optim::{LrSchedule, Optimizer};
use engine::train::scoring::{score_checked, Sample, Scorer};
use engine::train::session::Session;
use engine::train::sft::loss::sft_grads;
use engine::train::sft::{load_sft_data, SftArgs};
use std::collections::BTreeMap;
use std::path::Path;

fn optimizer() -> Optimizer {
    Optimizer::new(AdamwConfig::default(), LrSchedule::constant(0.1), None)
}

/// What an applied update does to the counters the guard reads.
fn applied(opt: &mut Optimizer) {
    opt.step += 1;
    opt.fault = None;
}

fn nan_loss() -> NonFinite {
    NonFinite::Loss(f32::NAN)
}

#[test]
fn k_skipped_steps_in_a_row_stop_and_a_finite_step_starts_over() {
    let mut opt = optimizer();
    let mut g = DivergenceGuard::new(3, GuardState::default(), opt.updates());
    applied(&mut opt);
    assert!(g.observe(1, opt.updates()).is_none());
    for step in 2..=3 {
        opt.veto(nan_loss());
        assert!(g.observe(step, opt.updates()).is_none(), "step {step}");
    }
    assert_eq!(g.state().consecutive, 2);
    applied(&mut opt); // a finite step resets the streak
    assert!(g.observe(4, opt.updates()).is_none());
    assert_eq!((g.state().consecutive, g.state().first.clone()), (0, None));
    opt.veto(NonFinite::GradNorm {
        norm: f32::INFINITY,
        first: Some("w".into()),
    });
    assert!(g.observe(5, opt.updates()).is_none());
    // A step with no update at all (PPO's ratio guard) leaves the streak.
    assert!(g.observe(6, opt.updates()).is_none());
    opt.veto(nan_loss());
    assert!(g.observe(7, opt.updates()).is_none());
    opt.veto(nan_loss());
    let stop = g
        .observe(8, opt.updates())
        .expect("3 skipped steps in a row");
    assert_eq!((stop.step, stop.first_step, stop.consecutive), (8, 5, 3));
    assert!(stop.first.contains("gradient of `w`"), "{}", stop.first);
    assert_eq!(g.state().skipped_steps, 5);
    let msg = stop.message(Some((4, Path::new("/runs/x/checkpoint"))));
    for want in [
        "step 8",
        "step 5",
        "non-finite",
        "/runs/x/checkpoint (step 4)",
        "--max-skipped-steps 3",
    ] {
        assert!(msg.contains(want), "`{want}` not in: {msg}");
    }
    assert!(stop.message(None).contains("No checkpoint was saved"));
}

#[test]
fn a_step_whose_last_update_applied_is_not_skipped() {
    // PPO: several updates a step; the step counts by its last one.
    let mut opt = optimizer();
    let mut g = DivergenceGuard::new(1, GuardState::default(), opt.updates());
    opt.veto(nan_loss());
    applied(&mut opt);
    assert!(g.observe(1, opt.updates()).is_none());
    applied(&mut opt);
    opt.veto(nan_loss());
    assert!(
        g.observe(2, opt.updates()).is_some(),
        "K = 1 stops at the first"
    );
}

#[test]
fn a_non_finite_parameter_stops_at_once_and_state_resumes() {
    let mut opt = optimizer();
    let mut g = DivergenceGuard::new(5, GuardState::default(), opt.updates());
    opt.veto(nan_loss());
    assert!(g.observe(1, opt.updates()).is_none());
    // A resumed guard carries the streak on.
    let mut g = DivergenceGuard::new(5, g.state().clone(), opt.updates());
    opt.veto(NonFinite::Parameter("transformer.wte.weight".into()));
    let stop = g
        .observe(2, opt.updates())
        .expect("a NaN weight cannot recover");
    assert_eq!((stop.first_step, stop.consecutive), (1, 2));
    assert!(stop.message(None).contains("`transformer.wte.weight`"));
}

fn sft_session_args(out: &Path, extra: &[&str]) -> SftArgs {
    let out = out.display().to_string();
    let mut flags = vec![
        "--model",
        &model_dir("gpt2-tiny"),
        "--data",
        &fixture("sft_train.jsonl"),
        "--out",
        &out,
        "--progress",
        "silent",
        "--lr",
        "1e-3",
        "--batch-size",
        "2",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    flags.extend(extra.iter().map(|s| s.to_string()));
    parse(&flags.iter().map(String::as_str).collect::<Vec<_>>())
}

const POISONED_GRAD: &str = "transformer.h.0.mlp.c_fc.weight";

/// Runs an SFT session whose steps in `poisoned` get a NaN in one gradient;
/// returns the session's end (the summary or the error) and the model.
fn run_poisoned(
    name: &str,
    extra: &[&str],
    poisoned: &[u64],
) -> (Result<engine::train::session::RunSummary, String>, Scratch) {
    let gpu = crate::common::gpu();
    let out = scratch(name);
    let mut args = sft_session_args(&out, extra);
    let mut model = CausalLm::load(&gpu, Path::new(&model_dir("gpt2-tiny"))).unwrap();
    let d = load_sft_data(&args, &model, &args.common.chat_template().unwrap()).unwrap();
    let mut s = Session::start(&mut args, &mut model, "sft", 1e-3, &[]).unwrap();
    while let Some(step) = s.next_step() {
        let b = engine::data::sft_batch(&d.train[..2], d.pad).unwrap();
        let (loss, grads) = sft_grads(&model, &[b], |_| None).unwrap();
        if poisoned.contains(&step) {
            let g = &grads[POISONED_GRAD];
            let mut host = vec![0.0; g.numel()];
            host[1] = f32::NAN;
            g.write(&host).unwrap();
        }
        let rep = s.apply(&model, &grads, loss as f32).unwrap();
        assert_eq!(rep.applied, !poisoned.contains(&step), "step {step}");
        if let Err(e) = s.end_step(&model, step, &[("loss".into(), loss)], None) {
            return (Err(format!("{e:#}")), out);
        }
    }
    let summary = s.finish(&mut model, false, None, &["loss"]);
    (summary.map_err(|e| format!("{e:#}")), out)
}

fn summary_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn skipped_steps_are_counted_and_the_run_finishes_below_k() {
    let (end, out) = run_poisoned(
        "div-count",
        &["--steps", "5", "--max-skipped-steps", "2"],
        &[1, 3, 5],
    );
    let summary = end.unwrap();
    assert!(summary.finished);
    assert_eq!((summary.skipped_steps, summary.skipped_updates), (3, 3));
    assert!(summary.to_string().contains("3 non-finite steps skipped"));
    assert_eq!(summary_json(&out)["skipped_steps"], 3);
    assert!(out.join("model/model.safetensors").exists());
}

#[test]
fn k_skipped_steps_stop_the_run_naming_step_quantity_and_checkpoint() {
    let (end, out) = run_poisoned(
        "div-stop",
        &[
            "--steps",
            "6",
            "--max-skipped-steps",
            "2",
            "--save-every",
            "1",
        ],
        &[2, 3],
    );
    let err = end.unwrap_err();
    let ckpt = out.join("checkpoint").display().to_string();
    for want in [
        "step 3",
        "step 2",
        &format!("the gradient of `{POISONED_GRAD}`"),
        "non-finite",
        &format!("{ckpt} (step 2)"),
        "--max-skipped-steps 2",
    ] {
        assert!(err.contains(want), "`{want}` not in: {err}");
    }
    let s = summary_json(&out);
    assert_eq!(
        (s["finished"].as_bool(), s["skipped_steps"].as_u64()),
        (Some(false), Some(2))
    );
    assert!(s["diverged"].as_str().unwrap().contains("step 3"));
    assert!(
        !out.join("model").exists(),
        "a diverged run wrote its final model"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("checkpoint/trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        state["divergence"]["consecutive"], 1,
        "the streak is checkpointed"
    );
}

#[test]
fn a_non_finite_weight_stops_at_once_and_is_never_checkpointed() {
    let gpu = crate::common::gpu();
    let out = scratch("div-nan-weight");
    let mut args = sft_session_args(&out, &["--steps", "4", "--save-every", "1"]);
    let mut model = CausalLm::load(&gpu, Path::new(&model_dir("gpt2-tiny"))).unwrap();
    let d = load_sft_data(&args, &model, &args.common.chat_template().unwrap()).unwrap();
    let ln = "transformer.ln_f.bias";
    let mut poisoned = vec![0.0; model.params.get(ln).unwrap().numel()];
    poisoned[0] = f32::NAN;
    model.params.get(ln).unwrap().write(&poisoned).unwrap();
    let mut s = Session::start(&mut args, &mut model, "sft", 1e-3, &[]).unwrap();
    let step = s.next_step().unwrap();
    let b = engine::data::sft_batch(&d.train[..2], d.pad).unwrap();
    let (loss, grads) = sft_grads(&model, &[b], |_| None).unwrap();
    assert!(!s.apply(&model, &grads, loss as f32).unwrap().applied);
    let err = format!("{:#}", s.end_step(&model, step, &[], None).unwrap_err());
    assert!(
        err.contains(&format!("non-finite parameter `{ln}`")),
        "{err}"
    );
    assert!(err.contains("No checkpoint was saved"), "{err}");
    let err = format!("{:#}", s.checkpoint(&model, None).unwrap_err());
    assert!(
        err.contains("not writing the checkpoint") && err.contains(ln),
        "{err}"
    );
    assert!(!out.join("checkpoint").exists());
}

#[test]
fn saving_refuses_a_non_finite_or_f16_overflowing_tensor() {
    let dir = scratch("div-save");
    let path = dir.join("w.safetensors");
    let mut t = BTreeMap::new();
    t.insert("ok".to_string(), HostTensor::new(&[2], vec![1.0, 2.0]));
    t.insert(
        "bad".to_string(),
        HostTensor::new(&[3], vec![1.0, 2.0, f32::INFINITY]),
    );
    let err = format!(
        "{:#}",
        save_safetensors(&path, &t, SaveDtype::F32).unwrap_err()
    );
    assert!(
        err.contains("`bad`") && err.contains("non-finite") && err.contains("index 2"),
        "{err}"
    );
    assert!(!path.exists());
    t.remove("bad");
    t.insert("big".to_string(), HostTensor::new(&[1], vec![1e9]));
    save_safetensors(&path, &t, SaveDtype::F32).expect("huge but finite is the user's choice");
    let err = format!(
        "{:#}",
        save_safetensors(&path, &t, SaveDtype::F16).unwrap_err()
    );
    assert!(err.contains("`big`") && err.contains("float16"), "{err}");
}

#[test]
fn a_non_finite_reward_is_an_error_naming_the_response() {
    let nan = |_: &str, r: &str, _: &[u32]| if r == "b" { f32::NAN } else { 1.0 };
    let sample = |response| Sample {
        prompt_ids: &[1],
        response_ids: &[2],
        prompt: "p",
        response,
        finished: true,
    };
    let samples = [sample("a"), sample("b")];
    let err = format!(
        "{:#}",
        score_checked(&nan as &dyn Scorer, &samples).unwrap_err()
    );
    assert!(
        err.contains("reward function gave a non-finite reward (NaN) for response 2 of 2"),
        "{err}"
    );
    let ok = |_: &str, _: &str, _: &[u32]| 0.5f32;
    assert_eq!(
        score_checked(&ok as &dyn Scorer, &samples).unwrap(),
        vec![0.5, 0.5]
    );
}
