//! Preference / reward losses against TRL (`fixtures/rl/preference.json`):
//! values, metrics and gradients through `Tape::backward`, to 1e-6.

use super::fixture::{bools, close, f32s, f64s, load, num};
use crate::common::*;
use engine::{rl, Tape};
use serde_json::Value;

const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-6;

fn vec_of(v: &Value) -> (Vec<usize>, Vec<f32>) {
    let x = f32s(v);
    (vec![x.len()], x)
}

fn paired(what: &str, c: &Value) {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let (shape, pc) = vec_of(&c["policy_chosen"]);
    let pcv = tape.param(&upload(&shape, &pc));
    let prv = tape.param(&upload(&shape, &f32s(&c["policy_rejected"])));
    let rc = upload(&shape, &f32s(&c["ref_chosen"]));
    let rr = upload(&shape, &f32s(&c["ref_rejected"]));
    let beta = num(&c["beta"]) as f32;
    let kind = c["loss_type"].as_str().unwrap_or("kto_pair");
    let (loss, m) = match kind {
        "sigmoid" => {
            let ls = num(&c["label_smoothing"]) as f32;
            rl::dpo_loss(&tape, &pcv, &prv, &rc, &rr, beta, ls).unwrap()
        }
        "ipo" => rl::ipo_loss(&tape, &pcv, &prv, &rc, &rr, beta).unwrap(),
        _ => rl::kto_pair_loss(&tape, &pcv, &prv, &rc, &rr, beta).unwrap(),
    };
    let what = format!("{what} ({kind}, β={beta})");
    assert_close(
        &format!("{what} loss"),
        &loss.tensor().to_vec().unwrap(),
        &[num(&c["loss"])],
        ATOL,
        RTOL,
    );
    let g = tape.backward(&loss).unwrap();
    let gc = g.get(&pcv).unwrap().to_vec().unwrap();
    assert_close(
        &format!("{what} d/dπ_c"),
        &gc,
        &f64s(&c["grad_policy_chosen"]),
        ATOL,
        RTOL,
    );
    let gr = g.get(&prv).unwrap().to_vec().unwrap();
    assert_close(
        &format!("{what} d/dπ_r"),
        &gr,
        &f64s(&c["grad_policy_rejected"]),
        ATOL,
        RTOL,
    );
    for (name, got) in [
        ("rewards/chosen", m.rewards_chosen),
        ("rewards/rejected", m.rewards_rejected),
        ("rewards/margins", m.rewards_margins),
        ("rewards/accuracies", m.rewards_accuracies),
    ] {
        // β reaches us as an f32 (0.1f32 = 0.1 + 1.5e-9): 1e-7 relative.
        close(&format!("{what} {name}"), got, num(&c[name]), 1e-9, 1e-7);
    }
}

#[test]
fn dpo_and_ipo_match_trl_dpo_loss() {
    let fx = load("preference");
    for (i, c) in fx["dpo"].as_array().unwrap().iter().enumerate() {
        paired(&format!("dpo {i}"), c);
    }
    paired("dpo extreme", &fx["dpo_extreme"]);
    paired("ipo", &fx["ipo"]);
    paired("ipo", &fx["ipo_beta05"]);
}

#[test]
fn kto_pair_matches_trl_094() {
    let fx = load("preference");
    for (i, c) in fx["kto_pair"].as_array().unwrap().iter().enumerate() {
        assert_eq!(c["trl_version"].as_str(), Some("0.9.4"));
        paired(&format!("kto_pair {i}"), c);
    }
}

#[test]
fn kto_matches_trl_kto_loss() {
    let gpu = gpu();
    let fx = load("preference");
    for (i, c) in fx["kto"].as_array().unwrap().iter().enumerate() {
        let tape = Tape::new(&gpu);
        let (shape, p) = vec_of(&c["policy"]);
        let pv = tape.param(&upload(&shape, &p));
        let r = upload(&shape, &f32s(&c["reference"]));
        let (ks, pk) = vec_of(&c["policy_kl"]);
        let (pk, rk) = (upload(&ks, &pk), upload(&ks, &f32s(&c["reference_kl"])));
        let labels = bools(&c["desirable"]);
        let (beta, wd, wu) = (
            num(&c["beta"]) as f32,
            num(&c["desirable_weight"]) as f32,
            num(&c["undesirable_weight"]) as f32,
        );
        let (loss, m) = rl::kto_loss(&tape, &pv, &r, &labels, &pk, &rk, beta, wd, wu).unwrap();
        let what = format!("kto {i}");
        assert_close(
            &format!("{what} loss"),
            &loss.tensor().to_vec().unwrap(),
            &[num(&c["loss"])],
            ATOL,
            RTOL,
        );
        let g = tape
            .backward(&loss)
            .unwrap()
            .get(&pv)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_close(
            &format!("{what} d/dπ"),
            &g,
            &f64s(&c["grad_policy"]),
            ATOL,
            RTOL,
        );
        close(&format!("{what} kl"), m.kl, num(&c["kl"]), 1e-9, 1e-9);
        close(
            &format!("{what} chosen_sum"),
            m.rewards_chosen_sum,
            num(&c["rewards/chosen_sum"]),
            1e-9,
            1e-7,
        );
        close(
            &format!("{what} rejected_sum"),
            m.rewards_rejected_sum,
            num(&c["rewards/rejected_sum"]),
            1e-9,
            1e-7,
        );
        assert_eq!(m.count_chosen as f64, num(&c["count/chosen"]));
        assert_eq!(m.count_rejected as f64, num(&c["count/rejected"]));
    }
    let p = &fx["kto_pairing"];
    let want: Vec<usize> = f64s(&p["indices"])
        .into_iter()
        .map(|i| i as usize)
        .collect();
    assert_eq!(
        rl::kto_mismatched_indices(num(&p["n"]) as usize, num(&p["chunk"]) as usize),
        want
    );
}

#[test]
fn reward_losses_match_trl_reward_trainer() {
    let gpu = gpu();
    let fx = load("preference");
    for (i, c) in fx["reward"].as_array().unwrap().iter().enumerate() {
        let tape = Tape::new(&gpu);
        let (shape, rc) = vec_of(&c["r_chosen"]);
        let cv = tape.param(&upload(&shape, &rc));
        let rv = tape.param(&upload(&shape, &f32s(&c["r_rejected"])));
        let margin = (!c["margin"].is_null()).then(|| upload(&shape, &f32s(&c["margin"])));
        let coef = c["center_coef"].as_f64().map(|v| v as f32);
        let (loss, m) = rl::reward_bt_loss(&tape, &cv, &rv, margin.as_ref(), coef).unwrap();
        let what = format!("reward {i}");
        assert_close(
            &format!("{what} loss"),
            &loss.tensor().to_vec().unwrap(),
            &[num(&c["loss"])],
            ATOL,
            RTOL,
        );
        let g = tape.backward(&loss).unwrap();
        assert_close(
            &format!("{what} d/dr_c"),
            &g.get(&cv).unwrap().to_vec().unwrap(),
            &f64s(&c["grad_chosen"]),
            ATOL,
            RTOL,
        );
        assert_close(
            &format!("{what} d/dr_r"),
            &g.get(&rv).unwrap().to_vec().unwrap(),
            &f64s(&c["grad_rejected"]),
            ATOL,
            RTOL,
        );
        close(
            &format!("{what} accuracy"),
            m.accuracy,
            num(&c["accuracy"]),
            0.0,
            0.0,
        );
        if let Some(b1) = c.get("trl_loss_with_b1_logits") {
            // TRL's [B, 1] − [B] broadcast is a different number; ours is per pair.
            assert!(
                (num(b1) - num(&c["loss"])).abs() > 1e-3,
                "{what}: broadcast case should differ"
            );
        }
    }
    let c = &fx["classifier"];
    let tape = Tape::new(&gpu);
    let (shape, x) = vec_of(&c["logits"]);
    let xv = tape.param(&upload(&shape, &x));
    let (loss, m) = rl::reward_classifier_loss(&tape, &xv, &bools(&c["labels"])).unwrap();
    assert_close(
        "bce loss",
        &loss.tensor().to_vec().unwrap(),
        &[num(&c["loss"])],
        ATOL,
        RTOL,
    );
    let g = tape
        .backward(&loss)
        .unwrap()
        .get(&xv)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close("bce d/dx", &g, &f64s(&c["grad"]), ATOL, RTOL);
    close("bce accuracy", m.accuracy, num(&c["accuracy"]), 0.0, 0.0);
}
