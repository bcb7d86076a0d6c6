//! Property tests over the three parsers that read user files: the
//! safetensors header and data, config.json, and data rows. Whatever the
//! bytes, a parser returns a value or an error that names the file; it never
//! panics, and a config it accepts is one the models can be built from.

use engine::data::{load_kto, load_preferences, load_sft, LoadOptions};
use engine::models::checkpoint::Checkpoint;
use engine::models::ModelConfig;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::harness::{fixture_model, Scratch};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn model_bytes() -> Vec<u8> {
    std::fs::read(fixture_model("gpt2-tiny").join("model.safetensors")).unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// Byte edits anywhere in the header (and its length prefix) and an
    /// optional truncation: opening and reading every tensor is Ok or Err.
    #[test]
    fn safetensors_files_never_panic(
        edits in prop::collection::vec((0usize..1200, any::<u8>()), 0..12),
        cut in prop::option::of(0usize..4000),
    ) {
        let s = Scratch::new("fuzz-st");
        let mut bytes = model_bytes();
        for (at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        if let Some(c) = cut {
            bytes.truncate(c.min(bytes.len()));
        }
        let path = s.path("model.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        match Checkpoint::open_file(&path) {
            Ok(ck) => {
                let names: Vec<String> = ck.names().map(str::to_string).collect();
                for n in names {
                    if let Err(e) = ck.get(&n) {
                        prop_assert!(format!("{e:#}").contains("model.safetensors"), "{e:#}");
                    }
                }
            }
            Err(e) => prop_assert!(format!("{e:#}").contains("model.safetensors"), "{e:#}"),
        }
    }
}

/// Any JSON value, biased toward the ones that break integer fields.
fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|x| json!(x)),
        (-3i64..5_000_000).prop_map(|x| json!(x)),
        any::<f64>().prop_map(|x| if x.is_finite() { json!(x) } else { json!(null) }),
        (0.0f64..64.0).prop_map(|x| json!(x)),
        "[a-z_]{0,8}".prop_map(|x| json!(x)),
        Just(json!(null)),
        any::<bool>().prop_map(|x| json!(x)),
        Just(json!([1, 2])),
        Just(json!({"a": 1})),
    ]
}

const CONFIG_KEYS: &[&str] = &[
    "n_layer",
    "n_head",
    "n_embd",
    "n_positions",
    "vocab_size",
    "n_inner",
    "layer_norm_epsilon",
    "model_type",
    "activation_function",
    "tie_word_embeddings",
    "eos_token_id",
    "num_labels",
];

proptest! {
    #![proptest_config(config())]

    /// gpt2-tiny's config with some keys replaced by arbitrary values: parsing
    /// is Ok or Err, and an accepted config has a shape the models can build.
    #[test]
    fn configs_never_panic_and_accepted_ones_are_plausible(
        edits in prop::collection::vec((0usize..CONFIG_KEYS.len(), json_value()), 1..5),
    ) {
        let text = std::fs::read_to_string(fixture_model("gpt2-tiny").join("config.json")).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        for (k, val) in edits {
            v[CONFIG_KEYS[k]] = val;
        }
        match ModelConfig::from_json(v.clone(), "config.json") {
            Ok(c) => {
                prop_assert!(c.n_layer >= 1 && c.n_layer <= 1024, "n_layer {} accepted: {v}", c.n_layer);
                prop_assert!(c.n_head >= 1 && c.hidden % c.n_head == 0, "n_head {} / hidden {} accepted", c.n_head, c.hidden);
                prop_assert!(c.vocab_size >= 1 && c.n_ctx >= 1, "vocab {} ctx {} accepted", c.vocab_size, c.n_ctx);
                prop_assert!(c.layer_norm_eps.is_finite() && c.layer_norm_eps >= 0.0);
            }
            Err(e) => prop_assert!(format!("{e:#}").contains("config.json"), "{e:#}"),
        }
    }
}

/// A line of a data file: a valid row, a row with wrong types, JSON that is
/// not an object, or bytes.
fn data_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"prompt": "a", "completion": " b"}"#.to_string()),
        Just(r#"{"prompt": "a", "chosen": " b", "rejected": " c"}"#.to_string()),
        Just(r#"{"prompt": "a", "completion": " b", "label": true}"#.to_string()),
        (json_value(), json_value())
            .prop_map(|(a, b)| json!({"prompt": a, "completion": b}).to_string()),
        (json_value(), json_value())
            .prop_map(|(a, b)| json!({"chosen": a, "rejected": b}).to_string()),
        json_value().prop_map(|v| v.to_string()),
        "[ -~]{0,40}",
        Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Every loader, with and without `--skip-bad-rows`: Ok or an error that
    /// names the file (and, for a bad row, its line).
    #[test]
    fn data_rows_never_panic(lines in prop::collection::vec(data_line(), 0..8), skip in any::<bool>()) {
        let s = Scratch::new("fuzz-rows");
        let path = s.path("rows.jsonl");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let opts = LoadOptions { skip_bad_rows: skip, ..LoadOptions::default() };
        let errors = [
            load_sft(&path, &opts).err(),
            load_preferences(&path, &opts).err(),
            load_kto(&path, &opts).err(),
        ];
        for e in errors.into_iter().flatten() {
            prop_assert!(format!("{e:#}").contains("rows.jsonl"), "{e:#}");
        }
    }
}
