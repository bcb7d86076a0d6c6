//! Preference pairs as TRL 1.16.0 tokenizes them (ids checked against its
//! DPOTrainer's `tokenize_fn`), with the real GPT-2 tokenizer and its HF
//! files: EOS and no BOS for DPO, the common-prefix split of the joint
//! encodings, truncation with max_prompt_len (counted),
//! ties after truncation, and reward pairs as whole texts (no shared prefix
//! needed, HH-RLHF cut to its last 600 characters).

use super::helpers::{gpt2, ids, shared};
use engine::data::*;
use std::io::Read;
use std::path::Path;

const EOS: i32 = 50256;

fn hf() -> ChatTemplate {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/fixtures/tokenizers/gpt2");
    ChatTemplate::for_model_dir(&dir).unwrap()
}

fn pair(prompt: &str, chosen: &str, rejected: &str) -> Row<PreferenceRecord> {
    Row {
        origin: Origin {
            file: Path::new("mem.jsonl").into(),
            line: 3,
        },
        record: PreferenceRecord {
            prompt: prompt.into(),
            chosen: chosen.into(),
            rejected: rejected.into(),
        },
    }
}

#[test]
fn dpo_pairs_get_eos_and_no_bos_as_trl_1_16_tokenizes_them() {
    let t = hf();
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(64));
    let e = enc.preference(&pair("Hello", " world", " there")).unwrap();
    // GPT-2's tokenizer adds no BOS, and TRL 1.16 adds none either.
    assert_eq!(e.prompt_ids, ids("Hello"));
    assert_eq!(e.chosen_ids, [ids(" world"), vec![EOS]].concat());
    assert_eq!(e.rejected_ids, [ids(" there"), vec![EOS]].concat());
}

#[test]
fn a_prompt_token_merged_into_a_response_starts_both_responses() {
    // "The wat" + "er ran" tokenizes as "The water ran": TRL 1.16's prompt
    // is the prefix both sides share with the prompt alone ("The"), and
    // the rejected side's " wat" starts its response.
    let t = hf();
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(64));
    let e = enc
        .preference(&pair("The wat", "er ran", " stood"))
        .unwrap();
    let whole = ids("The water ran");
    assert_eq!(whole.len(), 3, "{whole:?}");
    assert_eq!(e.prompt_ids, [whole[0]]);
    assert_eq!(e.chosen_ids, [&whole[1..], &[EOS]].concat());
    assert_eq!(e.rejected_ids, [ids(" wat stood"), vec![EOS]].concat());
}

#[test]
fn keep_end_truncation_with_max_prompt_len_is_counted() {
    let t = hf();
    let prompt = " one two three four five six seven eight";
    let tr = Truncation {
        max_prompt_len: Some(4),
        ..Truncation::truncate(8)
    };
    let enc = Encoder::new(gpt2(), &t, tr);
    let e = enc.preference(&pair(prompt, " a b c d e", " f")).unwrap();
    let p = ids(prompt);
    // Prompt (8) + longer response (6 with EOS) > 8: the prompt keeps its
    // last 4; responses then at most 8 - 4 (EOS cut, as in TRL).
    assert_eq!(e.prompt_ids, p[p.len() - 4..]);
    assert_eq!(e.chosen_ids, ids(" a b c d"));
    assert_eq!(e.rejected_ids, [ids(" f"), vec![EOS]].concat());
    assert_eq!(
        enc.truncated(),
        TruncationCount {
            rows: 1,
            tokens: 4 + 2
        }
    );
    let note = enc.truncation_note(1, "mem.jsonl").unwrap();
    assert!(
        note.contains("truncated 1 of 1 rows") && note.contains("6 tokens cut"),
        "{note}"
    );
}

#[test]
fn pairs_identical_after_truncation_are_skipped_with_a_warning() {
    let t = hf();
    let tr = Truncation {
        max_prompt_len: Some(2),
        ..Truncation::truncate(4)
    };
    let enc = Encoder::new(gpt2(), &t, tr);
    let same = enc
        .preference(&pair("Q", " yes yes yes", " yes yes no"))
        .unwrap();
    assert!(same.is_tie());
    let apart = enc.preference(&pair("Q", " yes", " no")).unwrap();
    let mut notes = Vec::new();
    let kept = drop_ties(vec![same, apart.clone()], "mem.jsonl", &mut notes);
    assert_eq!(kept, [apart]);
    assert!(
        notes[0].contains("skipped 1 of 2 pairs") && notes[0].contains("mem.jsonl:3"),
        "{notes:?}"
    );
}

#[test]
fn pairs_without_a_shared_prefix_are_whole_texts_for_reward_only() {
    let t = hf();
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(64));
    let (c, r) = ("Cats purr.", "Dogs bark.");
    let (p, c2, r2) = extract_prompt(c, r).unwrap();
    assert_eq!((p.as_str(), c2.as_str(), r2.as_str()), ("", c, r));
    let row = pair("", c, r);
    let e = enc.reward_pair(&row).unwrap();
    assert!(e.prompt_ids.is_empty());
    assert_eq!(e.chosen_ids, [ids(c), vec![EOS]].concat());
    assert_eq!(e.rejected_ids, [ids(r), vec![EOS]].concat());
    let err = format!("{:#}", enc.preference(&row).unwrap_err());
    assert!(
        err.contains("mem.jsonl:3") && err.contains("share no prompt"),
        "{err}"
    );
}

/// The last 600 characters of each text (on a char boundary).
fn tail(s: &str) -> String {
    let mut i = s.len().saturating_sub(600);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    s[i..].to_string()
}

#[test]
fn hh_rlhf_cut_to_its_last_600_characters_loads_as_whole_texts() {
    let path = shared("datasets/hh-rlhf/helpful-base-test.jsonl.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let dir = super::helpers::Scratch::new("hh600");
    let file = dir.path("hh600.jsonl");
    let mut out = String::new();
    for line in text.lines().take(12) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let row = serde_json::json!({
            "chosen": tail(v["chosen"].as_str().unwrap()),
            "rejected": tail(v["rejected"].as_str().unwrap()),
        });
        out += &format!("{row}\n");
    }
    std::fs::write(&file, out).unwrap();
    let d = load_preferences(&file, &LoadOptions::default()).unwrap();
    let no_prefix = d
        .rows
        .iter()
        .filter(|r| r.record.prompt == Content::Plain(String::new()));
    assert!(no_prefix.count() >= 6, "most cut pairs share no prefix");
    let t = hf();
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(1024));
    for r in &d.rows {
        let e = enc.reward_pair(r).unwrap();
        let Content::Plain(p) = &r.record.prompt else {
            panic!()
        };
        let Content::Plain(c) = &r.record.chosen else {
            panic!()
        };
        assert_eq!(e.chosen_ids, [ids(&format!("{p}{c}")), vec![EOS]].concat());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn conversations_without_a_shared_prefix_are_whole_for_reward_only() {
    let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' \
                  + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}\
                  {% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    let scratch = super::helpers::Scratch::new("no-prefix-chat");
    let jinja = scratch.write("chatml.jinja", chatml);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/fixtures/tokenizers/gpt2");
    let t = ChatTemplate::resolve(jinja.to_str(), Ok(dir.as_path())).unwrap();
    let turn = |role: &str, text: &str| format!(r#"{{"role": "{role}", "content": "{text}"}}"#);
    let line = format!(
        r#"{{"chosen": [{}, {}], "rejected": [{}, {}]}}"#,
        turn("user", "Cats?"),
        turn("assistant", "They purr."),
        turn("user", "Dogs?"),
        turn("assistant", "They bark.")
    );
    let file = scratch.write("prefs.jsonl", &format!("{line}\n"));
    let ds = load_preferences(&file, &LoadOptions::default()).unwrap();
    let row = &ds.rows[0];
    assert!(row.record.prompt.is_empty(), "{:?}", row.record);
    let enc = Encoder::new(gpt2(), &t, Truncation::truncate(64));
    let e = enc.reward_pair(row).unwrap();
    // TRL: each side rendered whole by the chat template, no prompt split.
    let whole = |u: &str, a: &str| {
        ids(&format!(
            "<|im_start|>user\n{u}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n"
        ))
    };
    assert!(e.prompt_ids.is_empty());
    assert_eq!(e.chosen_ids, whole("Cats?", "They purr."));
    assert_eq!(e.rejected_ids, whole("Dogs?", "They bark."));
    let err = format!("{:#}", enc.preference(row).unwrap_err());
    assert!(
        err.contains("prefs.jsonl:1") && err.contains("share no prompt"),
        "{err}"
    );
}
