#!/usr/bin/env bash
# The machine's memory read bandwidth: 1 GiB of float32 summed by T threads (default 2), five
# times; the figure a decode step's weight traffic is compared with (BENCHMARKS.md).
#
#   bench/read-bandwidth.sh [--threads T]
set -euo pipefail
threads=2
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        *) echo "read-bandwidth.sh: unknown argument '$1'; accepted: --threads T" >&2; exit 2 ;;
    esac
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/read.c" <<'C'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define COUNT (1L << 28)
static float *data;
static long threads;
static float sums[64];
static void *reader(void *arg) {
    long t = (long)arg, begin = t * (COUNT / threads), end = (t + 1) * (COUNT / threads);
    float lanes[64] = {0};
    for (long i = begin; i < end; i += 64)
        for (int l = 0; l < 64; l++) lanes[l] += data[i + l];
    for (int l = 0; l < 64; l++) sums[t] += lanes[l];
    return NULL;
}
int main(int argc, char **argv) {
    threads = atol(argv[1]);
    if (threads < 1 || threads > 64) { fprintf(stderr, "threads: 1 to 64\n"); return 2; }
    data = aligned_alloc(64, COUNT * sizeof(float));
    if (!data) { fprintf(stderr, "cannot allocate 1 GiB\n"); return 1; }
    memset(data, 0, COUNT * sizeof(float));
    for (int r = 0; r < 5; r++) {
        struct timespec t0, t1;
        pthread_t th[64];
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long t = 0; t < threads; t++) pthread_create(&th[t], NULL, reader, (void *)t);
        for (long t = 0; t < threads; t++) pthread_join(th[t], NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        printf("read 1 GiB on %ld threads: %.1f GB/s\n", threads, COUNT * sizeof(float) / s / 1e9);
    }
    return sums[0] != 0;  /* the sums are read, so the loads stay */
}
C
cc -O3 -march=native -pthread "$work/read.c" -o "$work/read"
"$work/read" "$threads"
