/* Self-test of the kernel in plain C, for sanitizers and emulated boards.
 *
 * Runs every kernel on pseudo-random inputs at awkward sizes, compares each
 * result with a direct computation on unpacked +-1 / integer values, and
 * prints a checksum of all outputs: the same on every CPU, whatever popcount
 * path it takes. Exit status 1 on any mismatch.
 *
 *   cc -std=c99 -O2 csrc/bnn.c csrc/selftest.c -o selftest && ./selftest
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnn.h"

static uint32_t state = 12345u;
static uint32_t next_random(void)      /* xorshift32: identical everywhere */
{
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

static uint32_t checksum = 2166136261u;  /* FNV-1a over every output byte */
static void mix(const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++)
        checksum = (checksum ^ p[i]) * 16777619u;
}

static int failures = 0;
static void expect(int ok, const char *what, int a, int b)
{
    if (!ok && failures++ < 10)
        fprintf(stderr, "MISMATCH %s (%d, %d)\n", what, a, b);
}

static int sign_at(const uint8_t *packed, int i)    /* +1 / -1 of bit i */
{
    return (packed[i >> 3] >> (7 - (i & 7))) & 1 ? 1 : -1;
}

/* Random packed signs: `runs` runs of n bits, each padded to whole bytes. */
static void random_signs(uint8_t *out, int runs, int n)
{
    int bytes = (n + 7) / 8;
    for (int r = 0; r < runs; r++)
        for (int b = 0; b < bytes; b++) {
            int real = n - 8 * b < 8 ? n - 8 * b : 8;
            out[r * bytes + b] = (uint8_t)(next_random() & (0xFF00u >> real));
        }
}

static void test_dense(int n_bits, int n_out)
{
    int row = (n_bits + 7) / 8;
    uint8_t *x = malloc(row), *w = malloc((size_t)row * n_out), *bits = calloc((n_out + 7) / 8, 1);
    uint8_t *planes = malloc(8 * (size_t)row), *values = malloc(n_bits), *flip = malloc(n_out);
    float *dots = malloc(sizeof(float) * n_out);
    int32_t *threshold = malloc(sizeof(int32_t) * n_out);
    random_signs(x, 1, n_bits);
    random_signs(w, n_out, n_bits);
    for (int j = 0; j < n_out; j++) {
        threshold[j] = (int32_t)(next_random() % (2u * n_bits + 1)) - n_bits;
        flip[j] = next_random() & 1;
    }
    bnn_dense_bits(x, w, n_out, row, n_bits, NULL, NULL, NULL, dots);
    bnn_dense_bits(x, w, n_out, row, n_bits, threshold, flip, bits, NULL);
    for (int j = 0; j < n_out; j++) {
        int dot = 0;
        for (int i = 0; i < n_bits; i++)
            dot += sign_at(x, i) * sign_at(w + (size_t)j * row, i);
        expect(dots[j] == (float)dot, "dense dot", (int)dots[j], dot);
        int bit = (dot >= threshold[j]) ^ flip[j];
        expect(((bits[j >> 3] >> (7 - (j & 7))) & 1) == bit, "dense bit", j, bit);
    }
    mix(dots, sizeof(float) * n_out);
    mix(bits, (n_out + 7) / 8);

    for (int i = 0; i < n_bits; i++)
        values[i] = (uint8_t)next_random();
    bnn_bitplanes(values, n_bits, row, planes);
    bnn_dense_planes(planes, w, n_out, row, NULL, NULL, NULL, dots);
    for (int j = 0; j < n_out; j++) {
        int dot = 0;
        for (int i = 0; i < n_bits; i++)
            dot += values[i] * sign_at(w + (size_t)j * row, i);
        expect(dots[j] == (float)dot, "planes dot", (int)dots[j], dot);
    }
    mix(dots, sizeof(float) * n_out);
    free(x); free(w); free(bits); free(planes); free(values); free(flip); free(dots); free(threshold);
}

static void test_conv(bnn_conv_shape s)
{
    int cb = (s.channels + 7) / 8, ob = (s.out_channels + 7) / 8;
    int conv_h = (s.height + 2 * s.pad_h - s.kernel_h) / s.stride_h + 1;
    int conv_w = (s.width + 2 * s.pad_w - s.kernel_w) / s.stride_w + 1;
    int out_h = conv_h / s.pool_h, out_w = conv_w / s.pool_w;
    size_t in_size = (size_t)s.height * s.width * (s.uint8_input ? s.channels : cb);
    size_t kernel = (size_t)s.kernel_h * s.kernel_w * cb;
    uint8_t *x = malloc(in_size), *w = malloc(kernel * s.out_channels);
    uint8_t *out = calloc((size_t)out_h * out_w * ob, 1), *flip = malloc(s.out_channels);
    int32_t *threshold = malloc(sizeof(int32_t) * s.out_channels);
    if (s.uint8_input)
        for (size_t i = 0; i < in_size; i++)
            x[i] = (uint8_t)next_random();
    else
        random_signs(x, s.height * s.width, s.channels);
    random_signs(w, s.out_channels * s.kernel_h * s.kernel_w, s.channels);
    int span = s.kernel_h * s.kernel_w * s.channels * (s.uint8_input ? 64 : 1);
    for (int o = 0; o < s.out_channels; o++) {
        threshold[o] = (int32_t)(next_random() % (2u * span + 1)) - span;
        flip[o] = next_random() & 1;
    }
    bnn_conv_pool(x, &s, w, threshold, flip, out);
    for (int py = 0; py < out_h; py++)
        for (int px = 0; px < out_w; px++)
            for (int o = 0; o < s.out_channels; o++) {
                int best = INT32_MIN;
                for (int cy = py * s.pool_h; cy < (py + 1) * s.pool_h; cy++)
                    for (int cx = px * s.pool_w; cx < (px + 1) * s.pool_w; cx++) {
                        int dot = 0;
                        for (int ky = 0; ky < s.kernel_h; ky++)
                            for (int kx = 0; kx < s.kernel_w; kx++) {
                                int y = cy * s.stride_h - s.pad_h + ky, xx = cx * s.stride_w - s.pad_w + kx;
                                if (y < 0 || y >= s.height || xx < 0 || xx >= s.width)
                                    continue;
                                const uint8_t *wk = w + o * kernel + ((size_t)ky * s.kernel_w + kx) * cb;
                                for (int c = 0; c < s.channels; c++) {
                                    size_t pixel = (size_t)y * s.width + xx;
                                    int v = s.uint8_input ? x[pixel * s.channels + c]
                                                          : sign_at(x + pixel * cb, c);
                                    dot += v * sign_at(wk, c);
                                }
                            }
                        if (dot > best)
                            best = dot;
                    }
                int bit = (best >= threshold[o]) ^ flip[o];
                const uint8_t *pixel = out + ((size_t)py * out_w + px) * ob;
                expect(((pixel[o >> 3] >> (7 - (o & 7))) & 1) == bit, "conv bit", o, bit);
            }
    mix(out, (size_t)out_h * out_w * ob);
    free(x); free(w); free(out); free(flip); free(threshold);
}

int main(void)
{
    static const int bits[] = {1, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000};
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
        test_dense(bits[i], 1);
        test_dense(bits[i], 13);
    }
    static const bnn_conv_shape convs[] = {
        /* h, w, c, uint8, out, kh, kw, sh, sw, ph, pw, pool_h, pool_w */
        {5, 5, 1, 0, 1, 3, 3, 1, 1, 0, 0, 1, 1},
        {7, 9, 3, 0, 5, 3, 3, 1, 1, 1, 1, 2, 2},
        {8, 6, 8, 0, 9, 2, 3, 2, 1, 0, 1, 1, 2},
        {11, 7, 9, 0, 16, 3, 2, 1, 2, 2, 1, 3, 2},
        {6, 13, 17, 0, 3, 1, 5, 1, 1, 0, 2, 2, 3},
        {4, 4, 64, 0, 8, 3, 3, 1, 1, 1, 1, 4, 4},
        {28, 28, 1, 1, 16, 3, 3, 1, 1, 0, 0, 2, 2},
        {9, 7, 3, 1, 5, 3, 2, 2, 1, 1, 1, 2, 1},
    };
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        test_conv(convs[i]);
    float floats[19] = {0.0f, -0.0f, 1.5f, -2.0f, 3.0f, -1e-30f, 1e-30f, 7.0f, -7.0f, 0.5f,
                        -0.5f, 2.0f, -3.0f, 4.0f, -4.0f, 0.0f, 1.0f, -1.0f, 9.0f};
    uint8_t packed[3];
    int32_t bad = bnn_pack_signs(floats, 19, packed);
    expect(packed[0] == 0xEB && packed[1] == 0x55 && packed[2] == 0xA0, "pack_signs", packed[0], packed[1]);
    expect(bad == 0, "pack_signs: finite values", bad, 0);
    const float odd[10] = {1.0f, NAN, -INFINITY, 2.0f, 0.0f, 3.0f, 4.0f, 5.0f, INFINITY, -1.0f};
    uint8_t odd_packed[2];
    bad = bnn_pack_signs(odd, 10, odd_packed);
    expect(bad != 0, "pack_signs: NaN and infinite values flagged", bad, 1);
    for (int k = 0; k < 10; k++) {       /* each position alone, in the body and the tail */
        float one[10] = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 9.0f};
        one[k] = k % 2 ? NAN : -INFINITY;
        bad = bnn_pack_signs(one, 10, odd_packed);
        expect(bad != 0, "pack_signs: one bad value flagged", k, bad);
    }
    mix(packed, 3);
    printf("bnn selftest: %s, popcount path %s, checksum %08x\n",
           failures ? "FAILED" : "ok", bnn_popcount_path(), (unsigned)checksum);
    return failures ? 1 : 0;
}
