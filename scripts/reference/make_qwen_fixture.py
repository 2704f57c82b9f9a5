#!/usr/bin/env python3
"""Writes tiny Hugging Face Qwen2, Qwen3 and Mistral reference checkpoints and their logits.

Builds small random models from fixed seeds and saves each with `save_pretrained`:

    tiny-qwen2-hf/        Qwen2ForCausalLM: biases on q, k, v; tied embeddings
    tiny-qwen3-hf/        Qwen3ForCausalLM: per-head q/k RMSNorm, head_dim 12 (hidden/heads = 8)
    tiny-qwen3-bias-hf/   Qwen3ForCausalLM with attention_bias (biases on q, k, v and o)
    tiny-mistral-hf/      MistralForCausalLM: head_dim 16 (hidden/heads = 8), no sliding window

then runs a float32 forward pass on fixed token sequences, writing `logits.safetensors`
beside each checkpoint:

    input_ids.<i>            F32 [T_i]      the token ids of sequence i
    logits.<i>               F32 [T_i, V]   the model's logits, position by position

With `--plab PATH` (a built `plab`), it then has the lab load each checkpoint and save it
again (`model load`, `model save --no-optimizer`) into `tiny-*-lab/`, loads the lab's
checkpoint with the family's `from_pretrained`, and checks that transformers computes the
same logits from it: the layout and config.json the lab writes are the family's as
transformers reads them. The lab's tests check that saving the first checkpoint again
writes the second one byte for byte.

Only the fixture generator is in Python; the lab's own code and tests are Swift.
Run it through make-fixture.sh (README.md in this directory).
"""

import argparse
import os
import shutil
import subprocess
import tempfile

import torch
from safetensors.torch import save_file
from transformers import (MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

from make_llama_fixture import SEQUENCES, randomize, save, versions

SCRIPT = "scripts/reference/make_qwen_fixture.py"
SEED = 20261207

COMMON = dict(
    hidden_size=32,
    intermediate_size=48,
    num_attention_heads=4,
    num_key_value_heads=2,
    num_hidden_layers=2,
    vocab_size=48,
    rms_norm_eps=1e-5,
    max_position_embeddings=64,
    hidden_act="silu",
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

# name: (model class, config, seed offset)
MODELS = {
    "tiny-qwen2-hf": (Qwen2ForCausalLM, lambda: Qwen2Config(
        **COMMON, rope_theta=10000.0, tie_word_embeddings=True, use_sliding_window=False), 0),
    "tiny-qwen3-hf": (Qwen3ForCausalLM, lambda: Qwen3Config(
        **COMMON, head_dim=12, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
        use_sliding_window=False), 1),
    "tiny-qwen3-bias-hf": (Qwen3ForCausalLM, lambda: Qwen3Config(
        **COMMON, head_dim=8, rope_theta=1000000.0, tie_word_embeddings=False, attention_bias=True,
        use_sliding_window=False), 2),
    "tiny-mistral-hf": (MistralForCausalLM, lambda: MistralConfig(
        **COMMON, head_dim=16, rope_theta=10000.0, tie_word_embeddings=False, sliding_window=None), 3),
}


def build(name: str):
    cls, make_config, offset = MODELS[name]
    config = make_config()
    config._attn_implementation = "eager"
    model = cls(config).to(torch.float32)
    randomize(model, SEED + offset)
    model.eval()
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def forward(model, seq):
    ids = torch.tensor([seq], dtype=torch.long)
    return model(input_ids=ids, use_cache=False).logits[0].to(torch.float32)


def write_logits(model, directory: str, name: str) -> None:
    tensors = {}
    with torch.no_grad():
        for i, seq in enumerate(SEQUENCES):
            tensors[f"input_ids.{i}"] = torch.tensor(seq, dtype=torch.float32)
            tensors[f"logits.{i}"] = forward(model, seq).contiguous()
    meta = versions(SCRIPT, SEED + MODELS[name][2])
    meta["sequences"] = str(len(SEQUENCES))
    meta["variant"] = name.removesuffix("-hf")
    meta["attention"] = "eager"
    meta["description"] = (
        f"float32 logits of {type(model).__name__} for each input_ids.<i> run alone; "
        "logits.<i>[t] is the next-token logits after input_ids.<i>[0...t]"
    )
    save_file(tensors, os.path.join(directory, "logits.safetensors"), metadata=meta)


def check_lab_copy(plab: str, source: str, target: str, model) -> None:
    """The lab loads `source` and saves it as `target`; transformers must load that and agree
    with `model`, the same class loaded from `source` (an in-memory model may differ from a
    loaded one in the last bits of a one-token sequence: another memory layout)."""
    if os.path.isdir(target):
        shutil.rmtree(target)
    with tempfile.TemporaryDirectory() as tmp:
        session = os.path.join(tmp, "copy.plab")
        with open(session, "w") as f:
            f.write(f"model load {source}\nmodel save {target} --no-optimizer\n")
        subprocess.run([plab, "run", session], check=True)
    again = type(model).from_pretrained(target, attn_implementation="eager", dtype=torch.float32)
    again.eval()
    assert again.config.tie_word_embeddings == model.config.tie_word_embeddings
    with torch.no_grad():
        for seq in SEQUENCES:
            assert torch.equal(forward(again, seq), forward(model, seq)), \
                f"transformers computes other logits from the lab's copy {target}"
    print(f"wrote {target} (by the lab; transformers loads it and gives the same logits)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="Tests/Fixtures", help="directory that receives the fixtures")
    parser.add_argument("--plab", help="a built plab: also write and check the tiny-*-lab/ copies")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    for name in MODELS:
        model = build(name)
        directory = os.path.join(args.out, name)
        save(model, directory)
        write_logits(model, directory, name)
        again = type(model).from_pretrained(directory, attn_implementation="eager", dtype=torch.float32)
        again.eval()
        with torch.no_grad():
            assert torch.equal(forward(again, SEQUENCES[2]), forward(model, SEQUENCES[2]))
        print(f"wrote {directory}")
        if args.plab:
            check_lab_copy(os.path.abspath(args.plab), os.path.abspath(directory),
                           os.path.abspath(os.path.join(args.out, name.removesuffix("-hf") + "-lab")), again)


if __name__ == "__main__":
    main()
