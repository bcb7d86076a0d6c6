//! PPO parity with TRL 0.11 (`fixtures/rl/ppo_rollout.json`, `ppo_loss.json`):
//! host-side rollout math to f32 rounding, tape losses and their gradients
//! (through `Tape::backward`) to 1e-6.

use super::fixture::{close, f32s, f64s, load, num};
use crate::common::*;
use engine::rl::{self, AdaptiveKlController, FixedKlController, KlEstimator, PpoMinibatch};
use engine::Tape;
use serde_json::Value;

/// f32 outputs of f64 math against TRL in f64: half an f32 ulp.
const HOST: (f64, f64) = (1e-7, 1e-7);
/// GPU f32 tape results.
const TAPE: (f64, f64) = (1e-6, 1e-6);

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
        let (a, r) = HOST;
        assert_close(&format!("{name} kl"), &got.kl, &f64s(&want["kl"]), a, r);
        assert_close(
            &format!("{name} non_score"),
            &got.non_score_rewards,
            &f64s(&want["non_score_rewards"]),
            a,
            r,
        );
        assert_close(
            &format!("{name} rewards"),
            &got.rewards,
            &f64s(&want["rewards"]),
            a,
            r,
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
    let (a, r) = HOST;
    for case in fx["advantages"].as_array().unwrap() {
        let (gamma, lam) = (num(&case["gamma"]), num(&case["lam"]));
        let wr = case["whiten_rewards"].as_bool().unwrap();
        let what = format!("γ={gamma} λ={lam} whiten_rewards={wr}");
        let got = rl::compute_advantages(&values, &rewards, &mask, t, gamma, lam, wr).unwrap();
        assert_close(
            &format!("{what} values"),
            &got.values,
            &f64s(&case["values"]),
            a,
            r,
        );
        assert_close(
            &format!("{what} advantages"),
            &got.advantages,
            &f64s(&case["advantages"]),
            a,
            r,
        );
        assert_close(
            &format!("{what} returns"),
            &got.returns,
            &f64s(&case["returns"]),
            a,
            r,
        );
        if !wr {
            let (adv, ret) = rl::gae(&rewards, &values, &mask, t, gamma, lam).unwrap();
            assert_close(
                &format!("{what} raw gae"),
                &adv,
                &f64s(&case["raw_advantages"]),
                a,
                r,
            );
            assert_close(
                &format!("{what} gae returns"),
                &ret,
                &f64s(&case["returns"]),
                a,
                r,
            );
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
    let (a, r) = HOST;
    assert_close(
        "masked_whiten",
        &rl::whiten(&x, &mask, true).unwrap(),
        &f64s(&w["masked_whiten"]),
        a,
        r,
    );
    assert_close(
        "masked_whiten no shift",
        &rl::whiten(&x, &mask, false).unwrap(),
        &f64s(&w["masked_whiten_no_shift"]),
        a,
        r,
    );
    let ones = vec![1.0; x.len()];
    assert_close(
        "core.whiten",
        &rl::whiten(&x, &ones, true).unwrap(),
        &f64s(&w["whiten_unmasked"]),
        a,
        r,
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

fn shape_of(v: &Value) -> Vec<usize> {
    let rows = v.as_array().unwrap();
    vec![rows.len(), rows[0].as_array().unwrap().len()]
}

fn check_minibatch(what: &str, mb: &Value, cfg: &Value, skip: bool) {
    let gpu = gpu();
    let shape = shape_of(&mb["mask"]);
    let up = |k: &str| upload(&shape, &f32s(&mb[k]));
    let (old, vals, adv, ret, mask) = (
        up("logp_old"),
        up("values"),
        up("advantages"),
        up("returns"),
        up("mask"),
    );
    let (clip, clip_v, vf_coef) = (
        num(&cfg["cliprange"]) as f32,
        num(&cfg["cliprange_value"]) as f32,
        num(&cfg["vf_coef"]) as f32,
    );
    let batch = PpoMinibatch {
        logp_old: &old,
        values: &vals,
        advantages: &adv,
        returns: &ret,
        mask: &mask,
    };
    let (a, r) = TAPE;
    let tape = Tape::new(&gpu);
    let logp = tape.param(&up("logp_new"));
    let v = tape.param(&up("vpreds"));
    let (loss, st) = rl::ppo_loss(&tape, &logp, &v, &batch, clip, clip_v, vf_coef).unwrap();
    let s = &mb["stats"];
    close(
        &format!("{what} ratio mean"),
        st.policy.ratio_mean,
        num(&mb["ratio_mean"]),
        1e-9,
        1e-7,
    );
    assert_eq!(
        rl::skip_minibatch(st.policy.ratio_mean, num(&cfg["ratio_threshold"])),
        skip,
        "{what}"
    );
    let st = if skip { st.skipped() } else { st };
    let pairs = [
        ("loss/policy", st.policy.pg_loss),
        ("loss/value", st.value.vf_loss),
        ("loss/total", st.total),
        ("policy/approxkl", st.policy.approxkl),
        ("policy/policykl", st.policy.policykl),
        ("policy/clipfrac", st.policy.clipfrac),
        ("policy/advantages_mean", st.policy.advantages_mean),
        ("returns/mean", st.value.returns_mean),
        ("returns/var", st.value.returns_var),
        ("val/vpred", st.value.vpred),
        ("val/error", st.value.error),
        ("val/clipfrac", st.value.clipfrac),
        ("val/mean", st.value.mean),
        ("val/var", st.value.var),
    ];
    for (name, got) in pairs {
        close(&format!("{what} {name}"), got, num(&s[name]), 1e-9, 1e-7);
    }
    if skip {
        return; // TRL multiplies the loss by 0: the trainer skips backward.
    }
    assert_close(
        &format!("{what} loss"),
        &loss.tensor().to_vec().unwrap(),
        &[num(&s["loss/total"])],
        a,
        r,
    );
    let g = tape.backward(&loss).unwrap();
    let gl = g.get(&logp).unwrap().to_vec().unwrap();
    assert_close(
        &format!("{what} d total/d logp"),
        &gl,
        &f64s(&mb["grad_total_logp"]),
        a,
        r,
    );
    let gv = g.get(&v).unwrap().to_vec().unwrap();
    assert_close(
        &format!("{what} d total/d vpred"),
        &gv,
        &f64s(&mb["grad_total_vpred"]),
        a,
        r,
    );

    let tape = Tape::new(&gpu);
    let logp = tape.param(&up("logp_new"));
    let (pg, _) = rl::clipped_surrogate(&tape, &logp, &old, &adv, &mask, clip).unwrap();
    assert_close(
        &format!("{what} pg_loss"),
        &pg.tensor().to_vec().unwrap(),
        &[num(&s["loss/policy"])],
        a,
        r,
    );
    let g = tape
        .backward(&pg)
        .unwrap()
        .get(&logp)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close(
        &format!("{what} d pg/d logp"),
        &g,
        &f64s(&mb["grad_pg_logp"]),
        a,
        r,
    );

    let tape = Tape::new(&gpu);
    let v = tape.param(&up("vpreds"));
    let (vf, _) = rl::clipped_value_loss(&tape, &v, &vals, &ret, &mask, clip_v).unwrap();
    assert_close(
        &format!("{what} vf_loss"),
        &vf.tensor().to_vec().unwrap(),
        &[num(&s["loss/value"])],
        a,
        r,
    );
    let g = tape
        .backward(&vf)
        .unwrap()
        .get(&v)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close(
        &format!("{what} d vf/d vpred"),
        &g,
        &f64s(&mb["grad_vf_vpred"]),
        a,
        r,
    );
}

#[test]
fn losses_match_trl_ppo_loss() {
    let fx = load("ppo_loss");
    for (i, mb) in fx["minibatches"].as_array().unwrap().iter().enumerate() {
        check_minibatch(&format!("minibatch {i}"), mb, &fx["config"], false);
    }
    check_minibatch("ratio-threshold skip", &fx["skip"], &fx["config"], true);
}
