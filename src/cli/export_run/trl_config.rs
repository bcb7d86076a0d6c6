//! A run's settings as TRL names them: the trainer and config class with
//! its keyword arguments, PEFT's LoRA settings as TRL's `ModelConfig`, and
//! the script per trainer. Checked against TRL 1.16.0 (transformers 5.23,
//! accelerate 1.16) by `examples/continue_in_trl`; PPO against TRL 0.11.4,
//! the last TRL with a `PPOTrainer`.

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

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
        notes.push("PPO: TRL 1.x has no PPOTrainer (checked with TRL 1.16.0); this is TRL 0.11.4's PPOConfig, whose semantics engine's PPO follows. On a cluster: TRL 0.11 with accelerate, or OpenRLHF's train_ppo_ray".into());
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
        // TRL 1.x configs default to bf16 mixed precision (bf16=None -> True);
        // engine trains in f32, and bf16 also fails on a machine without it.
        set("bf16", json!(false));
        notes.push("bf16: false as engine trains in f32; TRL 1.x's default is bf16 mixed precision (bf16: true on a GPU cluster is faster, the numbers then differ from the third digit)".into());
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
                        // TRL 1.x: a list of losses (combined with loss_weights).
                        set("loss_type", json!([loss_type]));
                        set("label_smoothing", get("label-smoothing"));
                        if loss_type == "kto_pair" {
                            notes.push(
                                "loss_type kto_pair exists in TRL ≤ 0.11's DPOTrainer only; TRL 1.x: KTOTrainer on the pairs unpaired (engine's --loss kto does the same)"
                                    .into(),
                            );
                        }
                    }
                    None => {}
                }
                if get("max-prompt-len").as_u64().is_some() {
                    notes.push("--max-prompt-len: TRL 1.x's DPOConfig/KTOConfig have no max_prompt_length (TRL ≤ 0.11's had); they cut prompt+completion to max_length (truncation_mode keep_start), so cut long prompts in the data first".into());
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
pub fn model_config(cfg: &Map<String, Value>) -> Map<String, Value> {
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

/// TRL's command per trainer: `trl <command>` (TRL 1.x's CLI, which runs
/// `accelerate launch trl/scripts/<command>.py`); None for PPO.
pub fn command(trainer_cls: &str) -> Option<&'static str> {
    match trainer_cls {
        "SFTTrainer" => Some("sft"),
        "RewardTrainer" => Some("reward"),
        "KTOTrainer" => Some("kto"),
        "DPOTrainer" => Some("dpo"),
        _ => None,
    }
}

/// The training script, as a path in TRL's repository (and package).
pub fn script(trainer_cls: &str) -> String {
    match command(trainer_cls) {
        Some(c) => format!("trl/scripts/{c}.py"),
        None => "examples/scripts/ppo.py (TRL 0.11.4)".into(),
    }
}
