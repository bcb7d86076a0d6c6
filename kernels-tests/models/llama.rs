//! Llama / Qwen2 parity with transformers on the fixtures that
//! kernels-tests/fixtures/make_llama_fixtures.py wrote (tolerances as in
//! `parity.rs`): logits, loss, every gradient, the AdamW trajectory, greedy
//! generation single and batched, perplexity; plus the bf16 checkpoint, KV-cache
//! decoding against the full forward, LoRA (`all-linear`) on an NF4 base,
//! heads, config checks, several EOS ids, and the binary's `info` / `generate`.

use super::cli::{engine, model_dir};
use super::parity::{batch_tokens, fixture, ids, root};
use crate::common::*;
use engine::models::generate::{generate, GenerateConfig};
use engine::models::layers::{Fwd, KvCache, Tokens};
use engine::models::lora::LoraConfig;
use engine::models::{Arch, CausalLm, Checkpoint, ModelConfig};
use engine::quant::QuantFormat;
use engine::Tape;
use serde_json::json;

macro_rules! llama_parity {
    ($m:ident, $name:literal) => {
        mod $m {
            use super::super::parity::*;
            #[test]
            fn logits_loss_and_every_gradient() {
                check_forward_loss_and_grads($name);
            }
            #[test]
            fn ten_step_adamw_trajectory() {
                check_training_trajectory($name);
            }
            #[test]
            fn greedy_generation_single_and_batched() {
                check_greedy_generation($name);
            }
            #[test]
            fn perplexity_with_bos() {
                check_perplexity($name);
            }
        }
    };
}

llama_parity!(llama_gqa, "llama-gqa");
llama_parity!(llama_mqa_tied, "llama-mqa-tied");
llama_parity!(qwen2_bias, "qwen2-bias");
llama_parity!(llama_dynamic, "llama-dynamic");

fn logits(model: &CausalLm, tokens: &Tokens) -> Vec<f32> {
    let tape = Tape::new(&gpu());
    let _g = tape.no_grad();
    let vars = model.vars(&tape);
    let (_, l) = model.forward(&tape, &vars, tokens).unwrap();
    l.tensor().to_vec().unwrap()
}

#[test]
fn configs_read_as_transformers_writes_them() {
    let (m, json, _) = fixture("llama-gqa");
    let c = &m.cfg;
    assert_eq!(c.arch, Arch::Llama);
    assert_eq!((c.n_head, c.n_kv_head, c.head_dim()), (4, 2, 8));
    assert!(!c.tie_word_embeddings && m.params.contains("lm_head.weight"));
    assert_eq!(c.eos_token_ids, vec![2, 3]);
    assert_eq!(c.eos_token_id, Some(2));
    assert_eq!(
        json["fallback_ids"],
        json!(m.encode(json["fallback_text"].as_str().unwrap()).unwrap())
    );
    let (q, _, _) = fixture("qwen2-bias");
    assert!(q.params.contains("model.layers.0.self_attn.k_proj.bias"));
    assert!(!q.params.contains("model.layers.0.self_attn.o_proj.bias"));
    assert!(!q.params.contains("lm_head.weight"));
    assert_eq!((q.cfg.n_kv_head, q.cfg.head_dim()), (1, 16));
}

#[test]
fn sliding_windows_shorter_than_the_context_are_refused() {
    let base = json!({"model_type": "mistral", "vocab_size": 64, "hidden_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 128});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        ModelConfig::from_json(c, "m/config.json")
    };
    assert_eq!(
        with("sliding_window", json!(null)).unwrap().arch,
        Arch::Llama
    );
    assert!(with("sliding_window", json!(128)).is_ok());
    let e = with("sliding_window", json!(64)).unwrap_err().to_string();
    assert!(
        e.contains("m/config.json") && e.contains("sliding_window 64"),
        "{e}"
    );
    let e = with("hidden_act", json!("gelu")).unwrap_err().to_string();
    assert!(e.contains("hidden_act"), "{e}");
    let e = with("num_key_value_heads", json!(3))
        .unwrap_err()
        .to_string();
    assert!(e.contains("num_key_value_heads 3"), "{e}");
    // Qwen2 has a window only with use_sliding_window.
    let mut q = base.clone();
    q["model_type"] = json!("qwen2");
    q["sliding_window"] = json!(16);
    assert!(ModelConfig::from_json(q.clone(), "q").is_ok());
    q["use_sliding_window"] = json!(true);
    assert!(ModelConfig::from_json(q, "q").is_err());
}

#[test]
fn bf16_checkpoint_loads_exactly() {
    let (m, json, refs) = fixture("llama-gqa-bf16");
    let tokens = Tokens::new(ids(&json["input_ids"]), 2).unwrap();
    let want = refs.unwrap().get("logits").unwrap();
    assert_close(
        "bf16 logits",
        &logits(&m, &tokens),
        &to_f64(&want.data),
        1e-4,
        1e-4,
    );
    let tape = Tape::new(&gpu());
    let vars = m.vars(&tape);
    let loss = m.lm_loss(&tape, &vars, &tokens, None).unwrap();
    let l = loss.tensor().item().unwrap() as f64;
    assert!(
        (l - json["loss"].as_f64().unwrap()).abs() < 1e-5,
        "{l} vs {}",
        json["loss"]
    );
}

/// Prefill then one token at a time through the cache gives the logits of
/// one full forward at every position; the cache holds the KV heads only.
#[test]
fn kv_cache_decoding_equals_the_full_forward() {
    for name in ["llama-gqa", "qwen2-bias"] {
        let (m, json, _) = fixture(name);
        let seq = ids(&json["ppl_ids"])[..20].to_vec();
        let full = logits(&m, &Tokens::new(seq.clone(), 1).unwrap());
        let v = m.cfg.vocab_size;
        let c = &m.cfg;
        let mut cache = KvCache::new(&gpu(), c.n_layer, 1, 20, c.n_kv_head, c.head_dim()).unwrap();
        assert_eq!(cache.k[0].shape(), &[1, 20, c.n_kv_head, c.head_dim()]);
        let tape = Tape::new(&gpu());
        let _g = tape.no_grad();
        let vars = m.vars(&tape);
        let mut got = Vec::new();
        let mut tokens = Tokens::new(seq[..7].to_vec(), 1).unwrap();
        let mut next = 7;
        loop {
            let f = Fwd::new(&tape, &vars, &tokens, Some(&mut cache)).unwrap();
            let h = m.hidden(&f, Some(&mut cache)).unwrap();
            got.extend(m.logits(&f, &h).unwrap().tensor().to_vec().unwrap());
            if next == seq.len() {
                break;
            }
            tokens = cache.next_tokens(&[seq[next]]);
            next += 1;
        }
        assert_eq!(got.len(), 20 * v);
        assert_close(
            &format!("{name} cached logits"),
            &got,
            &to_f64(&full),
            1e-4,
            1e-4,
        );
    }
}

#[test]
fn generation_stops_on_every_listed_eos_id() {
    let (mut m, json, _) = fixture("llama-gqa");
    let g = &json["generation"];
    let prompt = ids(&g["prompts"][0]);
    let full: Vec<u32> = ids(&g["new_tokens"][0]).iter().map(|&t| t as u32).collect();
    let second = full[4];
    let first = full.iter().position(|&t| t == second).unwrap();
    m.cfg.eos_token_ids = vec![2, second];
    let mut cfg = GenerateConfig {
        max_new_tokens: 32,
        eos: Some(2),
        ..Default::default()
    };
    let out = generate(&m, std::slice::from_ref(&prompt), &cfg).unwrap();
    assert_eq!(out.new_ids[0], full[..=first].to_vec());
    assert!(out.finished[0]);
    // An eos that is not the model's own stops on itself only.
    cfg.eos = Some(u32::MAX);
    let out = generate(&m, std::slice::from_ref(&prompt), &cfg).unwrap();
    assert_eq!(out.new_ids[0], full);
}

/// `all-linear` LoRA on an NF4 base: every projection of every layer is
/// adapted, fresh adapters (B = 0) leave the quantized base's logits
/// unchanged, and backward reaches every adapter's B.
#[test]
fn all_linear_lora_on_an_nf4_base_runs_forward_and_backward() {
    let (mut m, json, _) = fixture("llama-gqa");
    let tokens = batch_tokens(&json);
    m.quantize_base(QuantFormat::Nf4).unwrap();
    assert_eq!(m.quantized.len(), 7 * m.cfg.n_layer);
    let base = logits(&m, &tokens);
    m.attach_lora(&LoraConfig::new(8, 16.0, &["all-linear"]), 3)
        .unwrap();
    assert_eq!(m.lora.as_ref().unwrap().modules.len(), 14);
    assert_close(
        "fresh LoRA on NF4",
        &logits(&m, &tokens),
        &to_f64(&base),
        1e-5,
        0.0,
    );
    let tape = Tape::new(&gpu());
    let vars = m.vars(&tape);
    let loss = m.lm_loss(&tape, &vars, &tokens, None).unwrap();
    assert!(loss.tensor().item().unwrap().is_finite());
    let grads = vars.grads(&tape.backward(&loss).unwrap());
    assert_eq!(grads.len(), 28, "{:?}", grads.keys().collect::<Vec<_>>());
    for (n, g) in &grads {
        let g = g.to_vec().unwrap();
        assert!(g.iter().all(|x| x.is_finite()), "{n}");
        if n.contains("lora_B") {
            assert!(g.iter().any(|&x| x != 0.0), "{n} got no gradient");
        }
    }
    // PEFT's names pick single projections too.
    let (mut m, _, _) = fixture("qwen2-bias");
    m.attach_lora(&LoraConfig::new(4, 8.0, &["q_proj", "down_proj"]), 1)
        .unwrap();
    assert_eq!(m.lora.as_ref().unwrap().modules.len(), 4);
}

#[test]
fn reward_and_value_heads_sit_on_the_llama_trunk() {
    let (m, json, _) = fixture("llama-gqa");
    let tokens = batch_tokens(&json);
    let rm = m.into_reward_model(1, 7).unwrap();
    assert!(!rm.params.contains("lm_head.weight"));
    let tape = Tape::new(&gpu());
    let vars = rm.vars(&tape);
    let f = Fwd::new(&tape, &vars, &tokens, None).unwrap();
    let h = rm.hidden(&f, None).unwrap();
    assert_eq!(rm.scores(&f, &h).unwrap().shape(), &[2, 1]);
    let (mut m, _, _) = fixture("llama-mqa-tied");
    m.add_value_head(5).unwrap();
    let tape = Tape::new(&gpu());
    let vars = m.vars(&tape);
    let f = Fwd::new(&tape, &vars, &tokens, None).unwrap();
    let h = m.hidden(&f, None).unwrap();
    assert_eq!(m.values(&f, &h).unwrap().shape(), &[2, 12]);
}

/// Saving writes transformers' names (no lm_head when tied) and reads back
/// to the same logits.
#[test]
fn save_and_reload_round_trips() {
    for name in ["llama-gqa", "qwen2-bias"] {
        let (m, json, _) = fixture(name);
        let tokens = batch_tokens(&json);
        let scratch = crate::common::Scratch::new(&format!("llama-save-{name}"));
        let dir = scratch.path("model");
        m.save(&dir, engine::models::checkpoint::SaveDtype::F32)
            .unwrap();
        let ck = Checkpoint::open(&dir).unwrap();
        assert_eq!(
            ck.contains("lm_head.weight"),
            !m.cfg.tie_word_embeddings,
            "{name}"
        );
        let back = CausalLm::load(&gpu(), &dir).unwrap();
        assert_eq!(logits(&back, &tokens), logits(&m, &tokens), "{name}");
    }
}

#[test]
fn cli_info_and_greedy_generate() {
    let (ok, out, err) = engine(&["info", "--model", &model_dir("llama-gqa"), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["architecture"], "Llama");
    assert_eq!(
        (v["heads"].as_u64(), v["hidden"].as_u64()),
        (Some(4), Some(32))
    );
    for name in ["llama-gqa", "qwen2-bias"] {
        let (_, json, _) = fixture(name);
        let g = &json["cli_generation"];
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
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(
            ids(&v["prompt_ids"]),
            ids(&g["prompt_ids"]),
            "{name}: BOS + prompt"
        );
        assert_eq!(ids(&v["new_ids"]), ids(&g["new_ids"]), "{name}");
    }
    let _ = root();
}
