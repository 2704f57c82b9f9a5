#!/usr/bin/env bash
# A model of real size, loaded as a downloaded one: the lab against PyTorch + transformers.
#
#   bench/byom.sh [--repeat N] [--dir DIR] [--backend portable|openblas|onednn]
#
# Makes (once, kept in DIR, default /tmp/plab-byom-qwen05b) a random Qwen2ForCausalLM of
# Qwen2.5-0.5B's shape in bfloat16 with bench/pytorch_byom.py, then measures, one after the
# other and never at the same time:
# - the peer: load, 8 prompts × 128 new tokens sampled under BF16 autocast, the recomputation;
# - the lab (`plab run`, preset bf16, the portable backend or the one --backend names):
#   `model load` alone, then `model load` and `rollout 8` with max_new 128 (which samples, then
#   recomputes with the training engine), the difference being the rollout; peak memory from
#   /usr/bin/time.
# Prints a JSON line per run and a table of medians. Python and its packages live in a
# throwaway virtual environment (PLAB_BENCH_VENV, default /tmp/plab-bench-venv).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="${PLAB_BENCH_VENV:-/tmp/plab-bench-venv}"
python="${PYTHON:-python3}"
repeat=3
dir=/tmp/plab-byom-qwen05b
backend=portable
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) repeat="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --backend) backend="$2"; shift 2 ;;
        *) echo "byom.sh: unknown argument '$1'; accepted: --repeat N, --dir DIR, --backend portable|openblas|onednn" >&2; exit 2 ;;
    esac
done
command -v /usr/bin/time >/dev/null 2>&1 || { echo "byom.sh: needs /usr/bin/time (Debian: apt-get install time)" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
    echo "creating virtual environment in $venv" >&2
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet torch transformers numpy
fi
[ -f "$dir/config.json" ] || "$venv/bin/python" "$here/pytorch_byom.py" make "$dir" >&2
(cd "$root" && swift build -c release --product plab >&2)
plab="$root/.build/release/plab"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
case "$backend" in
    portable|openblas|onednn) ;;
    *) echo "byom.sh: unknown backend '$backend'; accepted: portable, openblas, onednn" >&2; exit 2 ;;
esac
cat > "$work/load.plab" <<SESSION
set backend $backend
precision preset bf16
model load $dir
SESSION
cat "$work/load.plab" > "$work/rollout.plab"
cat >> "$work/rollout.plab" <<'SESSION'
set max_new 128
set temperature 1
seed 1
rollout 8
SESSION

# Wall seconds and peak RSS (MB) of a command, as JSON fields.
measure() {
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
    read -r wall rss < "$work/time"
    echo "\"wall_s\": $wall, \"peak_rss_mb\": $((rss / 1024))"
}

for r in $(seq 1 "$repeat"); do
    # Each figure captured first, so that a failed run stops the script with its own error.
    peer=$(/usr/bin/time -f '%e' -o "$work/peer-time" "$venv/bin/python" "$here/pytorch_byom.py" peer "$dir") || exit 1
    echo "{\"run\": \"peer\", \"repeat\": $r, \"process_wall_s\": $(cat "$work/peer-time"), \"result\": $peer}"
    load=$(measure "$plab" run "$work/load.plab") || exit 1
    echo "{\"run\": \"lab load\", \"repeat\": $r, $load}"
    whole=$(measure "$plab" run "$work/rollout.plab") || exit 1
    echo "{\"run\": \"lab load + rollout 8 x 128\", \"repeat\": $r, $whole}"
    grep -E '^(8 sequences|mismatch|  )' "$work/out" | head -3 >&2 || true
done | tee "$work/runs.jsonl"

# The medians of the runs above. The peer's whole measurement is its load, rollout and
# recomputation timed inside Python after its imports; the lab's is its `plab run` of the load
# and the rollout, process start included, so that ratio leans against the lab. The last row
# times both as processes, from start to exit (the peer's Python start and imports included).
"$venv/bin/python" - "$work/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def median(values): return statistics.median(values) if values else float("nan")
peer = [r["result"] for r in runs if r["run"] == "peer"]
load = [r for r in runs if r["run"] == "lab load"]
whole = [r for r in runs if r["run"] == "lab load + rollout 8 x 128"]
rows = [
    ("load (s)", median([r["wall_s"] for r in load]), median([p["load_s"] for p in peer])),
    ("rollout + recompute (s)", median([w["wall_s"] - l["wall_s"] for w, l in zip(whole, load)]),
     median([p["rollout_s"] + p["recompute_s"] for p in peer])),
    ("whole measurement (s)", median([r["wall_s"] for r in whole]), median([p["load_s"] + p["rollout_s"] + p["recompute_s"] for p in peer])),
    ("whole process, start to exit (s)", median([r["wall_s"] for r in whole]),
     median([r["process_wall_s"] for r in runs if r["run"] == "peer"])),
    ("peak memory (MB)", median([r["peak_rss_mb"] for r in whole]), median([p["peak_rss_mb"] for p in peer])),
]
print(f"medians of {len(whole)} runs | lab | PyTorch | lab / PyTorch")
for name, lab, torch in rows:
    print(f"{name} | {lab:.2f} | {torch:.2f} | {lab / torch:.2f}")
PY
