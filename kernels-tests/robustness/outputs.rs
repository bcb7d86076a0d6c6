//! Nothing is overwritten by surprise: exports, sampled files and run
//! directories refuse to replace what exists without `--force`, and a resumed
//! run writes where the user pointed it, not into the original run.

use crate::harness::*;

#[test]
fn export_refuses_to_write_over_its_own_source() {
    let s = Scratch::new("export-inplace");
    let m = s.model("gpt2-tiny", "m");
    let before = std::fs::read(m.join("model.safetensors")).unwrap();
    let p = m.display().to_string();
    expect_error(
        &s.0,
        &os(&[
            "export", "--model", &p, "--out", &p, "--dtype", "f16", "--force",
        ]),
        &["--out", "--model"],
    );
    assert_eq!(
        before,
        std::fs::read(m.join("model.safetensors")).unwrap(),
        "the source changed"
    );
}

#[test]
fn export_refuses_the_same_directory_spelled_differently() {
    let s = Scratch::new("export-inplace-alias");
    let m = s.model("gpt2-tiny", "m");
    let alias = s.0.join("m/../m/.").display().to_string();
    expect_error(
        &s.0,
        &os(&[
            "export",
            "--model",
            &m.display().to_string(),
            "--out",
            &alias,
        ]),
        &["--out"],
    );
}

#[test]
fn export_refuses_a_non_empty_out_without_force() {
    let s = Scratch::new("export-nonempty");
    s.write("out/notes.txt", "mine");
    expect_error(
        &s.0,
        &words(&s, "export --model @model/gpt2-tiny --out @tmp/out"),
        &["--out", "--force"],
    );
    assert_eq!(
        std::fs::read_to_string(s.path("out/notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn export_with_force_writes_into_a_non_empty_out() {
    let s = Scratch::new("export-force");
    s.write("out/notes.txt", "mine");
    expect_success(
        &s.0,
        &words(&s, "export --model @model/gpt2-tiny --out @tmp/out --force"),
        &[],
    );
    assert!(s.path("out/model.safetensors").exists());
}

#[test]
fn best_of_n_refuses_to_overwrite_its_out_file() {
    let s = Scratch::new("bon-overwrite");
    s.write("best.jsonl", "precious\n");
    let a = words(&s, "best-of-n --model @model/gpt2-tiny --reward-model @model/gpt2-tiny-reward --data @data/prompts.jsonl --template gpt2 --n 2 --max-new-tokens 2 --out @tmp/best.jsonl");
    expect_error(&s.0, &a, &["best.jsonl", "--force"]);
    assert_eq!(
        std::fs::read_to_string(s.path("best.jsonl")).unwrap(),
        "precious\n"
    );
}

#[test]
fn a_trainer_refuses_a_non_empty_out_directory_it_did_not_make() {
    let s = Scratch::new("sft-out-nonempty");
    s.write("run/thesis.tex", "mine");
    let a = words(&s, "train-sft --model @model/gpt2-tiny --data @data/sft.jsonl --template gpt2 --steps 1 --batch-size 2 --out @tmp/run");
    expect_error(&s.0, &a, &["--out", "--force"]);
}

#[test]
fn train_tokenizer_refuses_to_overwrite_without_force() {
    let s = Scratch::new("tok-overwrite");
    s.write("tok/tokenizer.json", "{}");
    s.write("corpus.jsonl", "{\"text\": \"hello world hello there\"}\n");
    let a = words(
        &s,
        "train-tokenizer --data @tmp/corpus.jsonl --out @tmp/tok --vocab-size 300",
    );
    expect_error(&s.0, &a, &["tokenizer.json", "--force"]);
    assert_eq!(
        std::fs::read_to_string(s.path("tok/tokenizer.json")).unwrap(),
        "{}"
    );
}

#[test]
fn resuming_a_copied_run_writes_into_the_copy() {
    let s = Scratch::new("resume-copy");
    let common = [
        "--model",
        "@model/gpt2-tiny",
        "--data",
        "@data/sft.jsonl",
        "--template",
        "gpt2",
        "--batch-size",
        "2",
        "--progress",
        "plain",
    ];
    let mut first = vec![
        "train-sft",
        "--out",
        "@tmp/orig",
        "--steps",
        "4",
        "--save-every",
        "2",
        "--stop-after",
        "2",
    ];
    first.extend(common);
    let o = run_in(&s.0, &args(&s, &first));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    copy_dir(&s.path("orig"), &s.path("copy"));
    let orig_metrics = std::fs::read(s.path("orig/metrics.jsonl")).unwrap();
    let mut second = vec!["train-sft", "--resume", "@tmp/copy", "--steps", "4"];
    second.extend(common);
    let o = run_in(&s.0, &args(&s, &second));
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(
        orig_metrics,
        std::fs::read(s.path("orig/metrics.jsonl")).unwrap(),
        "the original run was written to"
    );
    assert!(
        s.path("copy/model/model.safetensors").exists(),
        "the copy did not get the final model"
    );
}

#[test]
fn a_metrics_file_on_a_full_disk_names_its_path_and_fails() {
    let s = Scratch::new("disk-full");
    std::fs::create_dir_all(s.path("run")).unwrap();
    std::os::unix::fs::symlink("/dev/full", s.path("run/metrics.jsonl")).unwrap();
    let a = words(&s, "train-sft --model @model/gpt2-tiny --data @data/sft.jsonl --template gpt2 --steps 2 --batch-size 2 --out @tmp/run --force");
    expect_error(&s.0, &a, &["metrics.jsonl"]);
}

#[test]
fn an_out_path_that_is_a_file_is_named() {
    let s = Scratch::new("out-is-file");
    s.write("run", "a file");
    let a = words(&s, "train-sft --model @model/gpt2-tiny --data @data/sft.jsonl --template gpt2 --steps 1 --out @tmp/run");
    expect_error(&s.0, &a, &["run"]);
}

#[test]
fn init_refuses_to_overwrite_a_model_without_force() {
    let s = Scratch::new("init-overwrite");
    s.write("m/config.json", "{}");
    let a = words(
        &s,
        "init --tokenizer @model/gpt2-tiny --out @tmp/m --hidden 16 --layers 1 --heads 2",
    );
    expect_error(&s.0, &a, &["--out", "--force"]);
    assert_eq!(
        std::fs::read_to_string(s.path("m/config.json")).unwrap(),
        "{}"
    );
}

#[test]
fn data_support_refuses_to_overwrite_without_force() {
    let s = Scratch::new("data-overwrite");
    s.write("d/sft.jsonl", "mine\n");
    let a = words(
        &s,
        "data support --out @tmp/d --sft 8 --pairs 8 --kto 8 --prompts 8 --eval 8",
    );
    expect_error(&s.0, &a, &["--out", "--force"]);
    assert_eq!(
        std::fs::read_to_string(s.path("d/sft.jsonl")).unwrap(),
        "mine\n"
    );
}
