/* The floor for a binarized 784-1000-500-10 per sample: plain C with every size
 * fixed at compile time, 64-bit words, XOR + popcount, integer thresholds.
 * bench/binary.py compiles it with the best flags for this machine and feeds
 * it the runtime's own packed weights (raw files in one folder), so both do
 * the same work; it prints the ns per sample and a checksum of the scores.
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

static void pack(const float *x, int n, uint64_t *out)
{
    uint8_t *bytes = (uint8_t *)out;
    memset(out, 0, WORDS(n) * 8);
    for (int i = 0; i < n; i++)
        if (x[i] >= 0.0f)
            bytes[i >> 3] |= (uint8_t)(0x80u >> (i & 7));
}

#define LAYER(name, N, M)                                                             \
    static void name(const uint64_t *x, uint64_t w[][WORDS(N)], const int32_t *t,     \
                     const uint8_t *f, uint64_t *out)                                 \
    {                                                                                 \
        uint8_t *bytes = (uint8_t *)out;                                              \
        memset(out, 0, WORDS(M) * 8);                                                 \
        for (int j = 0; j < M; j++) {                                                 \
            int pc = 0;                                                               \
            for (int k = 0; k < WORDS(N); k++)                                        \
                pc += __builtin_popcountll(x[k] ^ w[j][k]);                           \
            if ((((N) - 2 * pc) >= t[j]) ^ f[j])                                      \
                bytes[j >> 3] |= (uint8_t)(0x80u >> (j & 7));                         \
        }                                                                             \
    }
LAYER(layer1, N_IN, N_H1)
LAYER(layer2, N_H1, N_H2)

int main(int argc, char **argv)
{
    if (argc != 4) { fprintf(stderr, "usage: %s DIR SAMPLES ROUNDS\n", argv[0]); return 2; }
    const char *dir = argv[1];
    int samples = atoi(argv[2]), rounds = atoi(argv[3]);
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
    load(dir, "inputs", inputs, sizeof(float) * N_IN * (size_t)samples, 0, 1);

    uint64_t a0[WORDS(N_IN)], a1[WORDS(N_H1)], a2[WORDS(N_H2)];
    float scores[N_OUT];
    double checksum = 0.0;
    struct timespec start, stop;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int r = 0; r < rounds; r++) {
        for (int s = 0; s < samples; s++) {
            pack(inputs + (size_t)s * N_IN, N_IN, a0);
            layer1(a0, w1, t1, f1, a1);
            layer2(a1, w2, t2, f2, a2);
            for (int j = 0; j < N_OUT; j++) {
                int pc = 0;
                for (int k = 0; k < WORDS(N_H2); k++)
                    pc += __builtin_popcountll(a2[k] ^ w3[j][k]);
                scores[j] = (float)(N_H2 - 2 * pc) * scale[j] + shift[j];
            }
            if (r == 0)
                for (int j = 0; j < N_OUT; j++)
                    checksum += scores[j] * (j + 1);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &stop);
    double ns = (stop.tv_sec - start.tv_sec) * 1e9 + (stop.tv_nsec - start.tv_nsec);
    printf("%.1f %.6f\n", ns / ((double)rounds * samples), checksum);
    free(inputs);
    return 0;
}
