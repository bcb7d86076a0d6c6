#!/usr/bin/env bash
# IPO and KTO against the SFT policy, on the same customer-support pairs the
# reward model was trained on: direct alignment without a reward model or
# sampling, compared with the SFT baseline on the held-out prompts.
#
#   examples/dpo_support/run.sh [WORK_DIR]     (default runs/dpo_support)
#   QUICK=1 examples/dpo_support/run.sh        (a smoke run of a few steps)
#
# Starts from the embedded default's SFT policy (models/support-tiny/policy);
# the reward model there only measures the results.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ENGINE=${ENGINE:-$ROOT/target/release/engine}
W=${1:-runs/dpo_support}
SFT=${SFT:-$ROOT/models/support-tiny/policy}
RM=${RM:-$ROOT/models/support-tiny/reward}
STEPS=${STEPS:-60}
if [ "${QUICK:-0}" = 1 ]; then STEPS=2; fi
[ -x "$ENGINE" ] || cargo build --release --manifest-path "$ROOT/Cargo.toml"
run() { echo "+ engine $*"; "$ENGINE" "$@"; }
t0=$SECONDS

# The same data (and seed) the embedded default was made from.
run data support --out "$W/data" --seed 1
# Shared settings: LoRA on every linear layer; a LoRA-sized learning rate
# (TRL's 1e-6 default is for full fine-tuning of large models).
COMMON=(--model "$SFT" --data "$W/data/pairs.jsonl" --steps "$STEPS" --batch-size 16
        --lr 1e-3 --warmup-steps 5 --lora-r 16 --lora-alpha 32
        --lora-targets query_key_value,dense,dense_h_to_4h,dense_4h_to_h --seed 1)
# IPO: squared loss toward a fixed margin 1/(2 beta).
run train-dpo --loss ipo --beta 0.1 "${COMMON[@]}" --out "$W/ipo"
# KTO: the pairs unpaired (chosen desirable, rejected undesirable), as TRL does.
run train-dpo --loss kto --beta 0.1 "${COMMON[@]}" --out "$W/kto"

EVAL=(--model "$SFT" --data "$W/data/eval.jsonl" --reward-model "$RM" --max-new-tokens 40
      --batch-size 64 --seed 1 --safety)
echo "== SFT baseline"; run eval "${EVAL[@]}"
echo "== IPO";          run eval "${EVAL[@]}" --adapter "$W/ipo/adapter"
echo "== KTO";          run eval "${EVAL[@]}" --adapter "$W/kto/adapter"
echo "done in $((SECONDS - t0)) s; runs under $W"
