//! The real datasets in ../shared, read in place: hh-rlhf prompt extraction,
//! IMDB labels (and the unlabelled split), bitext CSV with a column mapping.

use super::helpers::{err_text, gpt2, shared};
use engine::data::*;
use std::io::BufRead;

fn skip() -> LoadOptions {
    LoadOptions {
        skip_bad_rows: true,
        ..LoadOptions::default()
    }
}

/// The raw (chosen, rejected) strings of a JSONL.gz file.
fn raw_pairs(path: &std::path::Path) -> Vec<(String, String)> {
    let gz = flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap());
    std::io::BufReader::new(gz)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("chosen"), s("rejected"))
        })
        .collect()
}

#[test]
fn hh_rlhf_prompts_are_extracted_from_real_rows() {
    let path = shared("datasets/hh-rlhf/harmless-base-test.jsonl.gz");
    // Four rows have an empty chosen response after the shared prompt.
    let e = err_text(load_preferences(&path, &LoadOptions::default()));
    assert!(
        e.contains("harmless-base-test.jsonl.gz:87: empty chosen response"),
        "{e}"
    );
    let d = load_preferences(&path, &skip()).unwrap();
    assert!(d.report.gzip);
    assert_eq!((d.report.kept, d.report.skipped_bad), (2308, 4));
    let bad: Vec<&str> = d
        .report
        .reasons
        .iter()
        .map(|r| r.rsplit_once(".gz:").unwrap().1)
        .collect();
    for (r, line) in bad.iter().zip(["87:", "517:", "926:", "1104:"]) {
        assert!(r.starts_with(line), "{r}");
    }
    let raw = raw_pairs(&path);
    assert_eq!(raw.len(), 2312);
    for row in &d.rows {
        let (chosen, rejected) = &raw[row.origin.line - 1];
        let (Content::Plain(p), Content::Plain(c), Content::Plain(r)) =
            (&row.record.prompt, &row.record.chosen, &row.record.rejected)
        else {
            panic!("strings expected at {}", row.origin)
        };
        assert!(
            p.starts_with("\n\nHuman: ") && p.ends_with("\n\nAssistant:"),
            "{}",
            row.origin
        );
        assert_eq!(&format!("{p}{c}"), chosen);
        assert_eq!(&format!("{p}{r}"), rejected);
        assert!(c.starts_with(' ') && r.starts_with(' '));
    }
    let first = &d.rows[0].record;
    assert!(matches!(&first.prompt, Content::Plain(p)
        if p.ends_with("okay some of these do not have anything to do with pens\n\nAssistant:")));
    assert!(matches!(&first.chosen, Content::Plain(c) if c.starts_with(" No, sorry!")));

    // As messages, the hh template renders every pair back byte for byte.
    let opts = LoadOptions {
        hh_as_messages: true,
        ..skip()
    };
    let m = load_preferences(&path, &opts).unwrap();
    assert_eq!(m.len(), 2308);
    let t = ChatTemplate::hh();
    for row in &m.rows {
        let (chosen, rejected) = &raw[row.origin.line - 1];
        let (p, c) = t
            .render_example(&row.record.prompt, &row.record.chosen)
            .unwrap();
        assert_eq!(&(p.clone() + &c), chosen, "{}", row.origin);
        assert_eq!(
            &(p + &t.render_completion(&row.record.rejected).unwrap()),
            rejected
        );
    }
}

#[test]
fn imdb_labels_and_the_unlabelled_split() {
    let dir = shared("datasets/imdb");
    let test = load_classifier(&dir.join("imdb_test.jsonl.gz"), &LoadOptions::default()).unwrap();
    assert_eq!(test.len(), 25000);
    let pos = test.rows.iter().filter(|r| r.record.label == 1).count();
    assert_eq!(pos, 12500);
    assert!(test.rows[0]
        .record
        .text
        .starts_with("Once again Mr. Costner"));
    assert_eq!(test.rows[0].record.label, 0);
    let unsup = load_classifier(&dir.join("imdb_unsup.jsonl.gz"), &LoadOptions::default()).unwrap();
    assert_eq!(unsup.len(), 0);
    assert_eq!(unsup.report.skipped_unlabelled, 50000);
    assert_eq!(unsup.report.skipped_bad, 0);

    // Tokenized and cut from the right to a context.
    let template = ChatTemplate::gpt2();
    let enc = Encoder::new(gpt2(), &template, Truncation::truncate(64));
    let ex: Vec<ClassifierExample> = test.rows[..8]
        .iter()
        .map(|r| enc.classifier(r).unwrap())
        .collect();
    assert!(ex.iter().all(|e| e.ids.len() <= 64));
    let full = enc.encode_text(&test.rows[0].record.text).unwrap();
    assert_eq!(ex[0].ids, full[..64]);
}

#[test]
fn bitext_csv_with_a_column_mapping() {
    let dir = shared("datasets/bitext");
    let opts = LoadOptions {
        columns: "prompt=instruction,completion=response".parse().unwrap(),
        ..LoadOptions::default()
    };
    for (file, rows) in [
        ("DERIVED_v11-column-layout_from_2023-09-19.csv", 4514),
        (
            "Bitext_Sample_Customer_Support_Training_Dataset.2023-09-19.csv",
            4514,
        ),
    ] {
        let d = load_sft(&dir.join(file), &opts).unwrap();
        assert_eq!(d.len(), rows, "{file}");
        let SftRecord::PromptCompletion { prompt, completion } = &d.rows[0].record else {
            panic!()
        };
        assert_eq!(prompt, &"how can I cancel purchase 113542617735902?".into());
        assert!(
            matches!(completion, Content::Plain(c) if c.contains("\n")),
            "multi-line cells"
        );
        assert_eq!(d.rows[0].origin.line, 2);
        assert!(
            d.rows[1].origin.line > 3,
            "records span lines: {}",
            d.rows[1].origin.line
        );
    }
    // Templated and tokenized with a completion-only mask.
    let d = load_sft(
        &dir.join("DERIVED_v11-column-layout_from_2023-09-19.csv"),
        &opts,
    )
    .unwrap();
    let template = ChatTemplate::gpt2();
    let enc = Encoder::new(gpt2(), &template, Truncation::truncate(128));
    let ex = enc.sft(&d.rows[0]).unwrap();
    let prompt = enc
        .encode_text("User: how can I cancel purchase 113542617735902?\nAssistant:")
        .unwrap();
    assert_eq!(ex.ids[..prompt.len()], prompt);
    assert!(ex.loss_mask[..prompt.len()].iter().all(|&m| m == 0));
    assert!(ex.loss_mask[prompt.len()..].iter().all(|&m| m == 1));
    assert_eq!(ex.ids.len(), 128, "the long response is cut from the right");
}

#[test]
fn dialogsum_jsonl_with_a_column_mapping() {
    let opts = LoadOptions {
        columns: "prompt=dialogue,completion=summary".parse().unwrap(),
        ..LoadOptions::default()
    };
    let d = load_sft(&shared("datasets/dialogsum/dialogsum.dev.jsonl"), &opts).unwrap();
    assert!(d.len() > 100);
    let SftRecord::PromptCompletion { prompt, .. } = &d.rows[0].record else {
        panic!()
    };
    assert!(matches!(prompt, Content::Plain(p) if p.starts_with("#Person1#: Hello")));
}
