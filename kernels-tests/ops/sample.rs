//! sample: the device sampler against the f64 reference
//! (`models::sampling::choose`, which draws from the same seeded stream in
//! the same row order): greedy and penalised ids exactly, top-k/top-p ids
//! exactly on tie-heavy logits (so the masks are exact), stop ids ending rows
//! (and drawing nothing after), the sampled distribution on a fixed seed, and
//! dropping finished rows (`keep_rows`) leaving every draw unchanged.

use crate::common::*;
use engine::models::sampling::{apply_top_k, apply_top_p, choose, softmax, SamplingConfig};
use engine::ops::sample::{DeviceSampler, SampleParams};

mod draws;

#[test]
fn params_match_the_shader() {
    crate::assert_params_layout!(
        SampleParams,
        "sample",
        "SampleParams",
        [
            batch,
            stride,
            valid,
            greedy,
            temperature,
            top_k,
            top_p,
            penalty,
            pad,
            n_stop,
            seen_words,
            _pad0
        ]
    );
}

/// Logits on a 0.25 grid, so ties (at the top-k and top-p cuts) are common.
fn grid_logits(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.uniform(-3.0, 3.0) * 4.0).round() / 4.0)
        .collect()
}

/// Runs `steps` steps on the device and on the CPU reference (contexts grow
/// by each chosen id; finished rows draw nothing) and compares every id, with
/// the CPU adapters' 8 invocations per row and the GPUs' 64 (the ids must not
/// depend on it).
#[allow(clippy::too_many_arguments)]
fn check_against_reference(
    what: &str,
    logits: &[f32],
    batch: usize,
    vocab: usize,
    valid: usize,
    cfg: &SamplingConfig,
    stop: &[u32],
    steps: usize,
    seed: u64,
) {
    let gpu = gpu();
    for wg in [8, 64] {
        let what = format!("{what} (workgroup {wg})");
        let mut ctx: Vec<Vec<u32>> = (0..batch)
            .map(|b| vec![(b * 7 % valid) as u32, (b * 13 % valid) as u32])
            .collect();
        let mut s = DeviceSampler::new(
            &gpu,
            batch,
            vocab,
            valid,
            &cfg.spec(),
            stop,
            u32::MAX - 1,
            &vec![seed; batch],
            &ctx,
        )
        .unwrap();
        s.set_workgroup_size(wg).unwrap();
        let input = upload(&[batch, vocab], logits);
        let mut rng = Rng::new(seed);
        let mut done = vec![false; batch];
        for step in 0..steps {
            let got = s.step(&input).unwrap();
            for b in 0..batch {
                if done[b] {
                    assert_eq!(got[b], None, "{what}: row {b} step {step} finished");
                    continue;
                }
                let row = &logits[b * vocab..(b + 1) * vocab];
                let want = choose(row, valid, &ctx[b], cfg, &mut rng);
                assert_eq!(got[b], Some(want), "{what}: row {b} step {step}");
                ctx[b].push(want);
                done[b] = stop.contains(&want);
            }
            assert_eq!(
                s.finished(),
                &done[..],
                "{what}: finished after step {step}"
            );
        }
    }
}

#[test]
fn greedy_with_repetition_penalty_matches_the_reference() {
    let (batch, vocab, valid) = (5, 1003, 997);
    let mut rng = Rng::new(3);
    let mut logits = grid_logits(&mut rng, batch * vocab);
    // A tie for the max in row 0 (the first index wins) and a padded column
    // that would win if it were sampled.
    logits[10] = 9.0;
    logits[20] = 9.0;
    logits[vocab - 1] = 50.0;
    for penalty in [1.0, 1.3, 0.7] {
        let cfg = SamplingConfig {
            repetition_penalty: penalty,
            ..SamplingConfig::default()
        };
        check_against_reference(
            &format!("greedy, penalty {penalty}"),
            &logits,
            batch,
            vocab,
            valid,
            &cfg,
            &[],
            3,
            0,
        );
    }
}

#[test]
fn repetition_penalty_is_transformers_processor() {
    // RepetitionPenaltyLogitsProcessor: seen positive logits are divided,
    // seen negative ones multiplied, each token once however often seen.
    let gpu = gpu();
    let cfg = SamplingConfig {
        repetition_penalty: 2.0,
        ..SamplingConfig::default()
    };
    let logits = [2.0f32, -2.0, 1.5, -0.5];
    let pick = |ctx: Vec<u32>| {
        let mut s = DeviceSampler::new(&gpu, 1, 4, 4, &cfg.spec(), &[], 0, &[0], &[ctx]).unwrap();
        s.step(&upload(&[1, 4], &logits)).unwrap()[0]
    };
    assert_eq!(pick(vec![]), Some(0));
    assert_eq!(pick(vec![0, 0, 0]), Some(2)); // 2 / 2 = 1 < 1.5
    assert_eq!(pick(vec![0, 2]), Some(0)); // 1 vs 0.75
}

#[test]
fn top_k_top_p_and_temperature_match_the_reference() {
    let (batch, vocab, valid) = (24, 301, 299);
    let mut rng = Rng::new(11);
    let logits = grid_logits(&mut rng, batch * vocab);
    let cases = [
        (1.0, 0, 1.0, 1.0),
        (0.7, 0, 1.0, 1.0),
        (1.0, 5, 1.0, 1.0),
        (1.0, 1, 1.0, 1.0),
        (1.3, 17, 1.0, 1.2),
        (1.0, 0, 0.9, 1.0),
        (1.0, 0, 0.35, 1.0),
        (0.5, 40, 0.8, 1.1),
        (2.0, 0, 0.05, 1.0),
    ];
    for (i, &(temperature, top_k, top_p, repetition_penalty)) in cases.iter().enumerate() {
        let cfg = SamplingConfig {
            greedy: false,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
        };
        check_against_reference(
            &format!("{cfg:?}"),
            &logits,
            batch,
            vocab,
            valid,
            &cfg,
            &[],
            3,
            100 + i as u64,
        );
    }
}

/// Banned tokens (logits of -inf, as a logits processor leaves them) are
/// never candidates: the kernel tells them apart by their bits, since WGSL
/// lets a compiler assume no infinities or NaNs in float comparisons.
#[test]
fn tokens_at_minus_infinity_are_never_drawn() {
    let (batch, vocab) = (7, 53);
    let mut rng = Rng::new(17);
    let mut logits = grid_logits(&mut rng, batch * vocab);
    for (i, l) in logits.iter_mut().enumerate() {
        if i % 3 != 0 {
            *l = f32::NEG_INFINITY;
        }
    }
    for (i, cfg) in [
        SamplingConfig::sample(),
        SamplingConfig {
            top_k: 4,
            top_p: 0.9,
            ..SamplingConfig::sample()
        },
    ]
    .iter()
    .enumerate()
    {
        check_against_reference(
            "-inf logits",
            &logits,
            batch,
            vocab,
            vocab,
            cfg,
            &[],
            4,
            70 + i as u64,
        );
    }
}

#[test]
fn stop_ids_end_rows_and_skip_their_draws() {
    let (batch, vocab) = (9, 40);
    let mut rng = Rng::new(5);
    let mut logits = grid_logits(&mut rng, batch * vocab);
    // Token 3 is likely everywhere, so rows end at different steps.
    for b in 0..batch {
        logits[b * vocab + 3] = 2.5;
    }
    check_against_reference(
        "stop ids",
        &logits,
        batch,
        vocab,
        vocab,
        &SamplingConfig::sample(),
        &[3, 7],
        6,
        42,
    );
}

#[test]
fn draws_follow_the_truncated_distribution() {
    // Many rows of one logits row: each row is one independent draw.
    let (batch, vocab) = (3000, 7);
    let row = [0.3f32, -1.0, 2.0, 1.1, 0.0, -0.4, 1.6];
    let logits: Vec<f32> = row.iter().copied().cycle().take(batch * vocab).collect();
    let cfg = SamplingConfig {
        greedy: false,
        temperature: 0.8,
        top_k: 5,
        top_p: 0.9,
        repetition_penalty: 1.0,
    };
    let mut want: Vec<f32> = row.iter().map(|x| x / cfg.temperature).collect();
    apply_top_k(&mut want, cfg.top_k);
    apply_top_p(&mut want, cfg.top_p);
    let probs = softmax(&want);
    let gpu = gpu();
    let ctx = vec![Vec::new(); batch];
    let mut s = DeviceSampler::new(
        &gpu,
        batch,
        vocab,
        vocab,
        &cfg.spec(),
        &[],
        0,
        &vec![9; batch],
        &ctx,
    )
    .unwrap();
    let ids = s.step(&upload(&[batch, vocab], &logits)).unwrap();
    let mut counts = vec![0usize; vocab];
    for id in ids {
        counts[id.unwrap() as usize] += 1;
    }
    for (i, (&c, &p)) in counts.iter().zip(&probs).enumerate() {
        let f = c as f64 / batch as f64;
        let sigma = (p * (1.0 - p) / batch as f64).sqrt();
        assert!(
            (f - p).abs() <= 4.0 * sigma + 1e-12,
            "token {i}: frequency {f:.4} vs probability {p:.4} ({counts:?})"
        );
        if p == 0.0 {
            assert_eq!(c, 0, "token {i} is masked but was drawn");
        }
    }
}

#[test]
fn workgroup_sizes_outside_the_shaders_range_are_refused() {
    let gpu = gpu();
    let cfg = SamplingConfig::sample();
    let ctx = vec![Vec::new(); 2];
    let mut s = DeviceSampler::new(&gpu, 2, 9, 9, &cfg.spec(), &[], 0, &[1, 1], &ctx).unwrap();
    for wg in [0, 4, 48, 512] {
        let e = s.set_workgroup_size(wg).unwrap_err().to_string();
        assert!(e.contains("power of two in 8..=256"), "{wg}: {e}");
    }
    s.set_workgroup_size(256).unwrap();
    assert!(s
        .step(&upload(&[2, 9], &[0.5; 18]))
        .unwrap()
        .iter()
        .all(Option::is_some));
}
