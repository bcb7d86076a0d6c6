//! `engine export-run --to trl RUN_DIR`: the same run as TRL would be told
//! it, for moving a run to a cluster (TRL + accelerate, DeepSpeed, OpenRLHF):
//! `RUN_DIR/trl/config.json` (the trainer and config class, the config's
//! keyword arguments, TRL's ModelConfig with PEFT's LoRA settings, where to
//! continue from (the run's model, or its base and adapter), the dataset and
//! its column renames, launch lines and notes), `RUN_DIR/trl/config.yaml`
//! (the same keys flat, as TRL's scripts read them with `--config`) and the
//! launch lines, printed.
//!
//! Names and scripts follow TRL 1.x, checked with TRL 1.16.0 by
//! `examples/continue_in_trl` (`SFTConfig`, `RewardConfig`, `DPOConfig`,
//! `KTOConfig`, `trl/scripts/<trainer>.py`); PPO follows TRL 0.11.4's
//! `PPOConfig`, whose semantics engine's PPO follows (TRL 1.x has no
//! PPOTrainer). What TRL has no option for is listed in `notes`.

mod trl_config;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

use engine::train::run::RUN_CONFIG_FILE;
use trl_config::{command, model_config, script, trl_config, TrlConfig};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportTarget {
    Trl,
}

#[derive(clap::Args)]
pub struct ExportRunArgs {
    /// What to export to (trl).
    #[arg(long, value_enum)]
    pub to: ExportTarget,
    /// A run directory of train-sft, train-reward, train-dpo or train-ppo.
    pub run_dir: PathBuf,
}

/// The run's trainer: `summary.json`'s, else the checkpoint's.
fn trainer_of(dir: &Path) -> Result<String> {
    for file in [
        dir.join("summary.json"),
        dir.join("checkpoint/trainer_state.json"),
    ] {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", file.display()))?;
            if let Some(t) = v["trainer"].as_str() {
                return Ok(t.to_string());
            }
        }
    }
    bail!(
        "{}: no summary.json or checkpoint naming the trainer: not a run directory",
        dir.display()
    )
}

/// `v` with every float that came from an f32 written as that f32's
/// shortest decimal (`0.1`, not `0.10000000149011612`).
fn tidy(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let short = (x as f32 as f64 == x)
                .then(|| (x as f32).to_string().parse::<f64>().ok())
                .flatten();
            json!(short.unwrap_or(x))
        }
        Value::Array(a) => Value::Array(a.into_iter().map(tidy).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, tidy(v))).collect()),
        v => v,
    }
}

/// A path from the run file, absolute when it names something that exists
/// from here (run files keep paths as they were typed).
fn absolute(v: Option<&Value>) -> Value {
    match v.and_then(Value::as_str) {
        Some(p) => match std::fs::canonicalize(p) {
            Ok(a) => json!(a.display().to_string()),
            Err(_) => json!(p),
        },
        None => Value::Null,
    }
}

/// A model directory's context length (config.json's `n_positions`,
/// `max_position_embeddings` or `n_ctx`).
fn model_context(dir: &str) -> Option<u64> {
    let text = std::fs::read_to_string(Path::new(dir).join("config.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    ["n_positions", "max_position_embeddings", "n_ctx"]
        .iter()
        .find_map(|k| v[*k].as_u64())
}

/// Where TRL continues from: the run's full model, or its base model and
/// LoRA adapter (PEFT's `base_model_name_or_path`).
fn continue_from(dir: &Path, base: &Value) -> Value {
    let abs = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p).display().to_string();
    let adapter = dir.join("adapter");
    if adapter.join("adapter_config.json").is_file() {
        let cfg: Value = std::fs::read_to_string(adapter.join("adapter_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let base = match cfg["base_model_name_or_path"].as_str() {
            Some(b) => json!(b),
            None => base.clone(),
        };
        return json!({
            "model_name_or_path": base,
            "adapter": abs(adapter),
            "how": "model=PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_name_or_path), adapter, is_trainable=True) without a peft_config; for DPO/KTO also ref_model=AutoModelForCausalLM.from_pretrained(model_name_or_path): engine's reference is the base with the adapter off, while TRL 1.x (1.16) given a PEFT model alone freezes a copy of its adapter as the reference",
        });
    }
    let model = dir.join("model");
    if model.join("config.json").is_file() {
        return json!({"model_name_or_path": abs(model)});
    }
    json!({"model_name_or_path": base})
}

/// OpenRLHF's matching command (its CLI names; DeepSpeed ZeRO-2, 8 GPUs).
fn openrlhf(
    cls: &str,
    kw: &Map<String, Value>,
    model: &str,
    data: &Value,
    m: &Map<String, Value>,
) -> Option<String> {
    let (module, keys) = match cls {
        "SFTTrainer" => ("train_sft", "--input_key prompt --output_key completion"),
        "RewardTrainer" => (
            "train_rm",
            "--prompt_key prompt --chosen_key chosen --rejected_key rejected",
        ),
        "DPOTrainer" => (
            "train_dpo",
            "--prompt_key prompt --chosen_key chosen --rejected_key rejected",
        ),
        "KTOTrainer" => (
            "train_kto",
            "--input_key prompt --output_key completion --label_key label",
        ),
        _ => return None,
    };
    let n = |k: &str| {
        kw.get(k)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "1".into())
    };
    let micro = n("per_device_train_batch_size");
    let global = micro.parse::<u64>().unwrap_or(1)
        * n("gradient_accumulation_steps").parse::<u64>().unwrap_or(1)
        * 8;
    let mut line = format!(
        "deepspeed --module openrlhf.cli.{module} --pretrain {model} --dataset {} {keys} \
         --micro_train_batch_size {micro} --train_batch_size {global} --learning_rate {} --zero_stage 2 --bf16 \
         --save_path {}",
        data.as_str().unwrap_or("DATA"),
        n("learning_rate"),
        kw.get("output_dir").and_then(Value::as_str).unwrap_or("out"),
    );
    if let Some(l) = kw.get("max_length") {
        line += &format!(" --max_len {l}");
    }
    if let Some(b) = kw.get("beta") {
        line += &format!(" --beta {b}");
    }
    if let Some(r) = m.get("lora_r") {
        line += &format!(
            " --lora_rank {r} --lora_alpha {}",
            m.get("lora_alpha").cloned().unwrap_or(json!(16))
        );
    }
    Some(line)
}

pub fn export_run_cmd(args: &ExportRunArgs) -> Result<()> {
    let ExportTarget::Trl = args.to;
    let dir = &args.run_dir;
    let path = dir.join(RUN_CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is {} a run directory?)",
            path.display(),
            dir.display()
        )
    })?;
    let mut cfg: Map<String, Value> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    for k in ["model", "data", "eval-data"] {
        let a = absolute(cfg.get(k));
        if !a.is_null() {
            cfg.insert(k.into(), a);
        }
    }
    // engine cuts sequences to min(--max-len, the model's context); TRL's
    // default max_length (1024) may exceed the context.
    let context = cfg
        .get("model")
        .and_then(Value::as_str)
        .and_then(model_context);
    let max_len = match (cfg.get("max-len").and_then(Value::as_u64), context) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    };
    if let Some(m) = max_len {
        cfg.insert("max-len".into(), json!(m));
    }
    let cfg = match tidy(Value::Object(cfg)) {
        Value::Object(o) => o,
        _ => unreachable!("tidy keeps an object an object"),
    };
    let trainer = trainer_of(dir)?;
    let out = dir.join("trl");
    let TrlConfig {
        trainer: trainer_cls,
        config_class: config_cls,
        kwargs,
        mut notes,
    } = trl_config(&trainer, &cfg, &out.join("output"))?;
    let model = model_config(&cfg);
    let from = continue_from(dir, &cfg.get("model").cloned().unwrap_or(Value::Null));
    let columns = cfg.get("columns").and_then(Value::as_str).map(|c| {
        let pairs = c.split(',').filter_map(|p| p.split_once('='));
        // engine's `field=column` renames `column` to `field`.
        pairs
            .map(|(f, col)| (col.trim().to_string(), json!(f.trim())))
            .collect::<Map<_, _>>()
    });
    let mut files = Map::new();
    let train = cfg.get("data").cloned().unwrap_or(Value::Null);
    files.insert("train".into(), train.clone());
    if let Some(e) = cfg.get("eval-data").filter(|v| !v.is_null()) {
        files.insert("test".into(), e.clone());
    }
    let dataset = json!({
        "path": "json",
        "data_files": files,
        "rename_columns": columns,
        "format": "engine reads TRL's dataset formats as they are: prompt/completion, messages, text, prompt/chosen/rejected (explicit or implicit), prompt/completion/label (KTO); the same files load with datasets.load_dataset(\"json\", data_files=...) and, after rename_columns, train as they are",
    });
    if let Some(t) = cfg.get("template").and_then(Value::as_str) {
        notes.push(format!("--template {t}: the output model's tokenizer_config.json holds it as chat_template; point TRL at that directory's tokenizer"));
    }
    let yaml_path = out.join("config.yaml");
    let (yaml, yaml_notes) = yaml_config(&kwargs, &model, &from, &cfg, &train, columns.as_ref());
    notes.extend(yaml_notes);
    let y = yaml_path.display();
    let (script, cmd) = (script(trainer_cls), command(trainer_cls));
    let launch = format!("accelerate launch --num_processes 8 {script} --config {y}");
    let deepspeed = format!(
        "accelerate launch --config_file trl/accelerate_configs/zero3.yaml {script} --config {y}"
    );
    let cli = cmd.map(|c| format!("trl {c} --config {y} --accelerate_config zero3"));
    let start = from["model_name_or_path"]
        .as_str()
        .unwrap_or("MODEL")
        .to_string();
    let orl = openrlhf(trainer_cls, &kwargs, &start, &train, &model);
    let all = json!({
        "trainer": trainer_cls,
        "config_class": config_cls,
        "config": kwargs,
        "model": model,
        "continue_from": from,
        "dataset": dataset,
        "launch": launch,
        "launch_deepspeed": deepspeed,
        "launch_trl_cli": cli,
        "openrlhf": orl,
        "notes": notes,
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json_path = out.join("config.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&all)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&yaml_path, yaml).with_context(|| format!("writing {}", yaml_path.display()))?;
    println!(
        "{trainer_cls} with {config_cls}(**config): {}",
        json_path.display()
    );
    println!("config file for TRL's scripts: {}", yaml_path.display());
    println!("launch:    {launch}");
    println!("DeepSpeed: {deepspeed}");
    if let Some(c) = &cli {
        println!("TRL CLI:   {c}");
    }
    if let Some(o) = &orl {
        println!("OpenRLHF:  {o}");
    }
    notes.iter().for_each(|n| println!("note: {n}"));
    Ok(())
}

/// TRL's `--config` file: the config's keys, ModelConfig's (continuing from
/// the run's model when it is a full model) and the dataset as TRL's
/// `DatasetMixtureConfig` (`datasets:`), with what it cannot say as notes.
fn yaml_config(
    kwargs: &Map<String, Value>,
    model: &Map<String, Value>,
    from: &Value,
    cfg: &Map<String, Value>,
    train: &Value,
    renames: Option<&Map<String, Value>>,
) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let mut yaml =
        String::from("# engine export-run: TRL's --config file (JSON values are YAML)\n");
    let mut kw = kwargs.clone();
    // TRL's scripts load `datasets:` into one train split (TRL 1.16's
    // get_dataset), so a separate eval file has no place here.
    if cfg.get("eval-data").is_some_and(|v| !v.is_null()) {
        kw.insert("eval_strategy".into(), json!("no"));
        kw.remove("eval_steps");
        yaml += "# eval off: TRL's datasets: mixture has no test file (config.json's data_files has it)\n";
        notes.push("--eval-data: config.yaml turns eval off (TRL's scripts read datasets: into one train split); the Python API takes config.json's data_files[\"test\"] as eval_dataset".into());
    }
    let mut model = model.clone();
    if from.get("adapter").is_none() {
        model.insert(
            "model_name_or_path".into(),
            from["model_name_or_path"].clone(),
        );
    } else {
        notes.push(format!(
            "LoRA: config.yaml trains a fresh adapter on the base (TRL's scripts cannot load one); continue engine's adapter {} through the Python API (continue_from)",
            from["adapter"].as_str().unwrap_or("")
        ));
    }
    for (k, v) in kw.iter().chain(model.iter()) {
        yaml += &format!("{k}: {v}\n");
    }
    let entry = json!({"path": "json", "data_files": train});
    if let Some(r) = renames.filter(|r| !r.is_empty()) {
        // TRL's DatasetConfig selects columns but cannot rename them.
        notes.push(format!("--columns: TRL's datasets: config cannot rename columns; rename {} in the files, or use config.json's rename_columns", Value::Object(r.clone())));
    }
    yaml += &format!("datasets: [{entry}]\n");
    if let Some(f) = cfg
        .get("eval-fraction")
        .and_then(Value::as_f64)
        .filter(|&f| f > 0.0)
    {
        yaml += &format!("test_split_size: {f}\n");
        notes.push("--eval-fraction: TRL's test_split_size holds out other rows than engine's seeded split".into());
    }
    (yaml, notes)
}
