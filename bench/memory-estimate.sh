#!/bin/sh
# The memory check's estimate against what a command really takes: for each case, the peak
# resident memory (GNU time's %M) of a plab process that sets up a model and runs the command,
# minus that of the same set-up running `memory --json` instead (which allocates nothing and
# prints the estimate the command checks).
#
#   bench/memory-estimate.sh            PLAB names the executable (default .build/release/plab)
#
# Prints one line per case: the estimate, the measured growth of the peak, and their ratio.
# Needs /usr/bin/time (GNU time).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
plab=${PLAB:-$root/.build/release/plab}
[ -x "$plab" ] || { echo "memory-estimate: no plab at $plab; build with 'swift build -c release' or set PLAB" >&2; exit 64; }
[ -x /usr/bin/time ] || { echo "memory-estimate: needs GNU time at /usr/bin/time" >&2; exit 64; }

# A random model of width 512 (8 layers, 8 heads over 4 kv heads, SwiGLU 1408: 25 M
# parameters); greedy (top_k 1) from weights at std 0.02 never samples <eos>, so every
# response runs to max_new, the length the estimate assumes.
wide='set backend portable
model new hidden=512 layers=8 heads=8 kv_heads=4 intermediate=1408 max_pos=1024 --std 0.02
set top_k 1'

# peak KIB SETUP COMMAND: the peak resident memory in KiB of plab running SETUP then COMMAND.
peak() {
    printf '%s\n%s\n' "$1" "$2" | /usr/bin/time -f '%M' "$plab" 2>&1 > /dev/null | tail -n 1
}

# estimate SETUP KEY: the estimate `memory --json` gives under KEY (model, rollout, step, pretrain).
estimate() {
    printf '%s\nmemory --json\n' "$1" | "$plab" 2> /dev/null | tail -n 1 \
        | sed -n "s/.*\"$2\":{\"total\":\([0-9]*\).*/\1/p"
}

# measure NAME SETUP KEY COMMAND [ESTIMATE_SETUP]: the estimate comes from SETUP, or for a
# command that makes a model, from ESTIMATE_SETUP (the model made, which `memory` shows held).
measure() {
    base=$(peak "$2" "memory --json")
    with=$(peak "$2" "$4")
    est=$(estimate "${5:-$2}" "$3")
    awk -v name="$1" -v est="$est" -v base="$base" -v with="$with" 'BEGIN {
        growth = (with - base) * 1024
        printf "%-44s estimate %9.1f MB   peak growth %9.1f MB   estimate/growth %.2f\n", name, est / 1e6, growth / 1e6, est / growth
    }'
}

measure "model new (width 512, 25 M parameters)" "set backend portable" model \
    "model new hidden=512 layers=8 heads=8 kv_heads=4 intermediate=1408 max_pos=1024 --std 0.02" "$wide"
measure "rollout 32 x 256 new tokens (width 512)" "$wide
set max_new 256
set prompts 32" rollout rollout
measure "step 16 x 8 (width 512)" "$wide
set prompts 16
set samples 8" step step
measure "step 16 x 8, max_len 96 (width 512)" "$wide
set prompts 16
set samples 8
set max_len 96" step step
measure "pretrain 1 (width 512)" "$wide" pretrain "pretrain 1"
measure "step 64 x 8 (default model)" "set backend portable" step step
