"""The peer of `plab bench engines`: the same work in PyTorch with Hugging Face's LlamaForCausalLM.

Run by bench/compare-pytorch.sh inside a throwaway virtual environment; never by the tests.

The work, for each model size and precision (fp32, bf16):
- rollout: 64 prompts of 8 tokens, 32 new tokens each, sampled with a KV cache
  (`generate`, no end token, so every sequence decodes all 32);
- training step: one teacher-forced forward and backward over those 64 × 40 tokens.
BF16 is `torch.autocast("cpu", dtype=torch.bfloat16)` around float32 weights, as mixed-precision
training does. Times are the best of repeated calls after a warm-up, as `plab bench` takes them.
Prints one JSON object a line: {"name", "seconds", "tokens"}.
"""

import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# The shapes of `benchConfigs` in Sources/Lab/Bench.swift.
CONFIGS = {
    "default": dict(hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=2,
                    num_hidden_layers=4),
    "10M": dict(hidden_size=384, intermediate_size=1024, num_attention_heads=6, num_key_value_heads=6,
                num_hidden_layers=6),
}
VOCAB = 50


def best_time(body, budget):
    body()
    best = float("inf")
    start = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        body()
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--sizes", default="default,10M")
    parser.add_argument("--presets", default="fp32,bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    for label in args.sizes.split(","):
        config = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
                             tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                             attn_implementation="sdpa", **CONFIGS[label])
        model = LlamaForCausalLM(config).float()
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.05)
        prompts = torch.cat([torch.ones(args.sequences, 1, dtype=torch.long),
                             torch.randint(3, 23, (args.sequences, 7))], dim=1)
        mask = torch.ones_like(prompts)
        for preset in args.presets.split(","):
            autocast = preset == "bf16"
            out = {}

            def rollout():
                model.eval()
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    out["seqs"] = model.generate(prompts, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0,
                                                 temperature=1.0, max_new_tokens=args.new_tokens,
                                                 min_new_tokens=args.new_tokens, eos_token_id=None, pad_token_id=0,
                                                 use_cache=True)

            t_rollout = best_time(rollout, args.budget)
            seqs = out["seqs"]
            new_tokens = (seqs.shape[1] - prompts.shape[1]) * seqs.shape[0]
            print(json.dumps({"name": f"rollout {label} {preset}", "seconds": t_rollout, "tokens": new_tokens}),
                  flush=True)

            def step():
                model.train()
                model.zero_grad(set_to_none=True)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    logits = model(seqs).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                targets = torch.cat([seqs[:, 1:], torch.zeros_like(seqs[:, :1])], dim=1)
                loss = logp.gather(-1, targets.unsqueeze(-1)).mean()
                loss.backward()

            t_step = best_time(step, args.budget)
            print(json.dumps({"name": f"train step {label} {preset}", "seconds": t_step,
                              "tokens": seqs.numel()}), flush=True)


if __name__ == "__main__":
    main()
