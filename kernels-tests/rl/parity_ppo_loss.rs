//! PPO parity with TRL 0.11, loss side (`fixtures/rl/ppo_loss.json`): the tape
//! losses, their statistics and their gradients (through `Tape::backward`) to
//! 1e-6, including a minibatch that the ratio threshold skips; the statistics
//! from host copies (the trainer's path) equal the read-back ones exactly.

use super::fixture::{close, close_all, f32s, load, num};
use crate::common::*;
use engine::rl::{self, PpoMinibatch};
use engine::{Tape, Var};
use serde_json::Value;

/// GPU f32 tape results.
const TAPE: (f64, f64) = (1e-6, 1e-6);

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
    {
        // The PPO trainer's path: the statistics from its own host copies of the
        // f32 inputs equal those from the read-back, bit for bit.
        let host = |k: &str| {
            f32s(&mb[k])
                .into_iter()
                .map(f64::from)
                .collect::<Vec<f64>>()
        };
        let m = host("mask");
        let (new, old, adv) = (host("logp_new"), host("logp_old"), host("advantages"));
        let policy = rl::policy_stats(&new, &old, &adv, &m, clip).unwrap();
        let (vn, vo, r) = (host("vpreds"), host("values"), host("returns"));
        let value = rl::value_stats(&vn, &vo, &r, &m, clip_v).unwrap();
        assert_eq!(rl::PpoLossStats::new(policy, value, vf_coef), st, "{what}");
    }
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
    let grads = tape.backward(&loss).unwrap();
    let grad = |x: &Var| grads.get(x).unwrap().to_vec().unwrap();
    let check = |name: &str, got: &[f32], want: &Value| {
        close_all(&format!("{what} {name}"), got, want, TAPE);
    };
    check("loss", &loss.tensor().to_vec().unwrap(), &s["loss/total"]);
    check("d total/d logp", &grad(&logp), &mb["grad_total_logp"]);
    check("d total/d vpred", &grad(&v), &mb["grad_total_vpred"]);

    // Each part on its own tape.
    let tape = Tape::new(&gpu);
    let logp = tape.param(&up("logp_new"));
    let pg = rl::clipped_surrogate(&tape, &logp, &old, &adv, &mask, clip).unwrap();
    let (value, g) = value_and_grad(&tape, &pg, &logp);
    check("pg_loss", &value, &s["loss/policy"]);
    check("d pg/d logp", &g, &mb["grad_pg_logp"]);

    let tape = Tape::new(&gpu);
    let v = tape.param(&up("vpreds"));
    let vf = rl::clipped_value_loss(&tape, &v, &vals, &ret, &mask, clip_v).unwrap();
    let (value, g) = value_and_grad(&tape, &vf, &v);
    check("vf_loss", &value, &s["loss/value"]);
    check("d vf/d vpred", &g, &mb["grad_vf_vpred"]);
}

/// A scalar loss's value and its gradient for `wrt` (through `Tape::backward`).
fn value_and_grad(tape: &Tape, loss: &Var, wrt: &Var) -> (Vec<f32>, Vec<f32>) {
    let g = tape.backward(loss).unwrap();
    let grad = g.get(wrt).unwrap().to_vec().unwrap();
    (loss.tensor().to_vec().unwrap(), grad)
}

#[test]
fn losses_match_trl_ppo_loss() {
    let fx = load("ppo_loss");
    for (i, mb) in fx["minibatches"].as_array().unwrap().iter().enumerate() {
        check_minibatch(&format!("minibatch {i}"), mb, &fx["config"], false);
    }
    check_minibatch("ratio-threshold skip", &fx["skip"], &fx["config"], true);
}
