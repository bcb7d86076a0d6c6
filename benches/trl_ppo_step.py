#!/usr/bin/env python3
"""TRL 0.11.4's classic PPOTrainer at the shape of `engine bench --ppo`.

The counterpart of src/bench/ppo_case.rs, for the ratio that issue 16 asks
for: a GPT-2 with hidden 96, 3 layers, 4 heads, MLP 384 and the real 50,257
vocab (the GPT-2 tokenizer from ../shared), random weights; batch 8, queries
of 8 random token ids, 24 new tokens by pure sampling, 4 PPO epochs,
mini-batch 4, full fine-tuning with TRL's frozen reference copy, and the
keyword reward of the bench (one point per " good", " great", " happy" among
the response's ids). torch runs on the CPU with 2 threads.

Run it in its own venv (trl==0.11.4, transformers==4.46.3, accelerate==1.1.1):

    /work/venvs/trl011/bin/python benches/trl_ppo_step.py [--steps 5] [--json]

One warm-up step, then `--steps` timed ones; prints the median seconds per
step (generation + `PPOTrainer.step`) and the split.
"""

import argparse
import json
import os
import statistics
import time
import warnings

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")

BATCH, QUERY, NEW_TOKENS = 8, 8, 24
KEYWORD_IDS = (922, 1049, 3772)  # " good", " great", " happy" in GPT-2's vocab


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--shared", default=SHARED, help="the shared/ folder (GPT-2 tokenizer)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from transformers import AutoTokenizer, GPT2Config
    from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer

    tok = AutoTokenizer.from_pretrained(os.path.join(args.shared, "tokenizers", "gpt2"))
    tok.pad_token = tok.eos_token
    assert len(tok) == 50257
    for k, w in zip(KEYWORD_IDS, (" good", " great", " happy")):
        assert tok.encode(w) == [k], w

    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=50257, n_embd=96, n_layer=3, n_head=4, n_inner=384, n_positions=1024
    )
    from transformers import GPT2LMHeadModel

    base = GPT2LMHeadModel(cfg)
    # from_pretrained also takes a model instance (and sets the PEFT flags).
    model = AutoModelForCausalLMWithValueHead.from_pretrained(base)
    ppo_cfg = PPOConfig(
        batch_size=BATCH,
        mini_batch_size=4,
        ppo_epochs=4,
        gradient_accumulation_steps=1,
        learning_rate=1.41e-5,
        seed=0,
        log_with=None,
    )
    trainer = PPOTrainer(ppo_cfg, model, ref_model=None, tokenizer=tok)
    gen_kwargs = dict(
        min_length=-1,
        top_k=0.0,
        top_p=1.0,
        do_sample=True,
        pad_token_id=tok.eos_token_id,
        max_new_tokens=NEW_TOKENS,
    )
    g = torch.Generator().manual_seed(7)
    queries = [torch.randint(0, 50000, (QUERY,), generator=g) for _ in range(BATCH)]

    def one_step():
        t0 = time.perf_counter()
        responses = trainer.generate(queries, return_prompt=False, **gen_kwargs)
        t1 = time.perf_counter()
        rewards = [
            torch.tensor(float(sum(k in r.tolist() for k in KEYWORD_IDS))) for r in responses
        ]
        trainer.step(queries, list(responses), rewards)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, t2 - t0

    one_step()
    rows = [one_step() for _ in range(args.steps)]
    med = lambda i: statistics.median(r[i] for r in rows)
    out = {
        "impl": "trl-0.11.4",
        "torch": torch.__version__,
        "threads": args.threads,
        "steps": args.steps,
        "step_s": med(2),
        "generate_s": med(0),
        "trainer_step_s": med(1),
        "all_step_s": [round(r[2], 4) for r in rows],
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"TRL 0.11.4 PPO step (median of {args.steps}): {out['step_s']:.3f} s "
            f"= generate {out['generate_s']:.3f} s + PPOTrainer.step {out['trainer_step_s']:.3f} s "
            f"(forward passes + 4 epochs of updates); torch {torch.__version__}, "
            f"{args.threads} threads"
        )


if __name__ == "__main__":
    main()
