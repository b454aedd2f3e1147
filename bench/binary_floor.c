/* The honest floor for a binarized 784-1000-500-10 per sample: what a plain
 * hand-written C program gets, the yardstick bench/binary.py measures the
 * runtime against. Plain scalar C, no intrinsics: every size a compile-time
 * constant, 64-bit words, XOR + popcount, integer thresholds, and nothing
 * left on the table that plain C can take: no branch on a data bit (input
 * signs and output bits are gathered into a word in a register, then stored
 * once). bench/binary.py builds it with -O3 -march=native, so the compiler
 * may use any instruction this CPU has (it unrolls the constant loops and
 * may vectorize them), and feeds it the runtime's own packed weights (raw
 * files in one folder), so both do the same work. It prints the median
 * nanoseconds per sample over its rounds and a checksum of the scores.
 *
 *   cc -O3 -march=native -o floor binary_floor.c && ./floor DIR SAMPLES ROUNDS
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_IN 784
#define N_H1 1000
#define N_H2 500
#define N_OUT 10
#define WORDS(bits) (((bits) + 63) / 64)

/* Where sign i of a packed row lands in its little-endian 64-bit word: byte
 * i / 8 of the word, most significant bit first (docs/FORMAT.md). */
#define SHIFT(i) (8 * (((i) & 63) >> 3) + 7 - ((i) & 7))

static uint64_t w1[N_H1][WORDS(N_IN)];     /* packed signs, rows padded to words */
static uint64_t w2[N_H2][WORDS(N_H1)];
static uint64_t w3[N_OUT][WORDS(N_H2)];
static int32_t t1[N_H1], t2[N_H2];
static uint8_t f1[N_H1], f2[N_H2];
static float scale[N_OUT], shift[N_OUT];

static void load(const char *dir, const char *name, void *into, size_t row_bytes,
                 size_t row_stride, size_t rows)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    for (size_t r = 0; r < rows; r++)
        if (fread((uint8_t *)into + r * row_stride, 1, row_bytes, f) != row_bytes) {
            fprintf(stderr, "%s: short file\n", path);
            exit(1);
        }
    fclose(f);
}

static void pack(const float *x, uint64_t *out)
{
    for (int k = 0; k < WORDS(N_IN); k++) {
        uint64_t word = 0;
        for (int i = 64 * k; i < 64 * k + 64 && i < N_IN; i++)
            word |= (uint64_t)(x[i] >= 0.0f) << SHIFT(i);
        out[k] = word;
    }
}

#define LAYER(name, N, M)                                                             \
    static void name(const uint64_t *x, uint64_t w[][WORDS(N)], const int32_t *t,     \
                     const uint8_t *f, uint64_t *out)                                 \
    {                                                                                 \
        for (int k = 0; k < WORDS(M); k++) {                                          \
            uint64_t word = 0;                                                        \
            for (int j = 64 * k; j < 64 * k + 64 && j < M; j++) {                    \
                int pc = 0;                                                           \
                for (int i = 0; i < WORDS(N); i++)                                    \
                    pc += __builtin_popcountll(x[i] ^ w[j][i]);                       \
                word |= (uint64_t)(((N) - 2 * pc >= t[j]) ^ f[j]) << SHIFT(j);        \
            }                                                                         \
            out[k] = word;                                                            \
        }                                                                             \
    }
LAYER(layer1, N_IN, N_H1)
LAYER(layer2, N_H1, N_H2)

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: %s DIR SAMPLES ROUNDS\n", argv[0]); return 2; }
    const char *dir = argv[1];
    int samples = atoi(argv[2]), rounds = atoi(argv[3]);
    if (samples < 1 || rounds < 1) { fprintf(stderr, "SAMPLES and ROUNDS must be >= 1\n"); return 2; }
    load(dir, "w1", w1, (N_IN + 7) / 8, sizeof w1[0], N_H1);
    load(dir, "w2", w2, (N_H1 + 7) / 8, sizeof w2[0], N_H2);
    load(dir, "w3", w3, (N_H2 + 7) / 8, sizeof w3[0], N_OUT);
    load(dir, "t1", t1, sizeof t1, 0, 1);
    load(dir, "t2", t2, sizeof t2, 0, 1);
    load(dir, "f1", f1, sizeof f1, 0, 1);
    load(dir, "f2", f2, sizeof f2, 0, 1);
    load(dir, "scale", scale, sizeof scale, 0, 1);
    load(dir, "shift", shift, sizeof shift, 0, 1);
    float *inputs = malloc(sizeof(float) * N_IN * (size_t)samples);
    double *times = malloc(sizeof(double) * (size_t)rounds);
    load(dir, "inputs", inputs, sizeof(float) * N_IN * (size_t)samples, 0, 1);

    uint64_t a0[WORDS(N_IN)], a1[WORDS(N_H1)], a2[WORDS(N_H2)];
    float scores[N_OUT];
    double checksum = 0.0;
    for (int r = 0; r < rounds; r++) {
        struct timespec start, stop;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (int s = 0; s < samples; s++) {
            pack(inputs + (size_t)s * N_IN, a0);
            layer1(a0, w1, t1, f1, a1);
            layer2(a1, w2, t2, f2, a2);
            for (int j = 0; j < N_OUT; j++) {
                int pc = 0;
                for (int i = 0; i < WORDS(N_H2); i++)
                    pc += __builtin_popcountll(a2[i] ^ w3[j][i]);
                scores[j] = (float)(N_H2 - 2 * pc) * scale[j] + shift[j];
            }
            if (r == 0)
                for (int j = 0; j < N_OUT; j++)
                    checksum += scores[j] * (j + 1);
        }
        clock_gettime(CLOCK_MONOTONIC, &stop);
        times[r] = ((stop.tv_sec - start.tv_sec) * 1e9 + (stop.tv_nsec - start.tv_nsec)) / samples;
    }
    qsort(times, (size_t)rounds, sizeof times[0], by_value);
    printf("%.1f %.6f\n", times[rounds / 2], checksum);
    free(inputs);
    free(times);
    return 0;
}
