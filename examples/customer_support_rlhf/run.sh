#!/usr/bin/env bash
# SFT -> reward model -> PPO -> eval on the project's own customer-support data.
# These are the steps `engine pipeline --preset support-tiny` runs to make the
# embedded default, one command each, followed by the PPO run and its eval.
#
#   examples/customer_support_rlhf/run.sh [WORK_DIR]      (default runs/customer_support_rlhf)
#   QUICK=1 examples/customer_support_rlhf/run.sh         (a smoke run of a few steps)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ENGINE=${ENGINE:-$ROOT/target/release/engine}
W=${1:-runs/customer_support_rlhf}
SEED=${SEED:-1}
SFT_STEPS=${SFT_STEPS:-1500}
RM_STEPS=${RM_STEPS:-150}
PPO_STEPS=${PPO_STEPS:-30}
if [ "${QUICK:-0}" = 1 ]; then SFT_STEPS=4; RM_STEPS=4; PPO_STEPS=2; fi
[ -x "$ENGINE" ] || cargo build --release --manifest-path "$ROOT/Cargo.toml"
run() { echo "+ engine $*"; "$ENGINE" "$@"; }
t0=$SECONDS

# 1. Data: SFT (35% of replies deliberately unsafe or rude), pairs, KTO, prompts, eval.
run data support --out "$W/data" --seed "$SEED"
# 2. A 2k-token byte-level BPE on that text.
run train-tokenizer --data "$W/data/sft.jsonl,$W/data/pairs.jsonl" --vocab-size 2048 --out "$W/tokenizer"
# 3. A fresh ~1.3M-weight GPT-NeoX with the Customer:/Agent: template.
run init --arch gpt-neox --tokenizer "$W/tokenizer" --hidden 128 --layers 4 --heads 4 \
    --context 128 --template support --seed "$SEED" --out "$W/init"
# 4. SFT (completion-only loss).
run train-sft --model "$W/init" --data "$W/data/sft.jsonl" --out "$W/sft" --steps "$SFT_STEPS" \
    --batch-size 16 --lr 2e-3 --warmup-steps 20 --schedule cosine --max-len 96 \
    --weight-decay 0.01 --seed "$SEED"
# 5. Reward model from the SFT trunk, Bradley-Terry on good vs unsafe/rude pairs.
run train-reward --model "$W/sft/model" --data "$W/data/pairs.jsonl" --out "$W/reward" \
    --steps "$RM_STEPS" --batch-size 16 --lr 5e-4 --warmup-steps 10 --schedule cosine \
    --max-len 96 --eval-fraction 0.1 --seed "$SEED"
# 6. PPO with LoRA against the reward model (the demo's hyper-parameters; add --quant nf4 for QLoRA).
run train-ppo --model "$W/sft/model" --reward-model "$W/reward/model" \
    --data "$W/data/prompts.jsonl" --out "$W/ppo" --steps "$PPO_STEPS" --seed "$SEED" \
    --config "$ROOT/models/support-tiny/demo.toml"
# 7. Before and after on the held-out prompts: reward, unsafe-reply rate, distinct-n, KL.
run eval --model "$W/sft/model" --data "$W/data/eval.jsonl" --reward-model "$W/reward/model" \
    --max-new-tokens 40 --batch-size 64 --seed "$SEED" --safety
run eval --model "$W/sft/model" --adapter "$W/ppo/adapter" --data "$W/data/eval.jsonl" \
    --reward-model "$W/reward/model" --max-new-tokens 40 --batch-size 64 --seed "$SEED" --safety
echo "done in $((SECONDS - t0)) s; runs under $W"
