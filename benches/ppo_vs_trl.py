#!/usr/bin/env python3
"""engine's PPO step against TRL 0.11.4's, back to back on one machine.

Runs `engine bench --ppo --json` and benches/trl_ppo_step.py (same shapes:
GPT-2 hidden 96, 3 layers, 4 heads, vocab 50,257, batch 8, queries of 8
tokens, 24 new tokens, 4 epochs, mini-batch 4, full fine-tuning, keyword
reward) alternately for `--rounds` rounds, so that a busy machine slows both
alike, and prints each side's median step time, its split and the ratio
engine ÷ TRL (issue 16's bar: ≤ 3).

    python3 benches/ppo_vs_trl.py [--engine target/release/engine]
        [--python /work/venvs/trl011/bin/python] [--rounds 1] [--steps 5]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def engine_round(engine):
    out = subprocess.run(
        [engine, "bench", "--ppo", "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            rows[r["op"]] = r["ms"] / 1e3
    return rows


def trl_round(python, steps):
    out = subprocess.run(
        [python, os.path.join(HERE, "trl_ppo_step.py"), "--json", "--steps", str(steps)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default=os.path.join(HERE, "..", "target", "release", "engine"))
    ap.add_argument("--python", default="/work/venvs/trl011/bin/python")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5, help="TRL's timed steps per round")
    args = ap.parse_args()
    eng, trl = [], []
    for i in range(args.rounds):
        eng.append(engine_round(args.engine))
        trl.append(trl_round(args.python, args.steps))
        e, t = eng[-1], trl[-1]
        print(
            f"round {i}: engine {e['ppo_step']:.3f} s, TRL {t['step_s']:.3f} s, "
            f"ratio {e['ppo_step'] / t['step_s']:.2f}",
            file=sys.stderr,
        )
    med = lambda xs: statistics.median(xs)
    e_step = med([e["ppo_step"] for e in eng])
    t_step = med([t["step_s"] for t in trl])
    e_gen = med([e["ppo_generate"] for e in eng])
    keys = ("ppo_forward", "ppo_reference", "ppo_train", "ppo_train_forward",
            "ppo_train_backward", "ppo_optimizer")
    e_rest = {k: med([e.get(k, float("nan")) for e in eng]) for k in keys}
    print(
        f"engine: {e_step:.3f} s/step = generate {e_gen:.3f} + policy fwd "
        f"{e_rest['ppo_forward']:.3f} + ref fwd {e_rest['ppo_reference']:.3f} + update "
        f"{e_rest['ppo_train']:.3f} (forward {e_rest['ppo_train_forward']:.3f}, backward "
        f"{e_rest['ppo_train_backward']:.3f}, optimizer {e_rest['ppo_optimizer']:.3f})"
    )
    print(
        f"TRL 0.11.4: {t_step:.3f} s/step = generate {med([t['generate_s'] for t in trl]):.3f} "
        f"+ PPOTrainer.step {med([t['trainer_step_s'] for t in trl]):.3f}"
    )
    print(f"ratio engine / TRL: {e_step / t_step:.2f} (bar: <= 3)")


if __name__ == "__main__":
    main()
