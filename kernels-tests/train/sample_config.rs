//! `best-of-n` and `eval` take a run file (`[best-of-n]` / `[eval]` tables
//! and the flat keys they share with the trainers; other flat trainer keys
//! skipped), `--columns` and `--skip-bad-rows`, like the trainers.

use super::{model_dir, parse, scratch};
use engine::train::config::run_file::parse_args;
use engine::train::sample::{run_best_of_n, run_eval, BestOfNArgs, EvalArgs};
use std::path::Path;

/// A prompt file whose prompt column is `question`, with one bad row.
fn renamed_prompts(dir: &Path) -> String {
    let p = dir.join("questions.jsonl");
    std::fs::write(
        &p,
        "{\"question\": \"The miller\", \"answer\": \" opened the wooden doors.\"}\n\
         {\"question\": 17}\n\
         {\"question\": \"A good engine\", \"answer\": \" gives the same answer.\"}\n",
    )
    .unwrap();
    p.display().to_string()
}

fn run_file(dir: &Path, text: &str) -> String {
    let p = dir.join("run.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn best_of_n_takes_a_run_file_columns_and_skip_bad_rows() {
    let dir = scratch("bon-config");
    let data = renamed_prompts(&dir);
    let out = dir.join("best.jsonl");
    let cfg = run_file(
        &dir,
        &format!(
            r#"
model = "{}"
data = "{data}"
template = "plain"
steps = 100          # a trainer option: skipped by best-of-n
lr = 1e-5
out = "runs/x"       # a trainer's run directory: skipped
columns = "prompt=question"

[best-of-n]
reward-model = "{}"
n = 2
max-new-tokens = 3
out = "{}"

[ppo]
init-kl-coef = 0.1
"#,
            model_dir("gpt2-tiny"),
            model_dir("gpt2-tiny-reward"),
            out.display()
        ),
    );
    let args: BestOfNArgs = parse(&["--config", &cfg, "--seed", "5"]);
    assert_eq!(
        (args.n, args.common.max_new_tokens, args.common.seed),
        (2, 3, 5)
    );
    assert_eq!(args.out.as_deref(), Some(out.as_path()));
    assert_eq!(
        args.common.format.columns.as_deref(),
        Some("prompt=question")
    );
    assert!(!args.common.format.skip_bad_rows);

    // Row 2 is bad: an error naming the file and line, unless skipped.
    let e = format!(
        "{:#}",
        run_best_of_n(&crate::common::gpu(), &args).unwrap_err()
    );
    assert!(e.contains("questions.jsonl") && e.contains('2'), "{e}");
    let args: BestOfNArgs = parse(&["--config", &cfg, "--skip-bad-rows"]);
    let (report, written) = run_best_of_n(&crate::common::gpu(), &args).unwrap();
    assert_eq!(report.samples.len(), 2);
    assert!(report.samples.iter().all(|s| s.scores.len() == 2));
    assert_eq!(
        written,
        std::fs::read_to_string(&out).unwrap().lines().count()
    );

    // Unknown keys of its own table are errors naming them.
    let bad = run_file(&dir, "[best-of-n]\nnn = 3\n");
    let e = parse_args::<BestOfNArgs>(&["engine", "--config", &bad]).unwrap_err();
    assert!(format!("{e:#}").contains("`nn`"), "{e:#}");
}

#[test]
fn eval_takes_a_run_file_columns_and_skip_bad_rows() {
    let dir = scratch("eval-config");
    let data = renamed_prompts(&dir);
    let cfg = run_file(
        &dir,
        &format!(
            r#"
model = "{m}"
data = "{data}"
template = "plain"
lora-r = 4          # a trainer option: skipped by eval
skip-bad-rows = true

[eval]
columns = "prompt=question,completion=answer"
reference-model = "{m}"
max-new-tokens = 3
batch-size = 2
"#,
            m = model_dir("gpt2-tiny"),
        ),
    );
    let args: EvalArgs = parse(&["--config", &cfg]);
    assert!(
        args.common.format.skip_bad_rows
            && args.common.batch_size == 2
            && args.common.max_new_tokens == 3
    );
    let r = run_eval(&crate::common::gpu(), &args).unwrap();
    assert_eq!(r.prompts, 2, "the bad row is skipped");
    assert!(r.rouge1.is_some(), "answers are the references: {r:?}");
    assert!(r.kl.unwrap().abs() < 1e-3);

    // Without skipping, the bad row is an error naming the file.
    let mut args = args;
    args.common.format.skip_bad_rows = false;
    let e = format!("{:#}", run_eval(&crate::common::gpu(), &args).unwrap_err());
    assert!(e.contains("questions.jsonl"), "{e}");
}
