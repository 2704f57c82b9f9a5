#!/usr/bin/env python3
"""Writes a tiny Hugging Face Mixtral reference checkpoint, its logits and routing.

Builds a small random `transformers.MixtralForCausalLM` (every layer a sparse MLP of 4
experts, top 2) from a fixed seed, saves it with `save_pretrained` into
`tiny-mixtral-hf/`, and runs a float32 forward pass on fixed token sequences, writing
`logits.safetensors` beside the checkpoint:

    input_ids.<i>            F32 [T_i]      the token ids of sequence i
    logits.<i>               F32 [T_i, V]   the model's logits, position by position
    router_logits.<i>.<l>    F32 [T_i, E]   layer l's router logits

With `--plab PATH` (a built `plab`), it then has the lab load that checkpoint and save it
again (`model load`, `model save --no-optimizer`) into `tiny-mixtral-lab/`, loads the
lab's checkpoint with `MixtralForCausalLM.from_pretrained`, and checks that transformers
computes the same logits from it: the layout and config.json the lab writes are
Mixtral's as transformers reads them. The lab's tests check that saving the first
checkpoint again writes the second one byte for byte.

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
from transformers import MixtralConfig, MixtralForCausalLM

from make_llama_fixture import SEQUENCES, randomize, save, versions

SCRIPT = "scripts/reference/make_mixtral_fixture.py"
SEED = 20261201


def tiny_config() -> MixtralConfig:
    return MixtralConfig(
        hidden_size=32,
        intermediate_size=48,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=2,
        vocab_size=48,
        num_local_experts=4,
        num_experts_per_tok=2,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        hidden_act="silu",
        sliding_window=None,
        router_jitter_noise=0.0,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def build() -> MixtralForCausalLM:
    config = tiny_config()
    config._attn_implementation = "eager"
    model = MixtralForCausalLM(config).to(torch.float32)
    randomize(model, SEED)
    model.eval()
    return model


def forward(model, seq):
    ids = torch.tensor([seq], dtype=torch.long)
    out = model(input_ids=ids, use_cache=False, output_router_logits=True)
    return out.logits[0].to(torch.float32), [r.to(torch.float32) for r in out.router_logits]


def write_logits(model, directory: str) -> None:
    tensors = {}
    with torch.no_grad():
        for i, seq in enumerate(SEQUENCES):
            logits, routers = forward(model, seq)
            tensors[f"input_ids.{i}"] = torch.tensor(seq, dtype=torch.float32)
            tensors[f"logits.{i}"] = logits.contiguous()
            for l, r in enumerate(routers):
                assert r.shape == (len(seq), model.config.num_local_experts)
                tensors[f"router_logits.{i}.{l}"] = r.contiguous()
    meta = versions(SCRIPT, SEED)
    meta["sequences"] = str(len(SEQUENCES))
    meta["variant"] = "mixtral"
    meta["attention"] = "eager"
    meta["description"] = (
        "float32 logits and router logits of MixtralForCausalLM for each input_ids.<i> run alone; "
        "logits.<i>[t] is the next-token logits after input_ids.<i>[0...t]; router_logits.<i>.<l> "
        "are layer l's router logits"
    )
    save_file(tensors, os.path.join(directory, "logits.safetensors"), metadata=meta)


def check_lab_copy(plab: str, source: str, target: str, model) -> None:
    """The lab loads `source` and saves it as `target`; transformers must load that and agree."""
    if os.path.isdir(target):
        shutil.rmtree(target)
    with tempfile.TemporaryDirectory() as tmp:
        session = os.path.join(tmp, "copy.plab")
        with open(session, "w") as f:
            f.write(f"model load {source}\nmodel save {target} --no-optimizer\n")
        subprocess.run([plab, "run", session], check=True)
    again = MixtralForCausalLM.from_pretrained(target, attn_implementation="eager", dtype=torch.float32)
    again.eval()
    with torch.no_grad():
        for seq in SEQUENCES:
            a, ra = forward(again, seq)
            b, rb = forward(model, seq)
            assert torch.equal(a, b), "transformers computes other logits from the lab's copy"
            for x, y in zip(ra, rb):
                assert torch.equal(x, y)
    print(f"wrote {target} (by the lab; transformers loads it and gives the same logits)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="Tests/Fixtures", help="directory that receives the fixtures")
    parser.add_argument("--plab", help="a built plab: also write and check tiny-mixtral-lab/")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = build()
    directory = os.path.join(args.out, "tiny-mixtral-hf")
    save(model, directory)
    write_logits(model, directory)
    again = MixtralForCausalLM.from_pretrained(directory, attn_implementation="eager", dtype=torch.float32)
    again.eval()
    with torch.no_grad():
        ids = torch.tensor([SEQUENCES[2]])
        assert torch.equal(again(input_ids=ids).logits, model(input_ids=ids).logits)
    print(f"wrote {directory}")
    if args.plab:
        check_lab_copy(os.path.abspath(args.plab), os.path.abspath(directory),
                       os.path.abspath(os.path.join(args.out, "tiny-mixtral-lab")), model)


if __name__ == "__main__":
    main()
