//! `engine info --ppo` memory plans from the published TinyLlama-1.1B and
//! Qwen2.5-0.5B config.json files (kernels-tests/fixtures/configs/), NF4 +
//! LoRA r 16 on every linear + PPO, checked against a hand computation.

use super::cli::engine;
use super::parity::root;
use serde_json::Value;

/// NF4 bytes of an [n, k] weight as engine stores it: 32 bytes of codes per
/// 64-block, 8-bit absmax codes in words of 256 blocks, one f32 absmax2 per
/// 256 blocks plus offset and padding (4 f32), and 768 f32 of tables.
fn nf4(n: u64, k: u64) -> (u64, u64) {
    let nb = (n * k).div_ceil(64);
    let nb2 = nb.div_ceil(256);
    (32 * nb, 256 * nb2 + 4 * (4 + nb2) + 4 * 768)
}

fn plan(dir: &str) -> Value {
    let model = root().join("kernels-tests/fixtures/configs").join(dir);
    let (ok, out, err) = engine(&[
        "info",
        "--model",
        model.to_str().unwrap(),
        "--quant",
        "nf4",
        "--lora-r",
        "16",
        "--ppo",
        "--batch-size",
        "8",
        "--seq-len",
        "512",
        "--json",
    ]);
    assert!(ok, "{err}");
    serde_json::from_str(out.trim()).unwrap()
}

fn rows(v: &Value) -> Vec<u64> {
    v["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["bytes"].as_u64().unwrap())
        .collect()
}

/// `linears`: one layer's (out, in) shapes; `f32_numel`: embeddings, norms, biases.
fn hand(layers: u64, linears: &[(u64, u64)], f32_numel: u64, c: u64, kv: u64) -> Vec<u64> {
    let (mut codes, mut scales, mut lora) = (0, 0, 0);
    for &(o, i) in linears {
        let (a, b) = nf4(o, i);
        codes += layers * a;
        scales += layers * b;
        lora += layers * 4 * 16 * (i + o);
    }
    let trainable = lora + 4 * (c + 1);
    // KV cache: layers × (K and V) × batch 8 × 512 positions × KV heads × head_dim 64 × f32.
    let cache = layers * 2 * 8 * 512 * kv * 64 * 4;
    vec![
        4 * f32_numel,
        codes,
        scales,
        lora,
        0,
        4 * (c + 1),
        trainable,
        2 * trainable,
        cache,
    ]
}

#[test]
fn tinyllama_1b_nf4_lora16_ppo_plan() {
    let v = plan("tinyllama-1.1b-chat");
    let (c, i, kv) = (2048, 5632, 4 * 64);
    let linears = [(c, c), (kv, c), (kv, c), (c, c), (i, c), (i, c), (c, i)];
    // embed_tokens + untied lm_head (32000 × 2048 each), 2 RMSNorms per layer + the final one.
    let f32_numel = 2 * 32000 * c + 22 * 2 * c + c;
    let want = hand(22, &linears, f32_numel, c, 4);
    assert_eq!(rows(&v), want);
    assert_eq!(want[0], 524_656_640);
    assert_eq!(
        want[3], 50_462_720,
        "LoRA: 22 × 16 × Σ(in + out) = 35840 × 4 bytes"
    );
    assert_eq!(want[8], 184_549_376);
    assert_eq!(v["total_bytes"].as_u64(), Some(want.iter().sum()));
}

#[test]
fn qwen2_5_half_b_nf4_lora16_ppo_plan() {
    let v = plan("qwen2.5-0.5b-instruct");
    let (c, i, kv) = (896, 4864, 2 * 64);
    let linears = [(c, c), (kv, c), (kv, c), (c, c), (i, c), (i, c), (c, i)];
    // Tied: one 151936 × 896 embedding; q/k/v biases; 2 norms per layer + final.
    let f32_numel = 151936 * c + 24 * (c + 2 * kv) + 24 * 2 * c + c;
    let want = hand(24, &linears, f32_numel, c, 2);
    assert_eq!(rows(&v), want);
    assert_eq!(want[0], 544_824_832);
    assert_eq!(want[8], 100_663_296);
    assert_eq!(
        (v["kv_heads"].as_u64(), v["head_dim"].as_u64()),
        (Some(2), Some(64))
    );
}
