//! SFT on standard (string) rows gives the ids TRL's SFTTrainer builds:
//! the EOS appended to texts and completions (unless already there), the
//! prompt masked. Expectations written by the tokenizers themselves
//! (fixtures/trl/sft_tokens.json, from fixtures/make_sft_tokens.py).

use engine::data::*;
use serde_json::Value;
use std::path::Path;
use tokenizers::Tokenizer;

fn ids(v: &Value) -> Vec<i32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() as i32)
        .collect()
}

fn record(row: &Value) -> SftRecord {
    let s = |k: &str| row[k].as_str().unwrap().to_string();
    if row.get("text").is_some() {
        SftRecord::Text(s("text"))
    } else {
        SftRecord::PromptCompletion {
            prompt: s("prompt").as_str().into(),
            completion: s("completion").as_str().into(),
        }
    }
}

#[test]
fn standard_sft_rows_end_with_eos_as_trl_tokenizes_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("kernels-tests/fixtures/trl/sft_tokens.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (name, t) in fx["tokenizers"].as_object().unwrap() {
        let dir = root.join(t["dir"].as_str().unwrap());
        let tok = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        let template = ChatTemplate::for_model_dir(&dir).unwrap();
        let enc = Encoder::new(&tok, &template, Truncation::truncate(1024));
        for (i, case) in t["cases"].as_array().unwrap().iter().enumerate() {
            let row = Row {
                origin: Origin {
                    file: Path::new("mem.jsonl").into(),
                    line: i + 1,
                },
                record: record(&case["row"]),
            };
            let ex = enc.sft(&row).unwrap();
            let what = format!("{name} {}", case["row"]);
            assert_eq!(ex.ids, ids(&case["input_ids"]), "ids of {what}");
            assert_eq!(
                ex.loss_mask,
                ids(&case["completion_mask"]),
                "mask of {what}"
            );
        }
    }
}
