//! `engine export-run --to trl RUN_DIR`: the same run as TRL would be told
//! it, for moving a run to a cluster (TRL + accelerate, DeepSpeed):
//! `RUN_DIR/trl/config.json` (the trainer and config class, the config's
//! keyword arguments, PEFT's LoraConfig, the dataset and its columns),
//! `RUN_DIR/trl/config.yaml` (the same keys flat, as TRL's CLI scripts read
//! with `--config`) and the launch lines, printed.
//!
//! Names follow TRL 0.19+ (`SFTConfig`, `RewardConfig`, `DPOConfig`,
//! `KTOConfig`) and, for PPO, TRL 0.11's `PPOConfig`, whose semantics
//! engine's PPO follows. What TRL has no option for is listed in `notes`.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

use engine::train::run::RUN_CONFIG_FILE;

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

/// A run as a TRL trainer and config.
pub struct TrlConfig {
    /// `DPOTrainer`, ...
    pub trainer: &'static str,
    /// `DPOConfig`, ...
    pub config_class: &'static str,
    /// The config's keyword arguments.
    pub kwargs: Map<String, Value>,
    /// What TRL has no option for.
    pub notes: Vec<String>,
}

/// The TRL config of run `cfg` (engine's kebab-case keys) by `trainer`.
pub fn trl_config(trainer: &str, cfg: &Map<String, Value>, out: &Path) -> Result<TrlConfig> {
    let get = |k: &str| cfg.get(k).cloned().unwrap_or(Value::Null);
    let mut kw = Map::new();
    let mut notes = Vec::new();
    let mut set = |k: &str, v: Value| {
        if !v.is_null() {
            kw.insert(k.to_string(), v);
        }
    };
    set("output_dir", json!(out.display().to_string()));
    set("seed", get("seed"));
    let (trainer_cls, config_cls) = match trainer {
        "sft" => ("SFTTrainer", "SFTConfig"),
        "reward" => ("RewardTrainer", "RewardConfig"),
        "dpo" if get("loss") == json!("kto") => ("KTOTrainer", "KTOConfig"),
        "dpo" => ("DPOTrainer", "DPOConfig"),
        "ppo" => ("PPOTrainer", "PPOConfig"),
        t => bail!("trainer `{t}` has no TRL counterpart to export to"),
    };
    let schedule = get("schedule");
    if trainer == "ppo" {
        // TRL 0.11 PPOConfig: one step = one batch of rollouts.
        set("steps", get("steps"));
        set("learning_rate", get("lr"));
        set("batch_size", get("batch-size"));
        set(
            "mini_batch_size",
            cfg.get("mini-batch-size")
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or(get("batch-size")),
        );
        let accum = cfg
            .get("gradient-accumulation-steps")
            .filter(|v| !v.is_null())
            .cloned();
        set(
            "gradient_accumulation_steps",
            accum.unwrap_or(get("grad-accum")),
        );
        for (ours, theirs) in [
            ("ppo-epochs", "ppo_epochs"),
            ("init-kl-coef", "init_kl_coef"),
            ("target-kl-value", "target"),
            ("horizon", "horizon"),
            ("adaptive-kl", "adap_kl_ctrl"),
            ("cliprange", "cliprange"),
            ("cliprange-value", "cliprange_value"),
            ("vf-coef", "vf_coef"),
            ("use-score-scaling", "use_score_scaling"),
            ("use-score-norm", "use_score_norm"),
            ("score-clip", "score_clip"),
            ("whiten-rewards", "whiten_rewards"),
            ("max-grad-norm", "max_grad_norm"),
        ] {
            set(theirs, get(ours));
        }
        match get("kl-estimator").as_str() {
            Some("k3") => notes.push("--kl-estimator k3: TRL 0.11's kl_penalty has no k3 (TRL 1.x PPOTrainer: kl_estimator=\"k3\")".into()),
            _ => set("kl_penalty", json!("kl")),
        }
        if get("ent-coef").as_f64().is_some_and(|e| e != 0.0) {
            notes.push("--ent-coef: TRL 0.11's PPOTrainer has no entropy bonus".into());
        }
        if get("warmup-steps").as_u64().is_some_and(|w| w > 0) || !schedule.is_null() {
            notes.push("--warmup-steps/--schedule: pass an lr_scheduler to PPOTrainer (TRL 0.11 steps it once per PPO step)".into());
        }
    } else {
        match get("epochs") {
            Value::Null => set("max_steps", get("steps")),
            e => set("num_train_epochs", e),
        }
        set("per_device_train_batch_size", get("batch-size"));
        set("per_device_eval_batch_size", get("batch-size"));
        set("gradient_accumulation_steps", get("grad-accum"));
        set("learning_rate", get("lr"));
        set(
            "lr_scheduler_type",
            if schedule.is_null() {
                json!("linear")
            } else {
                schedule
            },
        );
        set("warmup_steps", get("warmup-steps"));
        set("max_grad_norm", get("max-grad-norm"));
        set("weight_decay", get("weight-decay"));
        set("max_length", get("max-len"));
        set("logging_steps", json!(1));
        let eval_every = get("eval-every").as_u64().unwrap_or(0);
        let has_eval =
            !get("eval-data").is_null() || get("eval-fraction").as_f64().is_some_and(|f| f > 0.0);
        if has_eval {
            set("eval_strategy", json!("steps"));
            set(
                "eval_steps",
                json!(if eval_every > 0 {
                    eval_every
                } else {
                    get("steps").as_u64().unwrap_or(1)
                }),
            );
        }
        if let Some(n) = get("save-every").as_u64().filter(|&n| n > 0) {
            set("save_steps", json!(n));
        }
        let report: Vec<Value> = get("report-to").as_array().cloned().unwrap_or_default();
        set(
            "report_to",
            if report.is_empty() {
                json!("none")
            } else {
                Value::Array(report)
            },
        );
        match trainer {
            "sft" => {
                set("completion_only_loss", get("completion-only"));
                notes.push("conversational data: engine trains on assistant turns with --completion-only; TRL: assistant_only_loss=True (needs a template with generation markers)".into());
            }
            "reward" => {
                set("center_rewards_coefficient", get("center-coef"));
                if get("loss") == json!("classifier") {
                    notes.push("--loss classifier: TRL's RewardTrainer trains pairs only; use transformers' Trainer with AutoModelForSequenceClassification(num_labels=1, problem_type=\"multi_label_classification\")".into());
                }
            }
            _ => {
                set("beta", get("beta"));
                match get("loss").as_str() {
                    Some("kto") => {
                        set("desirable_weight", get("desirable-weight"));
                        set("undesirable_weight", get("undesirable-weight"));
                    }
                    Some(l) => {
                        let loss_type = match l {
                            "ipo" => "ipo",
                            "kto_pair" | "kto-pair" => "kto_pair",
                            _ => "sigmoid",
                        };
                        set("loss_type", json!(loss_type));
                        set("label_smoothing", get("label-smoothing"));
                        if loss_type == "kto_pair" {
                            notes.push(
                                "loss_type=\"kto_pair\" exists in TRL ≤ 0.11's DPOTrainer only"
                                    .into(),
                            );
                        }
                    }
                    None => {}
                }
            }
        }
    }
    Ok(TrlConfig {
        trainer: trainer_cls,
        config_class: config_cls,
        kwargs: kw,
        notes,
    })
}

/// PEFT's LoraConfig and the quantized base, as TRL's ModelConfig names them.
fn model_config(cfg: &Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "model_name_or_path".into(),
        cfg.get("model").cloned().unwrap_or(Value::Null),
    );
    let r = cfg.get("lora-r").and_then(Value::as_u64).unwrap_or(0);
    if r > 0 {
        m.insert("use_peft".into(), json!(true));
        m.insert("lora_r".into(), json!(r));
        for (ours, theirs) in [
            ("lora-alpha", "lora_alpha"),
            ("lora-dropout", "lora_dropout"),
            ("lora-targets", "lora_target_modules"),
        ] {
            if let Some(v) = cfg.get(ours).filter(|v| !v.is_null()) {
                m.insert(theirs.into(), v.clone());
            }
        }
    }
    match cfg.get("quant").and_then(Value::as_str) {
        Some("nf4") => {
            m.insert("load_in_4bit".into(), json!(true));
            m.insert("bnb_4bit_quant_type".into(), json!("nf4"));
        }
        Some("int8") => {
            m.insert("load_in_8bit".into(), json!(true));
        }
        _ => {}
    }
    m
}

/// TRL's script per trainer (TRL's repository layout).
fn script(trainer: &str, cls: &str) -> &'static str {
    match (trainer, cls) {
        ("sft", _) => "trl/scripts/sft.py",
        ("reward", _) => "examples/scripts/reward_modeling.py",
        (_, "KTOTrainer") => "trl/scripts/kto.py",
        ("dpo", _) => "trl/scripts/dpo.py",
        _ => "examples/scripts/ppo.py (TRL 0.11)",
    }
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
    let cfg: Map<String, Value> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let trainer = trainer_of(dir)?;
    let out = dir.join("trl");
    let TrlConfig {
        trainer: trainer_cls,
        config_class: config_cls,
        kwargs,
        mut notes,
    } = trl_config(&trainer, &cfg, &out.join("output"))?;
    let model = model_config(&cfg);
    let columns = cfg.get("columns").and_then(Value::as_str).map(|c| {
        let pairs = c.split(',').filter_map(|p| p.split_once('='));
        // engine's `field=column` renames `column` to `field`.
        pairs
            .map(|(f, col)| (col.trim().to_string(), json!(f.trim())))
            .collect::<Map<_, _>>()
    });
    let mut files = Map::new();
    files.insert(
        "train".into(),
        cfg.get("data").cloned().unwrap_or(Value::Null),
    );
    if let Some(e) = cfg.get("eval-data").filter(|v| !v.is_null()) {
        files.insert("test".into(), e.clone());
    }
    let dataset = json!({
        "path": "json",
        "data_files": files,
        "rename_columns": columns,
        "format": "engine reads TRL's dataset formats as they are: prompt/completion, messages, text, prompt/chosen/rejected (explicit or implicit), prompt/completion/label (KTO); the same files load with datasets.load_dataset(\"json\", data_files=...)",
    });
    if let Some(t) = cfg.get("template").and_then(Value::as_str) {
        notes.push(format!("--template {t}: the output model's tokenizer_config.json holds it as chat_template; point TRL at that directory's tokenizer"));
    }
    let launch = format!(
        "accelerate launch --num_processes 8 {} --config {}",
        script(&trainer, trainer_cls),
        out.join("config.yaml").display()
    );
    let deepspeed = format!(
        "accelerate launch --config_file examples/accelerate_configs/deepspeed_zero3.yaml {} --config {}",
        script(&trainer, trainer_cls),
        out.join("config.yaml").display()
    );
    let all = json!({
        "trainer": trainer_cls,
        "config_class": config_cls,
        "config": kwargs,
        "model": model,
        "dataset": dataset,
        "launch": launch,
        "launch_deepspeed": deepspeed,
        "notes": notes,
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json_path = out.join("config.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&all)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    // TRL's CLI config: flat keys of the config, ModelConfig and the dataset.
    let mut yaml =
        String::from("# engine export-run: TRL's --config file (JSON values are YAML)\n");
    for (k, v) in kwargs.iter().chain(model.iter()) {
        yaml += &format!("{k}: {v}\n");
    }
    yaml += &format!(
        "datasets: [{{\"path\": \"json\", \"data_files\": {}}}]\n",
        Value::Object(files)
    );
    let yaml_path = out.join("config.yaml");
    std::fs::write(&yaml_path, yaml).with_context(|| format!("writing {}", yaml_path.display()))?;
    println!(
        "{trainer_cls} with {config_cls}(**config): {}",
        json_path.display()
    );
    println!("config file for TRL's scripts: {}", yaml_path.display());
    println!("launch:    {launch}");
    println!("DeepSpeed: {deepspeed}");
    notes.iter().for_each(|n| println!("note: {n}"));
    Ok(())
}
