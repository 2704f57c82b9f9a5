#!/usr/bin/env python3
"""Writes tiny Hugging Face Llama reference checkpoints and their logits.

For each variant (untied LM head, tied LM head) this builds a small random
`transformers.LlamaForCausalLM` from a fixed seed, saves it with
`save_pretrained(..., safe_serialization=True)`, runs a float32 forward pass on a
few fixed token sequences and writes `logits.safetensors` beside the checkpoint:

    input_ids.<i>   F32 [T_i]      the token ids of sequence i (exact small integers)
    logits.<i>      F32 [T_i, V]   the model's logits for sequence i, position by position

Each sequence is run alone (batch of one, no padding, no attention mask), with the
eager attention implementation. `__metadata__` records the torch, transformers and
safetensors versions, the script, the seed and the number of sequences (the
"version header"), so a comparison can say which reference it used.

The untied model is also saved in bfloat16 (`tiny-llama-bf16/`, no logits): a real
BF16 safetensors file written by torch, whose values must equal the float32
fixture's values rounded to nearest-even bfloat16.

Only the fixture generator is in Python; the lab's own code and tests are Swift.
Run it through make-fixture.sh (README.md in this directory).
"""

import argparse
import json
import os
import shutil

import safetensors
import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

SCRIPT = "scripts/reference/make_llama_fixture.py"
SEED = 20240611

# Fixed token sequences (ids below the vocabulary size 48), of several lengths so a
# forward pass is checked at the first position, at a few, and beyond 32.
SEQUENCES = [
    [1],
    [1, 5, 9, 13, 2],
    [1, 47, 0, 3, 3, 3, 30, 12, 7, 44, 21, 21, 8, 19, 40, 2],
    [(7 * i + 3) % 48 for i in range(33)],
]


def tiny_config(tied: bool) -> LlamaConfig:
    return LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
        vocab_size=48,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        max_position_embeddings=64,
        tie_word_embeddings=tied,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def randomize(model: LlamaForCausalLM, seed: int) -> None:
    """Fills every parameter from a fixed generator, in sorted name order.

    Weights are normal with standard deviation 1/sqrt(fan_in) (so activations keep a
    unit scale and the logits are far from uniform); norm weights are 1 + 0.1 N(0, 1),
    so that a forward pass which ignored them would disagree.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float32))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) / fan_in ** 0.5)


def build(tied: bool) -> LlamaForCausalLM:
    config = tiny_config(tied)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).to(torch.float32)
    randomize(model, SEED + (1 if tied else 0))
    model.eval()
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def versions(script: str = SCRIPT, seed: int = SEED) -> dict:
    return {
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "safetensors_version": safetensors.__version__,
        "script": script,
        "seed": str(seed),
    }


def save(model, directory: str) -> None:
    if os.path.isdir(directory):
        shutil.rmtree(directory)
    model.save_pretrained(directory, safe_serialization=True)
    # generation_config.json is not part of what the lab reads; keep the fixture minimal.
    extra = os.path.join(directory, "generation_config.json")
    if os.path.exists(extra):
        os.remove(extra)


def write_logits(model: LlamaForCausalLM, directory: str, tied: bool) -> None:
    tensors = {}
    with torch.no_grad():
        for i, seq in enumerate(SEQUENCES):
            ids = torch.tensor([seq], dtype=torch.long)
            logits = model(input_ids=ids, use_cache=False).logits[0].to(torch.float32)
            assert logits.shape == (len(seq), model.config.vocab_size)
            tensors[f"input_ids.{i}"] = ids[0].to(torch.float32).contiguous()
            tensors[f"logits.{i}"] = logits.contiguous()
    meta = versions()
    meta["sequences"] = str(len(SEQUENCES))
    meta["variant"] = "tied" if tied else "untied"
    meta["attention"] = "eager"
    meta["description"] = (
        "float32 logits of LlamaForCausalLM for each input_ids.<i> run alone; "
        "logits.<i>[t] is the next-token logits after input_ids.<i>[0...t]"
    )
    save_file(tensors, os.path.join(directory, "logits.safetensors"), metadata=meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="Tests/Fixtures", help="directory that receives the fixtures")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    for tied in (False, True):
        model = build(tied)
        directory = os.path.join(args.out, "tiny-llama-tied" if tied else "tiny-llama")
        save(model, directory)
        write_logits(model, directory, tied)
        # Reload through transformers and check the forward pass is reproduced.
        again = LlamaForCausalLM.from_pretrained(directory, attn_implementation="eager", dtype=torch.float32)
        again.eval()
        with torch.no_grad():
            ids = torch.tensor([SEQUENCES[2]])
            assert torch.equal(again(input_ids=ids).logits, model(input_ids=ids).logits)
        print(f"wrote {directory}")
        if not tied:
            bf16_dir = os.path.join(args.out, "tiny-llama-bf16")
            save(model.to(torch.bfloat16), bf16_dir)
            print(f"wrote {bf16_dir}")

    with open(os.path.join(args.out, "tiny-llama", "config.json")) as f:
        print(json.dumps(json.load(f), indent=1, sort_keys=True))
    print(json.dumps(versions()))


if __name__ == "__main__":
    main()
