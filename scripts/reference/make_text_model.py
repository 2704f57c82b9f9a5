#!/usr/bin/env python3
"""Writes checkpoints/tiny-text-qwen3: a small random Qwen3 model with a real tokenizer.

A `Qwen3ForCausalLM` (2 layers, width 64, 4 heads of 16, 2 key/value heads, SwiGLU 128,
tied embeddings) whose vocabulary is the 1,006 tokens of the Llama-3-style tokenizer in
`Tests/Fixtures/tokenizers/llama3/` (trained by make_tokenizer_fixture.py), initialised by
transformers from a fixed seed and saved with `save_pretrained` in bfloat16 beside that
`tokenizer.json`: a directory laid out as a downloaded model is, small enough to commit.
`sessions/text.plab` loads it to show text going in and coming out of both engines. Its
weights are random: the text it writes is noise.

Only this generator is in Python; the lab and its tests are Swift.
"""

import argparse
import os
import shutil

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

SEED = 20261207


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(root, "checkpoints", "tiny-text-qwen3"))
    args = parser.parse_args()
    tokenizer = os.path.join(root, "Tests", "Fixtures", "tokenizers", "llama3", "tokenizer.json")
    torch.manual_seed(SEED)
    config = Qwen3Config(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=16, num_hidden_layers=2, vocab_size=1006, max_position_embeddings=256,
                         rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
                         bos_token_id=0, eos_token_id=1, initializer_range=0.1)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    model.save_pretrained(args.out, safe_serialization=True)
    shutil.copyfile(tokenizer, os.path.join(args.out, "tokenizer.json"))
    print(f"wrote {args.out}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
