//! `engine export-run --to trl RUN_DIR`: a run's config as TRL's config
//! keyword arguments, PEFT/ModelConfig, the dataset mapping and launch lines.
//! Every key written is checked against the fields of TRL 1.16.0's classes
//! (fixtures/trl/config_fields.json, written by
//! examples/continue_in_trl/trl_fields.py); examples/continue_in_trl runs the
//! exports in real TRL.

use super::{model_dir, root, scratch};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// The keyword arguments TRL 1.16.0's `class` accepts.
fn trl_fields(class: &str) -> BTreeSet<String> {
    let path = root().join("kernels-tests/fixtures/trl/config_fields.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v[class]
        .as_array()
        .unwrap_or_else(|| panic!("no {class} in config_fields.json"))
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// config.json's `config` keys are the config class's fields, `model`'s
/// ModelConfig's, and config.yaml's keys those of the classes TRL's scripts
/// parse (config, ModelConfig, ScriptArguments, DatasetMixtureConfig).
fn keys_are_trls(dir: &Path, out: &Value) {
    let class = out["config_class"].as_str().unwrap();
    let (config, model) = (trl_fields(class), trl_fields("ModelConfig"));
    for k in out["config"].as_object().unwrap().keys() {
        assert!(config.contains(k), "{class} has no {k}");
    }
    for k in out["model"].as_object().unwrap().keys() {
        assert!(model.contains(k), "ModelConfig has no {k}");
    }
    let mut all = config;
    for c in ["ModelConfig", "ScriptArguments", "DatasetMixtureConfig"] {
        all.extend(trl_fields(c));
    }
    let yaml = std::fs::read_to_string(dir.join("trl/config.yaml")).unwrap();
    for line in yaml.lines().filter(|l| !l.starts_with('#')) {
        let key = line.split(':').next().unwrap();
        assert!(all.contains(key), "TRL's scripts read no {key}: {yaml}");
    }
}

fn export(dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["export-run", "--to", "trl", &dir.display().to_string()])
        .output()
        .unwrap()
}

/// Runs the engine binary with `args`; its output, which must be a success.
fn engine_ok(args: &[&str]) -> std::process::Output {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// The `trl/config.json` export-run wrote into run directory `dir`.
fn exported(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("trl/config.json")).unwrap()).unwrap()
}

/// A real one-step `engine <trainer>` run of gpt2-tiny on `data` into
/// `run`, then exported: its TRL config.
fn train_and_export(trainer: &str, data: &Path, more: &[&str], run: &Path) -> Value {
    let (data, run_s) = (data.display().to_string(), run.display().to_string());
    let model = model_dir("gpt2-tiny");
    let mut args = vec![trainer, "--model", &model];
    args.extend(["--data", &data, "--steps", "1", "--batch-size", "4"]);
    args.extend(more);
    args.extend(["--progress", "silent", "--out", &run_s]);
    engine_ok(&args);
    engine_ok(&["export-run", "--to", "trl", &run_s]);
    exported(run)
}

#[test]
fn a_dpo_run_exports_as_dpo_config_with_lora_and_a_launch_line() {
    let dir = scratch("export-run-dpo");
    let cfg = json!({
        "model": "runs/sft/model", "data": "prefs.jsonl", "eval-data": "prefs_eval.jsonl",
        "eval-fraction": 0.0, "out": *dir, "force": false, "steps": 300, "epochs": null,
        "batch-size": 4, "lr": 5e-7, "seed": 7, "resume": null, "config": null, "grad-accum": 2,
        "warmup-steps": 10, "schedule": null, "max-grad-norm": 1.0, "weight-decay": 0.0,
        "eval-every": 50, "save-every": 100, "keep-checkpoints": false, "report-to": ["tensorboard"],
        "log-every": 10, "max-len": 512, "template": null, "skip-bad-rows": false,
        "columns": "chosen=good,rejected=bad", "quant": "nf4", "lora-r": 16, "lora-alpha": 32.0,
        "lora-dropout": 0.05, "lora-targets": ["query_key_value"], "progress": "auto",
        "max-skipped-steps": 3, "stop-after": null, "loss": "ipo", "beta": 0.20000000298023224,
        "label-smoothing": 0.0, "desirable-weight": 1.0, "undesirable-weight": 1.0
    });
    std::fs::write(dir.join("run_config.json"), cfg.to_string()).unwrap();
    std::fs::write(dir.join("summary.json"), r#"{"trainer": "dpo"}"#).unwrap();
    let o = export(&dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(
        stdout.contains("accelerate launch")
            && stdout.contains("trl/scripts/dpo.py")
            && stdout.contains("trl dpo --config")
            && stdout.contains("openrlhf.cli.train_dpo"),
        "{stdout}"
    );
    let out = exported(&dir);
    assert_eq!(
        (out["trainer"].as_str(), out["config_class"].as_str()),
        (Some("DPOTrainer"), Some("DPOConfig"))
    );
    let c = &out["config"];
    for (k, v) in [
        ("max_steps", json!(300)),
        ("per_device_train_batch_size", json!(4)),
        ("gradient_accumulation_steps", json!(2)),
        ("learning_rate", json!(5e-7)),
        ("lr_scheduler_type", json!("linear")),
        // an f32 0.2 in the run file, written short
        ("beta", json!(0.2)),
        // TRL 1.x: a list of losses
        ("loss_type", json!(["ipo"])),
        ("bf16", json!(false)),
        ("max_length", json!(512)),
        ("eval_strategy", json!("steps")),
        ("eval_steps", json!(50)),
        ("save_steps", json!(100)),
        ("report_to", json!(["tensorboard"])),
        ("seed", json!(7)),
    ] {
        assert_eq!(c[k], v, "{k} in {c}");
    }
    let m = &out["model"];
    assert_eq!(
        (
            m["use_peft"].clone(),
            m["lora_r"].clone(),
            m["bnb_4bit_quant_type"].clone()
        ),
        (json!(true), json!(16), json!("nf4"))
    );
    assert_eq!(
        out["dataset"]["rename_columns"],
        json!({"good": "chosen", "bad": "rejected"})
    );
    let yaml = std::fs::read_to_string(dir.join("trl/config.yaml")).unwrap();
    assert!(
        yaml.contains("\nbeta: 0.2\n") && yaml.contains("\nlora_r: 16\n"),
        "{yaml}"
    );
    // TRL's scripts load `datasets:` into one train split: no eval there.
    assert!(yaml.contains("\neval_strategy: \"no\"\n"), "{yaml}");
    let notes = out["notes"].to_string();
    assert!(
        notes.contains("--columns") && notes.contains("--eval-data"),
        "{notes}"
    );
    keys_are_trls(&dir, &out);
}

/// A real LoRA DPO run: TRL continues from its base and adapter, with the
/// base as the reference (and no prompt prefix: both tokenize as TRL 1.16).
#[test]
fn a_lora_dpo_run_exports_its_adapter_and_base_to_continue_from() {
    let dir = scratch("export-run-lora-dpo");
    let run = dir.join("run");
    let data = root().join("kernels-tests/fixtures/train/prefs_train.jsonl");
    let out = train_and_export("train-dpo", &data, &["--lora-r", "2"], &run);
    let from = &out["continue_from"];
    let canon = |p: &Path| p.canonicalize().unwrap().display().to_string();
    assert_eq!(
        from["adapter"],
        json!(canon(&run.join("adapter"))),
        "{from}"
    );
    assert_eq!(
        from["model_name_or_path"],
        json!(canon(Path::new(&model_dir("gpt2-tiny")))),
        "{from}"
    );
    assert!(from["how"].as_str().unwrap().contains("ref_model"));
    // engine and TRL 1.16 tokenize DPO alike: no prompt prefix to add.
    assert!(
        out["dataset"].get("prompt_prefix").is_none(),
        "{}",
        out["dataset"]
    );
    assert_eq!(out["dataset"]["data_files"]["train"], json!(canon(&data)));
    assert_eq!(
        (
            out["model"]["use_peft"].clone(),
            out["model"]["lora_r"].clone()
        ),
        (json!(true), json!(2))
    );
    keys_are_trls(&run, &out);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A full SFT run continues from its own model, in config.yaml too.
#[test]
fn an_sft_run_exports_its_model_to_continue_from() {
    let dir = scratch("export-run-sft");
    let run = dir.join("run");
    let data = root().join("kernels-tests/fixtures/train/sft_train.jsonl");
    let out = train_and_export("train-sft", &data, &[], &run);
    let model = run
        .join("model")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    assert_eq!(out["continue_from"], json!({"model_name_or_path": model}));
    assert_eq!(
        (
            out["trainer"].as_str(),
            out["config"]["completion_only_loss"].clone()
        ),
        (Some("SFTTrainer"), json!(true))
    );
    assert!(out["dataset"].get("prompt_prefix").is_none());
    // No --max-len: engine cuts to the model's context (gpt2-tiny: 64).
    assert_eq!(out["config"]["max_length"], json!(64));
    let yaml = std::fs::read_to_string(run.join("trl/config.yaml")).unwrap();
    assert!(
        yaml.contains(&format!("\nmodel_name_or_path: \"{model}\"\n")),
        "{yaml}"
    );
    keys_are_trls(&run, &out);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_that_is_no_run_is_named() {
    let dir = scratch("export-run-none");
    let o = export(&dir);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("run_config.json") && err.contains("export-run-none"),
        "{err}"
    );
}
