#!/usr/bin/env python3
"""Continue an engine run in TRL from `engine export-run --to trl RUN_DIR`.

Reads RUN_DIR/trl/config.json and builds exactly what it says: the TRL trainer
and config class with the exported keyword arguments (only `max_steps` and
`output_dir` overridden: a couple of steps into a scratch folder), the data
set as `load_dataset("json", data_files=...)` with the exported column renames,
and the model to continue from (the run's full model, or its base with engine's
LoRA adapter loaded trainable through PEFT; for DPO and KTO the base loaded
again is passed as ref_model: engine's reference is the base with the adapter
off, while TRL 1.x, given a PEFT model alone, freezes a copy of its adapter).

Then checks that TRL continues where engine stopped. The run trained with its
own training file as eval data and a batch holding the whole file, so TRL's
first logged loss (computed on that same whole batch before TRL's first
update) must equal engine's last `eval_loss`; for DPO and KTO also
`rewards/chosen` and `rewards/rejected`, which are zero unless the adapter
loaded and the reference is the base. Exits 1 when a value is off by more
than --tol (relative).

Run under accelerate, as on a cluster (here on CPU, one process):
    accelerate launch --cpu --num_processes 1 examples/continue_in_trl/continue.py RUN_DIR
Checked with TRL 1.16.0, transformers 5.23.0, accelerate 1.16.0, peft 0.21.2,
datasets 5.2.0, torch 2.15.0 (CPU); see run.sh.
"""

import argparse
import json
import os
import sys


def engine_last_eval(run_dir):
    """The last row of RUN_DIR/metrics.jsonl that has an eval_loss."""
    last = None
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if "eval_loss" in row:
                last = row
    if last is None:
        sys.exit(f"{run_dir}/metrics.jsonl has no eval_loss: train with --eval-data")
    return last


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-3, help="relative tolerance of the checks")
    args = ap.parse_args()

    import datasets
    import peft
    import torch
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    run = os.path.abspath(args.run_dir)
    with open(os.path.join(run, "trl", "config.json")) as f:
        exported = json.load(f)
    trainer_cls = getattr(trl, exported["trainer"])
    config_cls = getattr(trl, exported["config_class"])

    kwargs = dict(exported["config"])
    kwargs.update(max_steps=args.steps, output_dir=os.path.join(run, "trl", "continued"))
    config = config_cls(**kwargs)

    spec = exported["dataset"]
    data = datasets.load_dataset(spec["path"], data_files=spec["data_files"])
    if spec.get("rename_columns"):
        data = data.rename_columns(spec["rename_columns"])

    start = exported["continue_from"]
    adapter = start.get("adapter")
    auto = AutoModelForSequenceClassification if exported["trainer"] == "RewardTrainer" else AutoModelForCausalLM
    model = auto.from_pretrained(start["model_name_or_path"], dtype=torch.float32)
    if adapter:
        model = peft.PeftModel.from_pretrained(model, adapter, is_trainable=True)
        lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"adapter {adapter}: {len(lora_b)} LoRA B matrices, "
              f"max |B| {max(p.abs().max().item() for p in lora_b):.4g}, {trainable} trainable weights")
    tokenizer = AutoTokenizer.from_pretrained(adapter or start["model_name_or_path"])
    extra = {}
    if adapter and exported["trainer"] in ("DPOTrainer", "KTOTrainer"):
        # engine's reference is the base with the adapter off. Given a PEFT
        # model and no ref_model, TRL 1.x (1.16's DPOTrainer) instead freezes
        # a copy of the loaded adapter ("ref") as the reference: pass the base.
        extra["ref_model"] = auto.from_pretrained(start["model_name_or_path"], dtype=torch.float32)

    history = []

    class Logs(transformers.TrainerCallback):
        def on_log(self, _args, state, _control, logs=None, **_kw):
            if logs and "loss" in logs:
                history.append(dict(logs, step=state.global_step))

    trainer = trainer_cls(
        model=model,
        args=config,
        train_dataset=data["train"],
        eval_dataset=data["test"] if "test" in data and config.eval_strategy != "no" else None,
        processing_class=tokenizer,
        callbacks=[Logs()],
        **extra,
    )
    trainer.train()

    print(f"versions: trl {trl.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}, datasets {datasets.__version__}, torch {torch.__version__}")
    print(f"{exported['trainer']} with {exported['config_class']} from {run}/trl/config.json, "
          f"{args.steps} steps; TRL's log:")
    for row in history:
        print("  ", {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})

    ours = engine_last_eval(run)
    checks = [("loss", "eval_loss")]
    if exported["trainer"] in ("DPOTrainer", "KTOTrainer"):
        checks += [("rewards/chosen", "eval_rewards/chosen"), ("rewards/rejected", "eval_rewards/rejected")]
    if exported["trainer"] == "KTOTrainer":
        checks.append(("kl", "eval_kl"))
    failed = False
    print(f"engine's last eval (step {ours['step']}) vs TRL's first step on the same batch:")
    for theirs_key, ours_key in checks:
        t, e = history[0][theirs_key], ours[ours_key]
        rel = abs(t - e) / max(abs(e), 1e-12)
        ok = rel <= args.tol
        failed |= not ok
        print(f"  {theirs_key:18} engine {e:.6f}  TRL {t:.6f}  rel diff {rel:.2e}  {'ok' if ok else 'FAIL'}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
