//! Flags and run-file values are validated before anything runs: every float
//! option must be finite and in its range, named in the error; LoRA ranks must
//! fit the layers they adapt.

use crate::harness::*;

const SFT: &str = "train-sft --model @model/gpt2-tiny --data @data/sft.jsonl --template gpt2 --steps 1 --batch-size 2 --out @tmp/run";

fn sft_with(case: &str, extra: &[&str], mentions: &[&str]) {
    let all = line_with(SFT, extra);
    refused(case, &all, mentions);
}

#[test]
fn lr_nan_is_refused_not_replaced_by_the_default() {
    sft_with("lr-nan", &["--lr", "NaN"], &["--lr"]);
}

#[test]
fn lr_inf_is_refused() {
    sft_with("lr-inf", &["--lr", "inf"], &["--lr"]);
}

#[test]
fn a_negative_lr_is_refused() {
    sft_with("lr-neg", &["--lr=-1e-3"], &["--lr", "> 0"]);
}

#[test]
fn a_zero_lr_is_refused() {
    sft_with("lr-zero", &["--lr", "0"], &["--lr"]);
}

#[test]
fn lora_alpha_nan_is_refused_without_talking_of_checkpoints() {
    let o = {
        let s = Scratch::new("alpha-nan");
        let all = line_with(SFT, &["--lora-r", "2", "--lora-alpha", "NaN"]);
        expect_error(&s.0, &args(&s, &all), &["--lora-alpha"])
    };
    assert!(!o.stderr.to_lowercase().contains("resum"), "{}", o.stderr);
}

#[test]
fn lora_dropout_of_one_is_refused() {
    sft_with(
        "dropout-1",
        &["--lora-r", "2", "--lora-dropout", "1.0"],
        &["--lora-dropout"],
    );
}

#[test]
fn a_negative_lora_dropout_is_refused() {
    sft_with(
        "dropout-neg",
        &["--lora-r", "2", "--lora-dropout=-0.1"],
        &["--lora-dropout"],
    );
}

#[test]
fn a_lora_rank_above_the_layer_width_is_refused_before_allocating() {
    sft_with(
        "lora-r-huge",
        &["--lora-r", "100000"],
        &["--lora-r", "100000"],
    );
}

#[test]
fn max_grad_norm_nan_is_refused() {
    sft_with(
        "gradnorm-nan",
        &["--max-grad-norm", "NaN"],
        &["--max-grad-norm"],
    );
}

#[test]
fn a_negative_weight_decay_is_refused() {
    sft_with("wd-neg", &["--weight-decay=-1"], &["--weight-decay"]);
}

#[test]
fn an_eval_fraction_of_one_and_a_half_is_refused() {
    sft_with(
        "evalfrac",
        &["--eval-fraction", "1.5"],
        &["--eval-fraction"],
    );
}

#[test]
fn dpo_beta_nan_is_refused() {
    refused(
        "beta-nan",
        &line("train-dpo --model @model/gpt2-tiny --data @data/prefs.jsonl --steps 1 --beta NaN --out @tmp/run"),
        &["--beta"],
    );
}

#[test]
fn dpo_label_smoothing_of_one_is_refused() {
    refused(
        "smoothing",
        &line("train-dpo --model @model/gpt2-tiny --data @data/prefs.jsonl --steps 1 --label-smoothing 1 --out @tmp/run"),
        &["--label-smoothing"],
    );
}

#[test]
fn ppo_cliprange_nan_is_refused() {
    refused(
        "cliprange-nan",
        &line("train-ppo --model @model/gpt2-tiny --data @data/prompts.jsonl --template gpt2 --reward-keyword a --steps 1 --cliprange NaN --out @tmp/run"),
        &["--cliprange"],
    );
}

#[test]
fn ppo_negative_init_kl_coef_is_refused() {
    refused(
        "klcoef-neg",
        &line("train-ppo --model @model/gpt2-tiny --data @data/prompts.jsonl --template gpt2 --reward-keyword a --steps 1 --init-kl-coef=-0.1 --out @tmp/run"),
        &["--init-kl-coef"],
    );
}

#[test]
fn generate_temperature_nan_is_refused() {
    refused(
        "temp-nan",
        &line("generate --model @model/gpt2-tiny --prompt Hi --temperature NaN"),
        &["--temperature"],
    );
}

#[test]
fn generate_negative_temperature_is_refused() {
    refused(
        "temp-neg",
        &line("generate --model @model/gpt2-tiny --prompt Hi --temperature=-1"),
        &["--temperature"],
    );
}

#[test]
fn generate_top_p_above_one_is_refused() {
    refused(
        "top-p",
        &line("generate --model @model/gpt2-tiny --prompt Hi --top-p 1.5"),
        &["--top-p"],
    );
}

#[test]
fn generate_zero_repetition_penalty_is_refused() {
    refused(
        "rep-pen",
        &line("generate --model @model/gpt2-tiny --prompt Hi --repetition-penalty 0"),
        &["--repetition-penalty"],
    );
}

#[test]
fn a_run_file_lr_of_nan_is_refused_by_key() {
    let s = Scratch::new("runfile-nan");
    let cfg = s.write("run.toml", "lr = nan\n");
    let mut a = words(&s, SFT);
    a.push("--config".into());
    a.push(cfg.into_os_string());
    expect_error(&s.0, &a, &["lr", "run.toml"]);
}

#[test]
fn a_run_file_negative_lr_is_refused() {
    let s = Scratch::new("runfile-neg");
    let cfg = s.write("run.toml", "lr = -0.5\n");
    let mut a = words(&s, SFT);
    a.push("--config".into());
    a.push(cfg.into_os_string());
    expect_error(&s.0, &a, &["lr"]);
}

#[test]
fn a_misspelled_flag_is_refused_with_a_suggestion() {
    refused(
        "typo",
        &["train-sft", "--modle", "@model/gpt2-tiny"],
        &["--modle"],
    );
}

#[test]
fn a_near_miss_flag_suggests_the_right_one() {
    // TRL's name without its `s`: clap's suggestion names the alias.
    sft_with(
        "near-miss",
        &["--num-train-epoch", "2"],
        &["--num-train-epochs"],
    );
}

#[test]
fn steps_and_epochs_together_are_refused() {
    sft_with("steps-epochs", &["--epochs", "2"], &["--epochs", "--steps"]);
}

#[test]
fn a_run_file_setting_steps_and_epochs_is_refused() {
    let s = Scratch::new("steps-epochs-file");
    s.write("run.toml", "steps = 3\nepochs = 2\n");
    let all = line_with(SFT, &["--config", "@tmp/run.toml"]);
    expect_error(&s.0, &args(&s, &all), &["run.toml", "epochs", "steps"]);
}
