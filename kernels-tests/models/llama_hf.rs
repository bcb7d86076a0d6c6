//! The binary on Llama-family directories exactly as transformers' own
//! classes write them (kernels-tests/fixtures/make_llama_hf_fixtures.py):
//! `llama3-sp-bf16` (GQA, llama3 RoPE, bf16, LlamaTokenizer with BOS,
//! generation_config.json listing two EOS ids) and `qwen2-mqa-tied` (one KV
//! head, q/k/v biases, tied, Qwen2Tokenizer without BOS, padded vocab).
//! `engine perplexity` is within 1e-4 relative of transformers' loss, and
//! `engine generate --greedy --json` prints transformers' ids.

use super::cli::{engine, model_dir};
use super::parity::{fixture, ids};
use crate::common::*;
use engine::models::checkpoint::SaveDtype;
use engine::models::CausalLm;
use serde_json::Value;

const BAR: [&str; 2] = ["llama3-sp-bf16", "qwen2-mqa-tied"];

fn json_line(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn perplexity_is_transformers_loss() {
    for name in BAR {
        let (_, json, _) = fixture(name);
        let scratch = crate::common::Scratch::new(&format!("ppl-{name}"));
        let text = scratch.path("text.txt");
        std::fs::write(&text, json["ppl_text"].as_str().unwrap()).unwrap();
        let args = ["perplexity", "--model", &model_dir(name), "--json"];
        let (ok, out, err) = engine(&[&args[..], &["--text", text.to_str().unwrap()]].concat());
        assert!(ok, "{name}: {err}");
        let v = json_line(&out);
        assert_eq!(
            v["tokens"].as_u64(),
            json["ppl_ids"].as_array().map(|a| a.len() as u64)
        );
        let (got, want) = (
            v["mean_nll"].as_f64().unwrap(),
            json["ppl_loss"].as_f64().unwrap(),
        );
        assert!(
            ((got - want) / want).abs() < 1e-4,
            "{name}: engine {got} vs transformers {want}"
        );
    }
}

#[test]
fn greedy_generate_gives_transformers_ids() {
    for name in BAR {
        let (_, json, _) = fixture(name);
        let g = &json["generation"];
        let n = g["max_new_tokens"].as_u64().unwrap().to_string();
        let (ok, out, err) = engine(&[
            "generate",
            "--model",
            &model_dir(name),
            "--prompt",
            g["prompt_text"].as_str().unwrap(),
            "--max-new-tokens",
            &n,
            "--greedy",
            "--json",
        ]);
        assert!(ok, "{name}: {err}");
        let v = json_line(&out);
        assert_eq!(
            ids(&v["prompt_ids"]),
            ids(&g["prompt_ids"]),
            "{name}: prompt"
        );
        assert_eq!(ids(&v["new_ids"]), ids(&g["new_ids"]), "{name}: new ids");
    }
}

/// Stopping on an id that only generation_config.json lists (config.json
/// says 2), as transformers' `generate` does.
#[test]
fn generation_config_eos_list_stops_decoding() {
    let (m, json, _) = fixture("llama3-sp-bf16");
    assert_eq!(m.cfg.eos_token_ids, vec![2, 3]);
    assert_eq!(m.cfg.raw["eos_token_id"], 2);
    let new = ids(&json["generation"]["new_ids"]);
    assert_eq!(new.last(), Some(&3), "the reference stops on <|eot|>");
    let (q, _, _) = fixture("qwen2-mqa-tied");
    assert_eq!(q.cfg.eos_token_ids, vec![2, 0]);
}

/// Every text of the fixture encodes as AutoTokenizer does: BOS from the
/// post-processor transformers wrote (Llama) or none (Qwen2), specials in
/// the text matched, byte fallback, doubled spaces, newlines.
#[test]
fn tokenizers_encode_as_auto_tokenizer() {
    for name in BAR {
        let (m, json, _) = fixture(name);
        for case in json["tokenizer_checks"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            assert_eq!(
                m.encode(text).unwrap(),
                ids(&case["ids"]),
                "{name}: {text:?}"
            );
        }
    }
}

/// Saving in bf16 and reading back keeps the stop ids, the classes and the
/// logits; a Qwen2 reward model names Qwen2's class.
#[test]
fn save_keeps_eos_list_and_family_class_names() {
    let (m, _, _) = fixture("llama3-sp-bf16");
    let scratch = crate::common::Scratch::new("llama-hf-save");
    let dir = scratch.path("model");
    m.save(&dir, SaveDtype::BF16).unwrap();
    let back = CausalLm::load(&gpu(), &dir).unwrap();
    assert_eq!(back.cfg.eos_token_ids, vec![2, 3]);
    let gen: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("generation_config.json")).unwrap())
            .unwrap();
    assert_eq!(gen["eos_token_id"], serde_json::json!([2, 3]));
    let (q, _, _) = fixture("qwen2-mqa-tied");
    let rm = q.into_reward_model(1, 3).unwrap();
    assert_eq!(
        rm.cfg.raw["architectures"][0],
        "Qwen2ForSequenceClassification"
    );
}

/// SFT examples as TRL's SFTTrainer tokenizes them: standard (string) rows
/// through `tokenizer(text)`, so Llama's post-processor puts BOS first and
/// Qwen2's adds nothing; a conversation through the model's chat template
/// is encoded as one text with no extra BOS (the Zephyr template writes none).
#[test]
fn sft_rows_get_bos_as_the_tokenizer_adds_it() {
    use engine::data::*;
    let row = |record| Row {
        origin: Origin {
            file: std::path::Path::new("mem.jsonl").into(),
            line: 1,
        },
        record,
    };
    for (name, bos) in [("llama3-sp-bf16", Some(1)), ("qwen2-mqa-tied", None)] {
        let (m, _, _) = fixture(name);
        let dir = std::path::PathBuf::from(model_dir(name));
        let t = ChatTemplate::for_model_dir(&dir).unwrap();
        let enc = Encoder::new(m.tokenizer.as_ref().unwrap(), &t, Truncation::truncate(256));
        let eos = m.tokenizer_config.as_ref().unwrap()["eos_token"]
            .as_str()
            .unwrap()
            .to_string();
        let text = enc
            .sft(&row(SftRecord::Text("The river was high.".into())))
            .unwrap();
        // Text rows get the EOS appended, as TRL >= 0.19 does (a completion too).
        let text_eos = m.encode(&format!("The river was high.{eos}")).unwrap();
        assert_eq!(text.ids, text_eos, "{name}");
        assert_eq!(text.ids.first().copied() == bos, bos.is_some(), "{name}");
        let pc = SftRecord::PromptCompletion {
            prompt: "The river".into(),
            completion: " was high.".into(),
        };
        let ex = enc.sft(&row(pc)).unwrap();
        let whole = m.encode(&format!("The river was high.{eos}")).unwrap();
        assert_eq!(
            ex.ids, whole,
            "{name}: prompt + completion = the whole text"
        );
        let prompt = m.encode("The river").unwrap();
        assert_eq!(
            ex.loss_mask.iter().filter(|&&x| x == 0).count(),
            prompt.len()
        );
        let chat = || {
            vec![
                Message::new(Role::User, "hello"),
                Message::new(Role::Assistant, "The river was high."),
            ]
        };
        let conv = enc.sft(&row(SftRecord::Messages(chat()))).unwrap();
        // The rendered conversation encoded once, as TRL does (no `▁` at the
        // start of every turn), with no BOS added.
        let rendered: String = t
            .render_conversation(&chat())
            .unwrap()
            .iter()
            .map(|s| s.text.clone())
            .collect();
        assert_eq!(conv.ids, enc.encode_text(&rendered).unwrap(), "{name}");
        assert!(
            conv.loss_mask.contains(&1) && conv.loss_mask.contains(&0),
            "{name}"
        );
    }
}

/// `engine init --arch llama` with a SentencePiece tokenizer: `<s>` / `</s>`
/// become BOS / EOS in config.json and tokenizer_config.json, and the model
/// loads back and encodes with BOS.
#[test]
fn init_llama_takes_bos_and_eos_from_a_sentencepiece_tokenizer() {
    let scratch = crate::common::Scratch::new("init-llama");
    let out = scratch.path("model");
    let tok = format!("{}/tokenizer.json", model_dir("llama3-sp-bf16"));
    let (ok, _, err) = engine(&[
        "init",
        "--arch",
        "llama",
        "--tokenizer",
        &tok,
        "--hidden",
        "32",
        "--layers",
        "1",
        "--heads",
        "4",
        "--context",
        "64",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let m = CausalLm::load(&gpu(), &out).unwrap();
    assert_eq!(m.cfg.raw["architectures"][0], "LlamaForCausalLM");
    assert_eq!((m.cfg.bos_token_id, m.cfg.eos_token_id), (Some(1), Some(2)));
    let tc = m.tokenizer_config.as_ref().unwrap();
    assert_eq!(
        (tc["bos_token"].as_str(), tc["eos_token"].as_str()),
        (Some("<s>"), Some("</s>"))
    );
    assert_eq!(m.encode("The river").unwrap()[0], 1);
}
