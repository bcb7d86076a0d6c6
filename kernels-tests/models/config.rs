//! config.json parsing: both GPT-2 and NeoX spellings, clear errors.

use engine::models::{Activation, Arch, ModelConfig};
use serde_json::json;
use std::path::Path;

fn real_config(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kernels-tests/fixtures/configs")
        .join(name)
}

#[test]
fn reads_the_real_gpt2_config() {
    let c = ModelConfig::from_file(&real_config("gpt2.config.json")).unwrap();
    assert_eq!(
        (c.arch, c.vocab_size, c.hidden, c.n_layer, c.n_head, c.n_ctx),
        (Arch::Gpt2, 50257, 768, 12, 12, 1024)
    );
    assert_eq!(
        (c.intermediate, c.activation, c.tie_word_embeddings),
        (3072, Activation::GeluTanh, true)
    );
    assert_eq!(c.eos_token_id, Some(50256));
}

#[test]
fn reads_the_real_pythia_config() {
    let c = ModelConfig::from_file(&real_config("pythia-14m.config.json")).unwrap();
    assert_eq!(
        (c.arch, c.vocab_size, c.hidden, c.n_head, c.head_dim()),
        (Arch::GptNeox, 50304, 128, 4, 32)
    );
    assert_eq!(
        (c.rotary_pct, c.rotary_dims(), c.rotary_base),
        (0.25, 8, 10000.0)
    );
    assert!(c.parallel_residual && !c.tie_word_embeddings);
    assert_eq!(c.activation, Activation::GeluErf);
}

#[test]
fn reads_transformers_5_rope_parameters() {
    let raw = json!({"model_type": "gpt_neox", "vocab_size": 100, "hidden_size": 48, "num_attention_heads": 3,
        "num_hidden_layers": 2, "max_position_embeddings": 64, "intermediate_size": 96,
        "rope_parameters": {"partial_rotary_factor": 1.0, "rope_theta": 500.0, "rope_type": "default"},
        "use_parallel_residual": false, "dtype": "float32"});
    let c = ModelConfig::from_json(raw, "cfg.json").unwrap();
    assert_eq!(
        (
            c.rotary_pct,
            c.rotary_dims(),
            c.rotary_base,
            c.parallel_residual
        ),
        (1.0, 16, 500.0, false)
    );
    assert_eq!(c.to_json("float16")["dtype"], "float16");
}

#[test]
fn unknown_architecture_and_missing_keys_are_named() {
    let e = ModelConfig::from_json(json!({"model_type": "t5"}), "x/config.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("x/config.json") && e.contains("t5") && e.contains("bert"),
        "{e}"
    );
    let e = ModelConfig::from_json(
        json!({"model_type": "gpt2", "n_embd": 8, "n_head": 2}),
        "c.json",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("c.json") && e.contains("vocab_size"), "{e}");
    let e = ModelConfig::from_json(
        json!({"model_type": "gpt2", "n_embd": 10, "n_head": 3}),
        "c.json",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("divisible"), "{e}");
}
