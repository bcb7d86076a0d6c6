#!/usr/bin/env bash
# A Bradley-Terry reward model on Anthropic hh-rlhf, end to end with engine's own commands:
#   tokenizer -> fresh GPT-NeoX -> SFT on the chosen dialogues -> reward model on the pairs
#   (pairwise accuracy on held-out pairs) -> scoring new responses with best-of-n.
# Usage: examples/hh_rlhf_reward/run.sh [WORK_DIR]      (default ./runs/hh_rlhf_reward)
#   QUICK=1   a ~2-minute smoke run (tiny steps and rows)
#   ENGINE=/path/to/engine   use this binary (default: cargo build --release, then target/release/engine)
#   SHARED=/path/to/shared   the datasets folder's parent (default: <repo>/../shared)
set -euo pipefail

# ---- knobs: the default run takes about 20 minutes on a loaded 2-core llvmpipe machine ----
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  ROWS_EVERY=8 SFT_STEPS=6 RM_STEPS=6 EVAL_FRACTION=0.1 BON_PROMPTS=4
else
  ROWS_EVERY=1                    # use every pair of the two training splits (4666)
  SFT_STEPS=${SFT_STEPS:-60}
  RM_STEPS=${RM_STEPS:-120}
  EVAL_FRACTION=0.1               # held-out pairs (seeded split of the same files)
  BON_PROMPTS=16                  # best-of-n prompts from a split not trained on
fi
BATCH=8             # pairs per reward step (16 sequences); SFT dialogues per step
VOCAB=4096 HIDDEN=128 LAYERS=2 HEADS=4 CONTEXT=256

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/../.." && pwd))
SHARED=${SHARED:-$ROOT/../shared}
HH=$SHARED/datasets/hh-rlhf
WORK=${1:-runs/hh_rlhf_reward}
if [ -z "${ENGINE:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  ENGINE=$ROOT/target/release/engine
fi
engine() { "$ENGINE" "$@"; }
for f in helpful-base-test harmless-base-test helpful-online-test; do
  [ -f "$HH/$f.jsonl.gz" ] || { echo "missing $HH/$f.jsonl.gz (set SHARED=...)" >&2; exit 1; }
done
mkdir -p "$WORK"
cd "$WORK"
echo "work dir $(pwd)"
rm -rf tok init sft rm   # a re-run starts over (the trainers refuse to overwrite a run)
TIMES=times.txt
: > "$TIMES"
step() { # step NAME CMD...: runs CMD, records its wall time
  local name=$1 t0=$SECONDS
  shift
  echo "== $name"
  "$@"
  echo "$name $((SECONDS - t0))s" | tee -a "$TIMES"
}
last_metric() { grep -o "\"$2\":[-0-9.eE+]*" "$1" | tail -1 | cut -d: -f2 | awk '{ printf "%.3f", $1 }'; }

# ---- data: the shared copy holds hh-rlhf's test splits; two train, one gives unseen prompts ----
prepare() {
  zcat "$HH/helpful-base-test.jsonl.gz" "$HH/harmless-base-test.jsonl.gz" |
    awk -v n="$ROWS_EVERY" 'NR % n == 0' | gzip > pairs.jsonl.gz
  # Prompts: the chosen dialogue up to its last "\n\nAssistant:" (the shared prompt), as
  # {"prompt": ...}. sed works on the JSON text; the markers are escaped there as \n.
  zcat "$HH/helpful-online-test.jsonl.gz" |
    sed -E -e 's/", "rejected": ".*$//' -e 's/^\{"chosen": "(.*\\n\\nAssistant:).*$/{"prompt": "\1"}/' |
    grep '^{"prompt"' | awk -v m="$BON_PROMPTS" 'NR % 7 == 0 && c < m { print; c++ }' > prompts.jsonl
  echo "$(zcat pairs.jsonl.gz | wc -l) pairs ($EVAL_FRACTION held out), $(wc -l < prompts.jsonl) best-of-n prompts"
}
step data prepare

# ---- 1. tokenizer and a fresh GPT-NeoX with the hh template ----
step tokenizer engine train-tokenizer --data pairs.jsonl.gz --fields chosen,rejected --vocab-size "$VOCAB" --out tok
step init engine init --arch gpt-neox --tokenizer tok --hidden "$HIDDEN" --layers "$LAYERS" --heads "$HEADS" \
  --context "$CONTEXT" --template hh --seed 1 --out init

# ---- 2. SFT: language modelling on the chosen dialogues (the reward model starts from it) ----
step sft engine train-sft --model init --data pairs.jsonl.gz --columns text=chosen --steps "$SFT_STEPS" \
  --batch-size "$BATCH" --lr 2e-3 --warmup-steps 10 --progress plain --log-every 25 --out sft

# ---- 3. reward model: Bradley-Terry on (prompt, chosen, rejected); the shared prompt is ----
# extracted as TRL does (common prefix up to the last "\n\nAssistant:").
step reward engine train-reward --model sft/model --data pairs.jsonl.gz --eval-fraction "$EVAL_FRACTION" \
  --template hh --loss bt --skip-bad-rows --steps "$RM_STEPS" --batch-size "$BATCH" --lr 3e-4 --warmup-steps 10 \
  --progress plain --log-every 25 --out rm

# ---- 4. scoring with it: best-of-4 responses of the SFT model on unseen prompts ----
step best_of_n engine best-of-n --model sft/model --reward-model rm/model --data prompts.jsonl --n 4 \
  --max-new-tokens 32 --seed 7 --out best_of_4.jsonl | tee best_of_n.txt

echo
echo "== results ($WORK)"
echo "held-out pairwise accuracy  $(last_metric rm/metrics.jsonl eval_accuracy)"
echo "train pairwise accuracy     $(last_metric rm/metrics.jsonl accuracy) (last step)"
echo "best-of-n                   $(grep "^best-of-" best_of_n.txt)"
echo "times:"
sed 's/^/  /' "$TIMES"
