/* edgebnn binary kernel (see bnn.h). Portable C99; a faster popcount is used
 * where the CPU has one: NEON's vcnt when compiled for it; on x86 (GCC and
 * clang) AVX-512 VPOPCNTDQ, AVX2's vpshufb nibble counts or the POPCNT
 * instruction, each chosen at run time when the running CPU (and, for the
 * vector registers, the OS) supports it, so one build serves Atoms with and
 * without POPCNT and desktops with AVX2 or AVX-512. The SIMD code is compiled
 * with function target attributes: the rest of the file stays plain C99.
 * On the AVX2 and AVX-512 paths, a dense layer on uint8 values multiplies
 * bytes (vpmaddubsw) with its signs widened to int8 at load instead of
 * counting 8 bit planes: fewer instructions, for 8x the weight memory. */
#include <float.h>
#include <stddef.h>
#include <math.h>
#include <string.h>

#include "bnn.h"

#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#include <arm_neon.h>
#define BNN_HAS_NEON 1

/* The sums of vectors of counts: 8 lanes of 16 bits, 8 lanes of 8 bits. */
static inline uint32_t neon_sum(uint16x8_t counts)
{
    uint64x2_t sum = vpaddlq_u32(vpaddlq_u16(counts));
    return (uint32_t)(vgetq_lane_u64(sum, 0) + vgetq_lane_u64(sum, 1));
}

static inline uint32_t neon_sum8(uint8x8_t counts)
{
    return (uint32_t)vget_lane_u64(vpaddl_u32(vpaddl_u16(vpaddl_u8(counts))), 0);
}
#endif

/* -DBNN_PORTABLE_ONLY builds the portable path alone (to test it anywhere). */
#if !defined(BNN_HAS_NEON) && !defined(BNN_PORTABLE_ONLY) && \
    (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define BNN_X86_DISPATCH 1
#endif

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);   /* one unaligned-safe load */
    return v;
}

/* The first n < 8 bytes as a word. Where each byte lands does not matter
 * (only XOR/AND and popcount follow), so a short inline loop serves: a
 * memcpy of variable length would be a library call in the hot path. */
static inline uint64_t load_partial(const uint8_t *p, int32_t n)
{
    uint64_t v = 0;
    for (int32_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Bit-parallel popcount: no table, no instruction the CPU may lack. */
#if UINTPTR_MAX > 0xFFFFFFFFu
static inline uint32_t popcount_portable(uint64_t v)
{
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (uint32_t)((v * 0x0101010101010101ULL) >> 56);
}
#else
/* 32-bit CPUs (ARMv7, i686): the two halves in 32-bit registers, summed
 * before the one multiply (each byte then holds at most 16). */
static inline uint32_t popcount_portable(uint64_t v)
{
    uint32_t lo = (uint32_t)v, hi = (uint32_t)(v >> 32);
    lo = lo - ((lo >> 1) & 0x55555555u);
    hi = hi - ((hi >> 1) & 0x55555555u);
    lo = (lo & 0x33333333u) + ((lo >> 2) & 0x33333333u);
    hi = (hi & 0x33333333u) + ((hi >> 2) & 0x33333333u);
    lo = (lo + (lo >> 4)) & 0x0F0F0F0Fu;
    hi = (hi + (hi >> 4)) & 0x0F0F0F0Fu;
    return ((lo + hi) * 0x01010101u) >> 24;
}
#endif

/* A float variable whose every value is rounded to float: where float
 * arithmetic runs wider (x87, FLT_EVAL_METHOD 2), a product kept wide and
 * then added would round once, like a fused multiply-add, and differ from
 * the vector paths; a volatile store rounds it. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define BNN_ROUNDED float
#else
#define BNN_ROUNDED volatile float
#endif

/* One value's int8 code for the quantization step s > 0: rint(x / s) within
 * [-127, 127]; the ratio rounded to float first, even where the FPU keeps
 * more precision (x87). */
static inline int8_t int8_code(float x, float s)
{
    BNN_ROUNDED ratio = x / s;
    const long q = lrintf(ratio);          /* to nearest, ties to even */
    return (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
}

int32_t bnn_sign_bytes(int32_t n)
{
    return (n + 7) / 8;
}

int32_t bnn_conv_size(int32_t size, int32_t kernel, int32_t stride, int32_t pad)
{
    return size + 2 * pad < kernel ? 0 : (size + 2 * pad - kernel) / stride + 1;
}

/* Writes a layer's n outputs: threshold bits packed MSB first, or dots. */
struct emitter {
    const int32_t *threshold;
    const uint8_t *flip;
    uint8_t *bits;
    float *dots;
};

static inline struct emitter emitter_start(const int32_t *threshold, const uint8_t *flip,
                                           uint8_t *bits, float *dots, int32_t n)
{
    struct emitter e = {threshold, flip, bits, dots};
    if (threshold)
        memset(bits, 0, (size_t)bnn_sign_bytes(n));
    return e;
}

/* The emitter of sample s of a batch whose outputs lie `stride` bytes apart
 * (their bits cleared by clear_bits first). */
static inline struct emitter emitter_at(const int32_t *threshold, const uint8_t *flip, void *out,
                                        size_t stride, int32_t s)
{
    uint8_t *at = (uint8_t *)out + (size_t)s * stride;
    struct emitter e = {threshold, flip, threshold ? at : NULL,
                        threshold ? NULL : (float *)(void *)at};
    return e;
}

static void clear_bits(void *out, size_t stride, int32_t n_samples, int32_t n)
{
    for (int32_t s = 0; s < n_samples; s++)
        memset((uint8_t *)out + (size_t)s * stride, 0, (size_t)bnn_sign_bytes(n));
}

/* `to_bits` is a constant at every call in the dense layers' bodies, so
 * each of their loops is compiled without the test. */
static inline void emit(const struct emitter *e, int to_bits, int32_t j, int32_t dot)
{
    if (!to_bits) {
        e->dots[j] = (float)dot;   /* exact: callers keep |dot| < 2^24 */
    } else {
        /* no branch on the bit: on real inputs it is a coin toss the CPU would mispredict */
        const unsigned bit = (unsigned)(dot >= e->threshold[j]) ^ (e->flip[j] & 1u);
        e->bits[j >> 3] |= (uint8_t)(bit << (7 - (j & 7)));
    }
}

/* Four outputs j..j+3, j a multiple of 4: their bits share one byte, so
 * they are gathered into a nibble and written once. */
static inline void emit4(const struct emitter *e, int to_bits, int32_t j, int32_t d0, int32_t d1,
                         int32_t d2, int32_t d3)
{
    if (!to_bits) {
        emit(e, 0, j, d0);
        emit(e, 0, j + 1, d1);
        emit(e, 0, j + 2, d2);
        emit(e, 0, j + 3, d3);
        return;
    }
    const int32_t *t = e->threshold + j;
    const uint8_t *f = e->flip + j;
    const unsigned nibble = (((unsigned)(d0 >= t[0]) ^ (f[0] & 1u)) << 3)
                          | (((unsigned)(d1 >= t[1]) ^ (f[1] & 1u)) << 2)
                          | (((unsigned)(d2 >= t[2]) ^ (f[2] & 1u)) << 1)
                          | ((unsigned)(d3 >= t[3]) ^ (f[3] & 1u));
    e->bits[j >> 3] |= (uint8_t)(nibble << (4 - (j & 4)));
}

/* bnn_pack_signs in plain C: each instance's for what its vectors leave. */
static int32_t pack_signs_scalar(const float *x, int32_t n, uint8_t *out)
{
    /* x * 0 is +-0 for every finite x and NaN for NaN and infinity: eight
     * running sums of it (no dependence between them) flag a bad value
     * without a branch, at the cost of a multiply-add per value */
    float probe[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int32_t i = 0;
    /* eight comparisons per byte, no loop-carried shifting: compilers turn
     * this into straight-line (or vector) code */
    for (; i + 8 <= n; i += 8) {
        out[i >> 3] = (uint8_t)((unsigned)(x[i] >= 0.0f) << 7 | (unsigned)(x[i + 1] >= 0.0f) << 6
                              | (unsigned)(x[i + 2] >= 0.0f) << 5 | (unsigned)(x[i + 3] >= 0.0f) << 4
                              | (unsigned)(x[i + 4] >= 0.0f) << 3 | (unsigned)(x[i + 5] >= 0.0f) << 2
                              | (unsigned)(x[i + 6] >= 0.0f) << 1 | (unsigned)(x[i + 7] >= 0.0f));
        for (int32_t k = 0; k < 8; k++)
            probe[k] += x[i + k] * 0.0f;
    }
    if (i < n) {
        unsigned byte = 0;
        for (int32_t k = 0; i + k < n; k++) {
            byte |= (unsigned)(x[i + k] >= 0.0f) << (7 - k);
            probe[k] += x[i + k] * 0.0f;
        }
        out[i >> 3] = (uint8_t)byte;
    }
    int32_t bad = 0;
    for (int32_t k = 0; k < 8; k++)
        bad |= probe[k] != probe[k];
    return bad;
}

#if defined(__GNUC__) || defined(__clang__)
#define BNN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define BNN_ALWAYS_INLINE inline
#endif

/* The portable instance (NEON-counted on ARM builds that have NEON). */
#define BNN_FN(name) name##_portable
#define BNN_TARGET
#if defined(__POPCNT__) && (defined(__GNUC__) || defined(__clang__))
#define BNN_POPCOUNT(v) ((uint32_t)__builtin_popcountll(v))
#else
#define BNN_POPCOUNT(v) popcount_portable(v)
#endif
#ifdef BNN_HAS_NEON
#define BNN_NEON 1
#endif
#include "bnn_kernels.inc"
#undef BNN_FN
#undef BNN_TARGET
#undef BNN_POPCOUNT

#ifdef BNN_X86_DISPATCH
/* The same kernels with the POPCNT instruction, then with AVX2 too (and
 * below with AVX-512), each chosen only at run time, when the CPU (and for
 * the vector registers the OS) supports it. */
#define BNN_FN(name) name##_popcnt
#define BNN_TARGET __attribute__((target("popcnt")))
#define BNN_POPCOUNT(v) ((uint32_t)__builtin_popcountll(v))
#include "bnn_kernels.inc"
#undef BNN_FN
#undef BNN_TARGET

#include <immintrin.h>
#define BNN_AVX_TARGET __attribute__((target("avx2,popcnt")))

BNN_AVX_TARGET static inline __m256i load256(const uint8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

/* The popcount of each byte: a 16-entry table lookup per nibble (vpshufb). */
BNN_AVX_TARGET static inline __m256i avx2_count(__m256i v)
{
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    return _mm256_add_epi8(_mm256_shuffle_epi8(table, _mm256_and_si256(v, low)),
                           _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
}

/* The sum of 32 byte counts. */
BNN_AVX_TARGET static inline uint32_t avx2_sum(__m256i counts)
{
    const __m256i quads = _mm256_sad_epu8(counts, _mm256_setzero_si256());
    __m128i sum = _mm_add_epi64(_mm256_castsi256_si128(quads), _mm256_extracti128_si256(quads, 1));
    sum = _mm_add_epi64(sum, _mm_unpackhi_epi64(sum, sum));
    return (uint32_t)_mm_cvtsi128_si32(sum);
}

#define BNN_FN(name) name##_avx2
#define BNN_TARGET BNN_AVX_TARGET
#define BNN_AVX2 1
#include "bnn_kernels.inc"

#undef BNN_FN
#undef BNN_TARGET
#undef BNN_AVX2

/* The sum of 8 int32 lanes. */
BNN_AVX_TARGET static inline int32_t avx2_sum32(__m256i v)
{
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    sum = _mm_add_epi32(sum, _mm_unpackhi_epi64(sum, sum));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 1));
    return _mm_cvtsi128_si32(sum);
}

/* vpmaddubsw multiplies 32 uint8 values by 32 int8 weights and adds
 * neighbours into 16-bit lanes (|pair| <= 510): `sums` += each row's products
 * with v, through 16-bit lanes that take at most 64 steps (64 * 510 < 2^15)
 * before vpmaddwd widens them into the 32-bit sums. */
BNN_AVX_TARGET static BNN_ALWAYS_INLINE void wide_steps(const uint8_t *x, int32_t steps,
                                                        const uint8_t *w, size_t row,
                                                        __m256i sums[4])
{
    const __m256i ones = _mm256_set1_epi16(1);
    for (int32_t i = 0; i < steps;) {
        const int32_t stop = steps - i > 64 ? i + 64 : steps;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (; i < stop; i++) {
            const __m256i v = load256(x + 32 * (size_t)i);
            const uint8_t *at = w + 32 * (size_t)i;
            a0 = _mm256_add_epi16(a0, _mm256_maddubs_epi16(v, load256(at)));
            a1 = _mm256_add_epi16(a1, _mm256_maddubs_epi16(v, load256(at + row)));
            a2 = _mm256_add_epi16(a2, _mm256_maddubs_epi16(v, load256(at + 2 * row)));
            a3 = _mm256_add_epi16(a3, _mm256_maddubs_epi16(v, load256(at + 3 * row)));
        }
        sums[0] = _mm256_add_epi32(sums[0], _mm256_madd_epi16(a0, ones));
        sums[1] = _mm256_add_epi32(sums[1], _mm256_madd_epi16(a1, ones));
        sums[2] = _mm256_add_epi32(sums[2], _mm256_madd_epi16(a2, ones));
        sums[3] = _mm256_add_epi32(sums[3], _mm256_madd_epi16(a3, ones));
    }
}

/* The dot products of uint8 values x[n_values] with 4 rows of wide weights
 * `row` bytes apart: the whole vectors of x, then `tail`, the values short
 * of a vector copied and padded with zeros (x is never read past its end;
 * the weights there are 0). */
BNN_AVX_TARGET static BNN_ALWAYS_INLINE void wide_dot4(const uint8_t *x, int32_t n_values,
                                                       const uint8_t *tail, const int8_t *w,
                                                       size_t row, int32_t dots[4])
{
    __m256i sums[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                       _mm256_setzero_si256()};
    const int32_t whole = n_values / 32;
    const uint8_t *w8 = (const uint8_t *)w;
    wide_steps(x, whole, w8, row, sums);
    if (n_values % 32)
        wide_steps(tail, 1, w8 + 32 * (size_t)whole, row, sums);
    for (int r = 0; r < 4; r++)
        dots[r] = avx2_sum32(sums[r]);
}

/* DENSE_PLANES over a batch with wide weights, GROUP samples at a time: each
 * block of 4 rows (a few KB, kept in L1) serves every sample of the group
 * before the next block is read. */
#define BNN_WIDE_GROUP 16
BNN_AVX_TARGET static void dense_wide_avx2(const uint8_t *x, size_t x_stride, int32_t n_samples,
                                           const int8_t *wide, int32_t n_out, int32_t n_values,
                                           const int32_t *threshold, const uint8_t *flip,
                                           void *out, size_t out_stride)
{
    const size_t row = (size_t)bnn_wide_row(n_values), whole = (size_t)(n_values / 32 * 32);
    uint8_t tails[BNN_WIDE_GROUP][32];
    if (threshold)
        clear_bits(out, out_stride, n_samples, n_out);
    for (int32_t first = 0; first < n_samples; first += BNN_WIDE_GROUP) {
        const int32_t group = n_samples - first < BNN_WIDE_GROUP ? n_samples - first : BNN_WIDE_GROUP;
        memset(tails, 0, sizeof tails);
        for (int32_t s = 0; s < group; s++)
            memcpy(tails[s], x + (size_t)(first + s) * x_stride + whole, (size_t)n_values - whole);
        for (int32_t j = 0; j < n_out; j += 4)
            for (int32_t s = 0; s < group; s++) {
                const struct emitter e = emitter_at(threshold, flip, out, out_stride, first + s);
                int32_t dots[4];
                wide_dot4(x + (size_t)(first + s) * x_stride, n_values, tails[s],
                          wide + (size_t)j * row, row, dots);
                if (j + 4 <= n_out) {
                    emit4(&e, threshold != NULL, j, dots[0], dots[1], dots[2], dots[3]);
                } else {
                    for (int32_t r = 0; j + r < n_out; r++)
                        emit(&e, threshold != NULL, j + r, dots[r]);
                }
            }
    }
}

/* int8_quantize 8 values at a time: the largest magnitude and the NaN or
 * infinity check, then division, rounding to nearest even (vroundps), the
 * clamp and the narrowing to bytes; the last values one at a time. */
BNN_AVX_TARGET static int32_t int8_quantize_avx2(const float *x, int32_t n, int8_t *q, float *scale)
{
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 largest = _mm256_set1_ps(FLT_MAX);
    __m256 top8 = _mm256_setzero_ps(), bad8 = _mm256_setzero_ps();
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 m = _mm256_and_ps(_mm256_loadu_ps(x + i), magnitude);
        bad8 = _mm256_or_ps(bad8, _mm256_cmp_ps(m, largest, _CMP_NLE_UQ));   /* NaN, infinity */
        top8 = _mm256_max_ps(top8, m);
    }
    float lanes[8], top = 0.0f;
    _mm256_storeu_ps(lanes, top8);
    int32_t bad = _mm256_movemask_ps(bad8) != 0;
    for (int k = 0; k < 8; k++)
        top = lanes[k] > top ? lanes[k] : top;
    for (int32_t k = i; k < n; k++) {
        const float m = fabsf(x[k]);
        bad |= !(m <= FLT_MAX);
        top = m > top ? m : top;
    }
    BNN_ROUNDED s = top / 127.0f;
    *scale = s;
    if (bad || !(s > 0.0f))
        return bad;
    const __m256 step = _mm256_set1_ps(s), high = _mm256_set1_ps(127.0f), low = _mm256_set1_ps(-127.0f);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), step),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256i codes = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, low), high));
        const __m128i halves = _mm_packs_epi32(_mm256_castsi256_si128(codes),
                                               _mm256_extracti128_si256(codes, 1));
        _mm_storel_epi64((__m128i *)(void *)(q + i), _mm_packs_epi16(halves, halves));
    }
    for (; i < n; i++)
        q[i] = int8_code(x[i], s);
    return 0;
}

/* int8_dot4 with vpmaddubsw: it multiplies unsigned by signed bytes, so the
 * values' signs move onto the weights (vpsignb) and their magnitudes are
 * multiplied; a pair of products stays within 16 bits (2 * 127 * 127), and
 * vpmaddwd widens each step into 32-bit sums. Weights must avoid -128,
 * which vpsignb cannot negate (the layer refuses it at load). */
BNN_AVX_TARGET static void int8_dot4_avx2(const int8_t *q, const int8_t *w, size_t row, int32_t n,
                                          int32_t acc[4])
{
    const __m256i ones = _mm256_set1_epi16(1);
    const uint8_t *q8 = (const uint8_t *)q, *w8 = (const uint8_t *)w;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (int32_t i = 0; i < n; i += 32) {
        const __m256i v = load256(q8 + i), magnitude = _mm256_abs_epi8(v);
        const uint8_t *at = w8 + i;
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(
            _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(load256(at), v)), ones));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(
            _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(load256(at + row), v)), ones));
        s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(
            _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(load256(at + 2 * row), v)), ones));
        s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(
            _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(load256(at + 3 * row), v)), ones));
    }
    acc[0] = avx2_sum32(s0);
    acc[1] = avx2_sum32(s1);
    acc[2] = avx2_sum32(s2);
    acc[3] = avx2_sum32(s3);
}

/* out[j] = out[j] + v * w[j] for j from `from` to n - 1 (fewer than 8): 4
 * at a time in SSE, then one by one. Masked AVX stores would do it in one
 * step, but are microcoded and slow on AMD's Zen. */
BNN_AVX_TARGET static BNN_ALWAYS_INLINE void float_tail(float *out, float v, const float *w,
                                                        int32_t from, int32_t n)
{
    int32_t j = from;
    if (j + 4 <= n) {
        _mm_storeu_ps(out + j, _mm_add_ps(_mm_loadu_ps(out + j),
                                          _mm_mul_ps(_mm_set1_ps(v), _mm_loadu_ps(w + j))));
        j += 4;
    }
    for (; j < n; j++) {
        BNN_ROUNDED product = v * w[j];
        out[j] = out[j] + product;
    }
}

/* add_row_portable 8 outputs a vector, the last n % 8 by float_tail. */
BNN_AVX_TARGET static BNN_ALWAYS_INLINE void add_row_avx2(float *out, float v, const float *row,
                                                          int32_t n)
{
    const __m256 value = _mm256_set1_ps(v);
    const int32_t whole = n - n % 8;
    for (int32_t j = 0; j < whole; j += 8)
        _mm256_storeu_ps(out + j, _mm256_add_ps(_mm256_loadu_ps(out + j),
                                                _mm256_mul_ps(value, _mm256_loadu_ps(row + j))));
    float_tail(out, v, row, whole, n);
}

/* dense_float_portable 8 outputs a vector, 4 rows of w at a time: each
 * vector of sums is loaded once, gets the 4 rows' products one after the
 * other (the order of the portable loop, multiply then add, so the same
 * bits) and is stored once; the rows stream from memory in order. */
BNN_AVX_TARGET static void dense_float_avx2(const float *value, const int32_t *place, int32_t m,
                                            const float *w, int32_t n_out, float *out)
{
    const int32_t whole = n_out - n_out % 8;
    for (int32_t j = 0; j < n_out; j++)
        out[j] = 0.0f;
    int32_t k = 0;
    for (; k + 4 <= m; k += 4) {
        const float *r0 = w + (size_t)place[k] * n_out, *r1 = w + (size_t)place[k + 1] * n_out;
        const float *r2 = w + (size_t)place[k + 2] * n_out, *r3 = w + (size_t)place[k + 3] * n_out;
        const __m256 v0 = _mm256_set1_ps(value[k]), v1 = _mm256_set1_ps(value[k + 1]);
        const __m256 v2 = _mm256_set1_ps(value[k + 2]), v3 = _mm256_set1_ps(value[k + 3]);
        for (int32_t j = 0; j < whole; j += 8) {
            __m256 a = _mm256_loadu_ps(out + j);
            a = _mm256_add_ps(a, _mm256_mul_ps(v0, _mm256_loadu_ps(r0 + j)));
            a = _mm256_add_ps(a, _mm256_mul_ps(v1, _mm256_loadu_ps(r1 + j)));
            a = _mm256_add_ps(a, _mm256_mul_ps(v2, _mm256_loadu_ps(r2 + j)));
            a = _mm256_add_ps(a, _mm256_mul_ps(v3, _mm256_loadu_ps(r3 + j)));
            _mm256_storeu_ps(out + j, a);
        }
        float_tail(out, value[k], r0, whole, n_out);
        float_tail(out, value[k + 1], r1, whole, n_out);
        float_tail(out, value[k + 2], r2, whole, n_out);
        float_tail(out, value[k + 3], r3, whole, n_out);
    }
    for (; k < m; k++)
        add_row_avx2(out, value[k], w + (size_t)place[k] * n_out, n_out);
}

/* float_scatter_portable with add_row_avx2. */
BNN_AVX_TARGET static void float_scatter_avx2(float *out, ptrdiff_t out_step, float v,
                                              const float *w, ptrdiff_t w_step, int32_t count,
                                              int32_t n)
{
    for (int32_t t = 0; t < count; t++, out += out_step, w += w_step)
        add_row_avx2(out, v, w, n);
}

#if (defined(__clang__) && __clang_major__ >= 7) || (!defined(__clang__) && __GNUC__ >= 8)
#define BNN_X86_AVX512 1      /* the compiler knows AVX-512 VPOPCNTDQ */
#endif
#endif

#ifdef BNN_X86_AVX512
/* The kernels once more with AVX-512 VPOPCNTDQ: the dense layer on packed
 * signs counts word k of 8 rows in one vpopcntq (its weights regrouped by
 * bnn_dense_lanes), so no sum across lanes is needed; the other kernels
 * count 64 bytes of a row at a time, masked loads taking what is left. */
#define BNN_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vpopcntdq,avx2,popcnt")))

/* 64 bytes at p; the words outside the mask m are neither read nor counted (0). */
BNN_AVX512_TARGET static inline __m512i load512(__mmask8 m, const uint8_t *p)
{
    return _mm512_maskz_loadu_epi64(m, p);
}

static inline uint8_t reverse8(unsigned b)
{
    b = (b & 0xF0u) >> 4 | (b & 0x0Fu) << 4;
    b = (b & 0xCCu) >> 2 | (b & 0x33u) << 2;
    return (uint8_t)((b & 0xAAu) >> 1 | (b & 0x55u) << 1);
}

/* Outputs j..j+7, j a multiple of 8, from the popcounts in `counts`' lanes:
 * 8 threshold bits (one whole byte) or 8 float dots. */
BNN_AVX512_TARGET static inline void emit8(const struct emitter *e, int to_bits, int32_t j,
                                           int32_t n_bits, __m512i counts)
{
    const __m512i dots = _mm512_sub_epi64(_mm512_set1_epi64(n_bits), _mm512_slli_epi64(counts, 1));
    if (!to_bits) {
        _mm256_storeu_ps(e->dots + j, _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(dots)));
        return;
    }
    const __m512i t = _mm512_cvtepi32_epi64(
        _mm256_loadu_si256((const __m256i *)(const void *)(e->threshold + j)));
    const __m512i f = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(const void *)(e->flip + j)));
    const unsigned bits = (unsigned)_mm512_cmpge_epi64_mask(dots, t)
                        ^ (unsigned)_mm512_test_epi64_mask(f, _mm512_set1_epi64(1));
    e->bits[j >> 3] = reverse8(bits);     /* lane 0, output j, is the byte's first (top) bit */
}

#define BNN_FN(name) name##_avx512
#define BNN_TARGET BNN_AVX512_TARGET
#define BNN_AVX512 1
#include "bnn_kernels.inc"
#endif

/* The codes of x[n] into q (left as they are when the step is 0) and the
 * step *scale = max|x| / 127; nonzero when a value is NaN or infinite. */
static int32_t int8_quantize_portable(const float *x, int32_t n, int8_t *q, float *scale)
{
    float top = 0.0f;
    int32_t bad = 0;
    for (int32_t i = 0; i < n; i++) {
        const float magnitude = fabsf(x[i]);
        bad |= !(magnitude <= FLT_MAX);
        top = magnitude > top ? magnitude : top;
    }
    BNN_ROUNDED s = top / 127.0f;
    *scale = s;
    for (int32_t i = 0; !bad && s > 0.0f && i < n; i++)
        q[i] = int8_code(x[i], s);
    return bad;
}

/* The int8 dot products of q[n] with 4 weight rows `row` bytes apart (n a
 * multiple of 32, both zero-padded). With NEON: vmull/vmlal multiply 8
 * pairs of bytes into 16-bit lanes, two products a lane (2 * 127 * 127 <
 * 2^15), and vpadal widens them into 32-bit sums, 16 values a step. Else
 * plain C, which compilers vectorize. */
static void int8_dot4_portable(const int8_t *q, const int8_t *w, size_t row, int32_t n,
                               int32_t acc[4])
{
#ifdef BNN_HAS_NEON
    int32x4_t sums[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (int32_t i = 0; i < n; i += 16) {
        const int8x16_t v = vld1q_s8(q + i);
        for (int r = 0; r < 4; r++) {
            const int8x16_t weights = vld1q_s8(w + (size_t)r * row + i);
            int16x8_t products = vmull_s8(vget_low_s8(v), vget_low_s8(weights));
            products = vmlal_s8(products, vget_high_s8(v), vget_high_s8(weights));
            sums[r] = vpadalq_s16(sums[r], products);
        }
    }
    for (int r = 0; r < 4; r++) {
        const int64x2_t pairs = vpaddlq_s32(sums[r]);
        acc[r] = (int32_t)(vgetq_lane_s64(pairs, 0) + vgetq_lane_s64(pairs, 1));
    }
#else
    for (int r = 0; r < 4; r++) {
        const int8_t *weights = w + (size_t)r * row;
        int32_t sum = 0;
        for (int32_t i = 0; i < n; i++)
            sum += q[i] * weights[i];
        acc[r] = sum;
    }
#endif
}

/* out[j] = out[j] + v * row[j] for j < n, each product and sum rounded to
 * float: the one step of the float dense and convolution kernels (compilers
 * vectorize it). */
static inline void add_row_portable(float *out, float v, const float *row, int32_t n)
{
    for (int32_t j = 0; j < n; j++) {
        BNN_ROUNDED product = v * row[j];
        out[j] = out[j] + product;
    }
}

/* The sums of a float dense layer over its m nonzero inputs, value[k] at
 * place[k]: out[j] = sum_k value[k] * w[place[k]][j], k in increasing
 * order, one row of w added to all of out at a time. */
static void dense_float_portable(const float *value, const int32_t *place, int32_t m,
                                 const float *w, int32_t n_out, float *out)
{
    for (int32_t j = 0; j < n_out; j++)
        out[j] = 0.0f;
    for (int32_t k = 0; k < m; k++)
        add_row_portable(out, value[k], w + (size_t)place[k] * n_out, n_out);
}

/* A convolution's updates from one input value v: for t < count, the n
 * sums at out + t * out_step get v times the weights at w + t * w_step. */
static void float_scatter_portable(float *out, ptrdiff_t out_step, float v, const float *w,
                                   ptrdiff_t w_step, int32_t count, int32_t n)
{
    for (int32_t t = 0; t < count; t++, out += out_step, w += w_step)
        add_row_portable(out, v, w, n);
}

/* The popcount paths this build has, each its instances of the kernels;
 * on x86 in order of speed, so the best one the CPU supports is the last. */
struct path {
    const char *name;
    void (*dense_bits)(const uint8_t *x, size_t x_stride, int32_t n_samples, const uint8_t *weight,
                       const uint8_t *lanes, int32_t n_out, int32_t row_bytes, int32_t n_bits,
                       const int32_t *threshold, const uint8_t *flip, void *out,
                       size_t out_stride);
    void (*dense_planes)(const uint8_t *planes, const uint8_t *weight, int32_t n_out,
                         int32_t row_bytes, const int32_t *threshold, const uint8_t *flip,
                         uint8_t *out_bits, float *out_dots);
    void (*conv_pool)(const uint8_t *x, const bnn_conv_shape *shape, const uint8_t *weight,
                      const int32_t *threshold, const uint8_t *flip, uint8_t *out);
    int32_t (*pack_signs)(const float *x, int32_t n, uint8_t *out);
    /* uint8 values times wide weights, a batch at a time; NULL: the bit planes serve */
    void (*dense_wide)(const uint8_t *x, size_t x_stride, int32_t n_samples, const int8_t *wide,
                       int32_t n_out, int32_t n_values, const int32_t *threshold,
                       const uint8_t *flip, void *out, size_t out_stride);
    int32_t (*int8_quantize)(const float *x, int32_t n, int8_t *q, float *scale);
    void (*int8_dot4)(const int8_t *q, const int8_t *w, size_t row, int32_t n, int32_t acc[4]);
    void (*dense_float)(const float *value, const int32_t *place, int32_t m, const float *w,
                        int32_t n_out, float *out);
    void (*float_scatter)(float *out, ptrdiff_t out_step, float v, const float *w,
                          ptrdiff_t w_step, int32_t count, int32_t n);
};
#define BNN_PATH(name, suffix, conv, wide, int8) \
    {name, dense_bits_##suffix, dense_planes_##suffix, conv_pool_##conv, pack_signs_##suffix, wide, \
     int8_quantize_##int8, int8_dot4_##int8, dense_float_##int8, float_scatter_##int8}

#ifdef BNN_HAS_NEON
#define BNN_PORTABLE_NAME "neon"
#elif defined(__POPCNT__) && !defined(BNN_X86_DISPATCH)
#define BNN_PORTABLE_NAME "popcnt"
#else
#define BNN_PORTABLE_NAME "portable"
#endif

static const struct path paths[] = {
    BNN_PATH(BNN_PORTABLE_NAME, portable, portable, NULL, portable),
#ifdef BNN_X86_DISPATCH
    BNN_PATH("popcnt", popcnt, popcnt, NULL, portable),
    BNN_PATH("avx2", avx2, avx2, dense_wide_avx2, avx2),
#endif
#ifdef BNN_X86_AVX512
    /* see bnn_kernels.inc on the convolution */
    BNN_PATH("avx512", avx512, avx2, dense_wide_avx2, avx2),
#endif
};

#ifdef BNN_X86_DISPATCH
#include <cpuid.h>

/* Whether the OS saves the register state `mask` (bits of XCR0) on a context
 * switch: 0x6 SSE and AVX (ymm), 0xe6 AVX-512 too (opmask and all of zmm).
 * A CPU may have the instructions while the OS leaves them off. */
static int os_saves(unsigned mask)
{
    unsigned a, b, c, d, low, high;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
        return 0;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    (void)high;
    return (low & mask) == mask;
}

/* The index in paths of the fastest path this CPU and OS support. */
static int best_path(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("popcnt"))
        return 0;
    if (!__builtin_cpu_supports("avx2") || !os_saves(0x6))
        return 1;
#ifdef BNN_X86_AVX512
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vpopcntdq") && os_saves(0xe6))
        return 3;
#endif
    return 2;
}
#else
static int best_path(void)
{
    return 0;
}
#endif

static int best = -1, chosen = -1;     /* indices in paths, known on first use */

static const struct path *path_in_use(void)
{
    if (chosen < 0)
        chosen = best = best_path();
    return &paths[chosen];
}

const char *bnn_popcount_path(void)
{
    return path_in_use()->name;
}

const char *bnn_popcount_paths(void)
{
    static char names[64];         /* "portable popcnt avx2 avx512" at the most */
    if (!names[0]) {
        path_in_use();
        for (int k = 0; k <= best; k++) {
            strcat(names, paths[k].name);
            strcat(names, k < best ? " " : "");
        }
    }
    return names;
}

int32_t bnn_use_popcount_path(const char *name)
{
    path_in_use();
    for (int k = 0; k <= best; k++)
        if (strcmp(paths[k].name, name) == 0) {
            chosen = k;
            return 1;
        }
    return 0;
}

void bnn_dense_bits(const uint8_t *x, const uint8_t *weight, const uint8_t *lanes, int32_t n_out,
                    int32_t row_bytes, int32_t n_bits, const int32_t *threshold,
                    const uint8_t *flip, uint8_t *out_bits, float *out_dots)
{
    path_in_use()->dense_bits(x, 0, 1, weight, lanes, n_out, row_bytes, n_bits, threshold, flip,
                              threshold ? (void *)out_bits : (void *)out_dots, 0);
}

int32_t bnn_dense_lanes_bytes(int32_t n_out, int32_t row_bytes)
{
#ifdef BNN_X86_AVX512
    path_in_use();                 /* only a CPU that can run the AVX-512 path needs lanes */
    if (strcmp(paths[best].name, "avx512") != 0 || row_bytes % 8)
        return 0;
    return n_out / 8 * 8 * row_bytes;
#else
    (void)n_out;
    (void)row_bytes;
    return 0;
#endif
}

void bnn_dense_lanes(const uint8_t *weight, int32_t n_out, int32_t row_bytes, uint8_t *lanes)
{
    const int32_t words = row_bytes / 8;
    for (int32_t j = 0; j + 8 <= n_out && bnn_dense_lanes_bytes(n_out, row_bytes) > 0; j += 8)
        for (int32_t k = 0; k < words; k++)
            for (int32_t r = 0; r < 8; r++)
                memcpy(lanes + (size_t)j * row_bytes + 64 * (size_t)k + 8 * r,
                       weight + (size_t)(j + r) * row_bytes + 8 * (size_t)k, 8);
}

int32_t bnn_wide_row(int32_t n_values)
{
    return (n_values + 31) / 32 * 32;
}

int64_t bnn_dense_wide_bytes(int32_t n_out, int32_t n_values)
{
    path_in_use();               /* only a CPU that can run the byte kernel needs them */
    if (!paths[best].dense_wide)
        return 0;
    return (int64_t)(n_out + 3) / 4 * 4 * bnn_wide_row(n_values);
}

void bnn_dense_wide(const uint8_t *weight, int32_t n_out, int32_t row_bytes, int32_t n_values,
                    int8_t *wide)
{
    const size_t row = (size_t)bnn_wide_row(n_values);
    if (bnn_dense_wide_bytes(n_out, n_values) == 0)
        return;
    memset(wide, 0, (size_t)(n_out + 3) / 4 * 4 * row);
    for (int32_t j = 0; j < n_out; j++)
        for (int32_t i = 0; i < n_values; i++) {
            const unsigned bit = weight[(size_t)j * row_bytes + i / 8] >> (7 - i % 8) & 1u;
            wide[(size_t)j * row + i] = bit ? 1 : -1;
        }
}

void bnn_dense_planes(const uint8_t *planes, const uint8_t *weight, int32_t n_out,
                      int32_t row_bytes, const int32_t *threshold, const uint8_t *flip,
                      uint8_t *out_bits, float *out_dots)
{
    path_in_use()->dense_planes(planes, weight, n_out, row_bytes, threshold, flip, out_bits,
                                out_dots);
}

void bnn_conv_pool(const uint8_t *x, const bnn_conv_shape *shape, const uint8_t *weight,
                   const int32_t *threshold, const uint8_t *flip, uint8_t *out)
{
    path_in_use()->conv_pool(x, shape, weight, threshold, flip, out);
}

int32_t bnn_pack_signs(const float *x, int32_t n, uint8_t *out)
{
    return path_in_use()->pack_signs(x, n, out);
}

void bnn_bitplanes(const uint8_t *x, int32_t n, int32_t plane_bytes, uint8_t *planes)
{
    memset(planes, 0, (size_t)8 * plane_bytes);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        /* eight values in one word; per plane, bit b of each byte masked to
         * the byte's lowest bit, and one multiply gathers the 8 bits, value
         * i first (MSB), into the top byte: no branch on the pixel values */
        uint64_t v = 0;
        for (int k = 0; k < 8; k++)
            v |= (uint64_t)x[i + k] << (8 * k);
        for (int b = 0; b < 8; b++)
            planes[(size_t)b * plane_bytes + (i >> 3)] =
                (uint8_t)((((v >> b) & 0x0101010101010101ULL) * 0x8040201008040201ULL) >> 56);
    }
    for (; i < n; i++)
        for (int b = 0; b < 8; b++)
            planes[(size_t)b * plane_bytes + (i >> 3)] |=
                (uint8_t)(((x[i] >> b) & 1u) << (7 - (i & 7)));
}

int32_t bnn_dense_int8(const float *x, int32_t n_in, const int8_t *weight, int32_t n_out,
                       int32_t row_bytes, const float *scale, const float *bias, int32_t relu,
                       int8_t *work, float *out)
{
    const struct path *path = path_in_use();
    float s;
    memset(work, 0, (size_t)row_bytes);
    if (path->int8_quantize(x, n_in, work, &s))
        return 1;
    for (int32_t j = 0; j < n_out; j += 4) {
        int32_t acc[4];
        path->int8_dot4(work, weight + (size_t)j * row_bytes, (size_t)row_bytes, row_bytes, acc);
        for (int32_t r = 0; r < 4 && j + r < n_out; r++) {
            BNN_ROUNDED multiplier = s * scale[j + r];
            BNN_ROUNDED product = (float)acc[r] * multiplier;
            BNN_ROUNDED value = product + bias[j + r];
            out[j + r] = relu && value < 0.0f ? 0.0f : value;
        }
    }
    return 0;
}

/* 1 unless v is +0 or -0 (NaN counts), from its bits: cheaper than a float
 * compare, whose NaN case compilers handle with extra flag tests. */
static inline int32_t nonzero_float(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits << 1) != 0;
}

/* The float layers' last step on n sums: out[j] + bias[j], ReLU'd. */
static void add_bias(float *out, int32_t n, const float *bias, int32_t relu)
{
    for (int32_t j = 0; j < n; j++) {
        BNN_ROUNDED sum = out[j] + bias[j];
        out[j] = relu && sum < 0.0f ? 0.0f : sum;
    }
}

void bnn_dense_float(const float *x, int32_t n_in, const float *weight_t, int32_t n_out,
                     const float *bias, int32_t relu, float *work, float *out)
{
    int32_t *place = (int32_t *)(void *)(work + n_in), m = 0;
    for (int32_t i = 0; i < n_in; i++) {       /* no branch: zeros come and go at random */
        work[m] = x[i];
        place[m] = i;
        m += nonzero_float(x[i]);
    }
    path_in_use()->dense_float(work, place, m, weight_t, n_out, out);
    add_bias(out, n_out, bias, relu);
}

/* The kernel offsets k (k = first, first + stride, ... below kernel) that
 * place input i at an output o = (i + pad - k) / stride in [0, n_out): the
 * first such k in *first, the output it gives in *o, and their count. */
static int32_t conv_taps(int32_t i, int32_t pad, int32_t kernel, int32_t stride, int32_t n_out,
                         int32_t *first, int32_t *o)
{
    const int32_t t = i + pad;                  /* k = t - o * stride */
    int32_t top = t / stride < n_out - 1 ? t / stride : n_out - 1;  /* the largest o, k >= 0 */
    const int32_t low = t - top * stride;
    if (low >= kernel)
        return 0;
    *first = low;
    *o = top;
    const int32_t count = (kernel - 1 - low) / stride + 1;
    return count < top + 1 ? count : top + 1;   /* o stays >= 0 */
}

void bnn_conv_float(const float *x, const bnn_conv_shape *shape, const float *columns,
                    const float *bias, int32_t relu, float *out)
{
    const struct path *path = path_in_use();
    const int32_t height = shape->height, width = shape->width, channels = shape->channels;
    const int32_t kernel_w = shape->kernel_w, n_out = shape->out_channels;
    const int32_t stride_h = shape->stride_h, stride_w = shape->stride_w;
    const int32_t out_h = bnn_conv_size(height, shape->kernel_h, stride_h, shape->pad_h);
    const int32_t out_w = bnn_conv_size(width, kernel_w, stride_w, shape->pad_w);
    const size_t outputs = (size_t)out_h * out_w * n_out;
    const ptrdiff_t w_step = (ptrdiff_t)stride_w * channels * n_out;
    memset(out, 0, sizeof(float) * outputs);
    /* Each nonzero input value adds its products to the outputs whose windows
     * hold it. Inputs come in raster order, so each output's sum still runs
     * over its window's (ky, kx, c) in order: bnn_dense_float's order. Along
     * a window row, kx + stride_w meets the output one to the left, whose
     * weights the flipped columns hold stride_w * channels rows earlier:
     * with one channel and stride 1, one run of outputs and one of weights. */
    for (int32_t iy = 0; iy < height; iy++) {
        int32_t ky = 0, oy = 0;
        const int32_t rows = conv_taps(iy, shape->pad_h, shape->kernel_h, stride_h, out_h, &ky, &oy);
        for (int32_t ix = 0; ix < width; ix++) {
            int32_t kx = 0, ox = 0;
            const int32_t count = conv_taps(ix, shape->pad_w, kernel_w, stride_w, out_w, &kx, &ox);
            if (!rows || !count)
                continue;
            for (int32_t c = 0; c < channels; c++) {
                const float v = x[((size_t)iy * width + ix) * channels + c];
                if (!nonzero_float(v))
                    continue;
                for (int32_t r = 0; r < rows; r++) {
                    const int32_t y = oy - r, k = ky + r * stride_h;
                    const int32_t last = kx + (count - 1) * stride_w;     /* at ox - count + 1 */
                    float *to = out + ((size_t)y * out_w + ox - count + 1) * n_out;
                    const float *w = columns
                        + ((size_t)(k * kernel_w + kernel_w - 1 - last) * channels + c) * n_out;
                    if (w_step == n_out)
                        path->float_scatter(to, 0, v, w, 0, 1, count * n_out);
                    else
                        path->float_scatter(to, n_out, v, w, w_step, count, n_out);
                }
            }
        }
    }
    for (float *at = out; at < out + outputs; at += n_out)
        add_bias(at, n_out, bias, relu);
}

void bnn_pool_float(const float *x, const bnn_conv_shape *shape, int32_t average, float *out)
{
    const int32_t width = shape->width, channels = shape->channels;
    const int32_t out_h = bnn_conv_size(shape->height, shape->kernel_h, shape->stride_h, 0);
    const int32_t out_w = bnn_conv_size(width, shape->kernel_w, shape->stride_w, 0);
    const float count = (float)(shape->kernel_h * shape->kernel_w);
    /* the channels of a pixel are contiguous: each window pixel updates them all */
    for (int32_t oy = 0; oy < out_h; oy++)
        for (int32_t ox = 0; ox < out_w; ox++, out += channels) {
            const float *corner = x + ((size_t)oy * shape->stride_h * width
                                       + (size_t)ox * shape->stride_w) * channels;
            for (int32_t c = 0; c < channels; c++)
                out[c] = average ? 0.0f : corner[c];
            for (int32_t ky = 0; ky < shape->kernel_h; ky++)
                for (int32_t kx = 0; kx < shape->kernel_w; kx++) {
                    const float *v = corner + ((size_t)ky * width + kx) * channels;
                    if (average)
                        for (int32_t c = 0; c < channels; c++) {
                            BNN_ROUNDED sum = out[c] + v[c];
                            out[c] = sum;
                        }
                    else
                        for (int32_t c = 0; c < channels; c++)
                            out[c] = v[c] > out[c] ? v[c] : out[c];
                }
            for (int32_t c = 0; average && c < channels; c++) {
                BNN_ROUNDED mean = out[c] / count;
                out[c] = mean;
            }
        }
}

void bnn_preprocess(const void *in, int32_t n, int32_t value_bytes, float scale, float offset,
                    float *out)
{
    const uint8_t *bytes = in;
    const float *floats = in;
    if (value_bytes == 1)           /* two loops, so that compilers vectorize each */
        for (int32_t j = 0; j < n; j++) {
            BNN_ROUNDED product = (float)bytes[j] * scale;
            out[j] = product + offset;
        }
    else
        for (int32_t j = 0; j < n; j++) {
            BNN_ROUNDED product = floats[j] * scale;
            out[j] = product + offset;
        }
}

void bnn_scale_shift(const float *in, int32_t n, const float *scale, const float *shift,
                     float *out)
{
    for (int32_t j = 0; j < n; j++) {
        BNN_ROUNDED product = in[j] * scale[j];
        out[j] = product + shift[j];
    }
}

bnn_summary bnn_summarize(const float *logits, int32_t n)
{
    bnn_summary s = {0, NAN, NAN};
    double top = logits[0], total = 0.0, weighted = 0.0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > top) {
            top = logits[i];
            s.label = i;
        }
    for (int32_t i = 0; i < n; i++) {
        const double z = (double)logits[i] - top, e = exp(z);
        total += e;
        weighted += e * z;
    }
    if (!isfinite(total) || !isfinite(weighted))
        return s;
    /* log p_i = z_i - log S, so -sum p log p = log S - sum(p z) */
    const double eta = (log(total) - weighted / total) / log((double)n);
    s.confidence = 1.0 / total;
    s.entropy = eta < 0.0 ? 0.0 : eta > 1.0 ? 1.0 : eta;
    return s;
}

void bnn_summarize_rows(const float *logits, int32_t n, int32_t rows, int32_t *labels,
                        double *confidences, double *entropies)
{
    for (int32_t r = 0; r < rows; r++) {
        const bnn_summary s = bnn_summarize(logits + (size_t)r * n, n);
        labels[r] = s.label;
        confidences[r] = s.confidence;
        entropies[r] = s.entropy;
    }
}

int32_t bnn_run(const bnn_step *steps, int32_t n_steps, const void *input, int32_t n_samples)
{
    const struct path *path = path_in_use();
    int32_t bad = 0;
    for (int32_t k = 0; k < n_steps; k++) {
        const bnn_step *s = &steps[k];
        const uint8_t *in = k ? s->in : input;
        uint8_t *out = s->out;
        const size_t in_stride = (size_t)s->in_stride, out_stride = (size_t)s->out_stride;
        if (s->op == BNN_DENSE_BITS) {      /* the kernels that take the batch whole */
            path->dense_bits(in, in_stride, n_samples, s->weight, s->lanes, s->n_out, s->row_bytes,
                             s->n_in, s->threshold, s->flip, out, out_stride);
            continue;
        }
        if (s->op == BNN_DENSE_PLANES && s->wide && path->dense_wide) {
            path->dense_wide(in, in_stride, n_samples, s->wide, s->n_out, s->n_in, s->threshold,
                             s->flip, out, out_stride);
            continue;
        }
        for (int32_t n = 0; n < n_samples; n++, in += in_stride, out += out_stride) {
            uint8_t *bits = s->threshold ? out : NULL;
            float *dots = s->threshold ? NULL : (float *)(void *)out;
            switch (s->op) {
            case BNN_PACK_SIGNS:
                bad |= path->pack_signs((const float *)(const void *)in, s->n_in, out);
                break;
            case BNN_DENSE_PLANES:
                bnn_bitplanes(in, s->n_in, s->row_bytes, s->work);
                path->dense_planes(s->work, s->weight, s->n_out, s->row_bytes, s->threshold,
                                   s->flip, bits, dots);
                break;
            case BNN_CONV_POOL:
                path->conv_pool(in, s->conv, s->weight, s->threshold, s->flip, out);
                break;
            case BNN_SCALE_SHIFT:
                bnn_scale_shift((const float *)(const void *)in, s->n_out, s->scale, s->shift,
                                (float *)(void *)out);
                break;
            case BNN_PREPROCESS:
                bnn_preprocess(in, s->n_in, s->row_bytes, s->scale[0], s->shift[0],
                               (float *)(void *)out);
                break;
            case BNN_DENSE_INT8:
                bad |= bnn_dense_int8((const float *)(const void *)in, s->n_in,
                                      (const int8_t *)(const void *)s->weight, s->n_out,
                                      s->row_bytes, s->scale, s->shift, s->relu,
                                      (int8_t *)(void *)s->work, (float *)(void *)out);
                break;
            case BNN_CONV_FLOAT:
                bnn_conv_float((const float *)(const void *)in, s->conv,
                               (const float *)(const void *)s->weight, s->shift, s->relu,
                               (float *)(void *)out);
                break;
            case BNN_MAX_POOL:
            case BNN_AVERAGE_POOL:
                bnn_pool_float((const float *)(const void *)in, s->conv, s->op == BNN_AVERAGE_POOL,
                               (float *)(void *)out);
                break;
            case BNN_DENSE_FLOAT:
                bnn_dense_float((const float *)(const void *)in, s->n_in,
                                (const float *)(const void *)s->weight, s->n_out, s->shift,
                                s->relu, (float *)(void *)s->work, (float *)(void *)out);
                break;
            }
        }
    }
    return bad;
}
