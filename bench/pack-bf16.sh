#!/usr/bin/env bash
# The native BF16 kernel's packing of its left operand (Sources/CBF16/bf16.c, compiled as the
# package compiles it, with AVX512_BF16), one thread, on the 10M model's shapes: the
# forward's and DGrad's A (2560 tokens × 384 or 1024, rows of adjacent floats) and the weight
# gradient's A = dyᵀ (384 or 1024 × 2560, stored transposed), each rounded to BF16 as it is
# packed. The best of 50 calls per shape, in milliseconds and in cycles per value at the
# clock given (default 3.5 GHz). Needs a processor with AVX512_BF16.
#
#   bench/pack-bf16.sh [--ghz G]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ghz=3.5
while [ $# -gt 0 ]; do
    case "$1" in
        --ghz) ghz="$2"; shift 2 ;;
        *) echo "pack-bf16.sh: unknown argument '$1'; accepted: --ghz G" >&2; exit 2 ;;
    esac
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/pack.c" <<'C'
#include "plab_bf16.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
int main(int argc, char **argv) {
    const double ghz = atof(argv[1]);
    if (!plab_bf16_available()) { fprintf(stderr, "this processor has no AVX512_BF16 instructions\n"); return 1; }
    const int shapes[4][3] = {{2560, 384, 0}, {2560, 1024, 0}, {384, 2560, 1}, {1024, 2560, 1}};
    float *a = malloc(sizeof(float) * 2560 * 1024);
    uint32_t *out = malloc(sizeof(uint32_t) * 2560 * 1024);
    if (!a || !out) return 1;
    for (long i = 0; i < 2560L * 1024; i++) a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    long counts[2] = {0, 0};
    for (int s = 0; s < 4; s++) {
        const int m = shapes[s][0], k = shapes[s][1], transA = shapes[s][2];
        double best = 1e9;
        for (int r = 0; r < 50; r++) {
            const double t0 = now();
            plab_bf16_pack_a(a, transA ? m : k, transA, m, k, 0, m, out, 1, counts);
            const double t = now() - t0;
            if (t < best) best = t;
        }
        printf("pack A %4d x %4d%s: %.3f ms, %.2f cycles per value\n", m, k, transA ? " (stored transposed)" : "                    ",
               best * 1e3, best * ghz * 1e9 / ((double)m * k));
    }
    return counts[0] < 0;
}
C
cc -O2 -I"$root/Sources/CBF16/include" "$work/pack.c" "$root/Sources/CBF16/bf16.c" -o "$work/pack"
"$work/pack" "$ghz"
