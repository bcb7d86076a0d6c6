//! Data files: bad rows are named by file and line, a file of only bad rows
//! says how many and why, a missing or unreadable file is named.

use crate::harness::*;

const SFT: &str = "train-sft --model @model/gpt2-tiny --steps 1 --batch-size 2 --out @tmp/run";

fn sft_on(case: &str, file: &str, text: &str, extra: &[&str], mentions: &[&str]) -> Outcome {
    let s = Scratch::new(case);
    s.write(file, text);
    let path = format!("@tmp/{file}");
    let mut raw: Vec<&str> = line(SFT);
    raw.extend(["--data", path.as_str()]);
    raw.extend(extra);
    expect_error(&s.0, &args(&s, &raw), mentions)
}

#[test]
fn a_bad_row_is_named_by_file_and_line() {
    sft_on(
        "row-bad",
        "d.jsonl",
        "{\"prompt\": \"a\", \"completion\": \" b\"}\n{\"prompt\": \"no completion\"}\n",
        &[],
        &["d.jsonl:2", "completion"],
    );
}

#[test]
fn skipping_bad_rows_when_every_row_is_bad_shows_the_count_and_reasons() {
    let o = sft_on(
        "rows-all-bad",
        "d.jsonl",
        "{\"prompt\": 1}\n{\"text\": 5}\nnot json\n",
        &["--skip-bad-rows"],
        &["d.jsonl", "3", "bad"],
    );
    assert!(
        o.stderr.contains("d.jsonl:1"),
        "no first reason: {}",
        o.stderr
    );
}

#[test]
fn an_empty_data_file_is_named() {
    sft_on("rows-empty", "d.jsonl", "", &[], &["d.jsonl"]);
}

#[test]
fn a_missing_data_file_is_named() {
    refused(
        "rows-missing",
        &line("train-sft --model @model/gpt2-tiny --data @tmp/nope.jsonl --steps 1 --out @tmp/run"),
        &["nope.jsonl"],
    );
}

#[test]
fn a_corrupt_gzip_file_is_named() {
    let s = Scratch::new("rows-gzip");
    let mut bytes = std::fs::read(fixture_data("sft.jsonl.gz")).unwrap();
    let n = bytes.len();
    bytes[n / 2..].fill(0xAB);
    std::fs::write(s.path("d.jsonl.gz"), bytes).unwrap();
    let mut raw: Vec<&str> = line(SFT);
    raw.extend(["--data", "@tmp/d.jsonl.gz"]);
    expect_error(&s.0, &args(&s, &raw), &["d.jsonl.gz"]);
}

#[test]
fn a_csv_with_a_missing_column_is_named() {
    sft_on(
        "rows-csv",
        "d.csv",
        "question,answer\nhi,there\n",
        &[],
        &["d.csv", "prompt"],
    );
}

#[test]
fn a_preference_row_without_rejected_is_named() {
    let s = Scratch::new("rows-prefs");
    s.write("p.jsonl", "{\"prompt\": \"a\", \"chosen\": \" b\"}\n");
    let a = words(
        &s,
        "train-reward --model @model/gpt2-tiny --data @tmp/p.jsonl --steps 1 --out @tmp/run",
    );
    expect_error(&s.0, &a, &["p.jsonl:1", "rejected"]);
}

#[test]
fn a_kto_label_that_is_not_a_boolean_is_named() {
    let s = Scratch::new("rows-kto");
    s.write(
        "k.jsonl",
        "{\"prompt\": \"a\", \"completion\": \" b\", \"label\": \"maybe\"}\n",
    );
    let a = words(&s, "train-dpo --loss kto --model @model/gpt2-tiny --data @tmp/k.jsonl --steps 1 --out @tmp/run");
    expect_error(&s.0, &a, &["k.jsonl:1", "label"]);
}

#[test]
fn a_kto_file_under_a_pairwise_loss_names_loss_kto() {
    let s = Scratch::new("rows-kto-as-pairs");
    s.write(
        "k.jsonl",
        "{\"prompt\": \"a\", \"completion\": \" b\", \"label\": true}\n",
    );
    let a = words(
        &s,
        "train-dpo --model @model/gpt2-tiny --data @tmp/k.jsonl --steps 1 --out @tmp/run",
    );
    expect_error(&s.0, &a, &["k.jsonl", "KTO", "--loss kto"]);
}

#[test]
fn a_max_prompt_len_beyond_the_sequence_is_named() {
    let s = Scratch::new("rows-max-prompt-len");
    s.write(
        "p.jsonl",
        "{\"prompt\": \"a\", \"chosen\": \" b\", \"rejected\": \" c\"}\n",
    );
    let a = words(&s, "train-dpo --model @model/gpt2-tiny --data @tmp/p.jsonl --max-len 16 --max-prompt-len 16 --steps 1 --out @tmp/run");
    expect_error(&s.0, &a, &["--max-prompt-len", "16"]);
}
