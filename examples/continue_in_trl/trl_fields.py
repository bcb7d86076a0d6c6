#!/usr/bin/env python3
"""Writes kernels-tests/fixtures/trl/config_fields.json: the keyword
arguments TRL's config classes and ModelConfig accept, from the installed TRL,
so that `kernels-tests/train/export_run.rs` checks every key `engine
export-run --to trl` writes against a real TRL without TRL in CI.

    /work/venvs/trl-latest/bin/python examples/continue_in_trl/trl_fields.py
(written with TRL 1.16.0 and transformers 5.23.0)
"""

import dataclasses
import json
import os

import transformers
import trl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "kernels-tests/fixtures/trl/config_fields.json")

classes = ["SFTConfig", "RewardConfig", "DPOConfig", "KTOConfig", "ModelConfig", "ScriptArguments",
           "DatasetMixtureConfig"]
out = {"versions": {"trl": trl.__version__, "transformers": transformers.__version__}}
for name in classes:
    out[name] = sorted(f.name for f in dataclasses.fields(getattr(trl, name)) if f.init)
with open(OUT, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(OUT, {k: len(v) for k, v in out.items() if k != "versions"})
