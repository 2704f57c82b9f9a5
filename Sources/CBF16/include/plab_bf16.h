// The native BF16 matrix product (AVX512_BF16's VDPBF16PS), for the BF16 recipe's products on
// the `openblas` and `onednn` backends. See Sources/Numerics/BF16Kernel.swift for its arithmetic and use.
#ifndef PLAB_BF16_H
#define PLAB_BF16_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Rows per packed A panel and columns per packed B panel.
enum { PLAB_BF16_MR = 8, PLAB_BF16_NR = 32 };

/// 1 when this processor (and its operating system) runs AVX512_BF16 instructions, else 0.
int plab_bf16_available(void);

/// Packs op(B) (k × n; B stored k × n with leading dimension ldb, or n × k when transB) into
/// panels of PLAB_BF16_NR columns: panel q, pair p, column j at
/// out[(q * pairs + p) * NR + j] = bf16(op(B)[2p][j]) | bf16(op(B)[2p+1][j]) << 16, with
/// pairs = ceil(k / 2) and zeros past k and n. bf16(x) is the high half of x's bits: every
/// value must already be a BF16 value, unless round (then each is rounded first and counted
/// as plab_bf16_pack_a does). Columns [col0, col1) only (whole panels).
void plab_bf16_pack_b(const float *b, long ldb, int transB, int k, int n, int col0, int col1, uint32_t *out,
                      int round, long *counts);

/// Packs op(A) (m × k) rows [row0, row1) into panels of PLAB_BF16_MR rows, the same way:
/// panel r, pair p, row i at out[(r * pairs + p) * MR + i]. With round, A may hold any float32
/// values: each is rounded to BF16 first (nearest even on the bit pattern, subnormals
/// included; past the largest BF16, ±inf; a NaN, the quiet NaN of its sign), and
/// counts[0] += finite values that became infinite, counts[1] += NaN and infinite values.
void plab_bf16_pack_a(const float *a, long lda, int transA, int m, int k, int row0, int row1, uint32_t *out,
                      int round, long *counts);

/// C[rows][cols] (+)= op(A)·op(B) from packed operands, over row panels [panel0, panel1) of A
/// and column panels [colPanel0, colPanel1) of B. B's panels hold bPairs pairs each, and the
/// product reads ⌈k/2⌉ of them from pair bPair0 on (a stretch of a longer packed K). Every output is one chain from +0 (or from
/// C when accumulate): for each pair p in increasing order, acc += a[2p+1]·b[2p+1], then
/// acc += a[2p]·b[2p], each step one VDPBF16PS half (a fused multiply-add, round to nearest
/// even, subnormal inputs read as zero and subnormal results flushed to zero).
/// roundOutput: each sum is rounded to BF16 (nearest even, VCVTNEPS2BF16) as it is stored.
/// Requires plab_bf16_available().
void plab_bf16_compute(const uint32_t *packedA, const uint32_t *packedB, int bPairs, int bPair0, int m, int n, int k,
                       float *c, long ldc, int accumulate, int roundOutput,
                       int panel0, int panel1, int colPanel0, int colPanel1);

/// y = x rounded to BF16 and widened back, as the product's fused output rounding does
/// (subnormal x read as zero). Requires plab_bf16_available().
void plab_bf16_round(const float *x, float *y, long count);

/// y = x rounded to BF16 exactly as the lab's Rounder rounds (nearest even on the bit pattern,
/// subnormals kept, past the largest BF16 ±inf, a NaN the quiet NaN of its sign), widened
/// back; y may be x. Sixteen values at a time by VCVTNEPS2BF16 where all are finite and zero
/// or normal. Requires plab_bf16_available().
void plab_bf16_round_exact(const float *x, float *y, long count);

#ifdef __cplusplus
}
#endif
#endif
