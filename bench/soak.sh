#!/bin/sh
# Soak: STEPS RL steps at small settings (4 prompts × 4 samples, the base model) in one plab
# process, its resident memory (VmRSS of /proc/PID/status) sampled every INTERVAL seconds into
# a CSV; then whether it stays flat within 5% after warm-up (the first 10% of the steps).
#
#   bench/soak.sh [STEPS] [INTERVAL] [OUT_DIR]       defaults: 10000 5 bench/soak-out
#
# Every step runs whole (rollout, recomputation, backward, AdamW, weight sync), but with a
# learning rate of 1e-9 the policy stays as it was, and so do its response lengths and each
# step's working set: what grows is what the steps leave behind. (At a learning rate that
# changes the policy, responses lengthen or shorten and the working set with them.)
# SOAK_LR sets another rate.
#
# Writes OUT_DIR/soak.plab (the session), transcript.txt (plab run's output), rss.csv
# (seconds,steps,rss_kib) and summary.txt (also printed). PLAB names the executable (default
# .build/release/plab), SOAK_BACKEND the backend (default portable). Exit status 0 when the
# run completed and memory stayed flat, 1 otherwise. Linux only (/proc).
set -u

steps=${1:-10000}
interval=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${3:-$root/bench/soak-out}
plab=${PLAB:-$root/.build/release/plab}
backend=${SOAK_BACKEND:-portable}
lr=${SOAK_LR:-1e-9}

case $steps in '' | *[!0-9]*) echo "soak: STEPS must be a positive integer, not '$steps'" >&2; exit 64 ;; esac
case $interval in '' | *[!0-9]*) echo "soak: INTERVAL must be whole seconds, not '$interval'" >&2; exit 64 ;; esac
[ "$steps" -ge 10 ] || { echo "soak: STEPS must be at least 10 (warm-up is the first 10%)" >&2; exit 64; }
[ "$interval" -ge 1 ] || { echo "soak: INTERVAL must be at least 1 second" >&2; exit 64; }
[ -x "$plab" ] || { echo "soak: no plab at $plab; build with 'swift build -c release' or set PLAB" >&2; exit 64; }
[ -r /proc/self/status ] || { echo "soak: needs /proc (Linux)" >&2; exit 64; }

mkdir -p "$out"
session=$out/soak.plab csv=$out/rss.csv transcript=$out/transcript.txt summary=$out/summary.txt
cat > "$session" <<EOF
# plab soak: $steps RL steps at small settings in one process
set backend $backend
set prompts 4
set samples 4
set lr $lr
step $steps
EOF

"$plab" run "$session" > "$transcript" 2> "$out/stderr.txt" &
pid=$!
start=$(date +%s)
echo "seconds,steps,rss_kib" > "$csv"
while kill -0 "$pid" 2> /dev/null; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2> /dev/null)
    done_steps=$(grep -c '^step [0-9]*:' "$transcript")
    [ -n "$rss" ] && echo "$(($(date +%s) - start)),$done_steps,$rss" >> "$csv"
    sleep "$interval"
done
wait "$pid"
status=$?
done_steps=$(grep -c '^step [0-9]*:' "$transcript")

# Warm-up ends at the first sample taken after 10% of the steps; from there on, the first
# sample is the start, and memory is flat if no later sample is more than 5% above it.
awk -F, -v steps="$steps" -v done="$done_steps" -v status="$status" -v interval="$interval" '
    NR == 1 { next }
    { n++; t = $1; last = $3 }
    !started && $2 >= steps / 10 { started = 1; t0 = $1; s0 = $2; start = $3; max = $3; min = $3 }
    started { if ($3 > max) max = $3; if ($3 < min) min = $3; kept++ }
    END {
        printf "soak: %d of %d steps in %d s (plab exit status %d), %d samples every %d s\n", done, steps, t, status, n, interval
        if (!started || kept < 2) { print "not enough samples after warm-up to judge"; exit 1 }
        printf "warm-up: the first %d steps (%d s)\n", s0, t0
        printf "RSS after warm-up %.1f MiB, min %.1f, max %.1f, end %.1f: end %+.2f%%, max %+.2f%% over the start\n",
               start / 1024, min / 1024, max / 1024, last / 1024, 100 * (last - start) / start, 100 * (max - start) / start
        flat = (max <= 1.05 * start) && status == 0 && done == steps
        printf "flat within 5%%: %s\n", flat ? "yes" : "no"
        exit flat ? 0 : 1
    }' "$csv" > "$summary"
verdict=$?
cat "$summary"
exit $verdict
