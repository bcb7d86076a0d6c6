//! TRL's PPO options beyond the defaults: score scaling / normalisation
//! with running moments and score clipping (hand-computed), reward
//! whitening (hand-computed), the flags that set them, and gradient
//! accumulation: 2 micro-batches of 2 give the update of one mini-batch of 4.

use super::{policy, prompts, tiny_cfg, weights};
use engine::rl::{compute_advantages, process_scores, RunningMoments, ScoreOptions};
use engine::train::config::run_file::parse_args;
use engine::train::ppo::{PpoArgs, PpoTrainer, RefSource};
use engine::train::reward_fn::TargetTokenRate;

fn close(got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "{got} vs {want}"
    );
}

#[test]
fn running_moments_by_hand() {
    let mut m = RunningMoments::default();
    // Batch 1: [1, 3]: mean 2, population var 1; the prior (mean 0, var 1,
    // count 1e-24) weighs nothing.
    let (bm, bs) = m.update(&[1.0, 3.0]).unwrap();
    close(bm, 2.0);
    close(bs, 2f64.sqrt()); // unbiased batch std
    close(m.mean, 2.0);
    close(m.var, 1.0);
    close(m.std, 2f64.sqrt()); // √(1·2/1)
                               // Batch 2: [5]: delta 3, total 3: mean 2 + 3·1/3 = 3;
                               // var = (1·2 + 9·2·1/3 + 0)/3 = 8/3; std = √(8/3·3/2) = 2.
    m.update(&[5.0]).unwrap();
    close(m.mean, 3.0);
    close(m.var, 8.0 / 3.0);
    close(m.std, 2.0);
    close(m.count, 3.0);
}

#[test]
fn score_scaling_norm_and_clip_by_hand() {
    let eps = f32::EPSILON as f64;
    // Scaling: divide by the running std after the update (√2 + eps).
    let mut m = RunningMoments::default();
    let mut s = vec![1.0f32, 3.0];
    let scale = ScoreOptions {
        use_score_scaling: true,
        ..Default::default()
    };
    process_scores(&mut s, &scale, &mut m).unwrap();
    close(s[0] as f64, 1.0 / (2f64.sqrt() + eps));
    close(s[1] as f64, 3.0 / (2f64.sqrt() + eps));
    // Normalisation: subtract the running mean first.
    let mut m = RunningMoments::default();
    let mut s = vec![1.0f32, 3.0];
    let norm = ScoreOptions {
        use_score_norm: true,
        ..scale
    };
    process_scores(&mut s, &norm, &mut m).unwrap();
    close(s[0] as f64, -1.0 / (2f64.sqrt() + eps));
    close(s[1] as f64, 1.0 / (2f64.sqrt() + eps));
    // Norm without scaling does nothing (TRL); clipping after scaling.
    let mut m = RunningMoments::default();
    let mut s = vec![-4.0f32, 0.25, 9.0];
    let only_norm = ScoreOptions {
        use_score_norm: true,
        score_clip: Some(0.5),
        ..Default::default()
    };
    process_scores(&mut s, &only_norm, &mut m).unwrap();
    assert_eq!(s, vec![-0.5, 0.25, 0.5]);
    assert_eq!(
        m,
        RunningMoments::default(),
        "no scaling: moments untouched"
    );
}

#[test]
fn whiten_rewards_by_hand() {
    // One row, two tokens, V = 0, γ = λ = 1. Rewards [1, 3]: masked mean 2,
    // unbiased var 2: whitened without the mean shift: (r − 2)/√(2 + 1e-8) + 2.
    let w = |r: f64| (r - 2.0) / (2.0f64 + 1e-8).sqrt() + 2.0;
    let (r0, r1) = (w(1.0), w(3.0));
    let a = compute_advantages(&[0.0, 0.0], &[1.0, 3.0], &[1.0, 1.0], 2, 1.0, 1.0, true).unwrap();
    // GAE: A1 = r1, A0 = r0 + r1; returns = A (V = 0).
    close(a.returns[1] as f64, r1);
    close(a.returns[0] as f64, r0 + r1);
    let raw =
        compute_advantages(&[0.0, 0.0], &[1.0, 3.0], &[1.0, 1.0], 2, 1.0, 1.0, false).unwrap();
    assert_eq!(raw.returns, vec![4.0, 3.0]);
}

#[test]
fn ppo_flags_set_the_trl_options() {
    let a: PpoArgs = parse_args(&[
        "engine",
        "--batch-size",
        "8",
        "--mini-batch-size",
        "2",
        "--gradient-accumulation-steps",
        "2",
        "--use-score-scaling",
        "true",
        "--use-score-norm",
        "true",
        "--score-clip",
        "3.5",
        "--whiten-rewards",
        "true",
    ])
    .unwrap();
    let cfg = a.train_config().unwrap();
    assert_eq!(
        (cfg.mini_batch_size, cfg.gradient_accumulation_steps),
        (2, 2)
    );
    assert!(cfg.scores.use_score_scaling && cfg.scores.use_score_norm);
    assert_eq!(cfg.scores.score_clip, Some(3.5));
    assert!(cfg.ppo.whiten_rewards);
    // Defaults: TRL's (all off), accumulation from --grad-accum.
    let d: PpoArgs = parse_args(&["engine", "--grad-accum", "3"]).unwrap();
    let cfg = d.train_config().unwrap();
    assert_eq!(cfg.scores, ScoreOptions::default());
    assert!(!cfg.ppo.whiten_rewards);
    assert_eq!(cfg.gradient_accumulation_steps, 3);
    assert!(parse_args::<PpoArgs>(&["engine", "--score-clip=-1"])
        .unwrap()
        .train_config()
        .is_err());
}

#[test]
fn accumulating_two_micro_batches_equals_one_mini_batch() {
    let run = |mini: usize, accum: usize| {
        let model = policy("gpt2-tiny");
        let ps = prompts(&model);
        let before = weights(&model);
        let reference = RefSource::frozen_copy(&model).unwrap();
        let mut cfg = tiny_cfg();
        (cfg.batch_size, cfg.mini_batch_size) = (8, mini);
        cfg.gradient_accumulation_steps = accum;
        cfg.forward_batch_size = 8; // the same rollout passes in both runs
        cfg.max_new_tokens = 4;
        cfg.eos = Some(u32::MAX); // never: every response has 4 tokens
        cfg.lr = 1e-4;
        cfg.ppo.ratio_threshold = 1e9; // compare updates, not the guard
        let scorer = Box::new(TargetTokenRate { token: 38 });
        let mut tr = PpoTrainer::new(model, reference, scorer, cfg).unwrap();
        let r = tr.step(&ps).unwrap();
        (before, weights(&tr.policy), r, tr.optimizer.step)
    };
    let (w0, wa, ra, sa) = run(4, 1);
    let (_, wb, rb, sb) = run(2, 2);
    assert_eq!((sa, sb), (4, 4), "2 epochs × 2 optimizer steps each");
    assert_eq!((ra.minibatches, rb.minibatches), (4, 8));
    // The same summed gradient (its norm would double without the 1/2
    // weights, which Adam alone would not show): measured 2e-7 apart.
    let rel = |x: f64, y: f64| (x - y).abs() / y.abs().max(1e-12);
    assert!(
        rel(rb.grad_norm, ra.grad_norm) < 1e-4,
        "{} vs {}",
        rb.grad_norm,
        ra.grad_norm
    );
    assert!(
        rel(rb.loss.total, ra.loss.total) < 1e-4 || (rb.loss.total - ra.loss.total).abs() < 1e-6
    );
    let (mut diff, mut step) = (0.0f64, 0.0f64);
    for (name, w) in &w0 {
        for ((a, b), z) in wa[name].iter().zip(&wb[name]).zip(w) {
            diff += ((a - b) as f64).powi(2);
            step += ((a - z) as f64).powi(2);
        }
    }
    // The same update. Adam divides by √v + 1e-8, which turns f32 rounding
    // of near-zero gradient entries into visible steps: measured 1.5e-3 of
    // the update's norm (a missing or doubled micro-batch gives O(1)).
    assert!(step > 0.0, "nothing trained");
    assert!(
        diff.sqrt() <= 5e-3 * step.sqrt(),
        "updates differ: |Δa − Δb| = {} vs |Δa| = {}",
        diff.sqrt(),
        step.sqrt()
    );
}

/// PPO's learning rate is constant by default (TRL without a scheduler);
/// `--schedule` and `--warmup-steps` make it follow the PPO step, one rate
/// for every update of a step (TRL steps its scheduler once per PPO step).
#[test]
fn lr_schedule_follows_ppo_steps() {
    use engine::train::optim::Schedule;
    let flags = |extra: &[&str]| {
        let mut argv = vec!["engine", "--steps", "4", "--lr", "0.01"];
        argv.extend_from_slice(extra);
        parse_args::<PpoArgs>(&argv)
            .unwrap()
            .train_config()
            .unwrap()
    };
    let constant = flags(&[]);
    assert_eq!(constant.schedule, Schedule::Constant);
    let cfg = flags(&["--schedule", "linear", "--warmup-steps", "1"]);
    assert_eq!(
        (cfg.schedule, cfg.warmup_steps, cfg.total_steps),
        (Schedule::Linear, 1, 4)
    );
    // Warm-up step 1 at 0, then linear decay over the 3 steps after it.
    let model = policy("gpt2-tiny");
    let ps = prompts(&model);
    let reference = RefSource::frozen_copy(&model).unwrap();
    let mut small = tiny_cfg();
    (small.schedule, small.warmup_steps, small.total_steps) = (Schedule::Linear, 1, 4);
    small.lr = 0.01;
    let scorer = Box::new(TargetTokenRate { token: 38 });
    let mut tr = PpoTrainer::new(model, reference, scorer, small).unwrap();
    for want in [0.0, 0.01, 0.01 * 2.0 / 3.0] {
        let r = tr.step(&ps).unwrap();
        close(r.lr, want);
    }
}
