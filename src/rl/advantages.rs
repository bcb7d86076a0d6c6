//! PPO rollout math on the host, as TRL 0.11's `PPOTrainer` computes it:
//! per-token KL-penalised rewards, GAE and masked whitening (the KL
//! coefficient controllers are in [`super::kl_control`]).
//!
//! Batches are `&[f32]` of `[B, T]` (row-major, `T` given). The mask is 1 on
//! the response tokens and 0 elsewhere (query and padding); it may also have
//! holes (TRL's `response_masks`). Everything is computed in f64 and returned
//! as f32, which is what gets uploaded for the loss.

use anyhow::{bail, ensure, Result};

use super::inputs::batch_rows;
use super::kl_control::{AdaptiveKlController, FixedKlController, KlController};

/// The math-related knobs of TRL 0.11's `PPOConfig`, with its defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct PpoConfig {
    /// β₀, the initial KL coefficient (`init_kl_coef`).
    pub init_kl_coef: f64,
    /// Use [`AdaptiveKlController`] (else [`FixedKlController`]).
    pub adap_kl_ctrl: bool,
    /// KL target of the adaptive controller.
    pub target: f64,
    pub horizon: f64,
    pub gamma: f64,
    pub lam: f64,
    pub cliprange: f32,
    pub cliprange_value: f32,
    pub vf_coef: f32,
    pub ppo_epochs: usize,
    pub ratio_threshold: f64,
    pub whiten_rewards: bool,
    pub kl_penalty: KlEstimator,
    pub early_stopping: bool,
    pub target_kl: f64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            init_kl_coef: 0.2,
            adap_kl_ctrl: true,
            target: 6.0,
            horizon: 10_000.0,
            gamma: 1.0,
            lam: 0.95,
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            ppo_epochs: 4,
            ratio_threshold: 10.0,
            whiten_rewards: false,
            kl_penalty: KlEstimator::K1,
            early_stopping: false,
            target_kl: 1.0,
        }
    }
}

impl PpoConfig {
    /// The controller TRL builds from this config.
    pub fn kl_controller(&self) -> Box<dyn KlController> {
        if self.adap_kl_ctrl {
            Box::new(AdaptiveKlController::new(
                self.init_kl_coef,
                self.target,
                self.horizon,
            ))
        } else {
            Box::new(FixedKlController::new(self.init_kl_coef))
        }
    }
}

/// Per-token KL estimate from sampled log-probs (TRL's `kl_penalty`), with
/// `d = logp − logp_ref`:
/// - `K1` ("kl"): `d` (unbiased, can be negative per token);
/// - `Abs` ("abs"): `|d|`;
/// - `Mse` ("mse"): `½·d²`;
/// - `K3` (Schulman's k3, not in TRL): `e^{−d} − (−d) − 1 = exp(logp_ref −
///   logp) − (logp_ref − logp) − 1`, never negative, unbiased for KL(π‖ref).
///
/// TRL's "full" (the whole-distribution KL) needs logits and is not here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KlEstimator {
    #[default]
    K1,
    Abs,
    Mse,
    K3,
}

impl KlEstimator {
    /// From TRL's `kl_penalty` name ("kl", "abs", "mse"), or "k3".
    pub fn from_trl(name: &str) -> Result<KlEstimator> {
        Ok(match name {
            "kl" => KlEstimator::K1,
            "abs" => KlEstimator::Abs,
            "mse" => KlEstimator::Mse,
            "k3" => KlEstimator::K3,
            "full" => bail!("kl_penalty \"full\" needs the logits; use the entropy/softmax ops"),
            _ => bail!("unknown kl_penalty {name:?} (kl, abs, mse, k3)"),
        })
    }

    pub fn per_token(self, logp: f64, logp_ref: f64) -> f64 {
        let d = logp - logp_ref;
        match self {
            KlEstimator::K1 => d,
            KlEstimator::Abs => d.abs(),
            KlEstimator::Mse => 0.5 * d * d,
            KlEstimator::K3 => (-d).exp() + d - 1.0,
        }
    }
}

/// Output of [`kl_penalized_rewards`], each `[B, T]`.
#[derive(Clone, Debug, PartialEq)]
pub struct KlRewards {
    /// `r_t = −β·kl_t`, plus the score at the last non-masked token.
    pub rewards: Vec<f32>,
    /// `−β·kl_t` (TRL's `non_score_reward`).
    pub non_score_rewards: Vec<f32>,
    /// `kl_t` from the estimator.
    pub kl: Vec<f32>,
}

fn check_same(what: &str, n: usize, others: &[(&str, usize)]) -> Result<()> {
    for (name, len) in others {
        ensure!(*len == n, "{what}: {name} has {len} elements, expected {n}");
    }
    Ok(())
}

/// TRL's `compute_rewards`: `kl_t = estimator(logp_t, logp_ref_t)`,
/// `r_t = −β·kl_t`, and `r_{t*} += score` at `t* = max{t : m_t ≠ 0}`.
///
/// As in TRL, `kl` and `r` are computed at **every** position, masked or
/// not (GAE masks them later). `scores` is `[B]`; the others are `[B, T]`.
/// A row whose mask is all zero is an error (TRL fails on it too).
pub fn kl_penalized_rewards(
    scores: &[f32],
    logp: &[f32],
    logp_ref: &[f32],
    mask: &[f32],
    t: usize,
    beta: f64,
    estimator: KlEstimator,
) -> Result<KlRewards> {
    let b = batch_rows("kl_penalized_rewards", logp.len(), t)?;
    check_same(
        "kl_penalized_rewards",
        logp.len(),
        &[("logp_ref", logp_ref.len()), ("mask", mask.len())],
    )?;
    ensure!(
        scores.len() == b,
        "kl_penalized_rewards: {} scores for {b} rows",
        scores.len()
    );
    let n = b * t;
    let mut out = KlRewards {
        rewards: Vec::with_capacity(n),
        non_score_rewards: Vec::with_capacity(n),
        kl: Vec::with_capacity(n),
    };
    for (row, &score) in scores.iter().enumerate() {
        let r = row * t..(row + 1) * t;
        let Some(last) = mask[r.clone()].iter().rposition(|&m| m != 0.0) else {
            bail!("kl_penalized_rewards: row {row} has an all-zero mask");
        };
        for (k, i) in r.enumerate() {
            let kl = estimator.per_token(logp[i] as f64, logp_ref[i] as f64);
            let nsr = -beta * kl;
            let reward = if k == last { nsr + score as f64 } else { nsr };
            out.kl.push(kl as f32);
            out.non_score_rewards.push(nsr as f32);
            out.rewards.push(reward as f32);
        }
    }
    Ok(out)
}

/// Generalised advantage estimation, exactly TRL 0.11's loop (before its
/// whitening): with `r̃ = r·m`, `Ṽ = V·m` and `Ṽ_T = 0`, for t = T−1 … 0 over
/// **all** positions:
///   `δ_t = r̃_t + γ·Ṽ_{t+1} − Ṽ_t`, `A_t = δ_t + γλ·A_{t+1}` (`A_T = 0`),
///   `returns_t = A_t + Ṽ_t`.
///
/// The scan does not skip masked positions: right padding gives A = 0 there,
/// but a hole inside the response (or the query before it) sees `Ṽ = 0` and
/// passes `γλ·A` through, so advantages just before a hole bootstrap from 0.
/// Returns `(advantages, returns)`, `[B, T]`.
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    mask: &[f32],
    t: usize,
    gamma: f64,
    lam: f64,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let r: Vec<f64> = masked(rewards, mask)?;
    let v: Vec<f64> = masked(values, mask)?;
    let (a, ret) = gae_f64(&r, &v, t, gamma, lam)?;
    Ok((to_f32(&a), to_f32(&ret)))
}

fn masked(x: &[f32], mask: &[f32]) -> Result<Vec<f64>> {
    ensure!(
        x.len() == mask.len(),
        "mask has {} elements for {} values",
        mask.len(),
        x.len()
    );
    Ok(x.iter()
        .zip(mask)
        .map(|(&x, &m)| x as f64 * m as f64)
        .collect())
}

fn to_f32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// `x` and `mask` in f64, after checking there is one mask value per element
/// (the host statistics' shared entry; `what` names the caller in errors).
fn checked_f64(what: &str, x: &[f32], mask: &[f32]) -> Result<(Vec<f64>, Vec<f64>)> {
    ensure!(
        x.len() == mask.len(),
        "{what}: mask has {} elements for {} values",
        mask.len(),
        x.len()
    );
    let f64s = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    Ok((f64s(x), f64s(mask)))
}

/// GAE on already-masked rewards and values.
fn gae_f64(r: &[f64], v: &[f64], t: usize, gamma: f64, lam: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    let b = batch_rows("gae", r.len(), t)?;
    ensure!(
        v.len() == r.len(),
        "gae: {} values for {} rewards",
        v.len(),
        r.len()
    );
    let mut adv = vec![0.0; r.len()];
    for row in 0..b {
        let mut last = 0.0;
        for k in (0..t).rev() {
            let i = row * t + k;
            let next = if k + 1 < t { v[i + 1] } else { 0.0 };
            let delta = r[i] + gamma * next - v[i];
            last = delta + gamma * lam * last;
            adv[i] = last;
        }
    }
    let ret = adv.iter().zip(v).map(|(a, v)| a + v).collect();
    Ok((adv, ret))
}

/// Output of [`compute_advantages`], each `[B, T]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Advantages {
    /// `V·m` (TRL returns the masked values and trains on them as `V_old`).
    pub values: Vec<f32>,
    /// GAE advantages, whitened over the masked tokens of the batch.
    pub advantages: Vec<f32>,
    /// `A + V·m` with the advantages *before* whitening.
    pub returns: Vec<f32>,
}

/// TRL 0.11's `compute_advantages` end to end: mask, optionally whiten the
/// rewards (`whiten(r·m, m, shift_mean = false)`), [`gae`], returns from the
/// raw advantages, then `whiten(A, m, shift_mean = true)`.
///
/// With `whiten_rewards`, TRL whitens every position, so masked positions get
/// the reward `μ − μ/σ` (not 0) and the reverse scan carries the padding's
/// rewards into the advantages of the real tokens before it. Reproduced as is.
pub fn compute_advantages(
    values: &[f32],
    rewards: &[f32],
    mask: &[f32],
    t: usize,
    gamma: f64,
    lam: f64,
    whiten_rewards: bool,
) -> Result<Advantages> {
    let v = masked(values, mask)?;
    let mut r = masked(rewards, mask)?;
    let m: Vec<f64> = mask.iter().map(|&m| m as f64).collect();
    if whiten_rewards {
        r = whiten_f64(&r, &m, false)?;
    }
    let (a, ret) = gae_f64(&r, &v, t, gamma, lam)?;
    let a = whiten_f64(&a, &m, true)?;
    Ok(Advantages {
        values: to_f32(&v),
        advantages: to_f32(&a),
        returns: to_f32(&ret),
    })
}

/// TRL's `masked_mean(x, m)` over the whole batch: `Σ x·m / Σ m`
/// (NaN when the mask sums to 0, as in TRL).
pub fn masked_mean(x: &[f32], mask: &[f32]) -> Result<f64> {
    let m: Vec<f64> = mask.iter().map(|&m| m as f64).collect();
    Ok(mean_f64(&masked(x, mask)?, &m))
}

fn mean_f64(xm: &[f64], m: &[f64]) -> f64 {
    xm.iter().sum::<f64>() / m.iter().sum::<f64>()
}

/// TRL's `masked_var(x, m, unbiased)`: `μ = masked_mean(x)`,
/// `var = masked_mean((x − μ)²)`, times the Bessel factor `n/(n − 1)` with
/// `n = Σ m` when unbiased. Errors when `n = 0` (TRL raises) or, unbiased,
/// `n = 1` (TRL returns NaN).
pub fn masked_var(x: &[f32], mask: &[f32], unbiased: bool) -> Result<f64> {
    let (x, m) = checked_f64("masked_var", x, mask)?;
    var_f64(&x, &m, unbiased)
}

fn var_f64(x: &[f64], m: &[f64], unbiased: bool) -> Result<f64> {
    let n: f64 = m.iter().sum();
    ensure!(n != 0.0, "masked_var: the mask sums to zero");
    let xm: Vec<f64> = x.iter().zip(m).map(|(x, m)| x * m).collect();
    let mu = mean_f64(&xm, m);
    let c2: Vec<f64> = x.iter().zip(m).map(|(x, m)| (x - mu).powi(2) * m).collect();
    let var = mean_f64(&c2, m);
    if !unbiased {
        return Ok(var);
    }
    ensure!(
        n != 1.0,
        "masked_var: one masked element has no unbiased variance"
    );
    Ok(var * n / (n - 1.0))
}

/// TRL's `masked_whiten(x, m, shift_mean)`:
/// `(x − μ)/sqrt(σ² + 1e-8)` with the masked mean μ and the masked unbiased
/// variance σ², applied to **every** element (masked ones too); with
/// `shift_mean = false` the mean is added back: `(x − μ)/sqrt(σ² + 1e-8) + μ`.
pub fn whiten(x: &[f32], mask: &[f32], shift_mean: bool) -> Result<Vec<f32>> {
    let (xs, m) = checked_f64("whiten", x, mask)?;
    Ok(to_f32(&whiten_f64(&xs, &m, shift_mean)?))
}

fn whiten_f64(x: &[f64], m: &[f64], shift_mean: bool) -> Result<Vec<f64>> {
    let xm: Vec<f64> = x.iter().zip(m).map(|(x, m)| x * m).collect();
    let mu = mean_f64(&xm, m);
    let inv = 1.0 / (var_f64(x, m, true)? + 1e-8).sqrt();
    let back = if shift_mean { 0.0 } else { mu };
    Ok(x.iter().map(|v| (v - mu) * inv + back).collect())
}
