//! Host round trips of one PPO step, counted by the profiler: the rollout's
//! policy and reference passes are read back once together, each update
//! micro-batch once (the ratio guard needs its new log-probs before its
//! backward), and the optimizer reads its gradient norm per update plus the
//! non-finite weight check once per step.

use super::{prompts, root, tiny_cfg};
use engine::models::CausalLm;
use engine::train::ppo::{PpoTrainer, RefSource};
use engine::train::reward_fn::TargetTokenRate;
use engine::{Gpu, GpuOptions};

/// The `reads` column of phase `name` in the profiler's phase table.
fn reads(table: &str, name: &str) -> u64 {
    let row = table
        .lines()
        .skip_while(|l| !l.starts_with("profile by phase"))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(char::is_whitespace))
        })
        .unwrap_or_else(|| panic!("no phase `{name}` in\n{table}"));
    // Counted from the right: dispatches, submits, reads, bytes, ms, s.
    let cols: Vec<&str> = row.split_whitespace().collect();
    cols[cols.len() - 4].parse().unwrap()
}

#[test]
fn ppo_step_reads_back_once_per_micro_batch_and_once_per_rollout() {
    // Its own device, so the tests sharing `Gpu::shared` are not profiled.
    let gpu = Gpu::new(&GpuOptions::from_env().unwrap()).unwrap();
    let mut model = CausalLm::load(&gpu, &root().join("models/fixtures/gpt2-tiny")).unwrap();
    model.add_value_head(7).unwrap();
    let ps = prompts(&model);
    let reference = RefSource::frozen_copy(&model).unwrap();
    let mut cfg = tiny_cfg();
    cfg.max_new_tokens = 3;
    // 8 prompts, micro-batches of 4 (the rollout's passes too), 2 epochs.
    let micro_batches = 2 * 8 / 4;
    let scorer = Box::new(TargetTokenRate { token: 38 });
    let mut tr = PpoTrainer::new(model, reference, scorer, cfg).unwrap();
    gpu.start_profile();
    let rep = tr.step(&ps).unwrap();
    assert_eq!(rep.minibatches, micro_batches);
    assert_eq!(rep.skipped_ratio + rep.skipped_nonfinite, 0);
    let table = gpu.profile_table().unwrap().expect("profiling is on");
    // Before: 2 per pass of the policy (2 passes) and 1 per pass of the reference.
    assert_eq!(
        reads(&table, "forward") + reads(&table, "reference"),
        1,
        "{table}"
    );
    // Before: 10 per micro-batch.
    assert_eq!(
        reads(&table, "train forward"),
        micro_batches as u64,
        "{table}"
    );
    assert_eq!(reads(&table, "train backward"), 0, "{table}");
    assert_eq!(
        reads(&table, "optimizer"),
        micro_batches as u64 + 1,
        "{table}"
    );
}
