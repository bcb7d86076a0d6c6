//! Each health check fires on a synthetic trace of its failure (at the step
//! where it starts) and every check stays silent on a healthy trace.

use crate::common::Rng;
use engine::train::ppo::health::{
    distinct_n, dominant_ngram, Check, HealthConfig, HealthInput, HealthMonitor,
};

const STEPS: u64 = 30;
const ONSET: u64 = 12;

/// One step of a trace, owning its responses.
#[derive(Clone)]
struct Step {
    kl: f64,
    kl_k1: f64,
    kl_k3: f64,
    entropy: f64,
    reward: f64,
    reward_std: f64,
    ref_logp: f64,
    responses: Vec<Vec<u32>>,
    finished: Vec<bool>,
    well_formed: Option<f64>,
}

/// A healthy run: KL creeping up to ~3 nats (k1 ≈ k3), steady entropy and
/// reference likelihood, a slowly rising reward, varied responses of 12
/// tokens over a 100-token vocabulary, most ending on EOS.
fn healthy() -> Vec<Step> {
    let mut rng = Rng::new(5);
    (1..=STEPS)
        .map(|s| {
            let kl = 0.1 * s as f64 + 0.2 * rng.normal() as f64;
            Step {
                kl,
                kl_k1: kl,
                kl_k3: kl.max(0.0) * 1.1,
                entropy: 1.8 + 0.1 * rng.normal() as f64,
                reward: 0.1 + 0.005 * s as f64 + 0.02 * rng.normal() as f64,
                reward_std: 0.1,
                ref_logp: -3.0 + 0.1 * rng.normal() as f64,
                responses: (0..8)
                    .map(|_| (0..12).map(|_| 2 + rng.below(100) as u32).collect())
                    .collect(),
                finished: (0..8).map(|i| i != 3).collect(),
                well_formed: Some(0.95 + 0.01 * (s % 3) as f64),
            }
        })
        .collect()
}

/// Runs a trace; returns every warning as (step, check).
fn run(trace: &[Step]) -> (HealthMonitor, Vec<(u64, Check)>) {
    let mut m = HealthMonitor::new(HealthConfig::default());
    let mut out = Vec::new();
    for (i, s) in trace.iter().enumerate() {
        let input = HealthInput {
            step: i as u64 + 1,
            kl: s.kl,
            kl_k1: s.kl_k1,
            kl_k3: s.kl_k3,
            entropy_per_token: s.entropy,
            reward_mean: s.reward,
            reward_std: s.reward_std,
            ref_logp_per_token: s.ref_logp,
            responses: &s.responses,
            finished: &s.finished,
            well_formed: s.well_formed,
        };
        for w in m.observe(&input) {
            assert!(w.message.starts_with(&format!("step {}: ", w.step)));
            out.push((w.step, w.check));
        }
    }
    (m, out)
}

/// Breaks the healthy trace from ONSET on and checks that exactly `check`
/// fires, first at ONSET.
fn fires(check: Check, mut break_step: impl FnMut(u64, &mut Step)) -> HealthMonitor {
    let mut trace = healthy();
    for (i, s) in trace.iter_mut().enumerate() {
        let step = i as u64 + 1;
        if step >= ONSET {
            break_step(step, s);
        }
    }
    let (m, warnings) = run(&trace);
    assert!(!warnings.is_empty(), "{check:?} never fired");
    assert_eq!(warnings[0], (ONSET, check), "{warnings:?}");
    assert!(
        warnings.iter().all(|(_, c)| *c == check),
        "other checks fired: {warnings:?}"
    );
    m
}

#[test]
fn healthy_trace_is_silent() {
    let (m, warnings) = run(&healthy());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(m.summary().is_empty());
}

#[test]
fn negative_kl() {
    fires(Check::NegativeKl, |step, s| {
        if step == ONSET {
            (s.kl, s.kl_k1) = (-2.5, -2.5);
        }
    });
}

#[test]
fn k1_k3_disagreement() {
    fires(Check::KlDisagreement, |_, s| {
        (s.kl_k1, s.kl_k3) = (0.4, 4.0)
    });
}

#[test]
fn entropy_collapse() {
    fires(Check::EntropyCollapse, |step, s| {
        s.entropy = if step == ONSET { 0.4 } else { 0.2 }
    });
}

#[test]
fn repetition_by_distinct_2() {
    // Shuffled tokens from a 5-token vocabulary: few distinct bigrams, but
    // no single n-gram dominates a response.
    let mut rng = Rng::new(8);
    fires(Check::Repetition, move |_, s| {
        for r in s.responses.iter_mut() {
            let mut pool: Vec<u32> = (0..12).map(|i| 10 + (i % 5) as u32).collect();
            for i in (1..pool.len()).rev() {
                pool.swap(i, rng.below(i + 1));
            }
            *r = pool;
        }
    });
}

#[test]
fn repetition_by_looping_responses() {
    // "purlo purlo purlo": 3 of 8 responses loop on a trigram.
    let m = fires(Check::Repetition, |_, s| {
        for r in s.responses.iter_mut().take(3) {
            *r = [40, 41, 42].repeat(4);
        }
    });
    assert!(m.warnings[0].message.contains("3 of 8 responses loop"));
    let (n, count, coverage) = dominant_ngram(&[40, 41, 42].repeat(4), 4);
    assert_eq!((n, count, coverage), (3, 4, 1.0));
}

#[test]
fn fluency_drift_by_well_formed_rate() {
    let m = fires(Check::FluencyDrift, |_, s| s.well_formed = Some(0.7));
    assert!(m.warnings[0].message.contains("well-formed sentences 70%"));
    // Without a judge the check only watches distinct-2.
    let mut trace = healthy();
    trace.iter_mut().for_each(|s| s.well_formed = None);
    assert!(run(&trace).1.is_empty());
}

#[test]
fn fluency_drift_by_distinct_2() {
    // Each response opens with the same 5 tokens (60 61 60 61 60): distinct-2
    // falls to about 0.66 of the start, short of the repetition check's 0.5,
    // and no n-gram dominates a response.
    let m = fires(Check::FluencyDrift, |_, s| {
        for r in s.responses.iter_mut() {
            for (i, t) in r.iter_mut().take(5).enumerate() {
                *t = 60 + (i % 2) as u32;
            }
        }
    });
    assert!(m.warnings[0].message.contains("distinct-2"));
}

#[test]
fn reward_hacking_canary() {
    fires(Check::RewardHacking, |step, s| {
        let k = (step - ONSET + 1) as f64;
        s.reward = 0.3 + 0.1 * k;
        s.ref_logp = -3.0 - 2.5 - 0.2 * k;
    });
}

#[test]
fn responses_that_never_end() {
    let m = fires(Check::NeverEnding, |_, s| s.finished = vec![false; 8]);
    // Warned at the onset, then every 10 steps while it lasts.
    let steps: Vec<u64> = m.warnings.iter().map(|w| w.step).collect();
    assert_eq!(steps, vec![12, 22]);
    let rec = m.records()[&Check::NeverEnding];
    assert_eq!((rec.first, rec.last, rec.steps), (12, 30, 19));
    assert_eq!(m.summary().len(), 1);
    // The monitor's state survives a checkpoint.
    let mut again = HealthMonitor::default();
    again.restore(&m.state()).unwrap();
    assert_eq!(again.warnings, m.warnings);
    assert_eq!(again.records(), m.records());
}

#[test]
fn ngram_statistics() {
    assert_eq!(distinct_n(&[vec![1, 2, 1, 2], vec![3]], 2), 2.0 / 3.0);
    assert_eq!(distinct_n(&[vec![1]], 2), 1.0);
    assert_eq!(dominant_ngram(&[7, 7, 7, 7], 3), (1, 4, 1.0));
    let m = HealthMonitor::new(HealthConfig::default());
    assert!(m.is_repetitive(&[9, 8].repeat(5)));
    assert!(!m.is_repetitive(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    assert!(!m.is_repetitive(&[9, 9, 9]), "too short to judge");
}
