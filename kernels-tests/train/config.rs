//! Run configuration: run-file keys and tables, flag precedence, errors
//! naming the key and the file, the effective config, adaptation flags.

use super::{model_dir, parse, scratch};
use engine::models::CausalLm;
use engine::train::config::adapt::apply_adaptation;
use engine::train::config::run_file::{effective_config, parse_args};
use engine::train::config::Quant;
use engine::train::optim::Schedule;
use engine::train::run::utc_stamp;
use engine::train::sft::SftArgs;

fn write(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("run.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn parse_err(flags: &[&str]) -> String {
    let mut argv = vec!["engine"];
    argv.extend_from_slice(flags);
    match parse_args::<SftArgs>(&argv) {
        Ok(_) => panic!("{flags:?} parsed"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn run_file_fills_what_flags_leave_out() {
    let dir = scratch("cfg-precedence");
    let p = write(
        &dir,
        r#"
model = "m"
lr = 0.5
steps = 7
batch-size = 3
schedule = "cosine"
lora-targets = "c_attn, c_proj"
quant = "none"

[sft]
completion-only = false
steps = 9

[ppo]
anything = 1
"#,
    );
    let a: SftArgs = parse(&["--config", &p, "--lr", "0.1", "--batch-size", "8"]);
    let c = &a.common;
    assert_eq!(c.lr, Some(0.1), "a flag beats the file");
    assert_eq!(c.batch_size, 8, "a flag equal to its default still wins");
    assert_eq!(c.steps, 9, "the command's table beats flat keys");
    assert!(!a.completion_only);
    assert_eq!(c.schedule, Some(Schedule::Cosine));
    assert_eq!(c.model.as_deref(), Some(std::path::Path::new("m")));
    assert_eq!(
        c.lora_targets,
        Some(vec!["c_attn".to_string(), "c_proj".to_string()])
    );
    assert_eq!(c.quant, Quant::None);
    assert_eq!(c.grad_accum, 1, "untouched options keep their defaults");

    let json = effective_config(&a).unwrap();
    assert_eq!(json["lr"], serde_json::json!(0.1f32));
    assert_eq!(json["batch-size"], 8);
    assert_eq!(json["completion-only"], false);
    assert_eq!(
        json["lora-targets"],
        serde_json::json!(["c_attn", "c_proj"])
    );
}

#[test]
fn run_file_errors_name_key_and_file() {
    let dir = scratch("cfg-errors");
    let p = write(&dir, "steps = 3\nlearning-rate = 0.1\n");
    let e = parse_err(&["--config", &p]);
    assert!(e.contains("learning-rate") && e.contains(&p), "{e}");

    let p = write(&dir, "[sft]\nbogus = true\n");
    let e = parse_err(&["--config", &p]);
    assert!(e.contains("bogus") && e.contains(&p), "{e}");

    let p = write(&dir, "[sfft]\nsteps = 1\n");
    let e = parse_err(&["--config", &p]);
    assert!(e.contains("sfft") && e.contains(&p), "{e}");

    let p = write(&dir, "steps = \"many\"\n");
    let e = parse_err(&["--config", &p]);
    assert!(e.contains("steps") && e.contains(&p), "{e}");

    let e = parse_err(&["--config", "/nonexistent/run.toml"]);
    assert!(e.contains("/nonexistent/run.toml"), "{e}");

    // A flag that overrides a bad key does not hide it: the file is still checked.
    let p = write(&dir, "stepz = 1\n");
    let e = parse_err(&["--config", &p, "--steps", "2"]);
    assert!(e.contains("stepz"), "{e}");
}

#[test]
fn flag_checks() {
    let e = parse_err(&["--quant", "nf4"]);
    assert!(e.contains("--lora-r"), "{e}");
    let e = parse_err(&["--schedule", "exponential"]);
    assert!(e.contains("exponential"), "{e}");
    let e = parse_err(&["--columns", "prompt"]);
    assert!(e.contains("field=column"), "{e}");
}

#[test]
fn utc_stamps() {
    assert_eq!(utc_stamp(0), "1970-01-01T00-00-00Z");
    assert_eq!(utc_stamp(1_700_000_000), "2023-11-14T22-13-20Z");
    assert_eq!(utc_stamp(951_782_400), "2000-02-29T00-00-00Z");
}

#[test]
fn adaptation_attaches_lora_and_keeps_heads_trainable() {
    let gpu = crate::common::gpu();
    let a: SftArgs = parse(&["--lora-r", "2", "--lora-targets", "c_attn,mlp.c_fc"]);
    let mut m = CausalLm::load(&gpu, std::path::Path::new(&model_dir("gpt2-tiny-value"))).unwrap();
    apply_adaptation(&mut m, &a.common).unwrap();
    let trainable: Vec<&str> = m
        .params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.name.as_str())
        .collect();
    // 2 layers × 2 modules × (A, B) + the value head's weight and bias.
    assert_eq!(trainable.len(), 10, "{trainable:?}");
    assert!(trainable.contains(&"v_head.summary.weight"));
    assert!(trainable
        .iter()
        .all(|n| n.contains("lora_") || n.starts_with("v_head.")));

    // QLoRA: the base is quantized and frozen, only adapters train.
    let q: SftArgs = parse(&["--quant", "nf4", "--lora-r", "2"]);
    let mut m = CausalLm::load(&gpu, std::path::Path::new(&model_dir("gpt2-tiny"))).unwrap();
    apply_adaptation(&mut m, &q.common).unwrap();
    assert_eq!(m.quantized.len(), 8, "every linear layer is quantized");
    assert!(m
        .params
        .iter()
        .filter(|p| p.trainable)
        .all(|p| p.name.contains("lora_")));
}
