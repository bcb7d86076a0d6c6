//! KTO parity with TRL 1.16.0's KTOTrainer: the token ids it built (each
//! row's prompt, completion and mismatched KL completion) and the metrics it
//! logged over 3 full-batch steps on gpt2-tiny (fixtures/trl/parity.json,
//! `kto`, written by fixtures/make_trl_parity.py), replayed by engine's
//! direct-alignment trainer with `loss = kto`, within 1e-4.
//!
//! KTOTrainer 1.16 samples sequentially and pairs prompt i with completion
//! i−1 within each batch for the KL estimate, as engine does in file order.

use super::root;
use super::trl_parity::{close, fixture, ids};
use engine::data::{Encoder, LoadOptions, Truncation};
use engine::models::CausalLm;
use engine::rl::kto_mismatched_indices;
use engine::train::dpo::config::{DirectLoss, DpoConfig};
use engine::train::dpo::data::DirectData;
use engine::train::dpo::trainer::DpoTrainer;
use engine::train::optim::Schedule;

/// gpt2-tiny and the KTO rows encoded as TRL's KTOConfig(max_length=64)
/// does.
fn model_and_data() -> (CausalLm, DirectData) {
    let model_dir = root().join("models/fixtures/gpt2-tiny");
    let m = CausalLm::load(&crate::common::gpu(), &model_dir).unwrap();
    let template = engine::data::ChatTemplate::for_model_dir(&model_dir).unwrap();
    let enc = Encoder::new(
        m.tokenizer.as_ref().unwrap(),
        &template,
        Truncation::truncate(64),
    );
    let data = root().join("kernels-tests/fixtures/trl/kto.jsonl");
    let d = DirectData::load(&data, DirectLoss::Kto, &enc, &LoadOptions::default()).unwrap();
    (m, d)
}

#[test]
fn kto_tokens_and_kl_pairs_match_trl() {
    let fx = fixture();
    let (_, data) = model_and_data();
    let DirectData::Unpaired(rows) = data else {
        panic!("KTO data loads unpaired")
    };
    let trl = fx["kto"]["tokens"].as_array().unwrap();
    assert_eq!(rows.len(), trl.len());
    // One batch of 8 = TRL's total batch size: one rotation chunk.
    let kl = kto_mismatched_indices(rows.len(), 8);
    for (i, (e, t)) in rows.iter().zip(trl).enumerate() {
        // No BOS (GPT-2's tokenizer adds none); the EOS ends the completion.
        assert_eq!(e.prompt_ids, ids(&t["prompt_ids"]), "{}", e.origin);
        assert_eq!(e.completion_ids, ids(&t["completion_ids"]), "{}", e.origin);
        let kl_completion = &rows[kl[i]].completion_ids;
        assert_eq!(
            *kl_completion,
            ids(&t["KL_completion_ids"]),
            "KL of {}",
            e.origin
        );
        assert_eq!(Some(e.label), t["label"].as_bool(), "{}", e.origin);
    }
}

#[test]
fn kto_three_full_batch_steps_match_trl() {
    let fx = fixture();
    let (m, train) = model_and_data();
    let w = &fx["settings"]["kto_weights"];
    // TRL's settings: AdamW lr 1e-3 constant, no warmup or decay, clip 1.0;
    // the reference is the initial policy (TRL's copy of the model).
    let cfg = DpoConfig {
        loss: DirectLoss::Kto,
        beta: 0.1,
        desirable_weight: w[0].as_f64().unwrap() as f32,
        undesirable_weight: w[1].as_f64().unwrap() as f32,
        batch_size: 8,
        lr: 1e-3,
        weight_decay: 0.0,
        warmup_steps: 0,
        total_steps: 3,
        schedule: Schedule::Constant,
        max_grad_norm: Some(1.0),
        ..Default::default()
    };
    let mut t = DpoTrainer::new(m, cfg, train).unwrap();
    let steps = fx["kto"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (i, s) in steps.iter().enumerate() {
        let r = t.step().unwrap();
        let (m, n) = (&r.metrics, i + 1);
        println!(
            "step {n}: loss {} (TRL {}) grad_norm {} (TRL {}) kl {:?} (TRL {}) \
             rewards/chosen {} (TRL {}) rewards/rejected {} (TRL {}) \
             logps/chosen {} (TRL {}) logps/rejected {} (TRL {})",
            r.loss,
            s["loss_exact"],
            r.grad_norm,
            s["grad_norm"],
            m.kl,
            s["kl"],
            m.rewards_chosen,
            s["rewards/chosen"],
            m.rewards_rejected,
            s["rewards/rejected"],
            m.logps_chosen,
            s["logps/chosen"],
            m.logps_rejected,
            s["logps/rejected"]
        );
        close("loss", n, r.loss, &s["loss_exact"]);
        close("grad_norm", n, r.grad_norm as f64, &s["grad_norm"]);
        close("kl", n, m.kl.unwrap(), &s["kl"]);
        close("rewards/chosen", n, m.rewards_chosen, &s["rewards/chosen"]);
        let rej = m.rewards_rejected;
        close("rewards/rejected", n, rej, &s["rewards/rejected"]);
        let mar = m.rewards_margins;
        close("rewards/margins", n, mar, &s["rewards/margins"]);
        close("logps/chosen", n, m.logps_chosen, &s["logps/chosen"]);
        close("logps/rejected", n, m.logps_rejected, &s["logps/rejected"]);
        // KTOTrainer 1.16's logits/*: the token-weighted mean logit.
        close("logits/chosen", n, m.logits_chosen, &s["logits/chosen"]);
        close(
            "logits/rejected",
            n,
            m.logits_rejected,
            &s["logits/rejected"],
        );
    }
}
