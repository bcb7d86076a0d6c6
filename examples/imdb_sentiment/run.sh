#!/usr/bin/env bash
# IMDB sentiment (TRL's gpt2-sentiment recipe), end to end with engine's own commands:
#   tokenizers -> fresh GPT-2 policy -> SFT on review text
#   -> fresh DistilBERT classifier trained on the IMDB labels (the reward model)
#   -> PPO toward positive reviews with its POSITIVE logit -> eval before/after.
# Usage: examples/imdb_sentiment/run.sh [WORK_DIR]      (default ./runs/imdb_sentiment)
#   QUICK=1   a ~2-minute smoke run (tiny steps and rows)
#   ENGINE=/path/to/engine   use this binary (default: cargo build --release, then target/release/engine)
#   SHARED=/path/to/shared   the datasets folder's parent (default: <repo>/../shared)
set -euo pipefail

# ---- knobs: the default run takes about 15 minutes on a loaded 2-core llvmpipe machine ----
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  SFT_EVERY=30 SFT_STEPS=8 RM_EVERY=60 RM_STEPS=6 TEST_EVERY=250 PROMPTS=48 EVAL_PROMPTS=16
  PPO_STEPS=2
else
  SFT_EVERY=3 SFT_STEPS=${SFT_STEPS:-100}   # every 3rd training review; optimizer steps
  RM_EVERY=${RM_EVERY:-6} RM_STEPS=${RM_STEPS:-150}   # every 6th training review (4166, both labels)
  TEST_EVERY=50                             # every 50th test review (500) for held-out accuracy
  PROMPTS=512 EVAL_PROMPTS=128              # PPO prompts (train split) / eval prompts (test split)
  PPO_STEPS=${PPO_STEPS:-40}
fi
BATCH=16            # SFT and reward-model batch
PPO_BATCH=32        # rollouts per PPO step (two optimizer mini-batches of 16)
PPO_LR=${PPO_LR:-1e-4}
NEW_TOKENS=24       # response length (TRL's example samples 4-16 new tokens)
VOCAB=4096 HIDDEN=128 LAYERS=2 HEADS=4 CONTEXT=64   # the GPT-2 policy
CLS_VOCAB=8192 CLS_HIDDEN=128 CLS_LAYERS=2 CLS_HEADS=4   # the DistilBERT classifier
CLS_MAX_LEN=96      # classifier training truncates reviews to this many WordPiece tokens

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/../.." && pwd))
SHARED=${SHARED:-$ROOT/../shared}
IMDB=$SHARED/datasets/imdb
WORK=${1:-runs/imdb_sentiment}
if [ -z "${ENGINE:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  ENGINE=$ROOT/target/release/engine
fi
engine() { "$ENGINE" "$@"; }
for f in imdb_train.jsonl.gz imdb_test.jsonl.gz; do
  [ -f "$IMDB/$f" ] || { echo "missing $IMDB/$f (set SHARED=...)" >&2; exit 1; }
done
mkdir -p "$WORK"
cd "$WORK"
echo "work dir $(pwd)"
rm -rf tok cls_tok init cls_init sft rm ppo   # a re-run starts over (the trainers refuse to overwrite a run)
TIMES=times.txt
: > "$TIMES"
step() { # step NAME CMD...: runs CMD, records its wall time
  local name=$1 t0=$SECONDS
  shift
  echo "== $name"
  "$@"
  echo "$name $((SECONDS - t0))s" | tee -a "$TIMES"
}
# The last value of a JSON key in a JSONL file (no jq needed).
last_metric() { grep -o "\"$2\":[-0-9.eE+]*" "$1" | tail -1 | cut -d: -f2 | awk '{ printf "%.3f", $1 }'; }

# ---- data: every Nth row, because the IMDB files are sorted by label ----
every() { zcat "$1" | awk -v n="$2" 'NR % n == 0'; }
# Prompts: the first 2-6 words of a review (TRL samples 2-8 tokens), COUNT of them spread over
# the file (both labels). The cut is at spaces, so the text's JSON escapes stay whole; prompts
# with HTML (<br />) are left out.
prompts() { # prompts FILE COUNT
  local stride=$((25000 * 10 / ($2 * 13)))
  zcat "$1" | awk -v n="$stride" -v m="$2" 'NR % n == 0 && c < m {
    k = 2 + c % 5; p = $2; for (i = 3; i <= k + 1; i++) p = p " " $i
    if (p ~ /<|", "label"/) next
    print "{\"prompt\": " p "\"}"; c++ }'
}
prepare() {
  every "$IMDB/imdb_train.jsonl.gz" 10 | gzip > tok_text.jsonl.gz
  every "$IMDB/imdb_train.jsonl.gz" "$SFT_EVERY" | gzip > sft.jsonl.gz
  every "$IMDB/imdb_train.jsonl.gz" "$RM_EVERY" | gzip > rm_train.jsonl.gz
  every "$IMDB/imdb_test.jsonl.gz" "$TEST_EVERY" | gzip > rm_test.jsonl.gz
  prompts "$IMDB/imdb_train.jsonl.gz" "$PROMPTS" > ppo_prompts.jsonl
  prompts "$IMDB/imdb_test.jsonl.gz" "$EVAL_PROMPTS" > eval_prompts.jsonl
  echo "sft $(zcat sft.jsonl.gz | wc -l) rows, classifier $(zcat rm_train.jsonl.gz | wc -l)" \
    "train / $(zcat rm_test.jsonl.gz | wc -l) test, prompts $(wc -l < ppo_prompts.jsonl)" \
    "ppo / $(wc -l < eval_prompts.jsonl) eval"
}
step data prepare

# ---- 1. tokenizers and fresh models: a GPT-2 policy (byte-level BPE) and a DistilBERT ----
# sentiment classifier (its own lower-casing WordPiece with [CLS] ... [SEP], as distilbert-base)
step tokenizer engine train-tokenizer --data tok_text.jsonl.gz --fields text --vocab-size "$VOCAB" --out tok
step cls_tokenizer engine train-tokenizer --kind wordpiece --data tok_text.jsonl.gz --fields text \
  --vocab-size "$CLS_VOCAB" --out cls_tok
step init engine init --arch gpt2 --tokenizer tok --hidden "$HIDDEN" --layers "$LAYERS" --heads "$HEADS" \
  --context "$CONTEXT" --template plain --seed 1 --out init
step cls_init engine init --arch distilbert --tokenizer cls_tok --hidden "$CLS_HIDDEN" --layers "$CLS_LAYERS" \
  --heads "$CLS_HEADS" --context 512 --labels NEGATIVE,POSITIVE --seed 1 --out cls_init

# ---- 2. SFT: language modelling on review text (text rows: loss on every token) ----
step sft engine train-sft --model init --data sft.jsonl.gz --steps "$SFT_STEPS" --batch-size "$BATCH" \
  --lr 2e-3 --warmup-steps 10 --progress plain --log-every 25 --out sft

# ---- 3. reward model: the DistilBERT classifier, cross-entropy on label 0/1 (NEGATIVE/POSITIVE) ----
step reward engine train-reward --model cls_init --data rm_train.jsonl.gz --eval-data rm_test.jsonl.gz \
  --max-len "$CLS_MAX_LEN" --steps "$RM_STEPS" --batch-size "$BATCH" --lr 1e-3 --warmup-steps 10 \
  --progress plain --log-every 20 --out rm

# ---- 4. PPO toward positive reviews: the reward is the classifier's POSITIVE logit on the ----
# decoded prompt + response, re-tokenized with its WordPiece. Full fine-tuning of the small policy,
# KL to a frozen copy of the SFT model. (A user's GPT-2 would use --lora-r 16 [--quant nf4]: see README.)
step ppo engine train-ppo --model sft/model --template plain --reward-model rm/model --reward-label POSITIVE \
  --data ppo_prompts.jsonl --steps "$PPO_STEPS" --batch-size "$PPO_BATCH" --mini-batch-size 16 --lr "$PPO_LR" \
  --max-new-tokens "$NEW_TOKENS" --init-kl-coef 0.05 --log-every 10 --progress plain --out ppo

# ---- 5. eval before/after on held-out prompts, same seed and sampling ----
step eval_before engine eval --model sft/model --reward-model rm/model --reward-label POSITIVE \
  --data eval_prompts.jsonl --max-new-tokens "$NEW_TOKENS" --seed 7 > eval_before.txt
step eval_after engine eval --model ppo/model --reference-model sft/model \
  --reward-model rm/model --reward-label POSITIVE --data eval_prompts.jsonl --max-new-tokens "$NEW_TOKENS" --seed 7 > eval_after.txt

field() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
echo
echo "== results ($WORK)"
echo "classifier held-out accuracy  $(last_metric rm/metrics.jsonl eval_accuracy)  ($(zcat rm_test.jsonl.gz | wc -l) test reviews)"
echo "reward mean before PPO        $(field eval_before.txt eval/reward_mean)"
echo "reward mean after PPO         $(field eval_after.txt eval/reward_mean)"
echo "KL to the SFT policy (after)  $(field eval_after.txt eval/kl)"
echo "distinct-2 before / after     $(field eval_before.txt eval/distinct_2) / $(field eval_after.txt eval/distinct_2)"
echo "times:"
sed 's/^/  /' "$TIMES"
echo "load average at the end: $(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
