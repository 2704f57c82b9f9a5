#!/usr/bin/env bash
# The lab's engines against PyTorch + transformers on the same work, in one run.
#
#   bench/compare-pytorch.sh [--repeat N] [--backends onednn,openblas,portable] [--threads T]
#
# The work is `plab bench engines`'s: 64 prompts of 8 tokens, 32 new tokens each (sampled, KV
# cache), then one teacher-forced forward and backward over the 64 × 40 tokens; on the default
# model and the ~10 M-parameter one; FP32 and BF16 (the peer: autocast). The peer is
# bench/pytorch_engines.py. Each repeat runs the peer, then the lab on each backend, one after
# the other (never at the same time); the table gives the lab's time over the peer's for each
# row: the median over the repeats and the range.
#
# PyTorch and transformers go into a throwaway virtual environment (default
# /tmp/plab-bench-venv, kept between runs; PLAB_BENCH_VENV puts it elsewhere). The Linux torch
# wheel on PyPI brings CUDA libraries along (a few GB); only the CPU is used. Nothing here is a
# dependency of the lab or of its tests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="${PLAB_BENCH_VENV:-/tmp/plab-bench-venv}"
python="${PYTHON:-python3}"
repeat=3
backends="onednn,openblas,portable"
threads=2
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) repeat="$2"; shift 2 ;;
        --backends) backends="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        *) echo "compare-pytorch.sh: unknown argument '$1'; accepted: --repeat N, --backends LIST, --threads T" >&2; exit 2 ;;
    esac
done

if [ ! -x "$venv/bin/python" ]; then
    echo "creating virtual environment in $venv" >&2
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet torch transformers numpy
fi

(cd "$root" && swift build -c release --product plab >&2)
plab="$root/.build/release/plab"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$repeat"); do
    echo "repeat $r of $repeat: PyTorch" >&2
    "$venv/bin/python" "$here/pytorch_engines.py" --threads "$threads" > "$out/peer-$r.jsonl"
    for b in ${backends//,/ }; do
        echo "repeat $r of $repeat: plab ($b)" >&2
        OPENBLAS_NUM_THREADS="$threads" PLAB_THREADS="$threads" \
            "$plab" bench engines --presets fp32,bf16 --backend "$b" --json > "$out/lab-$b-$r.jsonl"
    done
done

# Which lab and when: the table's first line.
echo "plab at $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- Sources Package.swift || echo ' (with uncommitted changes)'), $(date -u +%Y-%m-%dT%H:%MZ), $repeat repeats, $threads threads"
"$venv/bin/python" - "$out" "$repeat" "$backends" <<'EOF'
import json, statistics, sys
out, repeat, backends = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
def load(path):
    return {o["name"]: o["seconds"] for o in map(json.loads, open(path)) if "seconds" in o}
peer = [load(f"{out}/peer-{r}.jsonl") for r in range(1, repeat + 1)]
lab = {b: [load(f"{out}/lab-{b}-{r}.jsonl") for r in range(1, repeat + 1)] for b in backends}
rows = [("rollout", "rollout"), ("forward + backward", "train step")]
print(f"| work | PyTorch (s) | " + " | ".join(f"lab {b} (s) | lab {b} / PyTorch" for b in backends) + " |")
print("|---|---|" + "---|---|" * len(backends))
for model in ("default", "10M"):
    for label, key in rows:
        for preset in ("fp32", "bf16"):
            name = f"{key} {model} {preset}"
            p = [run[name] for run in peer]
            cells = [f"{label}, {model}, {preset}", f"{statistics.median(p):.4f}"]
            for b in backends:
                t = [run[name] for run in lab[b]]
                ratios = sorted(ti / pi for ti, pi in zip(t, p))
                cells.append(f"{statistics.median(t):.4f}")
                spread = f" ({ratios[0]:.2f}–{ratios[-1]:.2f})" if repeat > 1 else ""
                cells.append(f"{statistics.median(ratios):.2f}{spread}")
            print("| " + " | ".join(cells) + " |")
EOF
