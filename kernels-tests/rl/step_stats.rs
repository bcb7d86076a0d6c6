//! PPO step statistics (`engine::rl::step_stats`) on a tiny batch worked
//! out by hand.

use super::fixture::close;
use engine::rl;

/// B = 2, T = 3, mask [1 1 0 | 0 1 1], β = 0.5:
///   kl = [0.5, −1, 9 | 9, 1, −2] → per-sequence Σ kl·m = [−0.5, −1] → objective/kl = −0.75
///   logp = [−1, −2, −7 | −7, −1, −3] → Σ −logp·m = [3, 4] → objective/entropy = 3.5
///   −β·kl = [−0.25, 0.5, −4.5 | −4.5, −0.5, 1] → masked mean 0.75/4 = 0.1875
///   scores [2, −1]: mean 0.5, std sqrt((1.5² + 1.5²)/1) = sqrt(4.5)
#[test]
fn step_stats_by_hand() {
    let kl = [0.5, -1.0, 9.0, 9.0, 1.0, -2.0];
    let logp = [-1.0, -2.0, -7.0, -7.0, -1.0, -3.0];
    let nsr: Vec<f32> = kl.iter().map(|k| -0.5 * k).collect();
    let mask = [1.0, 1.0, 0.0, 0.0, 1.0, 1.0];
    let s = rl::step_stats(&[2.0, -1.0], &logp, &kl, &nsr, &mask, 3, 0.5).unwrap();
    assert_eq!(s.kl_dist, vec![-0.5, -1.0]);
    close("objective/kl", s.kl, -0.75, 0.0, 1e-15);
    close("objective/entropy", s.entropy, 3.5, 0.0, 1e-15);
    close(
        "mean_non_score_reward",
        s.mean_non_score_reward,
        0.1875,
        0.0,
        1e-15,
    );
    close("mean_scores", s.mean_scores, 0.5, 0.0, 1e-15);
    close("std_scores", s.std_scores, 4.5f64.sqrt(), 0.0, 1e-15);
    assert_eq!(s.kl_coef, 0.5);
    assert!(!s.negative_kl_warning);
    let worse = [-1.0, -1.0, 0.0, 0.0, -1.0, -1.0];
    let s = rl::step_stats(&[2.0, -1.0], &logp, &worse, &nsr, &mask, 3, 0.5).unwrap();
    assert!(s.negative_kl_warning, "objective/kl = −2 < −1");
    close("var_explained", rl::var_explained(0.5, 2.0), 0.75, 0.0, 0.0);
    assert!(rl::step_stats(&[2.0], &logp, &kl, &nsr, &mask, 3, 0.5).is_err());
}
