/* The C kernel's work for one sample of the binary 784-1000-500-10, as the
 * runtime calls it (runtime/layers: sign, then binary dense layers on rows
 * padded to whole 64-bit words, with their lane layout where the build has
 * a kernel that reads it; the last layer's batch norm is left out):
 *
 *   bnn_pack_signs(784) -> bnn_dense_bits(1000, thresholds)
 *     -> bnn_dense_bits(500, thresholds) -> bnn_dense_bits(10, dots)
 *
 * on random weights, SAMPLES times over 16 prepared inputs. Run it with 0 and
 * with N samples under an instruction counter: the difference over N is the
 * instructions per sample, start-up and set-up cancelled. The checksum of the
 * scores must be the same on every CPU.
 *
 *   cc -O3 -Icsrc csrc/bnn.c .ci/boards/insn_driver.c -o driver && ./driver SAMPLES */
#include <stdio.h>
#include <stdlib.h>

#include "bnn.h"

#define N_IN 784
#define N_H1 1000
#define N_H2 500
#define N_OUT 10
#define ROW(bits) ((((bits) + 7) / 8 + 7) / 8 * 8)   /* packed, padded to words */
#define INPUTS 16

static uint8_t w1[N_H1][ROW(N_IN)], w2[N_H2][ROW(N_H1)], w3[N_OUT][ROW(N_H2)];
static uint8_t l1[N_H1][ROW(N_IN)], l2[N_H2][ROW(N_H1)], l3[N_OUT][ROW(N_H2)];
static int32_t t1[N_H1], t2[N_H2];
static uint8_t f1[N_H1], f2[N_H2];
static float inputs[INPUTS][N_IN];

static uint32_t state = 2463534242u;
static uint32_t next_random(void)
{
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

/* The weights' lane layout, or NULL where no kernel of this build reads one. */
static const uint8_t *lanes(const uint8_t *weight, int n_out, int row_bytes, uint8_t *room)
{
    if (!bnn_dense_lanes_bytes(n_out, row_bytes))
        return NULL;
    bnn_dense_lanes(weight, n_out, row_bytes, room);
    return room;
}

static void random_rows(uint8_t *rows, int n_rows, int bits)
{
    for (int r = 0; r < n_rows; r++)
        for (int b = 0; b < ROW(bits); b++) {
            int real = bits - 8 * b;
            uint8_t mask = real >= 8 ? 0xFF : real <= 0 ? 0 : (uint8_t)(0xFF00u >> real);
            rows[(size_t)r * ROW(bits) + b] = (uint8_t)next_random() & mask;
        }
}

int main(int argc, char **argv)
{
    long samples = argc > 1 ? atol(argv[1]) : 0;
    static uint8_t x[ROW(N_IN)], h1[ROW(N_H1)], h2[ROW(N_H2)];
    float scores[N_OUT];
    uint32_t checksum = 2166136261u;

    random_rows(&w1[0][0], N_H1, N_IN);
    random_rows(&w2[0][0], N_H2, N_H1);
    random_rows(&w3[0][0], N_OUT, N_H2);
    for (int j = 0; j < N_H1; j++) {
        t1[j] = (int32_t)(next_random() % 81) - 40;
        f1[j] = next_random() & 1;
    }
    for (int j = 0; j < N_H2; j++) {
        t2[j] = (int32_t)(next_random() % 81) - 40;
        f2[j] = next_random() & 1;
    }
    for (int s = 0; s < INPUTS; s++)
        for (int i = 0; i < N_IN; i++)
            inputs[s][i] = (float)((int32_t)(next_random() % 2001) - 1000) / 1000.0f;

    const uint8_t *lanes1 = lanes(&w1[0][0], N_H1, ROW(N_IN), &l1[0][0]);
    const uint8_t *lanes2 = lanes(&w2[0][0], N_H2, ROW(N_H1), &l2[0][0]);
    const uint8_t *lanes3 = lanes(&w3[0][0], N_OUT, ROW(N_H2), &l3[0][0]);
    for (long s = 0; s < samples; s++) {
        bnn_pack_signs(inputs[s % INPUTS], N_IN, x);
        bnn_dense_bits(x, &w1[0][0], lanes1, N_H1, ROW(N_IN), N_IN, t1, f1, h1, NULL);
        bnn_dense_bits(h1, &w2[0][0], lanes2, N_H2, ROW(N_H1), N_H1, t2, f2, h2, NULL);
        bnn_dense_bits(h2, &w3[0][0], lanes3, N_OUT, ROW(N_H2), N_H2, NULL, NULL, NULL, scores);
        checksum = (checksum ^ (uint32_t)(int32_t)scores[s % N_OUT]) * 16777619u;
    }
    printf("path %s samples %ld checksum %08x\n", bnn_popcount_path(), samples,
           (unsigned)checksum);
    return 0;
}
