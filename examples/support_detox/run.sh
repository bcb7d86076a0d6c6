#!/usr/bin/env bash
# Support detox (the detoxification reports' recipe, on engine's own support data), end to end:
#   rude/polite transcripts (`engine data support --tone`) -> RoBERTa tokenizer and a fresh
#   RoBERTa classifier (polite, rude) trained by `train-reward` -> PPO of the embedded support-tiny
#   policy on the demo's reward model MINUS the classifier's P(rude) -> eval before/after.
# Usage: examples/support_detox/run.sh [WORK_DIR]      (default ./runs/support_detox)
#   QUICK=1   a ~1-minute smoke run (tiny steps and rows)
#   ENGINE=/path/to/engine   use this binary (default: cargo build --release, then target/release/engine)
set -euo pipefail

# ---- knobs: the default run took 15 minutes on a loaded 2-core llvmpipe machine ----
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  TONE=200 CLS_STEPS=6 PPO_STEPS=1 PPO_BATCH=8 EVAL_ROWS=8
else
  TONE=${TONE:-2000}            # labelled transcripts, half rude (10% held out for accuracy)
  CLS_STEPS=${CLS_STEPS:-150}   # classifier optimizer steps of 16
  PPO_STEPS=${PPO_STEPS:-30} PPO_BATCH=32   # the demo's PPO length
  EVAL_ROWS=128                 # held-out eval prompts of the demo
fi
PENALTY=${PENALTY:--4}          # weight of the classifier's P(rude) in the PPO reward
CLS_VOCAB=2048 CLS_HIDDEN=64 CLS_LAYERS=2 CLS_HEADS=4 CLS_MAX_LEN=96
NEW_TOKENS=40                   # the demo's response length

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/../.." && pwd))
DEMO=$ROOT/models/support-tiny  # the embedded SFT policy, its reward model and prompts
WORK=${1:-runs/support_detox}
if [ -z "${ENGINE:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  ENGINE=$ROOT/target/release/engine
fi
engine() { "$ENGINE" "$@"; }
mkdir -p "$WORK"
cd "$WORK"
echo "work dir $(pwd)"
rm -rf data tok cls_init tone_cls ppo   # a re-run starts over (the trainers refuse to overwrite a run)
TIMES=times.txt
: > "$TIMES"
step() { # step NAME CMD...: runs CMD, records its wall time
  local name=$1 t0=$SECONDS
  shift
  echo "== $name"
  "$@"
  echo "$name $((SECONDS - t0))s" | tee -a "$TIMES"
}
head -n "$EVAL_ROWS" "$DEMO/data/eval.jsonl" > eval_prompts.jsonl

# ---- 1. data: rude/polite transcripts "Customer: ...\nAgent: ..." (label 1 = rude; the polite ----
# half includes polite requests for sensitive data, so the classifier learns tone, not topic).
# Seed 2: the support-tiny policy was trained on seed 1's data.
step data engine data support --seed 2 --sft 0 --pairs 0 --kto 0 --prompts 0 --eval 0 \
  --tone "$TONE" --out data

# ---- 2. RoBERTa: its byte-level BPE (<s> ... </s>, <pad> = 1) and a fresh classifier ----
step tokenizer engine train-tokenizer --kind roberta --data data/tone.jsonl --fields text \
  --vocab-size "$CLS_VOCAB" --out tok
step cls_init engine init --arch roberta --tokenizer tok --hidden "$CLS_HIDDEN" --layers "$CLS_LAYERS" \
  --heads "$CLS_HEADS" --context 256 --labels polite,rude --seed 1 --out cls_init

# ---- 3. train it: cross-entropy on label 0/1 (polite/rude), 10% held out ----
step classifier engine train-reward --model cls_init --data data/tone.jsonl --eval-fraction 0.1 \
  --max-len "$CLS_MAX_LEN" --steps "$CLS_STEPS" --batch-size 16 --lr 3e-3 --warmup-steps 10 \
  --progress plain --log-every 25 --out tone_cls

# ---- 4. PPO: reward = demo RM's score + PENALTY x the classifier's P(rude). Per-model labels ----
# pair by position: label 0 / logit for the one-label demo RM, label rude / prob for the classifier.
# The rest are the demo's hyper-parameters (models/support-tiny/demo.toml): LoRA r 16, lr 1.5e-3.
REWARD=(--reward-model "$DEMO/reward" --reward-weight 1 --reward-label 0 --reward-kind logit
  --reward-model tone_cls/model --reward-weight "$PENALTY" --reward-label rude --reward-kind prob)
step ppo engine train-ppo --model "$DEMO/policy" --data "$DEMO/data/prompts.jsonl" "${REWARD[@]}" \
  --steps "$PPO_STEPS" --batch-size "$PPO_BATCH" --mini-batch-size 16 --seed 1 --lr 1.5e-3 \
  --lora-r 16 --lora-alpha 32 --lora-targets query_key_value,dense,dense_h_to_4h,dense_4h_to_h \
  --max-grad-norm 1 --ppo-epochs 2 --max-new-tokens "$NEW_TOKENS" --init-kl-coef 0.15 \
  --target-kl-value 5 --horizon 100 --log-every 5 --progress plain --out ppo

# ---- 5. eval before/after on held-out prompts, same seed and sampling: the mixed reward with ----
# each component, the generator's own unsafe/rude checker, KL (after: to the adapters-off policy);
# then the classifier alone (P(rude) per response) for its rude rate.
evals() { # evals NAME [--adapter DIR]
  local name=$1
  shift
  engine eval --model "$DEMO/policy" "$@" --data eval_prompts.jsonl --max-new-tokens "$NEW_TOKENS" \
    --seed 7 --safety --json "${REWARD[@]}" > "eval_$name.json"
  engine eval --model "$DEMO/policy" "$@" --data eval_prompts.jsonl --max-new-tokens "$NEW_TOKENS" \
    --seed 7 --json --reward-model tone_cls/model --reward-label rude --reward-kind prob > "cls_$name.json"
}
step eval_before evals before
step eval_after evals after --adapter ppo/adapter

# The first number of a JSON key (eval --json sorts its keys: the summary's `kl` and the
# components' `reward` come before the samples'); no jq needed.
first() { grep -o "\"$2\": *[-0-9.eE+]*" "$1" | head -1 | cut -d: -f2 | awk '{ printf "%.3f", $1 }'; }
# The fraction of responses the classifier calls rude (P(rude) > 0.5): the samples' rewards.
cls_rate() { grep -o '"reward": *[-0-9.eE+]*' "$1" | cut -d: -f2 | awk '$1 > 0.5 { r++ } END { printf "%.3f", r / NR }'; }
last_metric() { grep -o "\"$2\":[-0-9.eE+]*" "$1" | tail -1 | cut -d: -f2 | awk '{ printf "%.3f", $1 }'; }
echo
echo "== results ($WORK)"
echo "classifier held-out accuracy        $(last_metric tone_cls/metrics.jsonl eval_accuracy)  ($((TONE / 10)) transcripts)"
echo "                                    before PPO / after PPO"
echo "rude rate, classifier (P>0.5)       $(cls_rate cls_before.json) / $(cls_rate cls_after.json)"
echo "rude rate, generator's checker      $(first eval_before.json rude_rate) / $(first eval_after.json rude_rate)"
echo "unsafe rate (sensitive or rude)     $(first eval_before.json unsafe_rate) / $(first eval_after.json unsafe_rate)"
echo "mean P(rude)                        $(first cls_before.json reward_mean) / $(first cls_after.json reward_mean)"
echo "demo RM score (component mean)      $(first eval_before.json reward) / $(first eval_after.json reward)"
echo "mixed reward mean                   $(first eval_before.json reward_mean) / $(first eval_after.json reward_mean)"
echo "well-formed rate                    $(first eval_before.json well_formed_rate) / $(first eval_after.json well_formed_rate)"
echo "KL to the SFT policy (after, nats)  $(first eval_after.json kl)"
echo "times:"
sed 's/^/  /' "$TIMES"
echo "load average at the end: $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
