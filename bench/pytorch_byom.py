#!/usr/bin/env python3
"""The bring-your-own-model benchmark's model and its peer measurement.

`make DIR`: a random Qwen2ForCausalLM of Qwen2.5-0.5B's shape (24 layers, width 896, 14
heads, 2 key/value heads, SwiGLU 4864, vocabulary 151,936, tied embeddings), seeded, saved
with save_pretrained in bfloat16 (about 1 GB) into DIR, the layout a downloaded model has.

`peer DIR`: PyTorch + transformers on the lab's work: 8 prompts of 8 tokens, 128 new tokens
each sampled with a KV cache under BF16 autocast (`generate`, no early stop), then the
sequences recomputed by one teacher-forced forward under autocast (the training engine's
log-probabilities). Prints one JSON line: load seconds, rollout seconds, recompute seconds,
peak RSS in MB. 2 threads.

Only the benchmark runs Python; the lab and its tests do not.
"""

import json
import resource
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

SHAPE = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
             num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
             rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643)


def make(path):
    torch.manual_seed(20261207)
    config = Qwen2Config(**SHAPE)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path, safe_serialization=True)
    print(f"wrote {path}: {sum(p.numel() for p in model.parameters())} parameters")


def peer(path):
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    model = Qwen2ForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    model.eval()
    t_load = time.perf_counter() - t0
    generator = torch.Generator().manual_seed(1)
    prompts = torch.randint(3, 1000, (8, 8), generator=generator)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        t0 = time.perf_counter()
        out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True, max_new_tokens=128,
                             min_new_tokens=128, top_k=0, top_p=1.0, temperature=1.0, pad_token_id=0)
        t_rollout = time.perf_counter() - t0
        t0 = time.perf_counter()
        logits = model(out).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, out[:, 1:, None])
        t_recompute = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"load_s": t_load, "rollout_s": t_rollout, "recompute_s": t_recompute,
                      "tokens": int(out.shape[0] * (out.shape[1] - 8)), "peak_rss_mb": rss,
                      "logp_mean": float(logp.mean()), "torch": torch.__version__}))


if __name__ == "__main__":
    {"make": make, "peer": peer}[sys.argv[1]](sys.argv[2])
