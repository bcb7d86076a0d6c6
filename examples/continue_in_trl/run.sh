#!/usr/bin/env bash
# Train tiny runs with engine, export each with `engine export-run --to trl`
# and continue it in TRL under `accelerate launch` on the CPU, checking that
# TRL picks up exactly where engine stopped (continue.py says how).
#
#   examples/continue_in_trl/run.sh [WORK_DIR]   (default ./runs/continue_in_trl)
#
# Needs a Python environment with TRL >= 1 (checked with TRL 1.16.0,
# transformers 5.23.0, accelerate 1.16.0, peft 0.21.2, datasets 5.2.0, torch
# 2.15.0 CPU): TRL_VENV (default /work/venvs/trl-latest), or
# `python -m venv v && v/bin/pip install trl accelerate peft datasets`.
# Takes about two minutes on two CPU cores.
set -euo pipefail
if [ -n "${1:-}" ]; then mkdir -p "$1" && OUT=$(cd "$1" && pwd); fi
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/runs/continue_in_trl}
VENV=${TRL_VENV:-/work/venvs/trl-latest}
ENGINE=${ENGINE:-target/release/engine}
[ -x "$ENGINE" ] || cargo build --release --bin engine
engine() { "$ENGINE" "$@"; }
export PATH="$VENV/bin:$PATH"
mkdir -p "$OUT" && rm -rf "$OUT"/{sft,dpo,kto,rm}
DATA=kernels-tests/fixtures/train
# Each run evaluates on its own training file with a batch that holds the
# whole file, so TRL's first step (before its first update) sees the batch
# engine's last eval saw.
COMMON=(--steps 10 --eval-every 10 --progress silent)
LAUNCH=(accelerate launch --cpu --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no)

step() { printf '\n== %s\n' "$*"; }
continue_in_trl() {
  engine export-run --to trl "$1"
  "${LAUNCH[@]}" examples/continue_in_trl/continue.py "$1" --steps 2 2>&1 |
    grep -E '^(adapter|versions|[A-Za-z]+Trainer with|   \{|engine.s last|  [a-z/]+ +engine)'
}

step "1. SFT (full fine-tune) of gpt2-tiny with engine"
engine train-sft --model models/fixtures/gpt2-tiny --data $DATA/sft_train.jsonl \
  --eval-data $DATA/sft_train.jsonl --batch-size 12 --lr 1e-3 "${COMMON[@]}" --out "$OUT/sft" | tail -1
continue_in_trl "$OUT/sft"

step "1b. the same SFT run continued by TRL's own CLI with the exported config.yaml"
trl sft --config "$OUT/sft/trl/config.yaml" --max_steps 1 --output_dir "$OUT/sft/trl/cli" \
  --disable_tqdm true --cpu --num_processes 1 --mixed_precision no 2>&1 | grep "'loss'" | head -1 |
  python3 -c "
import json, sys, ast
trl = float(ast.literal_eval(sys.stdin.read().strip())['loss'])
ours = [json.loads(l) for l in open('$OUT/sft/metrics.jsonl') if 'eval_loss' in l][-1]['eval_loss']
ok = abs(trl - ours) <= 1e-3 * abs(ours)
print(f'  trl sft --config: first loss {trl:.6f}, eval_loss of engine {ours:.6f}', 'ok' if ok else 'FAIL')
sys.exit(0 if ok else 1)"

step "2. DPO with LoRA on the SFT model with engine"
engine train-dpo --model "$OUT/sft/model" --data $DATA/prefs_train.jsonl \
  --eval-data $DATA/prefs_train.jsonl --batch-size 16 --lr 5e-3 --lora-r 4 --lora-alpha 8 \
  "${COMMON[@]}" --out "$OUT/dpo" | grep -E '^\s+(loss|rewards/chosen)' || true
continue_in_trl "$OUT/dpo"

step "3. KTO with LoRA (6 desirable, 2 undesirable rows) with engine"
engine train-dpo --loss kto --model "$OUT/sft/model" --data kernels-tests/fixtures/trl/kto.jsonl \
  --eval-data kernels-tests/fixtures/trl/kto.jsonl --batch-size 8 --lr 5e-3 --lora-r 4 --lora-alpha 8 \
  --undesirable-weight 2.5 "${COMMON[@]}" --out "$OUT/kto" | grep -E '^\s+(loss|kl)' || true
continue_in_trl "$OUT/kto"

step "4. reward model (gpt2-tiny-reward) with engine"
engine train-reward --model models/fixtures/gpt2-tiny-reward --data $DATA/prefs_train.jsonl \
  --eval-data $DATA/prefs_train.jsonl --batch-size 16 --lr 2e-4 "${COMMON[@]}" --out "$OUT/rm" | tail -1
continue_in_trl "$OUT/rm"

step "on a cluster (from $OUT/dpo/trl/config.json)"
python3 -c "
import json
c = json.load(open('$OUT/dpo/trl/config.json'))
for k in ('launch', 'launch_deepspeed', 'launch_trl_cli', 'openrlhf'):
    print(f'{k}: {c[k]}')"
echo "all runs continued in TRL where engine's runs stopped ($OUT)"
