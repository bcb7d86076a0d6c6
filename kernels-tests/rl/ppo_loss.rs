//! PPO's clipped losses on the tape: values, gradients and statistics on
//! tiny batches worked out by hand, and finite differences through the tape.

use super::fixture::{close, f32s, load};
use crate::common::*;
use engine::rl::{self, PpoMinibatch};
use engine::Tape;

/// ε = 0.2, B = 1, T = 4, logp_old = 0, mask [1, 1, 1, 0],
/// ratio = [1.5, 0.5, 1.1, 1.5] (logp_new = ln ratio), A = [1, 1, −2, −1]:
///   clip(ratio)   = [1.2, 0.8, 1.1, 1.2]
///   −A·ratio      = [−1.5, −0.5, 2.2, 1.5]
///   −A·clip       = [−1.2, −0.8, 2.2, 1.2]
///   max           = [−1.2, −0.5, 2.2, ·]    → pg_loss = 0.5/3 = 0.1666667
///   clipfrac: −A·clip > −A·ratio only at t = 0 → 1/3
///   d/dlogp = d/dratio·ratio/3: t0 clipped → 0; t1 −A·ratio/3 = −0.5/3;
///   t2 inside the clip (a tie, both halves) −A·ratio/3 = 2.2/3; t3 masked → 0
///   approxkl = ½·mean(ln²1.5, ln²0.5, ln²1.1) = ½·(0.16440195 + 0.48045301 +
///   0.00908403)/3 = 0.10898983;  policykl = −(ln1.5 + ln0.5 + ln1.1)/3 = 0.06412396
///   ratio mean = 3.1/3 = 1.0333333;  advantages mean = 0
#[test]
fn clipped_surrogate_by_hand() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let ratio = [1.5f64, 0.5, 1.1, 1.5];
    let new: Vec<f32> = ratio.iter().map(|r| r.ln() as f32).collect();
    let logp = tape.param(&upload(&[1, 4], &new));
    let old = upload(&[1, 4], &[0.0; 4]);
    let adv = upload(&[1, 4], &[1.0, 1.0, -2.0, -1.0]);
    let mask = upload(&[1, 4], &[1.0, 1.0, 1.0, 0.0]);
    let loss = rl::clipped_surrogate(&tape, &logp, &old, &adv, &mask, 0.2).unwrap();
    assert_close(
        "pg_loss",
        &loss.tensor().to_vec().unwrap(),
        &[0.5 / 3.0],
        1e-7,
        1e-6,
    );
    let g = tape.backward(&loss).unwrap();
    let want = [0.0, -0.5 / 3.0, 2.2 / 3.0, 0.0];
    assert_close(
        "d pg/d logp",
        &g.get(&logp).unwrap().to_vec().unwrap(),
        &want,
        1e-7,
        1e-6,
    );
    let wide = |x: &[f32]| x.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let (old, adv, m) = (&[0.0; 4], &[1.0, 1.0, -2.0, -1.0], &[1.0, 1.0, 1.0, 0.0]);
    let st = rl::policy_stats(&wide(&new), old, adv, m, 0.2).unwrap();
    close("stats pg_loss", st.pg_loss, 0.5 / 3.0, 1e-7, 1e-6);
    close("clipfrac", st.clipfrac, 1.0 / 3.0, 0.0, 1e-12);
    close("approxkl", st.approxkl, 0.10898983, 1e-8, 1e-6);
    close("policykl", st.policykl, 0.06412396, 1e-8, 1e-6);
    close("ratio mean", st.ratio_mean, 3.1 / 3.0, 1e-7, 1e-6);
    close("advantages mean", st.advantages_mean, 0.0, 0.0, 0.0);
}

/// ε_v = 0.2, mask [1, 1, 1, 0], V_old = [0, 0, 1, 5], V_new = [0.5, −0.1, 1, 9],
/// R = [1, 0.5, 0, 0]:
///   Vclip = clip(V_new, V_old ∓ 0.2) = [0.2, −0.1, 1, 5.2]
///   (V − R)² = [0.25, 0.36, 1, ·], (Vclip − R)² = [0.64, 0.36, 1, ·]
///   max = [0.64, 0.36, 1] → vf_loss = ½·2/3 = 1/3; clipfrac = 1/3 (t = 0)
///   d/dV: t0 the clipped branch wins → 0; t1, t2 ties (no clip) →
///   ½·2(V − R)/3 = [−0.6/3, 1/3]; t3 masked → 0
///   vpred = 1.4/3, error = 1.61/3, V_old mean 1/3, var (2/9)·3/2 = 1/3,
///   returns mean 0.5, var (0.5/3)·3/2 = 0.25
/// With the surrogate above, ppo_loss = 1/6 + 0.1·1/3 = 0.2.
#[test]
fn clipped_value_loss_and_ppo_loss_by_hand() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let v = tape.param(&upload(&[1, 4], &[0.5, -0.1, 1.0, 9.0]));
    let v_old = upload(&[1, 4], &[0.0, 0.0, 1.0, 5.0]);
    let ret = upload(&[1, 4], &[1.0, 0.5, 0.0, 0.0]);
    let mask = upload(&[1, 4], &[1.0, 1.0, 1.0, 0.0]);
    let loss = rl::clipped_value_loss(&tape, &v, &v_old, &ret, &mask, 0.2).unwrap();
    assert_close(
        "vf_loss",
        &loss.tensor().to_vec().unwrap(),
        &[1.0 / 3.0],
        1e-7,
        1e-6,
    );
    let g = tape.backward(&loss).unwrap();
    let want = [0.0, -0.2, 1.0 / 3.0, 0.0];
    assert_close(
        "d vf/d V",
        &g.get(&v).unwrap().to_vec().unwrap(),
        &want,
        1e-7,
        1e-6,
    );
    let (v_new, v_prev) = (&[0.5, -0.1, 1.0, 9.0], &[0.0, 0.0, 1.0, 5.0]);
    let (r, m) = (&[1.0, 0.5, 0.0, 0.0], &[1.0, 1.0, 1.0, 0.0]);
    let st = rl::value_stats(v_new, v_prev, r, m, 0.2).unwrap();
    close("vf_loss", st.vf_loss, 1.0 / 3.0, 1e-7, 1e-6);
    close("val/clipfrac", st.clipfrac, 1.0 / 3.0, 0.0, 1e-12);
    close("val/vpred", st.vpred, 1.4 / 3.0, 1e-7, 1e-6);
    close("val/error", st.error, 1.61 / 3.0, 1e-7, 1e-6);
    close("val/mean", st.mean, 1.0 / 3.0, 0.0, 1e-12);
    close("val/var", st.var, 1.0 / 3.0, 0.0, 1e-12);
    close("returns/mean", st.returns_mean, 0.5, 0.0, 1e-12);
    close("returns/var", st.returns_var, 0.25, 0.0, 1e-12);

    let tape = Tape::new(&gpu);
    let ratio = [1.5f64, 0.5, 1.1, 1.5];
    let new: Vec<f32> = ratio.iter().map(|r| r.ln() as f32).collect();
    let logp = tape.param(&upload(&[1, 4], &new));
    let v = tape.param(&upload(&[1, 4], &[0.5, -0.1, 1.0, 9.0]));
    let (old, adv) = (
        upload(&[1, 4], &[0.0; 4]),
        upload(&[1, 4], &[1.0, 1.0, -2.0, -1.0]),
    );
    let mb = PpoMinibatch {
        logp_old: &old,
        values: &v_old,
        advantages: &adv,
        returns: &ret,
        mask: &mask,
    };
    let (loss, st) = rl::ppo_loss(&tape, &logp, &v, &mb, 0.2, 0.2, 0.1).unwrap();
    assert_close(
        "ppo_loss",
        &loss.tensor().to_vec().unwrap(),
        &[0.2],
        1e-7,
        1e-6,
    );
    close("loss/total", st.total, 0.2, 1e-7, 1e-6);
    let g = tape.backward(&loss).unwrap();
    let want = [0.0, -0.02, 0.1 / 3.0, 0.0];
    assert_close(
        "d total/d V",
        &g.get(&v).unwrap().to_vec().unwrap(),
        &want,
        1e-7,
        1e-6,
    );
    let want = [0.0, -0.5 / 3.0, 2.2 / 3.0, 0.0];
    assert_close(
        "d total/d logp",
        &g.get(&logp).unwrap().to_vec().unwrap(),
        &want,
        1e-7,
        1e-6,
    );
    let skipped = st.clone().skipped();
    assert_eq!(
        (skipped.total, skipped.policy.pg_loss, skipped.value.vf_loss),
        (0.0, 0.0, 0.0)
    );
    assert_eq!(skipped.policy.clipfrac, st.policy.clipfrac);
    let avg = rl::PpoLossStats::mean(&[st.clone(), skipped]);
    close("mean of two", avg.total, 0.1, 1e-7, 1e-6);
    close(
        "var_explained",
        st.var_explained(),
        1.0 - (1.61 / 3.0) / 0.25,
        1e-6,
        1e-6,
    );
    let short = upload(&[1, 3], &[0.0; 3]);
    assert!(rl::clipped_surrogate(&tape, &logp, &short, &adv, &mask, 0.2).is_err());
    let err = rl::policy_stats(&[0.0; 3], &[0.0; 2], &[0.0; 3], &[1.0; 3], 0.2).unwrap_err();
    assert!(
        format!("{err}").contains("logp_old has 2 elements, mask 3"),
        "{err}"
    );
}

/// Finite differences through the tape on TRL's first loss minibatch (its
/// log-ratio and value offsets stay ≥ 0.02 from the clip edges).
#[test]
fn ppo_losses_match_finite_differences() {
    let fx = load("ppo_loss");
    let mb = &fx["minibatches"][0];
    let shape = vec![3usize, 7];
    let t = |k: &str| upload(&shape, &f32s(&mb[k]));
    let (old, vals, adv, ret, mask) = (
        t("logp_old"),
        t("values"),
        t("advantages"),
        t("returns"),
        t("mask"),
    );
    check_grads(
        "clipped_surrogate",
        &[(shape.clone(), f32s(&mb["logp_new"]))],
        1e-3,
        3e-3,
        |tape, v| rl::clipped_surrogate(tape, &v[0], &old, &adv, &mask, 0.2).unwrap(),
    );
    check_grads(
        "clipped_value_loss",
        &[(shape.clone(), f32s(&mb["vpreds"]))],
        1e-3,
        3e-3,
        |tape, v| rl::clipped_value_loss(tape, &v[0], &vals, &ret, &mask, 0.2).unwrap(),
    );
    check_grads(
        "ppo_loss",
        &[
            (shape.clone(), f32s(&mb["logp_new"])),
            (shape.clone(), f32s(&mb["vpreds"])),
        ],
        1e-3,
        3e-3,
        |tape, v| {
            let mb = PpoMinibatch {
                logp_old: &old,
                values: &vals,
                advantages: &adv,
                returns: &ret,
                mask: &mask,
            };
            rl::ppo_loss(tape, &v[0], &v[1], &mb, 0.2, 0.2, 0.1)
                .unwrap()
                .0
        },
    );
}

#[test]
fn decisions() {
    assert!(rl::skip_minibatch(10.5, 10.0));
    assert!(!rl::skip_minibatch(10.0, 10.0), "strictly greater, as TRL");
    assert!(rl::early_stop(1.6, 1.0));
    assert!(
        !rl::early_stop(1.5, 1.0),
        "strictly greater than 1.5·target_kl"
    );
}
