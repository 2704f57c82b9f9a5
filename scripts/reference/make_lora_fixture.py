#!/usr/bin/env python3
"""Writes a tiny Llama model with PEFT LoRA adapters, and its logits.

Builds the tiny Llama of make_llama_fixture.py (untied), wraps it with
`peft.get_peft_model` and a `LoraConfig` (rank 4, alpha 8, on q_proj, v_proj, o_proj,
gate_proj and down_proj, no dropout), fills every adapter factor from a fixed generator
(B nonzero, so the adapters change the model), and saves both the base model
(`save_pretrained`) and the adapter (`PeftModel.save_pretrained`: adapter_config.json,
adapter_model.safetensors) into `tiny-llama-lora-peft/`, with the adapted model's float32
logits on fixed sequences in `logits.safetensors`:

    input_ids.<i>   F32 [T_i]      the token ids of sequence i
    logits.<i>      F32 [T_i, V]   the adapted model's logits, position by position

With `--plab PATH` (a built `plab`) the lab then loads that directory and saves it again
(`model load`, `model save --no-optimizer`) into `tiny-llama-lora-lab/`, and PEFT loads the
lab's copy (`PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(DIR), DIR)`) and
must compute the same logits: the adapter files the lab writes are PEFT's.

Only the fixture generator is in Python; the lab's own code and tests are Swift.
Run it through make-fixture.sh (README.md in this directory).
"""

import argparse
import os
import shutil
import subprocess
import tempfile

import peft
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

from make_llama_fixture import SEQUENCES, build, save, versions

SCRIPT = "scripts/reference/make_lora_fixture.py"
SEED = 20261202
TARGETS = ["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]


def adapted(directory: str):
    """The adapted model; the base model is saved into `directory` first (PEFT wraps it in place)."""
    base = build(tied=False)
    save(base, directory)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0, bias="none",
                        task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) / p.shape[-1] ** 0.5)
    model.eval()
    return model


def logits_of(model, seq):
    with torch.no_grad():
        return model(input_ids=torch.tensor([seq], dtype=torch.long), use_cache=False).logits[0].to(torch.float32)


def write(model, directory: str) -> None:
    model.save_pretrained(directory)
    # The model card PEFT writes beside the adapter is not part of what the lab reads.
    readme = os.path.join(directory, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    tensors = {}
    for i, seq in enumerate(SEQUENCES):
        tensors[f"input_ids.{i}"] = torch.tensor(seq, dtype=torch.float32)
        tensors[f"logits.{i}"] = logits_of(model, seq).contiguous()
    meta = versions(SCRIPT, SEED)
    meta["peft_version"] = peft.__version__
    meta["sequences"] = str(len(SEQUENCES))
    meta["variant"] = "lora"
    meta["description"] = ("float32 logits of the LoRA-adapted LlamaForCausalLM (PeftModel) for each input_ids.<i> run "
                           "alone; logits.<i>[t] is the next-token logits after input_ids.<i>[0...t]")
    save_file(tensors, os.path.join(directory, "logits.safetensors"), metadata=meta)


def load(directory: str):
    base = LlamaForCausalLM.from_pretrained(directory, attn_implementation="eager", dtype=torch.float32)
    model = PeftModel.from_pretrained(base, directory)
    model.eval()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="Tests/Fixtures", help="directory that receives the fixtures")
    parser.add_argument("--plab", help="a built plab: also write and check tiny-llama-lora-lab/")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    directory = os.path.join(args.out, "tiny-llama-lora-peft")
    model = adapted(directory)
    write(model, directory)
    again = load(directory)
    for seq in SEQUENCES:
        assert torch.equal(logits_of(again, seq), logits_of(model, seq)), "PEFT does not read back its own save"
    print(f"wrote {directory}")
    if args.plab:
        target = os.path.abspath(os.path.join(args.out, "tiny-llama-lora-lab"))
        if os.path.isdir(target):
            shutil.rmtree(target)
        with tempfile.TemporaryDirectory() as tmp:
            session = os.path.join(tmp, "copy.plab")
            with open(session, "w") as f:
                f.write(f"model load {os.path.abspath(directory)}\nmodel save {target} --no-optimizer\n")
            subprocess.run([os.path.abspath(args.plab), "run", session], check=True)
        copy = load(target)
        for seq in SEQUENCES:
            assert torch.equal(logits_of(copy, seq), logits_of(model, seq)), "PEFT computes other logits from the lab's copy"
        print(f"wrote {target} (by the lab; PEFT loads it and gives the same logits)")


if __name__ == "__main__":
    main()
