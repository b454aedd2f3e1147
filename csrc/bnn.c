/* edgebnn binary kernel (see bnn.h). Portable C99; a faster popcount is used
 * where the CPU has one: NEON's vcnt when compiled for it; on x86 (GCC and
 * clang) AVX2's vpshufb nibble counts or the POPCNT instruction, each chosen
 * at run time when the running CPU (and, for AVX2, the OS) supports it, so
 * one build serves Atoms with and without POPCNT and desktops with AVX2. */
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

/* `to_bits` is a constant at every call (see BNN_BOTH_OUTPUTS), so each
 * loop is compiled without the test. */
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
/* The same kernels with the POPCNT instruction, then with AVX2 too, each
 * chosen only at run time, when the CPU (and for AVX2 the OS) supports it. */
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

static int cpu_path(void)      /* 0 portable, 1 popcnt, 2 avx2 */
{
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt") ? 2
              : __builtin_cpu_supports("popcnt") ? 1 : 0;
    }
    return known;
}
#define BNN_PICK(name) (cpu_path() == 2 ? name##_avx2 : cpu_path() ? name##_popcnt : name##_portable)
#define BNN_PATH (cpu_path() == 2 ? "avx2" : cpu_path() ? "popcnt" : "portable")
#else
#define BNN_PICK(name) name##_portable
#ifdef BNN_HAS_NEON
#define BNN_PATH "neon"
#elif defined(__POPCNT__)
#define BNN_PATH "popcnt"
#else
#define BNN_PATH "portable"
#endif
#endif

void bnn_dense_bits(const uint8_t *x, const uint8_t *weight, int32_t n_out,
                    int32_t row_bytes, int32_t n_bits, const int32_t *threshold,
                    const uint8_t *flip, uint8_t *out_bits, float *out_dots)
{
    BNN_PICK(dense_bits)(x, weight, n_out, row_bytes, n_bits, threshold, flip, out_bits, out_dots);
}

void bnn_dense_planes(const uint8_t *planes, const uint8_t *weight, int32_t n_out,
                      int32_t row_bytes, const int32_t *threshold, const uint8_t *flip,
                      uint8_t *out_bits, float *out_dots)
{
    BNN_PICK(dense_planes)(planes, weight, n_out, row_bytes, threshold, flip, out_bits, out_dots);
}

void bnn_conv_pool(const uint8_t *x, const bnn_conv_shape *shape, const uint8_t *weight,
                   const int32_t *threshold, const uint8_t *flip, uint8_t *out)
{
    BNN_PICK(conv_pool)(x, shape, weight, threshold, flip, out);
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

int32_t bnn_pack_signs(const float *x, int32_t n, uint8_t *out)
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

void bnn_scale_shift(const float *in, int32_t n, const float *scale, const float *shift,
                     float *out)
{
    for (int32_t j = 0; j < n; j++) {
        /* a volatile store rounds the product to float even where the FPU
         * keeps more precision (x87 on 32-bit x86) */
        volatile float product = in[j] * scale[j];
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

int32_t bnn_run(const bnn_step *steps, int32_t n_steps, const void *input)
{
    int32_t bad = 0;
    for (int32_t k = 0; k < n_steps; k++) {
        const bnn_step *s = &steps[k];
        const void *in = k ? s->in : input;
        uint8_t *bits = s->threshold ? s->out : NULL;
        float *dots = s->threshold ? NULL : s->out;
        switch (s->op) {
        case BNN_PACK_SIGNS:
            bad |= bnn_pack_signs(in, s->n_in, s->out);
            break;
        case BNN_DENSE_BITS:
            bnn_dense_bits(in, s->weight, s->n_out, s->row_bytes, s->n_in, s->threshold,
                           s->flip, bits, dots);
            break;
        case BNN_DENSE_PLANES:
            bnn_bitplanes(in, s->n_in, s->row_bytes, s->work);
            bnn_dense_planes(s->work, s->weight, s->n_out, s->row_bytes, s->threshold, s->flip,
                             bits, dots);
            break;
        case BNN_CONV_POOL:
            bnn_conv_pool(in, s->conv, s->weight, s->threshold, s->flip, s->out);
            break;
        case BNN_SCALE_SHIFT:
            bnn_scale_shift(in, s->n_out, s->scale, s->shift, s->out);
            break;
        }
    }
    return bad;
}

const char *bnn_popcount_path(void)
{
    return BNN_PATH;
}
