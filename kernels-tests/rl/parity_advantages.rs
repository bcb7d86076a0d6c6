//! PPO parity with TRL 0.11, rollout side (`fixtures/rl/ppo_rollout.json`):
//! host-side rewards, advantages, whitening, KL controllers and step stats to
//! f32 rounding. The losses are `parity_ppo_loss.rs`.

use super::fixture::{close, close_all, f32s, f64s, load, num};
use crate::common::*;
use engine::rl::{self, AdaptiveKlController, FixedKlController, KlEstimator};

/// f32 outputs of f64 math against TRL in f64: half an f32 ulp.
const HOST: (f64, f64) = (1e-7, 1e-7);

#[test]
fn rewards_match_trl_compute_rewards() {
    let fx = load("ppo_rollout");
    let t = num(&fx["T"]) as usize;
    let (logp, lref, mask, scores) = (
        f32s(&fx["logp"]),
        f32s(&fx["logp_ref"]),
        f32s(&fx["mask"]),
        f32s(&fx["scores"]),
    );
    let beta = num(&fx["beta"]);
    for name in ["kl", "abs", "mse"] {
        let want = &fx["rewards"][name];
        let est = KlEstimator::from_trl(name).unwrap();
        let got = rl::kl_penalized_rewards(&scores, &logp, &lref, &mask, t, beta, est).unwrap();
        close_all(&format!("{name} kl"), &got.kl, &want["kl"], HOST);
        close_all(
            &format!("{name} non_score"),
            &got.non_score_rewards,
            &want["non_score_rewards"],
            HOST,
        );
        close_all(
            &format!("{name} rewards"),
            &got.rewards,
            &want["rewards"],
            HOST,
        );
    }
}

#[test]
fn advantages_match_trl_compute_advantages() {
    let fx = load("ppo_rollout");
    let t = num(&fx["T"]) as usize;
    let (values, rewards, mask) = (
        f32s(&fx["values"]),
        f32s(&fx["gae_rewards"]),
        f32s(&fx["mask"]),
    );
    for case in fx["advantages"].as_array().unwrap() {
        let (gamma, lam) = (num(&case["gamma"]), num(&case["lam"]));
        let wr = case["whiten_rewards"].as_bool().unwrap();
        let what = format!("γ={gamma} λ={lam} whiten_rewards={wr}");
        let got = rl::compute_advantages(&values, &rewards, &mask, t, gamma, lam, wr).unwrap();
        close_all(
            &format!("{what} values"),
            &got.values,
            &case["values"],
            HOST,
        );
        close_all(
            &format!("{what} advantages"),
            &got.advantages,
            &case["advantages"],
            HOST,
        );
        close_all(
            &format!("{what} returns"),
            &got.returns,
            &case["returns"],
            HOST,
        );
        if !wr {
            let (adv, ret) = rl::gae(&rewards, &values, &mask, t, gamma, lam).unwrap();
            close_all(
                &format!("{what} raw gae"),
                &adv,
                &case["raw_advantages"],
                HOST,
            );
            close_all(&format!("{what} gae returns"), &ret, &case["returns"], HOST);
        }
    }
}

#[test]
fn whitening_matches_trl_core() {
    let fx = load("ppo_rollout");
    let w = &fx["whiten"];
    let (x, mask) = (f32s(&w["x"]), f32s(&fx["mask"]));
    close(
        "masked_mean",
        rl::masked_mean(&x, &mask).unwrap(),
        num(&w["masked_mean"]),
        0.0,
        1e-12,
    );
    close(
        "masked_var",
        rl::masked_var(&x, &mask, true).unwrap(),
        num(&w["masked_var_unbiased"]),
        0.0,
        1e-12,
    );
    close(
        "masked_var biased",
        rl::masked_var(&x, &mask, false).unwrap(),
        num(&w["masked_var_biased"]),
        0.0,
        1e-12,
    );
    close_all(
        "masked_whiten",
        &rl::whiten(&x, &mask, true).unwrap(),
        &w["masked_whiten"],
        HOST,
    );
    close_all(
        "masked_whiten no shift",
        &rl::whiten(&x, &mask, false).unwrap(),
        &w["masked_whiten_no_shift"],
        HOST,
    );
    let ones = vec![1.0; x.len()];
    close_all(
        "core.whiten",
        &rl::whiten(&x, &ones, true).unwrap(),
        &w["whiten_unmasked"],
        HOST,
    );
}

#[test]
fn kl_controllers_match_trl() {
    let fx = load("ppo_rollout");
    let k = &fx["kl_controller"];
    let mut c = AdaptiveKlController::new(num(&k["init"]), num(&k["target"]), num(&k["horizon"]));
    let n = num(&k["n_steps"]) as usize;
    for (kl, want) in f64s(&k["kls"]).into_iter().zip(f64s(&k["adaptive_values"])) {
        c.update(kl, n);
        close(&format!("β after KL {kl}"), c.value, want, 0.0, 1e-15);
    }
    let mut f = FixedKlController::new(0.05);
    rl::KlController::update(&mut f, 100.0, n);
    close("fixed", f.value, num(&k["fixed_value"]), 0.0, 0.0);
}

#[test]
fn step_stats_match_trl_record_step_stats() {
    let fx = load("ppo_rollout");
    let s = &fx["step_stats"];
    let t = num(&fx["T"]) as usize;
    let kl = &fx["rewards"]["kl"];
    let got = rl::step_stats(
        &f32s(&fx["scores"]),
        &f32s(&fx["logp"]),
        &f32s(&kl["kl"]),
        &f32s(&kl["non_score_rewards"]),
        &f32s(&fx["mask"]),
        t,
        num(&fx["beta"]),
    )
    .unwrap();
    // The kl / non-score inputs are TRL's f64 outputs read as f32: 1e-7.
    let tol = 1e-12;
    close("objective/kl", got.kl, num(&s["objective/kl"]), 1e-9, 1e-7);
    assert_close(
        "objective/kl_dist",
        &got.kl_dist.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        &f64s(&s["objective/kl_dist"]),
        1e-7,
        1e-7,
    );
    close(
        "objective/entropy",
        got.entropy,
        num(&s["objective/entropy"]),
        tol,
        tol,
    );
    close(
        "objective/kl_coef",
        got.kl_coef,
        num(&s["objective/kl_coef"]),
        0.0,
        0.0,
    );
    close(
        "ppo/mean_non_score_reward",
        got.mean_non_score_reward,
        num(&s["ppo/mean_non_score_reward"]),
        1e-9,
        1e-7,
    );
    close(
        "ppo/mean_scores",
        got.mean_scores,
        num(&s["ppo/mean_scores"]),
        tol,
        tol,
    );
    close(
        "ppo/std_scores",
        got.std_scores,
        num(&s["ppo/std_scores"]),
        tol,
        tol,
    );
    // var_explained from the minibatch-averaged val/error and returns/var.
    let per: Vec<rl::PpoLossStats> = f64s(&s["val_error"])
        .into_iter()
        .zip(f64s(&s["returns_var"]))
        .map(|(e, v)| {
            let mut st = rl::PpoLossStats::default();
            st.value.error = e;
            st.value.returns_var = v;
            st
        })
        .collect();
    let want = f64s(&s["ppo/val/var_explained"])[0];
    close(
        "ppo/val/var_explained",
        rl::PpoLossStats::mean(&per).var_explained(),
        want,
        tol,
        tol,
    );
}
