//! `engine export-run --to trl RUN_DIR`: a run's config as TRL's config
//! keyword arguments, PEFT/ModelConfig, the dataset mapping and launch lines.

use super::scratch;
use serde_json::{json, Value};

fn export(dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["export-run", "--to", "trl", &dir.display().to_string()])
        .output()
        .unwrap()
}

#[test]
fn a_dpo_run_exports_as_dpo_config_with_lora_and_a_launch_line() {
    let dir = scratch("export-run-dpo");
    let cfg = json!({
        "model": "runs/sft/model", "data": "prefs.jsonl", "eval-data": "prefs_eval.jsonl",
        "eval-fraction": 0.0, "out": dir, "force": false, "steps": 300, "epochs": null,
        "batch-size": 4, "lr": 5e-7, "seed": 7, "resume": null, "config": null, "grad-accum": 2,
        "warmup-steps": 10, "schedule": null, "max-grad-norm": 1.0, "weight-decay": 0.0,
        "eval-every": 50, "save-every": 100, "keep-checkpoints": false, "report-to": ["tensorboard"],
        "log-every": 10, "max-len": 512, "template": null, "skip-bad-rows": false,
        "columns": "chosen=good,rejected=bad", "quant": "nf4", "lora-r": 16, "lora-alpha": 32.0,
        "lora-dropout": 0.05, "lora-targets": ["query_key_value"], "progress": "auto",
        "max-skipped-steps": 3, "stop-after": null, "loss": "ipo", "beta": 0.2,
        "label-smoothing": 0.0, "desirable-weight": 1.0, "undesirable-weight": 1.0
    });
    std::fs::write(dir.join("run_config.json"), cfg.to_string()).unwrap();
    std::fs::write(dir.join("summary.json"), r#"{"trainer": "dpo"}"#).unwrap();
    let o = export(&dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(
        stdout.contains("accelerate launch") && stdout.contains("trl/scripts/dpo.py"),
        "{stdout}"
    );
    let out: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("trl/config.json")).unwrap())
            .unwrap();
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
        ("beta", json!(0.2)),
        ("loss_type", json!("ipo")),
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
