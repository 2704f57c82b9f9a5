// The native BF16 matrix product: packing and a register-blocked VDPBF16PS micro-kernel.
// Compiled for any x86-64: only the functions marked BF16_TARGET use AVX-512 instructions,
// and they run only after plab_bf16_available() said yes. Elsewhere everything is a stub.

#include "plab_bf16.h"
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define MR PLAB_BF16_MR
#define NR PLAB_BF16_NR
_Static_assert(MR == 8, "the packing of transposed A and the tile cases are written for 8 rows");

int plab_bf16_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

static inline uint32_t high_half(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u >> 16;
}

// Two BF16 values (as float32) into one pair word: even element low, odd element high.
static inline uint32_t pair_word(float even, float odd) { return high_half(even) | (high_half(odd) << 16); }

// x's bits rounded to BF16 (nearest even, on the bit pattern, so subnormals round as values
// do), as the lab's Rounder rounds: a finite value past BF16's largest becomes ±inf (counted
// in counts[0]), infinities stay, a NaN becomes the quiet NaN of its sign; counts[1] counts
// the NaN and infinite inputs.
static inline uint32_t rounded_bits(uint32_t u, long *counts) {
    const uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        counts[1]++;
        return a > 0x7f800000u ? (u & 0x80000000u) | 0x7fc00000u : u;
    }
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    if ((r & 0x7fffffffu) == 0x7f800000u) counts[0]++;
    return r;
}

static inline float rounded(float x, long *counts) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = rounded_bits(u, counts);
    memcpy(&x, &u, 4);
    return x;
}

// rounded_bits on sixteen lanes.
static inline __attribute__((always_inline)) BF16_TARGET __m512i rounded_512(__m512i u, long *counts) {
    const __m512i infinity = _mm512_set1_epi32(0x7f800000), magnitude = _mm512_set1_epi32(0x7fffffff);
    const __m512i a = _mm512_and_si512(u, magnitude);
    const __mmask16 special = _mm512_cmpge_epu32_mask(a, infinity), nan = _mm512_cmpgt_epu32_mask(a, infinity);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb),
                                 _mm512_set1_epi32((int)0xffff0000u));
    const __mmask16 overflow = (__mmask16)(~special & _mm512_cmpeq_epi32_mask(_mm512_and_si512(r, magnitude), infinity));
    r = _mm512_mask_mov_epi32(r, special, u);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_and_si512(u, _mm512_set1_epi32((int)0x80000000u)),
                                                      _mm512_set1_epi32(0x7fc00000)));
    counts[0] += __builtin_popcount(overflow);
    counts[1] += __builtin_popcount(special);
    return r;
}

// rounded_bits on eight lanes: the sixteen-lane rounding with the upper lanes zero (a zero is
// neither counted nor changed).
static inline __attribute__((always_inline)) BF16_TARGET __m256i rounded_256(__m256i u, long *counts) {
    return _mm512_castsi512_si256(rounded_512(_mm512_zextsi256_si512(u), counts));
}

// Lanes whose rounding the instruction VCVTNEPS2BF16 would not do as rounded_bits does: NaN and
// infinite values, and subnormals (the instruction reads them as zero).
static inline __attribute__((always_inline)) BF16_TARGET __mmask16 irregular_512(__m512i u) {
    const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    const __mmask16 special = _mm512_cmpge_epu32_mask(a, _mm512_set1_epi32(0x7f800000));
    // 1 ≤ a ≤ 0x007fffff, as one unsigned comparison of a − 1.
    const __mmask16 subnormal = _mm512_cmplt_epu32_mask(_mm512_sub_epi32(a, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x007fffff));
    return special | subnormal;
}

// Of 32 words holding BF16 halves, those that are ±inf: counted as overflows where every input
// was finite.
static inline __attribute__((always_inline)) BF16_TARGET int infinite_halves(__m512i w) {
    return __builtin_popcount(_mm512_cmpeq_epi16_mask(_mm512_and_si512(w, _mm512_set1_epi16(0x7fff)), _mm512_set1_epi16((short)0x7f80)));
}

// Sixteen pair words from 32 adjacent floats (lo: elements 0–15, hi: 16–31), word t =
// element 2t's BF16 half | element 2t + 1's << 16, each value rounded (round) and counted as
// rounded_bits does. Where every value is finite and zero or normal, one VCVTNE2PS2BF16
// rounds them (nearest even, as rounded_bits) and lays them out in that order at once.
static inline __attribute__((always_inline)) BF16_TARGET
__m512i adjacent_words(__m512i lo, __m512i hi, int round, long *counts) {
    // Each 32-bit lane pair (even, odd) → one word (even's high half, odd's high half).
    const __m512i pick = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33,
                                          31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    if (round) {
        if ((irregular_512(lo) | irregular_512(hi)) == 0) {
            const __m512i w = (__m512i)_mm512_cvtne2ps_pbh((__m512)hi, (__m512)lo);
            counts[0] += infinite_halves(w);
            return w;
        }
        lo = rounded_512(lo, counts);
        hi = rounded_512(hi, counts);
    }
    return _mm512_permutex2var_epi16(lo, pick, hi);
}

// Sixteen pair words from two rows' sixteen floats each, word t = even[t]'s BF16 half |
// odd[t]'s << 16, rounded and counted as adjacent_words does.
static inline __attribute__((always_inline)) BF16_TARGET
__m512i interleaved_words(__m512i even, __m512i odd, int round, long *counts) {
    if (round) {
        if ((irregular_512(even) | irregular_512(odd)) == 0) {
            // [even's 16 halves | odd's 16 halves] → halves 2t = even[t], 2t + 1 = odd[t].
            const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                                   23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
            const __m512i w = (__m512i)_mm512_cvtne2ps_pbh((__m512)odd, (__m512)even);
            counts[0] += infinite_halves(w);
            return _mm512_permutexvar_epi16(order, w);
        }
        even = rounded_512(even, counts);
        odd = rounded_512(odd, counts);
    }
    return _mm512_or_si512(_mm512_srli_epi32(even, 16), _mm512_and_si512(odd, _mm512_set1_epi32((int)0xffff0000u)));
}

// The ⌈k/2⌉ pairs of one row of k adjacent floats (rounded first when round), pair p's word at
// dst[p * stride]: sixteen pairs per two vectors, the rest one by one.
static inline __attribute__((always_inline)) BF16_TARGET
void pack_row_pairs(const float *src, int k, int round, long *counts, uint32_t *dst, long stride) {
    const int pairs = (k + 1) / 2;
    int p = 0;
    for (; 2 * p + 32 <= k; p += 16) {
        uint32_t words[16];
        _mm512_storeu_si512(words, adjacent_words(_mm512_loadu_si512(src + 2 * p), _mm512_loadu_si512(src + 2 * p + 16),
                                                  round, counts));
        for (int t = 0; t < 16; t++) dst[(long)(p + t) * stride] = words[t];
    }
    for (; p < pairs; p++) {
        float even = src[2 * p], odd = 2 * p + 1 < k ? src[2 * p + 1] : 0.0f;
        if (round) {
            even = rounded(even, counts);
            if (2 * p + 1 < k) odd = rounded(odd, counts);
        }
        dst[(long)p * stride] = pair_word(even, odd);
    }
}

// One whole panel of op(A) = A (eight rows of k adjacent floats, lda apart): sixteen pairs of
// the eight rows at a time, their words transposed in registers so that each pair's eight
// words go out as one 32-byte store; the pairs past the last sixteen, row by row.
static inline __attribute__((always_inline)) BF16_TARGET
void pack_panel_rows(const float *a, long lda, int k, int round, long *counts, uint32_t *panel) {
    // 128-bit lanes (two qwords each): lanes 0 and 1 of x interleaved with those of y, and
    // lanes 2 and 3.
    const __m512i low = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), high = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    int p = 0;
    for (; 2 * p + 32 <= k; p += 16) {
        __m512i w[MR];  // w[i] word t: row i's pair p + t
        for (int i = 0; i < MR; i++)
            w[i] = adjacent_words(_mm512_loadu_si512(a + i * lda + 2 * p), _mm512_loadu_si512(a + i * lda + 2 * p + 16), round, counts);
        // In each 128-bit lane L: u[c] holds pair 4L + c of rows 0–3, u[4 + c] of rows 4–7.
        __m512i u[MR];
        for (int half = 0; half < 2; half++) {
            const __m512i *v = w + 4 * half;
            const __m512i t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
            const __m512i t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
            u[4 * half + 0] = _mm512_unpacklo_epi64(t0, t2);
            u[4 * half + 1] = _mm512_unpackhi_epi64(t0, t2);
            u[4 * half + 2] = _mm512_unpacklo_epi64(t1, t3);
            u[4 * half + 3] = _mm512_unpackhi_epi64(t1, t3);
        }
        uint32_t *dst = panel + (long)p * MR;
        for (int c = 0; c < 4; c++) {
            // Pairs c, 4 + c (lanes 0, 1) and 8 + c, 12 + c (lanes 2, 3): eight words each.
            const __m512i z0 = _mm512_permutex2var_epi64(u[c], low, u[4 + c]);
            const __m512i z1 = _mm512_permutex2var_epi64(u[c], high, u[4 + c]);
            _mm256_storeu_si256((__m256i *)(dst + c * MR), _mm512_castsi512_si256(z0));
            _mm256_storeu_si256((__m256i *)(dst + (4 + c) * MR), _mm512_extracti64x4_epi64(z0, 1));
            _mm256_storeu_si256((__m256i *)(dst + (8 + c) * MR), _mm512_castsi512_si256(z1));
            _mm256_storeu_si256((__m256i *)(dst + (12 + c) * MR), _mm512_extracti64x4_epi64(z1, 1));
        }
    }
    if (2 * p < k) {
        for (int i = 0; i < MR; i++) pack_row_pairs(a + i * lda + 2 * p, k - 2 * p, round, counts, panel + (long)p * MR + i, MR);
    }
}

BF16_TARGET
void plab_bf16_pack_b(const float *b, long ldb, int transB, int k, int n, int col0, int col1, uint32_t *out,
                      int round, long *counts) {
    const int pairs = (k + 1) / 2;
    if (transB) {
        // B stored n × k: a column's pairs are adjacent floats of one row of B.
        for (int q = col0 / NR; q * NR < col1; q++) {
            uint32_t *panel = out + (long)q * pairs * NR;
            const int j0 = q * NR, width = (n - j0) < NR ? n - j0 : NR;
            for (int j = 0; j < NR; j++) {
                if (j < width) {
                    pack_row_pairs(b + (long)(j0 + j) * ldb, k, round, counts, panel + j, NR);
                } else {
                    for (int p = 0; p < pairs; p++) panel[(long)p * NR + j] = 0;
                }
            }
        }
        return;
    }
    for (int q = col0 / NR; q * NR < col1; q++) {
        uint32_t *panel = out + (long)q * pairs * NR;
        const int j0 = q * NR, width = (n - j0) < NR ? n - j0 : NR;
        for (int p = 0; p < pairs; p++) {
            const int k0 = 2 * p, hasOdd = k0 + 1 < k;
            uint32_t *row = panel + (long)p * NR;
            if (!transB && width == NR && hasOdd) {
                // Two rows of B, 16 columns at a time: the even row's high halves low, the
                // odd row's high halves high.
                for (int v = 0; v < NR; v += 16) {
                    const __m512i even = _mm512_loadu_si512(b + (long)k0 * ldb + j0 + v);
                    const __m512i odd = _mm512_loadu_si512(b + (long)(k0 + 1) * ldb + j0 + v);
                    _mm512_storeu_si512(row + v, interleaved_words(even, odd, round, counts));
                }
                continue;
            }
            for (int j = 0; j < NR; j++) {
                if (j >= width) { row[j] = 0; continue; }
                const long col = j0 + j;
                float even = transB ? b[col * ldb + k0] : b[(long)k0 * ldb + col];
                float odd = hasOdd ? (transB ? b[col * ldb + k0 + 1] : b[(long)(k0 + 1) * ldb + col]) : 0.0f;
                if (round) {
                    even = rounded(even, counts);
                    if (hasOdd) odd = rounded(odd, counts);
                }
                row[j] = pair_word(even, odd);
            }
        }
    }
}

// Pairs per block of transposed A's packing: sixteen rows of A, 4 KB apart in the weight
// gradients of the larger layers, still in L1 when the next group of panels reads on along
// them (measured: 0.48 ms against 0.7–1.3 ms unblocked for m = 1024, k = 2560).
enum { PACK_PAIRS = 8 };

BF16_TARGET
void plab_bf16_pack_a(const float *a, long lda, int transA, int m, int k, int row0, int row1, uint32_t *out,
                      int round, long *counts) {
    const int pairs = (k + 1) / 2;
    int first = row0 / MR;
    if (transA) {
        // A stored k × m: four whole panels at a time, so each row of A gives two full lines
        // of sixteen floats (a panel alone reads half a line, and with rows 4 KB apart the
        // line is gone from L1 before the next panel reads its other half). Measured on the
        // weight gradients' shapes: 3.6× faster at m = 1024, 1.8× at m = 384.
        int groupsEnd = first;
        while ((groupsEnd + 4) * MR <= row1 && (groupsEnd + 4) * MR <= m) groupsEnd += 4;
        // A block of pairs for every group in turn: the block's rows of A are read along
        // their length, group after group, instead of down all of A for each group.
        for (int p0 = 0; p0 < pairs; p0 += PACK_PAIRS) {
            const int p1 = pairs - p0 < PACK_PAIRS ? pairs : p0 + PACK_PAIRS;
            for (int g = first; g < groupsEnd; g += 4) {
                uint32_t *panels = out + (long)g * pairs * MR;
                const float *columns = a + g * MR;
                for (int p = p0; p < p1; p++) {
                    const int k0 = 2 * p;
                    for (int line = 0; line < 2; line++) {
                        const __m512i even = _mm512_loadu_si512(columns + (long)k0 * lda + 16 * line);
                        // A zero pads an odd k: neither counted nor changed by the rounding.
                        const __m512i odd = k0 + 1 < k ? _mm512_loadu_si512(columns + (long)(k0 + 1) * lda + 16 * line)
                                                       : _mm512_setzero_si512();
                        const __m512i word = interleaved_words(even, odd, round, counts);
                        uint32_t *low = panels + (long)(2 * line) * pairs * MR + (long)p * MR;
                        _mm256_storeu_si256((__m256i *)low, _mm512_castsi512_si256(word));
                        _mm256_storeu_si256((__m256i *)(low + (long)pairs * MR), _mm512_extracti64x4_epi64(word, 1));
                    }
                }
            }
        }
        first = groupsEnd;
    }
    for (int r = first; r * MR < row1; r++) {
        uint32_t *panel = out + (long)r * pairs * MR;
        const int i0 = r * MR, height = (m - i0) < MR ? m - i0 : MR;
        if (!transA && height == MR) {
            pack_panel_rows(a + (long)i0 * lda, lda, k, round, counts, panel);
            continue;
        }
        if (transA && height == MR) {
            // A stored k × m: rows 2p and 2p+1 of A hold the pair for the panel's 8 rows.
            const __m256i highMask = _mm256_set1_epi32((int)0xffff0000u);
            for (int p = 0; p < pairs; p++) {
                const int k0 = 2 * p;
                __m256i even = _mm256_loadu_si256((const __m256i *)(a + (long)k0 * lda + i0));
                __m256i odd = k0 + 1 < k ? _mm256_loadu_si256((const __m256i *)(a + (long)(k0 + 1) * lda + i0))
                                         : _mm256_setzero_si256();
                if (round) {
                    even = rounded_256(even, counts);
                    if (k0 + 1 < k) odd = rounded_256(odd, counts);
                }
                __m256i word = _mm256_or_si256(_mm256_srli_epi32(even, 16), _mm256_and_si256(odd, highMask));
                _mm256_storeu_si256((__m256i *)(panel + (long)p * MR), word);
            }
            continue;
        }
        for (int p = 0; p < pairs; p++) {
            uint32_t *dst = panel + (long)p * MR;
            const int k0 = 2 * p, hasOdd = k0 + 1 < k;
            for (int i = 0; i < MR; i++) {
                if (i >= height) { dst[i] = 0; continue; }
                const long row = i0 + i;
                float even = transA ? a[(long)k0 * lda + row] : a[row * lda + k0];
                float odd = hasOdd ? (transA ? a[(long)(k0 + 1) * lda + row] : a[row * lda + k0 + 1]) : 0.0f;
                if (round) {
                    even = rounded(even, counts);
                    if (hasOdd) odd = rounded(odd, counts);
                }
                dst[i] = pair_word(even, odd);
            }
        }
    }
}

// x rounded to BF16 (nearest even) and widened back: VCVTNEPS2BF16. Subnormal inputs read
// as zero, but the kernel's sums are never subnormal (every step flushes them).
static inline __attribute__((always_inline)) BF16_TARGET
__m512 round_to_bf16(__m512 x) {
    const __m256i half = (__m256i)_mm512_cvtneps_pbh(x);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16));
}

BF16_TARGET
void plab_bf16_round(const float *x, float *y, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, round_to_bf16(_mm512_loadu_ps(x + i)));
    if (i < count) {
        const __mmask16 m = (__mmask16)((1u << (count - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, round_to_bf16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

BF16_TARGET
void plab_bf16_round_exact(const float *x, float *y, long count) {
    long ignored[2] = {0, 0};
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m512i u = _mm512_loadu_si512(x + i);
        const __m512i r = irregular_512(u) == 0
            ? _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh((__m512)u)), 16)
            : rounded_512(u, ignored);
        _mm512_storeu_si512(y + i, r);
    }
    for (; i < count; i++) y[i] = rounded(x[i], ignored);
}

// One tile: `rows` (1…MR) rows × NR columns (the first `cols` real) over `pairs` pairs; the
// sums rounded to BF16 as they are stored when `rounding`.
static inline __attribute__((always_inline)) BF16_TARGET
void tile(const int rows, int pairs, const uint32_t *ap, const uint32_t *bp, float *c, long ldc, int cols, int resume, int rounding) {
    __m512 acc[MR][2];
    const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? 0xffff : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1) : 0;
    for (int i = 0; i < rows; i++) {
        if (resume) {
            acc[i][0] = _mm512_maskz_loadu_ps(m0, c + i * ldc);
            acc[i][1] = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
        } else {
            acc[i][0] = _mm512_setzero_ps();
            acc[i][1] = _mm512_setzero_ps();
        }
    }
    for (int p = 0; p < pairs; p++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + p * NR);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + p * NR + 16);
        for (int i = 0; i < rows; i++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[p * MR + i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
        }
    }
    if (rounding) {
        for (int i = 0; i < rows; i++) {
            acc[i][0] = round_to_bf16(acc[i][0]);
            acc[i][1] = round_to_bf16(acc[i][1]);
        }
    }
    for (int i = 0; i < rows; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
    }
}

#define TILE_CASE(R) case R: tile(R, pairs, ap, bp, c, ldc, cols, resume, rounding); break;

BF16_TARGET
static void tile_any(int rows, int pairs, const uint32_t *ap, const uint32_t *bp, float *c, long ldc, int cols, int resume, int rounding) {
    switch (rows) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4)
        TILE_CASE(5) TILE_CASE(6) TILE_CASE(7) TILE_CASE(8)
        default: break;
    }
}

// Pairs per k block (B's panel slice: KCP × NR × 4 bytes = 24 KB) and row panels per block of
// A (MCP × MR rows × KCP pairs × 4 bytes = 192 KB).
enum { KCP = 192, MCP = 32 };

BF16_TARGET
void plab_bf16_compute(const uint32_t *packedA, const uint32_t *packedB, int bPairs, int bPair0, int m, int n, int k,
                       float *c, long ldc, int accumulate, int roundOutput,
                       int panel0, int panel1, int colPanel0, int colPanel1) {
    const int pairs = (k + 1) / 2;
    for (int kb = 0; kb < pairs; kb += KCP) {
        const int kcur = pairs - kb < KCP ? pairs - kb : KCP;
        const int resume = accumulate || kb > 0, rounding = roundOutput && kb + kcur == pairs;
        for (int ib = panel0; ib < panel1; ib += MCP) {
            const int iend = ib + MCP < panel1 ? ib + MCP : panel1;
            for (int q = colPanel0; q < colPanel1; q++) {
                const uint32_t *bp = packedB + ((long)q * bPairs + bPair0 + kb) * NR;
                const int cols = n - q * NR < NR ? n - q * NR : NR;
                for (int r = ib; r < iend; r++) {
                    const uint32_t *ap = packedA + ((long)r * pairs + kb) * MR;
                    const int rows = m - r * MR < MR ? m - r * MR : MR;
                    tile_any(rows, kcur, ap, bp, c + (long)r * MR * ldc + (long)q * NR, ldc, cols, resume, rounding);
                }
            }
        }
    }
}

#else

int plab_bf16_available(void) { return 0; }
void plab_bf16_round(const float *x, float *y, long count) { (void)x; (void)y; (void)count; }
void plab_bf16_round_exact(const float *x, float *y, long count) { (void)x; (void)y; (void)count; }
void plab_bf16_pack_b(const float *b, long ldb, int transB, int k, int n, int col0, int col1, uint32_t *out,
                      int round, long *counts) {
    (void)b; (void)ldb; (void)transB; (void)k; (void)n; (void)col0; (void)col1; (void)out; (void)round; (void)counts;
}
void plab_bf16_pack_a(const float *a, long lda, int transA, int m, int k, int row0, int row1, uint32_t *out,
                      int round, long *counts) {
    (void)a; (void)lda; (void)transA; (void)m; (void)k; (void)row0; (void)row1; (void)out; (void)round; (void)counts;
}
void plab_bf16_compute(const uint32_t *packedA, const uint32_t *packedB, int bPairs, int bPair0, int m, int n, int k,
                       float *c, long ldc, int accumulate, int roundOutput,
                       int panel0, int panel1, int colPanel0, int colPanel1) {
    (void)roundOutput; (void)bPairs; (void)bPair0; (void)packedA; (void)packedB; (void)m; (void)n; (void)k; (void)c; (void)ldc; (void)accumulate;
    (void)panel0; (void)panel1; (void)colPanel0; (void)colPanel1;
}

#endif
