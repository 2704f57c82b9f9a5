#!/usr/bin/env python3
"""Writes a sharded bfloat16 checkpoint of the tiny Llama fixture, as transformers shards.

Loads `Tests/Fixtures/tiny-llama/` (written by make_llama_fixture.py) with
`LlamaForCausalLM.from_pretrained`, casts it to bfloat16 and saves it with
`save_pretrained(..., max_shard_size="20KB")` into `tiny-llama-sharded/`: several
`model-0000K-of-0000N.safetensors` files and `model.safetensors.index.json`, the layout a
large model downloaded from a hub has. Its values must equal those of `tiny-llama-bf16/`
(the same model rounded to nearest-even bfloat16, one file), which the lab's tests check.

Only the fixture generator is in Python; the lab's own code and tests are Swift.
Run it through make-fixture.sh (README.md in this directory).
"""

import argparse
import os
import shutil

import torch
from transformers import LlamaForCausalLM


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures"))
    args = parser.parse_args()
    source = os.path.join(args.out, "tiny-llama")
    target = os.path.join(args.out, "tiny-llama-sharded")
    model = LlamaForCausalLM.from_pretrained(source, torch_dtype=torch.float32)
    model = model.to(torch.bfloat16)
    if os.path.isdir(target):
        shutil.rmtree(target)
    model.save_pretrained(target, safe_serialization=True, max_shard_size="20KB")
    # The generation config is not part of the fixture.
    generation = os.path.join(target, "generation_config.json")
    if os.path.exists(generation):
        os.remove(generation)
    shards = sorted(f for f in os.listdir(target) if f.endswith(".safetensors"))
    print(f"wrote {target}: {len(shards)} shards and model.safetensors.index.json")


if __name__ == "__main__":
    main()
