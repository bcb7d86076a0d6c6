//! Bad rows: errors name the file, the 1-based line and what is wrong;
//! `skip_bad_rows` counts them and keeps the first reasons.

use super::helpers::{err_text, fixture, Scratch};
use engine::data::*;

#[test]
fn first_bad_row_fails_the_load() {
    let e = err_text(load_sft(&fixture("sft_bad.jsonl"), &LoadOptions::default()));
    assert!(e.contains("sft_bad.jsonl:2: invalid JSON"), "{e}");
}

#[test]
fn skip_bad_rows_counts_and_keeps_reasons() {
    let opts = LoadOptions {
        skip_bad_rows: true,
        ..LoadOptions::default()
    };
    let d = load_sft(&fixture("sft_bad.jsonl"), &opts).unwrap();
    let lines: Vec<usize> = d.rows.iter().map(|r| r.origin.line).collect();
    assert_eq!(lines, [1, 9]);
    assert_eq!(d.report.kept, 2);
    assert_eq!(d.report.skipped_bad, 7);
    let want = [
        ":2: invalid JSON",
        ":3: missing field \"completion\"",
        ":4: field \"completion\" must be a string or a list of messages, got a number",
        ":5: empty \"completion\"",
        ":6: expected a JSON object, got a list",
    ];
    assert_eq!(d.report.reasons.len(), REPORTED_REASONS);
    for (got, want) in d.report.reasons.iter().zip(want) {
        assert!(
            got.contains(&format!("sft_bad.jsonl{want}")),
            "{got} vs {want}"
        );
    }
    let shown = d.report.to_string();
    assert!(shown.contains("2 rows, 7 bad rows skipped"), "{shown}");
}

/// One bad line in a fresh file: the error names file, line 1 and `want`.
fn check<T: std::fmt::Debug>(
    load: fn(&std::path::Path, &LoadOptions) -> anyhow::Result<Dataset<T>>,
    line: &str,
    want: &str,
) {
    let dir = Scratch::new("rows");
    let p = dir.write("bad.jsonl", &format!("{line}\n"));
    let e = err_text(load(&p, &LoadOptions::default()));
    assert!(e.contains(&format!("bad.jsonl:1: {want}")), "{line} -> {e}");
}

#[test]
fn each_kind_of_bad_row_says_what_is_wrong() {
    check(
        load_sft,
        r#"{"messages": [{"role": "bot", "content": "x"}]}"#,
        r#""messages"[0].role is "bot", not system, user or assistant"#,
    );
    check(
        load_sft,
        r#"{"messages": [{"role": "user", "content": "q"}]}"#,
        r#""messages" has no assistant turn"#,
    );
    check(
        load_sft,
        r#"{"messages": [{"role": "user", "content": 3}]}"#,
        r#""messages"[0].content must be a string, got a number"#,
    );
    check(
        load_sft,
        r#"{"prompt": "p", "completion": [{"role": "user", "content": "x"}]}"#,
        r#""completion" must start with an assistant turn"#,
    );
    check(
        load_sft,
        r#"{"other": 1}"#,
        r#"no "text", "prompt"/"completion" or "messages" field"#,
    );
    check(load_sft, r#"{"text": ""}"#, r#"empty "text""#);
    check(
        load_preferences,
        r#"{"prompt": "p", "chosen": " a", "rejected": ""}"#,
        r#"empty "rejected""#,
    );
    check(
        load_preferences,
        r#"{"chosen": "same", "rejected": "same"}"#,
        "chosen and rejected are identical",
    );
    // {"chosen": "abc", "rejected": "xyz"} loads (whole texts for reward
    // training); DPO refuses it when encoding (data/pairs.rs).
    check(
        load_preferences,
        r#"{"chosen": "a", "rejected": []}"#,
        r#""chosen" and "rejected" must both be strings or both message lists"#,
    );
    check(load_preferences, "{\"chosen\": \"\\n\\nHuman: q\\n\\nAssistant: x\", \"rejected\": \"\\n\\nHuman: q\\n\\nAssistant: \"}",
        "empty rejected response after the shared prompt");
    check(
        load_kto,
        r#"{"prompt": "p", "completion": " c", "label": 2}"#,
        r#"field "label" must be true/false or 1/0, got 2"#,
    );
    check(
        load_kto,
        r#"{"prompt": "p", "completion": " c", "label": "1"}"#,
        r#"field "label" must be true/false or 1/0, got "1""#,
    );
    check(
        load_prompts,
        r#"{"prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#,
        r#""prompt" ends with an assistant turn"#,
    );
    check(
        load_prompts,
        r#"{"messages": [{"role": "assistant", "content": "a"}]}"#,
        r#""messages" has no turn before the final assistant turn"#,
    );
    check(
        load_classifier,
        r#"{"text": "t", "label": 0.5}"#,
        r#"field "label" must be an integer in 0..2 (or -1 for unlabelled), got 0.5"#,
    );
    check(
        load_classifier,
        r#"{"text": 5, "label": 1}"#,
        r#"field "text" must be a string, got a number"#,
    );
}

#[test]
fn kto_bad_labels_skipped_with_reasons() {
    let opts = LoadOptions {
        skip_bad_rows: true,
        ..LoadOptions::default()
    };
    let d = load_kto(&fixture("kto_bad.jsonl"), &opts).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d.report.skipped_bad, 3);
    assert!(d.report.reasons[0].contains("kto_bad.jsonl:2: field \"label\""));
    assert!(d.report.reasons[1].contains("kto_bad.jsonl:3: field \"label\""));
    assert!(d.report.reasons[2].contains("kto_bad.jsonl:4: missing field \"label\""));
}

#[test]
fn invalid_utf8_and_missing_files() {
    let dir = Scratch::new("utf8");
    let p = dir.path("u.jsonl");
    std::fs::write(&p, b"{\"text\": \"ok\"}\n{\"text\": \"\xff\"}\n").unwrap();
    let e = err_text(load_sft(&p, &LoadOptions::default()));
    assert!(e.contains("u.jsonl:2: not valid UTF-8"), "{e}");
    let e = err_text(load_sft(
        &fixture("no_such_file.jsonl"),
        &LoadOptions::default(),
    ));
    assert!(e.contains("no_such_file.jsonl"), "{e}");
}
