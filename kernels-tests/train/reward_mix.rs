//! Several reward sources summed with weights ([`engine::train::reward_mix`]):
//! the mix is Σ wᵢ·rᵢ of its components' own scores, and PPO logs each
//! component's mean as `env/reward_component/<name>`.

use super::cli_rlhf::{engine, ppo};
use super::{metric, metric_rows, model_dir, parse, scratch};
use crate::common::gpu;
use engine::train::ppo::PpoArgs;
use engine::train::reward_fn::Keyword;
use engine::train::reward_mix::reward_sources;
use engine::train::scoring::{
    score_checked_parts, OwnedSample, RewardKind, RewardLabelArgs, RewardModelScorer, Scorer,
};
use std::path::{Path, PathBuf};

fn sample(prompt: &str, response: &str, ids: &[u32]) -> OwnedSample {
    OwnedSample {
        prompt_ids: vec![5, 9, 2],
        response_ids: ids.to_vec(),
        prompt: prompt.into(),
        response: response.into(),
        finished: false,
    }
}

/// gpt2-tiny-reward (one label), a DistilBERT classifier's POSITIVE logit and
/// a keyword reward, weighted 0.5, −2 and 3: each sample's score is the
/// weighted sum of what each source scores alone, and the parts are named.
#[test]
fn a_reward_mix_is_the_weighted_sum_of_its_components() {
    let gpu = gpu();
    let (gpt, bert) = (
        model_dir("gpt2-tiny-reward"),
        model_dir("distilbert-tiny-cls"),
    );
    let flags = RewardLabelArgs {
        reward_label: Some("POSITIVE".into()),
        ..Default::default()
    };
    let models = [PathBuf::from(&gpt), PathBuf::from(&bert)];
    let keyword = Box::new(Keyword::new(&["good"]));
    let mix = reward_sources(
        &gpu,
        &models,
        &[0.5, -2.0],
        std::slice::from_ref(&flags),
        Some(("keyword", keyword)),
        Some(3.0),
    )
    .unwrap();
    let owned = [
        sample("The movie", " was good and fun.", &[7, 3, 11]),
        sample("A film", " that bored me.", &[4, 4]),
        sample("It", " was good, truly good", &[12, 1, 8, 2]),
    ];
    let views: Vec<_> = owned.iter().map(OwnedSample::view).collect();
    let (got, means) = score_checked_parts(mix.as_ref(), &views).unwrap();

    let rm = RewardModelScorer::load(&gpu, Path::new(&gpt)).unwrap();
    let cls = RewardModelScorer::load_with(&gpu, Path::new(&bert), &flags).unwrap();
    let parts = [
        rm.score(&views).unwrap(),
        cls.score(&views).unwrap(),
        Keyword::new(&["good"]).score(&views).unwrap(),
    ];
    assert_eq!(parts[2], vec![1.0, 0.0, 1.0]);
    for (i, g) in got.iter().enumerate() {
        let want = 0.5 * parts[0][i] - 2.0 * parts[1][i] + 3.0 * parts[2][i];
        assert!((g - want).abs() < 1e-5, "sample {i}: {g} vs {want}");
    }
    let names: Vec<&str> = means.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["gpt2-tiny-reward", "distilbert-tiny-cls", "keyword"]
    );
    for ((_, m), p) in means.iter().zip(&parts) {
        let want = p.iter().map(|&x| x as f64).sum::<f64>() / p.len() as f64;
        assert!((m - want).abs() < 1e-6, "{m} vs {want}");
    }
    assert!(mix.describe().contains("distilbert-tiny-cls"));
}

/// `train-ppo` with two reward models and a keyword logs each component's
/// mean beside env/reward_mean, which is their weighted sum.
#[test]
fn ppo_logs_each_reward_component() {
    let out = scratch("ppo-reward-mix");
    let (gpt, bert) = (
        model_dir("gpt2-tiny-reward"),
        model_dir("distilbert-tiny-cls"),
    );
    ppo(
        &out,
        &[
            "--reward-model",
            &gpt,
            "--reward-weight",
            "1",
            "--reward-model",
            &bert,
            "--reward-weight",
            "-0.5",
            "--reward-label",
            "POSITIVE",
            "--reward-keyword",
            "the",
            "--reward-fn-weight",
            "0.25",
        ],
    );
    let rows = metric_rows(&out);
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let part = |n: &str| metric(row, &format!("env/reward_component/{n}"));
        let want =
            part("gpt2-tiny-reward") - 0.5 * part("distilbert-tiny-cls") + 0.25 * part("keyword");
        let got = metric(row, "env/reward_mean");
        assert!((got - want).abs() < 1e-4, "{got} vs {want}: {row:?}");
    }
}

/// A run file's `reward-model` may stay one path (as before mixing) or list
/// several; a single source keeps its old behaviour (no component metrics).
#[test]
fn run_files_name_one_or_several_reward_models() {
    let dir = scratch("reward-mix-config");
    let (gpt, bert) = (
        model_dir("gpt2-tiny-reward"),
        model_dir("distilbert-tiny-cls"),
    );
    for (text, n) in [
        (format!("reward-model = \"{gpt}\"\n"), 1),
        (
            format!("reward-model = [\"{gpt}\", \"{bert}\"]\nreward-weight = [1.0, -0.5]\n"),
            2,
        ),
    ] {
        let cfg = dir.join("run.toml");
        std::fs::write(&cfg, format!("[ppo]\n{text}")).unwrap();
        let args: PpoArgs = parse(&["--config", &cfg.display().to_string()]);
        assert_eq!(args.reward.reward_model.len(), n, "{text}");
        assert_eq!(
            args.reward.reward_weight.len(),
            if n == 1 { 0 } else { 2 },
            "{text}"
        );
    }
    let out = scratch("ppo-single-rm");
    ppo(&out, &["--reward-model", &gpt]);
    assert!(metric_rows(&out)[0]
        .keys()
        .all(|k| !k.starts_with("env/reward_component/")));
}

/// `eval --json` and `best-of-n` with two weighted reward models report
/// each component's mean; eval's reward mean is their weighted sum.
#[test]
fn eval_and_best_of_n_report_reward_components() {
    let out = scratch("eval-reward-mix");
    let (m, gpt, bert) = (
        model_dir("gpt2-tiny"),
        model_dir("gpt2-tiny-reward"),
        model_dir("distilbert-tiny-cls"),
    );
    let d = super::root()
        .join("kernels-tests/fixtures/dpo/prompts.jsonl")
        .display()
        .to_string();
    let common = [
        "--model",
        &m,
        "--data",
        &d,
        "--template",
        "plain",
        "--max-new-tokens",
        "4",
        "--reward-model",
        &gpt,
        "--reward-weight",
        "2",
        "--reward-model",
        &bert,
        "--reward-weight",
        "-1",
        "--reward-label",
        "NEGATIVE",
    ];
    let mut args = vec!["eval", "--json"];
    args.extend(&common);
    let v: serde_json::Value = serde_json::from_str(&engine(&args)).unwrap();
    let parts = &v["reward_components"];
    let part = |n: &str| parts[n].as_f64().unwrap_or_else(|| panic!("no {n} in {v}"));
    let want = 2.0 * part("gpt2-tiny-reward") - part("distilbert-tiny-cls");
    let got = v["reward_mean"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");

    let best = out.join("best.jsonl").display().to_string();
    let mut args = vec!["best-of-n", "--n", "2", "--out", &best];
    args.extend(&common);
    let text = engine(&args);
    assert!(
        text.contains("reward component distilbert-tiny-cls"),
        "{text}"
    );
}

/// `--reward-label` / `--reward-kind` given once apply to every
/// `--reward-model`; given once per model they pair by position (flags or
/// run-file lists), and each component scores its own label.
#[test]
fn reward_labels_pair_with_reward_models_by_position() {
    let gpu = gpu();
    let bert = model_dir("distilbert-tiny-cls");
    let label = |l: &str, k: RewardKind| RewardLabelArgs {
        reward_label: Some(l.into()),
        reward_kind: k,
    };
    let two = ["--reward-model", &bert, "--reward-model", &bert];
    let args: PpoArgs = parse(&[&two[..], &["--reward-label", "POSITIVE"]].concat());
    let both = label("POSITIVE", RewardKind::Logit);
    assert_eq!(args.reward.labels().unwrap(), [both.clone(), both]);
    let flags = [
        "--reward-label",
        "NEGATIVE",
        "--reward-kind",
        "prob",
        "--reward-label",
        "POSITIVE",
    ];
    let args: PpoArgs = parse(&[&two[..], &flags].concat());
    let want = [
        label("NEGATIVE", RewardKind::Prob),
        label("POSITIVE", RewardKind::Prob),
    ];
    assert_eq!(args.reward.labels().unwrap(), want);
    let dir = scratch("reward-labels-config");
    let cfg = dir.join("run.toml");
    let toml = format!(
        "[ppo]\nreward-model = [\"{bert}\", \"{bert}\"]\nreward-label = [\"NEGATIVE\", \"POSITIVE\"]\n\
         reward-kind = [\"prob\", \"logit\"]\n"
    );
    std::fs::write(&cfg, toml).unwrap();
    let args: PpoArgs = parse(&["--config", &cfg.display().to_string()]);
    let labels = args.reward.labels().unwrap();
    assert_eq!(labels[1], label("POSITIVE", RewardKind::Logit));
    let args: PpoArgs = parse(&[&two[..], &flags, &["--reward-label", "1"]].concat());
    let err = args.reward.labels().unwrap_err().to_string();
    assert!(
        err.contains("3 --reward-label values for 2 --reward-model"),
        "{err}"
    );

    let mix = reward_sources(
        &gpu,
        &[PathBuf::from(&bert), PathBuf::from(&bert)],
        &[1.0, -1.0],
        &labels,
        None,
        None,
    )
    .unwrap();
    let owned = [
        sample("The movie", " was good.", &[7, 3]),
        sample("A", " bore", &[4]),
    ];
    let views: Vec<_> = owned.iter().map(OwnedSample::view).collect();
    let (got, parts) = score_checked_parts(mix.as_ref(), &views).unwrap();
    let alone = |l: &RewardLabelArgs| {
        let rm = RewardModelScorer::load_with(&gpu, Path::new(&bert), l).unwrap();
        rm.score(&views).unwrap()
    };
    let (neg, pos) = (alone(&labels[0]), alone(&labels[1]));
    for i in 0..views.len() {
        assert!((got[i] - (neg[i] - pos[i])).abs() < 1e-5, "sample {i}");
    }
    let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["distilbert-tiny-cls", "distilbert-tiny-cls_2"]);
}
