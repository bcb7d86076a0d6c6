//! KL-penalised rewards, GAE and whitening (`engine::rl::advantages`) on
//! tiny batches worked out by hand.

use super::fixture::close;
use crate::common::assert_close;
use engine::rl::{self, KlEstimator};

/// B = 2, T = 3, β = 0.5, scores [2, −1], mask [1 1 0 | 0 1 1]:
/// d = logp − logp_ref = [0.5, −1, 0 | −0.5, 1, −2]; the last response tokens
/// are t = 1 (row 0) and t = 2 (row 1).
///   K1:  kl = d,  −β·kl = [−0.25, 0.5, 0 | 0.25, −0.5, 1]
///        rewards = [−0.25, 0.5 + 2, 0 | 0.25, −0.5, 1 − 1] (masked t = 2 of
///        row 0 keeps its −β·kl, as in TRL)
///   Abs: |d| = [0.5, 1, 0 | 0.5, 1, 2];  Mse: ½d² = [0.125, 0.5, 0 | 0.125, 0.5, 2]
///   K3:  e^{−d} + d − 1 = [e^{−0.5} − 0.5, e − 2, 0 | e^{0.5} − 1.5, e^{−1}, e² − 3]
///        = [0.10653066, 0.71828183, 0 | 0.14872127, 0.36787944, 4.38905610]
#[test]
fn kl_penalized_rewards_by_hand() {
    let logp = [-1.0, -2.0, -0.5, -1.5, -1.0, -3.0];
    let lref = [-1.5, -1.0, -0.5, -1.0, -2.0, -1.0];
    let mask = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
    let scores = [2.0, -1.0];
    let r =
        rl::kl_penalized_rewards(&scores, &logp, &lref, &mask, 3, 0.5, KlEstimator::K1).unwrap();
    assert_close("K1 kl", &r.kl, &[0.5, -1.0, 0.0, -0.5, 1.0, -2.0], 0.0, 0.0);
    let nsr = [-0.25, 0.5, 0.0, 0.25, -0.5, 1.0];
    assert_close("K1 non-score", &r.non_score_rewards, &nsr, 0.0, 0.0);
    let want = [-0.25, 2.5, 0.0, 0.25, -0.5, 0.0];
    assert_close("K1 rewards", &r.rewards, &want, 0.0, 0.0);
    for (est, kl) in [
        (KlEstimator::Abs, [0.5, 1.0, 0.0, 0.5, 1.0, 2.0]),
        (KlEstimator::Mse, [0.125, 0.5, 0.0, 0.125, 0.5, 2.0]),
        (
            KlEstimator::K3,
            [
                0.10653066, 0.71828183, 0.0, 0.14872127, 0.36787944, 4.38905610,
            ],
        ),
    ] {
        let r = rl::kl_penalized_rewards(&scores, &logp, &lref, &mask, 3, 0.5, est).unwrap();
        assert_close(&format!("{est:?} kl"), &r.kl, &kl, 1e-8, 1e-7);
        let mut want: Vec<f64> = kl.iter().map(|k| -0.5 * k).collect();
        want[1] += 2.0;
        want[5] -= 1.0;
        assert_close(&format!("{est:?} rewards"), &r.rewards, &want, 1e-8, 1e-7);
    }
    let k3 =
        rl::kl_penalized_rewards(&scores, &logp, &lref, &mask, 3, 0.5, KlEstimator::K3).unwrap();
    assert!(k3.kl.iter().all(|&k| k >= 0.0), "k3 is never negative");
    // Names, and the errors TRL would also hit.
    assert_eq!(KlEstimator::from_trl("kl").unwrap(), KlEstimator::K1);
    assert_eq!(KlEstimator::from_trl("mse").unwrap(), KlEstimator::Mse);
    assert!(KlEstimator::from_trl("full").is_err());
    let empty = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let e = rl::kl_penalized_rewards(&scores, &logp, &lref, &empty, 3, 0.5, KlEstimator::K1);
    assert!(e.unwrap_err().to_string().contains("all-zero mask"));
    assert!(
        rl::kl_penalized_rewards(&scores, &logp, &lref, &mask, 4, 0.5, KlEstimator::K1).is_err()
    );
    assert!(
        rl::kl_penalized_rewards(&[1.0], &logp, &lref, &mask, 3, 0.5, KlEstimator::K1).is_err()
    );
}

/// γ = 0.9, λ = 0.5 (γλ = 0.45), two rows of T = 4.
/// Row 0: r = [1, 0, 2, 5], V = [0.5, 1, −1, 3], m = [1, 1, 1, 0] →
///   r̃ = [1, 0, 2, 0], Ṽ = [0.5, 1, −1, 0]
///   t=3: δ = 0,                      A = 0
///   t=2: δ = 2 + 0.9·0 + 1 = 3,       A = 3
///   t=1: δ = 0 − 0.9 − 1 = −1.9,      A = −1.9 + 0.45·3 = −0.55
///   t=0: δ = 1 + 0.9 − 0.5 = 1.4,     A = 1.4 − 0.45·0.55 = 1.1525
///   returns = A + Ṽ = [1.6525, 0.45, 2, 0]
/// Row 1, a hole at t = 1: r = [1, 7, 1, 1], V = [1, 9, 1, 1], m = [1, 0, 1, 1]
///   r̃ = [1, 0, 1, 1], Ṽ = [1, 0, 1, 1]
///   t=3: δ = 1 − 1 = 0, A = 0;  t=2: δ = 1 + 0.9 − 1 = 0.9, A = 0.9
///   t=1: δ = 0 + 0.9 − 0 = 0.9, A = 0.9 + 0.45·0.9 = 1.305   (the hole!)
///   t=0: δ = 1 + 0 − 1 = 0,     A = 0.45·1.305 = 0.58725
///   returns = [1.58725, 1.305, 1.9, 1]
#[test]
fn gae_by_hand() {
    let r = [1.0, 0.0, 2.0, 5.0, 1.0, 7.0, 1.0, 1.0];
    let v = [0.5, 1.0, -1.0, 3.0, 1.0, 9.0, 1.0, 1.0];
    let m = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
    let (a, ret) = rl::gae(&r, &v, &m, 4, 0.9, 0.5).unwrap();
    let want_a = [1.1525, -0.55, 3.0, 0.0, 0.58725, 1.305, 0.9, 0.0];
    assert_close("advantages", &a, &want_a, 1e-7, 1e-7);
    let want_r = [1.6525, 0.45, 2.0, 0.0, 1.58725, 1.305, 1.9, 1.0];
    assert_close("returns", &ret, &want_r, 1e-7, 1e-7);

    // compute_advantages = the same, then whitening of A over the mask; the
    // returns keep the raw advantages and the values come back masked.
    let full = rl::compute_advantages(&v, &r, &m, 4, 0.9, 0.5, false).unwrap();
    assert_close(
        "masked values",
        &full.values,
        &[0.5, 1.0, -1.0, 0.0, 1.0, 0.0, 1.0, 1.0],
        0.0,
        0.0,
    );
    assert_close("returns", &full.returns, &want_r, 1e-7, 1e-7);
    let white = rl::whiten(&a, &m, true).unwrap();
    assert_close(
        "whitened",
        &full.advantages,
        &white.iter().map(|&x| x as f64).collect::<Vec<_>>(),
        1e-7,
        1e-7,
    );
    assert!(rl::gae(&r, &v[..7], &m, 4, 0.9, 0.5).is_err());
}

/// x = [1, 3, 5, 100], m = [1, 1, 1, 0]: μ = 3, Σm(x − μ)² = 4 + 0 + 4 = 8,
/// biased var = 8/3, unbiased = 8/3 · 3/2 = 4. Whitened = (x − 3)/sqrt(4 + 1e-8)
/// = [−1, 0, 1, 48.5]·(2/sqrt(4 + 1e-8)) — the masked element too.
#[test]
fn whiten_by_hand() {
    let x = [1.0, 3.0, 5.0, 100.0];
    let m = [1.0, 1.0, 1.0, 0.0];
    close(
        "masked_mean",
        rl::masked_mean(&x, &m).unwrap(),
        3.0,
        0.0,
        1e-15,
    );
    close(
        "var unbiased",
        rl::masked_var(&x, &m, true).unwrap(),
        4.0,
        0.0,
        1e-15,
    );
    close(
        "var biased",
        rl::masked_var(&x, &m, false).unwrap(),
        8.0 / 3.0,
        0.0,
        1e-15,
    );
    let s = (4.0f64 + 1e-8).sqrt();
    let want: Vec<f64> = x.iter().map(|&v| (v as f64 - 3.0) / s).collect();
    assert_close(
        "whiten",
        &rl::whiten(&x, &m, true).unwrap(),
        &want,
        0.0,
        1e-7,
    );
    let want: Vec<f64> = x.iter().map(|&v| (v as f64 - 3.0) / s + 3.0).collect();
    assert_close(
        "whiten no shift",
        &rl::whiten(&x, &m, false).unwrap(),
        &want,
        0.0,
        1e-7,
    );
    // TRL raises on an empty mask and divides by zero for one element.
    assert!(rl::masked_var(&x, &[0.0; 4], true).is_err());
    assert!(rl::whiten(&x, &[0.0, 1.0, 0.0, 0.0], true).is_err());
    close(
        "one element, biased",
        rl::masked_var(&x, &[0.0, 1.0, 0.0, 0.0], false).unwrap(),
        0.0,
        0.0,
        0.0,
    );
    assert!(rl::masked_mean(&x, &[0.0; 4]).unwrap().is_nan());
}
