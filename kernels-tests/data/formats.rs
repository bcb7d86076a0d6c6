//! Every accepted format from the small fixtures, gzip by magic bytes, CSV
//! with a column mapping.

use super::helpers::{err_text, fixture, Scratch};
use engine::data::*;

fn lines<T>(d: &Dataset<T>) -> Vec<usize> {
    d.rows.iter().map(|r| r.origin.line).collect()
}

#[test]
fn sft_prompt_completion_text_and_messages() {
    let d = load_sft(&fixture("sft.jsonl"), &LoadOptions::default()).unwrap();
    assert_eq!(lines(&d), [1, 3, 4, 5], "the blank line 2 is no row");
    assert!(!d.report.gzip);
    assert_eq!(d.report.kept, 4);
    assert_eq!(
        d.rows[0].record,
        SftRecord::PromptCompletion {
            prompt: "What is 2+2?".into(),
            completion: "4.".into()
        }
    );
    assert_eq!(
        d.rows[1].record,
        SftRecord::Text("Just some text to learn.".into())
    );
    let SftRecord::Messages(m) = &d.rows[2].record else {
        panic!("{:?}", d.rows[2].record)
    };
    assert_eq!(m.len(), 5);
    assert_eq!(m[0], Message::system("Be brief."));
    assert_eq!(m[4], Message::assistant("Goodbye."));
    assert_eq!(
        d.rows[3].record,
        SftRecord::PromptCompletion {
            prompt: vec![Message::user("Capital of France?")].into(),
            completion: vec![Message::assistant("Paris.")].into()
        }
    );
    assert!(d.rows[0].origin.to_string().ends_with("sft.jsonl:1"));
}

#[test]
fn gzip_is_detected_by_magic_bytes() {
    let plain = load_sft(&fixture("sft.jsonl"), &LoadOptions::default()).unwrap();
    let gz = load_sft(&fixture("sft.jsonl.gz"), &LoadOptions::default()).unwrap();
    assert!(gz.report.gzip);
    let rec = |d: &Dataset<SftRecord>| d.rows.iter().map(|r| r.record.clone()).collect::<Vec<_>>();
    assert_eq!(rec(&gz), rec(&plain));
    assert_eq!(lines(&gz), lines(&plain));
    // Gzip content under a plain .jsonl name.
    let p = load_prompts(
        &fixture("prompts_gz_misnamed.jsonl"),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(p.report.gzip);
    assert_eq!(p.rows[1].record.prompt, "gzipped prompt two".into());
}

#[test]
fn preferences_explicit_hh_and_conversational() {
    let d = load_preferences(&fixture("prefs.jsonl"), &LoadOptions::default()).unwrap();
    assert_eq!(d.len(), 5);
    let r = |i: usize| &d.rows[i].record;
    assert_eq!(r(0).prompt, "The sky is".into());
    assert_eq!(r(0).chosen, " blue.".into());
    // hh-rlhf: cut after the last shared "\n\nAssistant:".
    assert_eq!(
        r(1).prompt,
        "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke\n\nAssistant:"
            .into()
    );
    assert_eq!(r(1).chosen, " Why did the chicken cross the road?".into());
    assert_eq!(r(1).rejected, " No.".into());
    // Implicit conversational: the shared turns before the assistant turn.
    assert_eq!(r(2).prompt, vec![Message::user("2+2?")].into());
    assert_eq!(r(2).chosen, vec![Message::assistant("4")].into());
    assert_eq!(r(2).rejected, vec![Message::assistant("5")].into());
    assert_eq!(r(3).prompt, vec![Message::user("Color of grass?")].into());
    assert_eq!(r(3).rejected, vec![Message::assistant("Purple.")].into());
    // No marker: TRL's rule, the trailing space goes to the responses.
    assert_eq!(r(4).prompt, "The answer is".into());
    assert_eq!(r(4).chosen, " 4".into());
}

#[test]
fn hh_dialogues_as_messages_render_back_with_the_hh_template() {
    let opts = LoadOptions {
        hh_as_messages: true,
        ..LoadOptions::default()
    };
    let four = LoadOptions {
        max_rows: Some(4),
        ..opts.clone()
    };
    let d = load_preferences(&fixture("prefs.jsonl"), &four).unwrap();
    let r = &d.rows[1].record;
    assert_eq!(
        r.prompt,
        vec![
            Message::user("Hi there"),
            Message::assistant("Hello! How can I help?"),
            Message::user("Tell me a joke"),
        ]
        .into()
    );
    assert_eq!(r.rejected, vec![Message::assistant("No.")].into());
    let t = ChatTemplate::hh();
    let (p, c) = t.render_example(&r.prompt, &r.chosen).unwrap();
    assert_eq!(
        p + &c,
        "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke\n\nAssistant: Why did the chicken cross the road?"
    );
    // A non-hh pair fails as a row under this option.
    let e = err_text(load_preferences(&fixture("prefs.jsonl"), &opts));
    assert!(e.contains("prefs.jsonl:5: not an hh-rlhf dialogue"), "{e}");
    assert_eq!(
        parse_hh_dialogue("\n\nHuman: a\n\nAssistant: b").unwrap(),
        [Message::user("a"), Message::assistant("b")]
    );
    assert_eq!(parse_hh_dialogue("Human: a"), None);
}

#[test]
fn kto_labels_bool_or_01() {
    let d = load_kto(&fixture("kto.jsonl"), &LoadOptions::default()).unwrap();
    let labels: Vec<bool> = d.rows.iter().map(|r| r.record.label).collect();
    assert_eq!(labels, [true, false, true, false]);
    assert_eq!(d.rows[2].record.completion, " 4".into());
}

#[test]
fn prompts_drop_a_final_assistant_turn() {
    let d = load_prompts(&fixture("prompts.jsonl"), &LoadOptions::default()).unwrap();
    assert_eq!(d.rows[0].record.prompt, "Write a haiku about rain.".into());
    assert_eq!(
        d.rows[1].record.prompt,
        vec![
            Message::user("Hi"),
            Message::assistant("Hello"),
            Message::user("How are you?")
        ]
        .into()
    );
    assert_eq!(
        d.rows[2].record.prompt,
        vec![Message::system("Be kind."), Message::user("Help me.")].into()
    );
}

#[test]
fn classifier_skips_unlabelled_rows_with_a_count() {
    let d = load_classifier(&fixture("classifier.jsonl"), &LoadOptions::default()).unwrap();
    assert_eq!(lines(&d), [1, 2, 4]);
    let labels: Vec<usize> = d.rows.iter().map(|r| r.record.label).collect();
    assert_eq!(labels, [1, 0, 1]);
    assert_eq!(d.report.skipped_unlabelled, 1);
    assert_eq!(d.report.skipped_bad, 0);
    // More classes when asked for.
    let dir = Scratch::new("classes");
    let three = dir.write("c.jsonl", "{\"text\": \"x\", \"label\": 2}\n");
    assert!(err_text(load_classifier(&three, &LoadOptions::default()))
        .contains("c.jsonl:1: field \"label\""));
    let opts = LoadOptions {
        num_labels: 3,
        ..LoadOptions::default()
    };
    assert_eq!(
        load_classifier(&three, &opts).unwrap().rows[0].record.label,
        2
    );
}

#[test]
fn csv_with_a_column_mapping() {
    let mut opts = LoadOptions {
        columns: "prompt=question, completion=answer".parse().unwrap(),
        ..LoadOptions::default()
    };
    // Record 3 (line 5) has six fields under a four-column header.
    let e = err_text(load_sft(&fixture("qa.csv"), &opts));
    assert!(e.contains("qa.csv:5: bad CSV record"), "{e}");
    opts.skip_bad_rows = true;
    let d = load_sft(&fixture("qa.csv"), &opts).unwrap();
    assert_eq!(
        lines(&d),
        [2, 3, 6],
        "a record's first line; header is line 1"
    );
    assert_eq!(d.report.skipped_bad, 1);
    assert_eq!(
        d.rows[0].record,
        SftRecord::PromptCompletion {
            prompt: "How do I reset my password?".into(),
            completion: "Go to settings, then \"Reset\".".into()
        }
    );
    let SftRecord::PromptCompletion { prompt, .. } = &d.rows[1].record else {
        panic!()
    };
    assert_eq!(prompt, &"A question\nover two lines?".into());
    // CSV labels are text.
    let opts = LoadOptions {
        columns: ColumnMap::new(&[("text", "question"), ("label", "score")]),
        skip_bad_rows: true,
        ..LoadOptions::default()
    };
    let c = load_classifier(&fixture("qa.csv"), &opts).unwrap();
    let labels: Vec<usize> = c.rows.iter().map(|r| r.record.label).collect();
    assert_eq!(labels, [1, 0, 1]);
    // A mapping to a column the file lacks fails at the header.
    let opts = LoadOptions {
        columns: "prompt=instruction".parse().unwrap(),
        ..LoadOptions::default()
    };
    let e = err_text(load_sft(&fixture("qa.csv"), &opts));
    assert!(e.contains("qa.csv:1: no column \"instruction\""), "{e}");
    assert!(e.contains("id, question, answer, score"), "{e}");
}

#[test]
fn column_maps_apply_to_jsonl_and_parse_strictly() {
    let dir = Scratch::new("colmap");
    let p = dir.write(
        "d.jsonl",
        "{\"q\": \"hi\", \"a\": \" there\"}\n{\"q\": \"x\"}\n",
    );
    let opts = LoadOptions {
        columns: "prompt=q,completion=a".parse().unwrap(),
        ..LoadOptions::default()
    };
    let e = err_text(load_sft(&p, &opts));
    assert!(
        e.contains("d.jsonl:2: missing field \"completion\" (column \"a\")"),
        "{e}"
    );
    let opts = LoadOptions {
        max_rows: Some(1),
        ..opts
    };
    assert_eq!(
        load_sft(&p, &opts).unwrap().len(),
        1,
        "max_rows stops early"
    );
    assert!("prompt".parse::<ColumnMap>().is_err());
    assert!("prompt=a,prompt=b".parse::<ColumnMap>().is_err());
    assert!("=a".parse::<ColumnMap>().is_err());
    assert_eq!(FileFormat::from_path("x.CSV.gz".as_ref()), FileFormat::Csv);
    assert_eq!(FileFormat::from_path("x.tsv".as_ref()), FileFormat::Tsv);
    assert_eq!(FileFormat::from_path("x.gz".as_ref()), FileFormat::Jsonl);
}

#[test]
fn csv_line_numbers_with_crlf_line_ends() {
    let text = std::fs::read_to_string(fixture("qa.csv"))
        .unwrap()
        .replace('\n', "\r\n");
    let dir = Scratch::new("crlf");
    let p = dir.write("qa_crlf.csv", &text);
    let opts = LoadOptions {
        columns: "prompt=question,completion=answer".parse().unwrap(),
        skip_bad_rows: true,
        ..LoadOptions::default()
    };
    let d = load_sft(&p, &opts).unwrap();
    assert_eq!(lines(&d), [2, 3, 6]);
    assert!(
        d.report.reasons[0].contains("qa_crlf.csv:5: bad CSV record"),
        "{:?}",
        d.report.reasons
    );
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let dir = Scratch::new("bom");
    let j = dir.write("b.jsonl", "\u{feff}{\"prompt\": \"p\"}\n");
    assert_eq!(load_prompts(&j, &LoadOptions::default()).unwrap().len(), 1);
    let c = dir.write("b.csv", "\u{feff}prompt,x\nhello,1\n");
    let d = load_prompts(&c, &LoadOptions::default()).unwrap();
    assert_eq!(d.rows[0].record.prompt, "hello".into());
}

#[test]
fn tsv_and_format_override() {
    let dir = Scratch::new("tsv");
    let p = dir.write("rows.txt", "prompt\tcompletion\nHi\t Hello\n");
    let e = err_text(load_sft(&p, &LoadOptions::default()));
    assert!(e.contains("rows.txt:1: invalid JSON"), "{e}");
    let opts = LoadOptions {
        format: Some(FileFormat::Tsv),
        ..LoadOptions::default()
    };
    let d = load_sft(&p, &opts).unwrap();
    assert_eq!(lines(&d), [2]);
}
