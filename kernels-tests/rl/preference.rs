//! Preference and reward losses on tiny batches worked out by hand, the
//! log-σ tail, and finite differences through the tape for every loss.

use super::fixture::close;
use crate::common::*;
use engine::rl;
use engine::{Tape, Var};

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
/// σ'(x) = σ(x)(1 − σ(x)).
fn dsig(x: f64) -> f64 {
    sig(x) * (1.0 - sig(x))
}
/// −log σ(x) = log(1 + e^{−x}).
fn nls(x: f64) -> f64 {
    (-x).exp().ln_1p()
}

fn grad(g: &engine::Grads, v: &Var) -> Vec<f32> {
    g.get(v).unwrap().to_vec().unwrap()
}

/// β = 0.5, B = 2: policy chosen [−10, −20], rejected [−12, −15];
/// reference chosen [−11, −18], rejected [−11, −16].
///   h = (π_c − π_r) − (ref_c − ref_r) = [2 − 0, −5 + 2] = [2, −3], βh = [1, −1.5]
///   ε = 0:   loss = ½(−log σ(1) − log σ(−1.5)) = ½(0.31326169 + 1.70141328) = 1.00733748
///            d/dπ_c = −β·σ(−βh)/B = [−0.25·0.26894142, −0.25·0.81757448]; d/dπ_r = −d/dπ_c
///   ε = 0.2: loss = ½(0.8·0.31326169 + 0.2·1.31326169 + 0.8·1.70141328 + 0.2·0.20141328)
///            = ½(0.51326169 + 1.40141328) = 0.95733748
///   rewards: chosen β(π_c − ref_c) = [0.5, −1] → −0.25; rejected [−0.5, 0.5] → 0;
///   margins [1, −1.5] → −0.25; accuracies 1/2
/// IPO with the same numbers as token averages, β = 0.5 (1/2β = 1):
///   loss = ½((2 − 1)² + (−3 − 1)²) = 8.5, d/dπ_c = (h − 1) = [1, −4], d/dπ_r = [−1, 4]
#[test]
fn dpo_and_ipo_by_hand() {
    let gpu = gpu();
    let rc = upload(&[2], &[-11.0, -18.0]);
    let rr = upload(&[2], &[-11.0, -16.0]);
    for (eps, want) in [(0.0f32, 1.00733748), (0.2, 0.95733748)] {
        let tape = Tape::new(&gpu);
        let pc = tape.param(&upload(&[2], &[-10.0, -20.0]));
        let pr = tape.param(&upload(&[2], &[-12.0, -15.0]));
        let (loss, m) = rl::dpo_loss(&tape, &pc, &pr, &rc, &rr, 0.5, eps).unwrap();
        assert_close(
            &format!("dpo ε={eps}"),
            &loss.tensor().to_vec().unwrap(),
            &[want],
            1e-7,
            1e-6,
        );
        let g = tape.backward(&loss).unwrap();
        let e = eps as f64;
        // d/dz of −(1−ε)log σ(z) − ε log σ(−z) = −(1−ε)σ(−z) + εσ(z)
        let dz = |z: f64| -(1.0 - e) * sig(-z) + e * sig(z);
        let want_c: Vec<f64> = [1.0, -1.5].iter().map(|&z| 0.5 * dz(z) / 2.0).collect();
        let want_r: Vec<f64> = want_c.iter().map(|g| -g).collect();
        assert_close("dpo d/dπ_c", &grad(&g, &pc), &want_c, 1e-7, 1e-6);
        assert_close("dpo d/dπ_r", &grad(&g, &pr), &want_r, 1e-7, 1e-6);
        close("rewards/chosen", m.rewards_chosen, -0.25, 1e-12, 0.0);
        close("rewards/rejected", m.rewards_rejected, 0.0, 1e-12, 0.0);
        close("rewards/margins", m.rewards_margins, -0.25, 1e-12, 0.0);
        close("rewards/accuracies", m.rewards_accuracies, 0.5, 0.0, 0.0);
    }
    close(
        "hand value",
        (nls(1.0) + nls(-1.5)) / 2.0,
        1.00733748,
        1e-8,
        0.0,
    );

    let tape = Tape::new(&gpu);
    let pc = tape.param(&upload(&[2], &[-10.0, -20.0]));
    let pr = tape.param(&upload(&[2], &[-12.0, -15.0]));
    let (loss, m) = rl::ipo_loss(&tape, &pc, &pr, &rc, &rr, 0.5).unwrap();
    assert_close("ipo", &loss.tensor().to_vec().unwrap(), &[8.5], 0.0, 1e-7);
    let g = tape.backward(&loss).unwrap();
    assert_close("ipo d/dπ_c", &grad(&g, &pc), &[1.0, -4.0], 0.0, 1e-6);
    assert_close("ipo d/dπ_r", &grad(&g, &pr), &[-1.0, 4.0], 0.0, 1e-6);
    close("ipo rewards/margins", m.rewards_margins, -0.25, 1e-12, 0.0);
    let bad = upload(&[3], &[0.0; 3]);
    assert!(rl::dpo_loss(&tape, &pc, &pr, &bad, &rr, 0.5, 0.0).is_err());
}

/// kto_pair, β = 1: π_c = [−1, −2], ref_c = [−2, −2] → r_w = [1, 0], KL_w = 0.5;
/// π_r = [−3, −1], ref_r = [−2.5, −2] → r_l = [−0.5, 1], KL_l = 0.25.
///   chosen:   1 − σ(r_w − KL_l) = 1 − σ([0.75, −0.25]) = [0.32082130, 0.56217650]
///   rejected: 1 − σ(KL_w − r_l) = 1 − σ([1, −0.5])     = [0.26894142, 0.62245933]
///   loss = mean of the four = 0.44359964
/// Gradients (the KLs are not detached; each is a mean, ∂KL/∂r = ½):
///   ∂/∂π_c,i = ¼[−σ'(a_i) − ½Σ_j σ'(b_j)],  ∂/∂π_r,j = ¼[σ'(b_j) + ½Σ_i σ'(a_i)]
///   with a = [0.75, −0.25], b = [1, −0.5]: [−0.10842570, −0.11548548] and
///   [0.10715662, 0.11675456]
#[test]
fn kto_pair_by_hand() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let pc = tape.param(&upload(&[2], &[-1.0, -2.0]));
    let pr = tape.param(&upload(&[2], &[-3.0, -1.0]));
    let rc = upload(&[2], &[-2.0, -2.0]);
    let rr = upload(&[2], &[-2.5, -2.0]);
    let (loss, m) = rl::kto_pair_loss(&tape, &pc, &pr, &rc, &rr, 1.0).unwrap();
    assert_close(
        "kto_pair",
        &loss.tensor().to_vec().unwrap(),
        &[0.44359964],
        1e-7,
        1e-6,
    );
    let (a, b) = ([0.75, -0.25], [1.0, -0.5]);
    let sa = dsig(a[0]) + dsig(a[1]);
    let sb = dsig(b[0]) + dsig(b[1]);
    let want_c: Vec<f64> = a.iter().map(|&x| 0.25 * (-dsig(x) - 0.5 * sb)).collect();
    let want_r: Vec<f64> = b.iter().map(|&x| 0.25 * (dsig(x) + 0.5 * sa)).collect();
    close("hand grad", want_c[0], -0.10842570, 1e-8, 0.0);
    close("hand grad", want_r[1], 0.11675456, 1e-8, 0.0);
    let g = tape.backward(&loss).unwrap();
    assert_close("kto_pair d/dπ_c", &grad(&g, &pc), &want_c, 1e-7, 1e-6);
    assert_close("kto_pair d/dπ_r", &grad(&g, &pr), &want_r, 1e-7, 1e-6);
    close("rewards/chosen", m.rewards_chosen, 0.5, 1e-12, 0.0);
    close("rewards/rejected", m.rewards_rejected, 0.25, 1e-12, 0.0);
    close("rewards/accuracies", m.rewards_accuracies, 0.5, 0.0, 0.0);
}

/// KTO, β = 1, λ_D = 1, λ_U = 2: π = [−1, −3, −2], ref = [−2, −2, −2] → r = [1, −1, 0],
/// labels [desirable, undesirable, desirable]; KL pairs π' = [−5, −6],
/// ref' = [−5.5, −6.5] → z_ref = max(0, 0.5) = 0.5.
///   [1 − σ(1 − 0.5), 2·(1 − σ(0.5 + 1)), 1 − σ(0 − 0.5)]
///   = [0.37754067, 2·0.18242552, 0.62245933] → loss = 1.36485104/3 = 0.45495035
///   d/dπ = [−σ'(0.5), 2σ'(1.5), −σ'(−0.5)]/3 = [−0.07833457, 0.09943097, −0.07833457]
///   rewards: chosen [1, 0] → 0.5, rejected [−1] → −1, margins 1.5
/// With ref' = [−4, −5] the KL mean is −1, clamped to z_ref = 0.
#[test]
fn kto_by_hand() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let p = tape.param(&upload(&[3], &[-1.0, -3.0, -2.0]));
    let r = upload(&[3], &[-2.0, -2.0, -2.0]);
    let labels = [true, false, true];
    let pk = upload(&[2], &[-5.0, -6.0]);
    let rk = upload(&[2], &[-5.5, -6.5]);
    let (loss, m) = rl::kto_loss(&tape, &p, &r, &labels, &pk, &rk, 1.0, 1.0, 2.0).unwrap();
    assert_close(
        "kto",
        &loss.tensor().to_vec().unwrap(),
        &[0.45495035],
        1e-7,
        1e-6,
    );
    let g = tape.backward(&loss).unwrap();
    let want = [-dsig(0.5) / 3.0, 2.0 * dsig(1.5) / 3.0, -dsig(-0.5) / 3.0];
    close("hand grad", want[1], 0.09943097, 1e-8, 0.0);
    assert_close("kto d/dπ", &grad(&g, &p), &want, 1e-7, 1e-6);
    close("kl", m.kl, 0.5, 0.0, 1e-12);
    close("rewards/chosen", m.rewards_chosen, 0.5, 0.0, 1e-12);
    close("rewards/rejected", m.rewards_rejected, -1.0, 0.0, 1e-12);
    close("rewards/margins", m.rewards_margins, 1.5, 0.0, 1e-12);
    assert_eq!((m.count_chosen, m.count_rejected), (2, 1));

    let tape = Tape::new(&gpu);
    let p = tape.param(&upload(&[3], &[-1.0, -3.0, -2.0]));
    let rk = upload(&[2], &[-4.0, -5.0]);
    let (loss, m) = rl::kto_loss(&tape, &p, &r, &labels, &pk, &rk, 1.0, 1.0, 2.0).unwrap();
    assert_eq!(m.kl, 0.0, "a negative KL estimate is clamped to 0");
    let want = ((1.0 - sig(1.0)) + 2.0 * (1.0 - sig(1.0)) + (1.0 - sig(0.0))) / 3.0;
    assert_close(
        "kto z=0",
        &loss.tensor().to_vec().unwrap(),
        &[want],
        1e-7,
        1e-6,
    );
    assert!(rl::kto_loss(&tape, &p, &r, &labels[..2], &pk, &rk, 1.0, 1.0, 1.0).is_err());
}

/// Bradley-Terry: r_c = [2, 0, 1], r_r = [1, 1, 1] (a tie at 2), d = [1, −1, 0]:
///   loss = (0.31326169 + 1.31326169 + 0.69314718)/3 = 0.77322352
///   margin [0.5, 0, 1]: d = [0.5, −1, −1] → (0.47407698 + 2·1.31326169)/3 = 1.03353345
///   centring λ = 0.1: + 0.1·mean((r_c + r_r)²) = 0.1·(9 + 1 + 4)/3 = 0.46666667
///   d/dr_c = −σ(−d)/3 + 2λ(r_c + r_r)/3, d/dr_r = σ(−d)/3 + 2λ(r_c + r_r)/3
///   accuracy: r_c ≥ r_r for 2 of 3 (the tie counts, as TRL's argmax)
/// Classifier: x = [2, −1, 0.5, −3], y = [1, 1, 0, 0]:
///   loss = (−log σ(2) − log σ(−1) − log σ(−0.5) − log σ(3))/4
///        = (0.12692801 + 1.31326169 + 0.97407698 + 0.04858735)/4 = 0.61571351
///   d/dx = (σ(x) − y)/4; accuracy ((x > 0) == y) = 2/4
#[test]
fn reward_losses_by_hand() {
    let gpu = gpu();
    let rc_v = [2.0f32, 0.0, 1.0];
    let rr_v = [1.0f32, 1.0, 1.0];
    let margin = upload(&[3], &[0.5, 0.0, 1.0]);
    for (use_margin, coef, want) in [
        (false, None, 0.77322352),
        (true, None, 1.03353345),
        (false, Some(0.1f32), 0.77322352 + 0.46666667),
    ] {
        let tape = Tape::new(&gpu);
        let c = tape.param(&upload(&[3], &rc_v));
        let r = tape.param(&upload(&[3], &rr_v));
        let m = use_margin.then_some(&margin);
        let (loss, met) = rl::reward_bt_loss(&tape, &c, &r, m, coef).unwrap();
        let what = format!("bt margin={use_margin} center={coef:?}");
        assert_close(&what, &loss.tensor().to_vec().unwrap(), &[want], 1e-7, 1e-6);
        let d: Vec<f64> = if use_margin {
            vec![0.5, -1.0, -1.0]
        } else {
            vec![1.0, -1.0, 0.0]
        };
        let lam = coef.unwrap_or(0.0) as f64;
        let sum = [3.0, 1.0, 2.0];
        let g = tape.backward(&loss).unwrap();
        let wc: Vec<f64> = (0..3)
            .map(|i| -sig(-d[i]) / 3.0 + 2.0 * lam * sum[i] / 3.0)
            .collect();
        let wr: Vec<f64> = (0..3)
            .map(|i| sig(-d[i]) / 3.0 + 2.0 * lam * sum[i] / 3.0)
            .collect();
        assert_close(&format!("{what} d/dr_c"), &grad(&g, &c), &wc, 1e-7, 1e-6);
        assert_close(&format!("{what} d/dr_r"), &grad(&g, &r), &wr, 1e-7, 1e-6);
        close("accuracy", met.accuracy, 2.0 / 3.0, 0.0, 1e-15);
        close("rewards/margins", met.rewards_margins, 0.0, 1e-15, 0.0);
        close("rewards/chosen", met.rewards_chosen, 1.0, 0.0, 1e-15);
    }
    // [B, 1] rewards with a [B] margin: per pair, not a [B, B] broadcast.
    let tape = Tape::new(&gpu);
    let c = tape.param(&upload(&[3, 1], &rc_v));
    let r = tape.param(&upload(&[3, 1], &rr_v));
    let (loss, _) = rl::reward_bt_loss(&tape, &c, &r, Some(&margin), None).unwrap();
    assert_close(
        "[B,1] with margin",
        &loss.tensor().to_vec().unwrap(),
        &[1.03353345],
        1e-7,
        1e-6,
    );

    let tape = Tape::new(&gpu);
    let x = [2.0f64, -1.0, 0.5, -3.0];
    let y = [true, true, false, false];
    let xs: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let xv = tape.param(&upload(&[4], &xs));
    let (loss, met) = rl::reward_classifier_loss(&tape, &xv, &y).unwrap();
    assert_close(
        "bce",
        &loss.tensor().to_vec().unwrap(),
        &[0.61571351],
        1e-7,
        1e-6,
    );
    let g = tape.backward(&loss).unwrap();
    let want: Vec<f64> = (0..4)
        .map(|i| (sig(x[i]) - y[i] as u8 as f64) / 4.0)
        .collect();
    assert_close("bce d/dx", &grad(&g, &xv), &want, 1e-7, 1e-6);
    close("accuracy", met.accuracy, 0.5, 0.0, 0.0);
    close("mean positive", met.mean_positive, 0.5, 0.0, 1e-15);
    close("mean negative", met.mean_negative, -1.25, 0.0, 1e-15);
}

/// β·h = ±1000: log σ must not underflow to log(0) = −inf (loss +inf, NaN
/// gradients). −log σ(−1000) = 1000 and its gradient is exactly −β/B.
#[test]
fn dpo_survives_the_log_sigmoid_tail() {
    let gpu = gpu();
    let tape = Tape::new(&gpu);
    let pc = tape.param(&upload(&[2], &[-2000.0, 2000.0]));
    let pr = tape.param(&upload(&[2], &[0.0, 0.0]));
    let z = upload(&[2], &[0.0, 0.0]);
    let (loss, _) = rl::dpo_loss(&tape, &pc, &pr, &z, &z, 0.5, 0.0).unwrap();
    // (−log σ(−1000) − log σ(1000))/2 = (1000 + e^−1000)/2
    assert_close(
        "tail loss",
        &loss.tensor().to_vec().unwrap(),
        &[500.0],
        0.0,
        1e-7,
    );
    let g = tape.backward(&loss).unwrap();
    assert_close("tail grad", &grad(&g, &pc), &[-0.25, 0.0], 1e-30, 1e-7);
}

#[test]
fn preference_losses_match_finite_differences() {
    let mut rng = Rng::new(77);
    let b = 4;
    let lp = |rng: &mut Rng| -> Vec<f32> { (0..b).map(|_| rng.uniform(-30.0, -5.0)).collect() };
    let (pc, pr) = (lp(&mut rng), lp(&mut rng));
    let rc: Vec<f32> = pc.iter().map(|v| v + rng.uniform(-2.0, 2.0)).collect();
    let rr: Vec<f32> = pr.iter().map(|v| v + rng.uniform(-2.0, 2.0)).collect();
    let (trc, trr) = (upload(&[b], &rc), upload(&[b], &rr));
    let inputs = [(vec![b], pc.clone()), (vec![b], pr.clone())];
    for eps in [0.0f32, 0.1] {
        check_grads(&format!("dpo ε={eps}"), &inputs, 1e-2, 3e-3, |t, v| {
            rl::dpo_loss(t, &v[0], &v[1], &trc, &trr, 0.1, eps)
                .unwrap()
                .0
        });
    }
    let avg = |x: &[f32]| -> Vec<f32> { x.iter().map(|v| v / 10.0).collect() };
    let (arc, arr) = (upload(&[b], &avg(&rc)), upload(&[b], &avg(&rr)));
    check_grads(
        "ipo",
        &[(vec![b], avg(&pc)), (vec![b], avg(&pr))],
        1e-3,
        3e-3,
        |t, v| rl::ipo_loss(t, &v[0], &v[1], &arc, &arr, 0.1).unwrap().0,
    );
    // Shift the rejected log-ratios up so both KL means sit well inside > 0.
    let pr_up: Vec<f32> = rr.iter().map(|r| r + 1.0).collect();
    let pc_up: Vec<f32> = rc.iter().map(|r| r + 0.7).collect();
    check_grads(
        "kto_pair",
        &[(vec![b], pc_up), (vec![b], pr_up)],
        1e-2,
        3e-3,
        |t, v| {
            rl::kto_pair_loss(t, &v[0], &v[1], &trc, &trr, 0.3)
                .unwrap()
                .0
        },
    );
    let labels = [true, false, false, true];
    let (pk, rk) = (upload(&[b], &pc), upload(&[b], &rc));
    check_grads("kto", &[(vec![b], pc.clone())], 1e-2, 3e-3, |t, v| {
        rl::kto_loss(t, &v[0], &trc, &labels, &pk, &rk, 0.1, 1.0, 1.5)
            .unwrap()
            .0
    });
    let rwd = |rng: &mut Rng| rng.vec(b, 2.0);
    let (c, r) = (rwd(&mut rng), rwd(&mut rng));
    let margin = upload(&[b], &[0.3, 0.0, 1.0, 0.5]);
    check_grads(
        "reward_bt",
        &[(vec![b], c.clone()), (vec![b], r)],
        1e-3,
        3e-3,
        |t, v| {
            rl::reward_bt_loss(t, &v[0], &v[1], Some(&margin), Some(0.05))
                .unwrap()
                .0
        },
    );
    check_grads("classifier", &[(vec![b], c)], 1e-3, 3e-3, |t, v| {
        rl::reward_classifier_loss(t, &v[0], &labels).unwrap().0
    });
}

/// TRL rotates completions by one inside each chunk of `total_batch_size`.
#[test]
fn kto_pairing_by_hand() {
    assert_eq!(rl::kto_mismatched_indices(4, 4), vec![3, 0, 1, 2]);
    assert_eq!(rl::kto_mismatched_indices(7, 3), vec![2, 0, 1, 5, 3, 4, 6]);
}
