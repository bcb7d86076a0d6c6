//! GPT-2's full vocabulary and width (50,257 × 768, f32: 154 MB) through one
//! layer, forward and backward, on a device whose storage bindings hold only
//! 128 MiB: the tied embedding and LM head must be chunked. The LM head and
//! the gradient of an embedding row that only the head reaches are checked
//! against a CPU computation from the read-back hidden states.

use crate::common::*;
use engine::models::layers::{Fwd, Tokens};
use engine::models::lm::Head;
use engine::models::{CausalLm, ModelConfig};
use engine::{Gpu, GpuOptions, Tape};
use std::path::Path;

#[test]
fn one_gpt2_layer_at_full_vocab_fits_128_mib_bindings() {
    let mut opts = GpuOptions::from_env().unwrap();
    opts.max_binding_override = Some(128 << 20);
    let gpu = Gpu::new(&opts).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("kernels-tests/fixtures/configs/gpt2.config.json");
    let mut cfg = ModelConfig::from_file(&path).unwrap();
    cfg.n_layer = 1;
    let (v, c) = (cfg.vocab_size, cfg.hidden);
    assert!(
        (v * c * 4) as u64 > gpu.max_binding(),
        "the embedding must exceed one binding"
    );
    let model = CausalLm::random(&gpu, cfg, Head::Lm, 5).unwrap();

    let ids = vec![15496, 995, 11, 50256, 262, 995, 13, 198];
    let tokens = Tokens::new(ids.clone(), 1).unwrap();
    let tape = Tape::new(&gpu);
    let vars = model.vars(&tape);
    let f = Fwd::new(&tape, &vars, &tokens, None).unwrap();
    let hidden = model.hidden(&f, None).unwrap();
    let logits = model.logits(&f, &hidden).unwrap();
    let h = hidden.tensor().to_vec().unwrap();
    let l = logits.tensor().to_vec().unwrap();
    let wte = model
        .params
        .get("transformer.wte.weight")
        .unwrap()
        .to_vec()
        .unwrap();
    // The tied head: logits[t, j] = h[t]·wte[j], spot-checked across the whole vocab.
    let t_count = ids.len();
    for t in [0, t_count - 1] {
        let cols: Vec<usize> = (0..v).step_by(997).chain([v - 1]).collect();
        let want: Vec<f64> = cols
            .iter()
            .map(|&j| {
                (0..c)
                    .map(|k| h[t * c + k] as f64 * wte[j * c + k] as f64)
                    .sum()
            })
            .collect();
        let got: Vec<f32> = cols.iter().map(|&j| l[t * v + j]).collect();
        assert_close(&format!("logits row {t}"), &got, &want, 1e-5, 1e-4);
    }

    let loss = model.lm_loss(&tape, &vars, &tokens, None).unwrap();
    assert!(loss.tensor().item().unwrap().is_finite());
    let grads = vars.grads(&tape.backward(&loss).unwrap());
    let g = grads["transformer.wte.weight"].to_vec().unwrap();
    assert_eq!(g.len(), v * c);
    // A row no input token uses gets only the head's share:
    // d wte[j] = Σ_t softmax(logits[t])[j] · h[t] / (T − 1), over predicting positions.
    let j = v - 2;
    let mut want = vec![0.0f64; c];
    for t in 0..t_count - 1 {
        let row = &l[t * v..(t + 1) * v];
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let z: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
        let p = (row[j] as f64 - m).exp() / z;
        for k in 0..c {
            want[k] += p * h[t * c + k] as f64 / (t_count - 1) as f64;
        }
    }
    assert_close(
        "wte gradient of an unused row",
        &g[j * c..(j + 1) * c],
        &want,
        1e-9,
        1e-3,
    );
}
