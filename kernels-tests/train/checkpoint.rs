//! Checkpoints are replaced atomically: a failed save leaves the previous
//! checkpoint whole and no partial directory; `--keep-checkpoints` keeps the
//! replaced one; a crash between the renames is recovered from.

use super::{model_dir, scratch};
use engine::models::CausalLm;
use engine::train::optim::{LrSchedule, Optimizer};
use engine::train::run::{checkpoint_dir, read_state, save_checkpoint, TrainerState};
use std::path::Path;

fn setup() -> (CausalLm, Optimizer) {
    let gpu = crate::common::gpu();
    let model = CausalLm::load(&gpu, Path::new(&model_dir("gpt2-tiny"))).unwrap();
    let opt = Optimizer::new(Default::default(), LrSchedule::constant(1e-3), None);
    (model, opt)
}

fn state(step: u64) -> TrainerState {
    let mut s = TrainerState::new("sft", serde_json::json!({"steps": 9}));
    s.step = step;
    s.extra = serde_json::json!({"kl_coef": 0.2});
    s.rng.insert("sampling".into(), 7);
    s
}

#[test]
fn failed_save_leaves_the_old_checkpoint() {
    let (model, opt) = setup();
    let out = scratch("ckpt-atomic");
    save_checkpoint(&out, &model, &opt, &state(1), false, None).unwrap();
    let first = read_state(&out.join("checkpoint")).unwrap();
    assert_eq!(first.step, 1);
    assert_eq!(first.extra["kl_coef"], 0.2);
    assert_eq!(first.rng["sampling"], 7);

    // A trainer hook that fails halfway through its files.
    let failing = |dir: &Path| -> anyhow::Result<()> {
        std::fs::write(dir.join("value_model.safetensors"), b"partial")?;
        anyhow::bail!("disk full")
    };
    let e = save_checkpoint(&out, &model, &opt, &state(2), false, Some(&failing)).unwrap_err();
    assert!(format!("{e:#}").contains("disk full"));
    assert_eq!(read_state(&out.join("checkpoint")).unwrap(), first);
    assert!(!out.join("checkpoint/value_model.safetensors").exists());
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["checkpoint".to_string()],
        "leftovers: {names:?}"
    );

    // An unwritable destination (a file where the run directory should be).
    let blocker = out.join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    assert!(save_checkpoint(&blocker.join("run"), &model, &opt, &state(2), false, None).is_err());

    // --keep-checkpoints keeps the replaced one under its step.
    let ok = |dir: &Path| -> anyhow::Result<()> {
        std::fs::write(dir.join("value_model.safetensors"), b"whole")?;
        Ok(())
    };
    save_checkpoint(&out, &model, &opt, &state(2), true, Some(&ok)).unwrap();
    assert_eq!(read_state(&out.join("checkpoint")).unwrap().step, 2);
    assert_eq!(read_state(&out.join("checkpoint-1")).unwrap(), first);
    assert!(out.join("checkpoint/value_model.safetensors").is_file());
    assert!(out.join("checkpoint/model/model.safetensors").is_file());
    assert!(out.join("checkpoint/optimizer.safetensors").is_file());

    // A crash between moving the old checkpoint aside and renaming the new
    // one in leaves `.checkpoint.old`, which --resume finds.
    std::fs::rename(out.join("checkpoint"), out.join(".checkpoint.old")).unwrap();
    let found = checkpoint_dir(&out).unwrap();
    assert!(found.ends_with(".checkpoint.old"), "{}", found.display());
    assert!(checkpoint_dir(&out.join("nowhere")).is_err());
}
