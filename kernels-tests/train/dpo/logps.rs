//! Sequence log-probs of a padded preference batch against a token-by-token
//! sum over each sequence run alone (no padding) in f64 on the host.

use super::{load, lora_model};
use crate::common::gpu;
use engine::data::preference_batch;
use engine::models::layers::Tokens;
use engine::train::dpo::config::DirectLoss;
use engine::train::dpo::data::DirectData;
use engine::train::logprobs::{
    completion_tokens, pad_token, reference_logps, sequence_logps, LogpReduce, RefPass,
};
use engine::Tape;

/// log p of `ids[k]` for each completion position k ≥ `start`, summed in f64.
fn direct_sum(m: &engine::models::CausalLm, ids: &[i32], start: usize) -> (f64, usize) {
    let tape = Tape::new(&gpu());
    let vars = m.vars(&tape);
    let tokens = Tokens::new(ids.to_vec(), 1).unwrap();
    let logits = m.forward(&tape, &vars, &tokens).unwrap().1;
    let logits = logits.tensor().to_vec().unwrap();
    let v = logits.len() / ids.len();
    let mut total = 0.0;
    for k in start..ids.len() {
        let row = &logits[(k - 1) * v..k * v];
        let max = row.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x as f64));
        let lse = max
            + row
                .iter()
                .map(|&x| (x as f64 - max).exp())
                .sum::<f64>()
                .ln();
        total += row[ids[k] as usize] as f64 - lse;
    }
    (total, ids.len() - start)
}

#[test]
fn sequence_logps_equal_a_token_by_token_sum() {
    let m = lora_model();
    let DirectData::Pairs(pairs) = load(&m, "prefs.jsonl", DirectLoss::Dpo) else {
        panic!("pairs expected")
    };
    let ex = &pairs[..3];
    let pb = preference_batch(ex, pad_token(&m)).unwrap();
    assert!(pb.batch.tokens.has_padding(), "the check needs padded rows");

    let tape = Tape::new(&gpu());
    let vars = m.vars(&tape);
    let sum = sequence_logps(&m, &tape, &vars, &pb.batch, LogpReduce::Sum).unwrap();
    let mean = sequence_logps(&m, &tape, &vars, &pb.batch, LogpReduce::Mean).unwrap();
    let (sum, mean) = (
        sum.tensor().to_vec().unwrap(),
        mean.tensor().to_vec().unwrap(),
    );
    let counts = completion_tokens(&pb.batch);
    // Rows: chosen of each pair, then rejected of each pair.
    let rows = ex
        .iter()
        .map(|e| (&e.prompt_ids, &e.chosen_ids))
        .chain(ex.iter().map(|e| (&e.prompt_ids, &e.rejected_ids)));
    for (i, (p, c)) in rows.enumerate() {
        let ids = [p.as_slice(), c.as_slice()].concat();
        let (want, n) = direct_sum(&m, &ids, p.len());
        assert_eq!(counts[i], n, "row {i}: completion tokens");
        let tol = 1e-5 * want.abs().max(1.0);
        assert!(
            (sum[i] as f64 - want).abs() < tol,
            "row {i}: {} vs {want}",
            sum[i]
        );
        let want_mean = want / n as f64;
        assert!(
            (mean[i] as f64 - want_mean).abs() < tol / n as f64 + 1e-6,
            "row {i}: mean {} vs {want_mean}",
            mean[i]
        );
    }

    // The no-grad path, which runs the LM head on the completion-predicting
    // rows only, gives the same sums bit for bit; with B = 0 adapters-off is
    // the same function.
    let own = reference_logps(RefPass::Model(&m), &pb.batch).unwrap();
    assert_eq!(own.sum, sum);
    assert_eq!(own.tokens, counts);
    let base = reference_logps(RefPass::AdaptersOff(&m), &pb.batch).unwrap();
    for (a, b) in base.sum.iter().zip(&sum) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert_eq!(own.reduced(LogpReduce::Mean), mean);
}

#[test]
fn adapters_off_needs_adapters() {
    let m = super::model("gpt2-tiny");
    let DirectData::Pairs(pairs) = load(&m, "prefs.jsonl", DirectLoss::Dpo) else {
        panic!()
    };
    let pb = preference_batch(&pairs[..1], pad_token(&m)).unwrap();
    let err = reference_logps(RefPass::AdaptersOff(&m), &pb.batch).unwrap_err();
    assert!(err.to_string().contains("LoRA"), "{err}");
}
