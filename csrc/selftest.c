/* Self-test of the kernel in plain C, for sanitizers and emulated boards.
 *
 * Runs every kernel on pseudo-random inputs at awkward sizes, compares each
 * result with a direct computation on unpacked +-1 / integer values, and
 * prints a checksum of all outputs: the same on every CPU, whatever popcount
 * path it takes. Rows run from 1 bit to past the SIMD loops' counter
 * flushes, so every vector loop is entered; batches go through bnn_run.
 * Every popcount path the CPU supports runs the whole test, each giving the
 * same checksum; the line printed names the fastest (the default). Exit
 * status 1 on any mismatch.
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

/* Random packed signs: `runs` runs of n bits, `stride` bytes apart, padding bits 0. */
static void random_signs(uint8_t *out, int runs, int n, int stride)
{
    for (int r = 0; r < runs; r++)
        for (int b = 0; b < bnn_sign_bytes(n); b++) {
            int real = n - 8 * b < 8 ? n - 8 * b : 8;
            out[(size_t)r * stride + b] = (uint8_t)(next_random() & (0xFF00u >> real));
        }
}

static int bit_at(const uint8_t *packed, int j)
{
    return (packed[j >> 3] >> (7 - (j & 7))) & 1;
}

/* Room for bnn_dense_lanes, or NULL where this build needs none. */
static uint8_t *new_lanes(int n_out, int row_bytes)
{
    const int32_t bytes = bnn_dense_lanes_bytes(n_out, row_bytes);
    return bytes ? malloc((size_t)bytes) : NULL;
}

/* The dense layers against direct sums, for `samples` inputs: each alone,
 * with and without the lane layout, then the batch in one bnn_run. Rows are
 * `row` bytes: whole words, as the layers keep them, or just the signs. */
static void test_dense(int n_bits, int n_out, int samples, int whole_words)
{
    const int row = whole_words ? (bnn_sign_bytes(n_bits) + 7) / 8 * 8 : bnn_sign_bytes(n_bits);
    const int ob = bnn_sign_bytes(n_out);
    uint8_t *x = calloc((size_t)row * samples, 1), *w = calloc((size_t)row * n_out, 1);
    uint8_t *lanes = new_lanes(n_out, row);
    uint8_t *bits = malloc((size_t)ob * samples), *flip = malloc(n_out);
    uint8_t *planes = malloc(8 * (size_t)row), *values = malloc(n_bits);
    float *dots = malloc(sizeof(float) * n_out * samples);
    int32_t *threshold = malloc(sizeof(int32_t) * n_out), *expected = malloc(sizeof(int32_t) * n_out * samples);
    random_signs(x, samples, n_bits, row);
    random_signs(w, n_out, n_bits, row);
    if (lanes)
        bnn_dense_lanes(w, n_out, row, lanes);
    for (int j = 0; j < n_out; j++) {
        threshold[j] = (int32_t)(next_random() % (2u * n_bits + 1)) - n_bits;
        flip[j] = next_random() & 1;
    }
    for (int s = 0; s < samples; s++)
        for (int j = 0; j < n_out; j++) {
            int dot = 0;
            for (int i = 0; i < n_bits; i++)
                dot += sign_at(x + (size_t)s * row, i) * sign_at(w + (size_t)j * row, i);
            expected[s * n_out + j] = dot;
        }
    for (int pass = 0; pass < 3; pass++) {   /* alone without lanes, alone with, batch */
        memset(dots, 0x55, sizeof(float) * n_out * samples);
        memset(bits, 0x55, (size_t)ob * samples);
        if (pass < 2) {
            for (int s = 0; s < samples; s++) {
                const uint8_t *in = x + (size_t)s * row, *with = pass ? lanes : NULL;
                bnn_dense_bits(in, w, with, n_out, row, n_bits, NULL, NULL, NULL, dots + s * n_out);
                bnn_dense_bits(in, w, with, n_out, row, n_bits, threshold, flip, bits + s * ob, NULL);
            }
        } else {
            bnn_step step = {.op = BNN_DENSE_BITS, .n_in = n_bits, .n_out = n_out, .row_bytes = row,
                             .in_stride = row, .out_stride = 4 * n_out, .out = dots, .weight = w,
                             .lanes = lanes};
            bnn_run(&step, 1, x, samples);
            step.threshold = threshold;
            step.flip = flip;
            step.out = bits;
            step.out_stride = ob;
            bnn_run(&step, 1, x, samples);
        }
        for (int s = 0; s < samples; s++)
            for (int j = 0; j < n_out; j++) {
                const int dot = expected[s * n_out + j], bit = (dot >= threshold[j]) ^ flip[j];
                expect(dots[s * n_out + j] == (float)dot, "dense dot", (int)dots[s * n_out + j], dot);
                expect(bit_at(bits + s * ob, j) == bit, "dense bit", j, bit);
            }
        mix(dots, sizeof(float) * n_out * samples);
        mix(bits, (size_t)ob * samples);
    }

    for (int i = 0; i < n_bits; i++)
        values[i] = (uint8_t)next_random();
    bnn_bitplanes(values, n_bits, row, planes);
    bnn_dense_planes(planes, w, n_out, row, NULL, NULL, NULL, dots);
    /* the same layer with wide weights, on the paths that have the byte kernel */
    const int64_t wide_bytes = bnn_dense_wide_bytes(n_out, n_bits);
    int8_t *wide = wide_bytes ? malloc((size_t)wide_bytes) : NULL;
    float *wide_dots = malloc(sizeof(float) * n_out);
    bnn_dense_wide(w, n_out, row, n_bits, wide);
    bnn_step step = {.op = BNN_DENSE_PLANES, .n_in = n_bits, .n_out = n_out, .row_bytes = row,
                     .out = wide_dots, .work = planes, .weight = w, .wide = wide};
    bnn_run(&step, 1, values, 1);
    for (int j = 0; j < n_out; j++) {
        int dot = 0;
        for (int i = 0; i < n_bits; i++)
            dot += values[i] * sign_at(w + (size_t)j * row, i);
        expect(dots[j] == (float)dot, "planes dot", (int)dots[j], dot);
        expect(wide_dots[j] == (float)dot, "wide dot", (int)wide_dots[j], dot);
    }
    mix(dots, sizeof(float) * n_out);
    mix(wide_dots, sizeof(float) * n_out);
    free(wide); free(wide_dots);
    free(x); free(w); free(lanes); free(bits); free(flip); free(planes); free(values);
    free(dots); free(threshold); free(expected);
}

/* Sign -> dense (planes of the raw values when `planes`; with wide weights
 * too when `planes` is 2, where the CPU runs a byte kernel) -> dense (dots)
 * -> scale and shift over a batch in one bnn_run, against the same chain
 * run sample by sample: the strides of every step. The checksum holds the
 * wide path to the planes (main runs every path). */
static void test_chain(int n_in, int hidden, int n_out, int samples, int planes)
{
    const int r1 = (bnn_sign_bytes(n_in) + 7) / 8 * 8, r2 = (bnn_sign_bytes(hidden) + 7) / 8 * 8;
    uint8_t *w1 = calloc((size_t)r1 * hidden, 1), *w2 = calloc((size_t)r2 * n_out, 1);
    uint8_t *l1 = new_lanes(hidden, r1);
    uint8_t *flip = malloc(hidden), *work = malloc(8 * (size_t)r1), *raw = malloc((size_t)n_in * samples);
    uint8_t *signs = calloc((size_t)r1 * samples, 1), *hid = calloc((size_t)r2 * samples, 1);
    int32_t *threshold = malloc(sizeof(int32_t) * hidden);
    float *x = malloc(sizeof(float) * n_in * samples), *dots = malloc(sizeof(float) * n_out * samples);
    float *scores = malloc(sizeof(float) * n_out * samples), *one = malloc(sizeof(float) * n_out);
    float *scale = malloc(sizeof(float) * n_out), *shift = malloc(sizeof(float) * n_out);
    random_signs(w1, hidden, n_in, r1);
    random_signs(w2, n_out, hidden, r2);
    if (l1)
        bnn_dense_lanes(w1, hidden, r1, l1);
    for (int j = 0; j < hidden; j++) {
        threshold[j] = (int32_t)(next_random() % 41) - 20 + (planes ? 127 * n_in / 8 : 0);
        flip[j] = next_random() & 1;
    }
    for (int i = 0; i < n_in * samples; i++) {
        raw[i] = (uint8_t)next_random();
        x[i] = (float)raw[i] - 127.5f;
    }
    for (int j = 0; j < n_out; j++) {     /* exact in float: the same on every FPU */
        scale[j] = (float)((int)(next_random() % 100) - 50) / 64.0f;
        shift[j] = (float)(next_random() % 100) / 8.0f;
    }
    bnn_step steps[4] = {
        {.op = BNN_PACK_SIGNS, .n_in = n_in, .in_stride = 4 * n_in, .out_stride = r1, .out = signs},
        {.op = BNN_DENSE_BITS, .n_in = n_in, .n_out = hidden, .row_bytes = r1, .in_stride = r1,
         .out_stride = r2, .in = signs, .out = hid, .weight = w1, .lanes = l1,
         .threshold = threshold, .flip = flip},
        {.op = BNN_DENSE_BITS, .n_in = hidden, .n_out = n_out, .row_bytes = r2, .in_stride = r2,
         .out_stride = 4 * n_out, .in = hid, .out = dots, .weight = w2},
        {.op = BNN_SCALE_SHIFT, .n_out = n_out, .in_stride = 4 * n_out, .out_stride = 4 * n_out,
         .in = dots, .out = scores, .scale = scale, .shift = shift},
    };
    const void *input = x;
    if (planes) {      /* the raw values, their bit planes in `work` */
        steps[1] = (bnn_step){.op = BNN_DENSE_PLANES, .n_in = n_in, .n_out = hidden, .row_bytes = r1,
                              .in_stride = n_in, .out_stride = r2, .out = hid, .work = work,
                              .weight = w1, .threshold = threshold, .flip = flip};
        input = raw;
    }
    const int64_t wide_bytes = planes == 2 ? bnn_dense_wide_bytes(hidden, n_in) : 0;
    int8_t *wide = wide_bytes ? malloc((size_t)wide_bytes) : NULL;
    if (wide) {
        bnn_dense_wide(w1, hidden, r1, n_in, wide);
        steps[1].wide = wide;
    }
    const bnn_step *chain = planes ? steps + 1 : steps;
    const int n_steps = planes ? 3 : 4;
    expect(bnn_run(chain, n_steps, input, samples) == 0, "chain: finite input", 0, 0);
    for (int s = 0; s < samples; s++) {
        const void *sample = planes ? (const void *)(raw + (size_t)s * n_in) : (const void *)(x + (size_t)s * n_in);
        float *batch_row = scores + (size_t)s * n_out;
        memcpy(one, batch_row, sizeof(float) * n_out);
        bnn_run(chain, n_steps, sample, 1);
        for (int j = 0; j < n_out; j++)
            expect(memcmp(&one[j], &scores[j], sizeof(float)) == 0, "chain: batch row = sample", s, j);
        mix(scores, sizeof(float) * n_out);
    }
    free(w1); free(w2); free(l1); free(wide); free(flip); free(work); free(raw); free(signs); free(hid);
    free(threshold); free(x); free(dots); free(scores); free(one); free(scale); free(shift);
}

/* The int8 dense layer against the formula of bnn.h computed here in plain
 * C, in a bnn_run chain over a batch and sample by sample; a zero input
 * (scale 0) and a NaN (refused). */
static void test_int8(int n_in, int n_out, int relu)
{
    const int row = (n_in + 31) / 32 * 32, rows = (n_out + 3) / 4 * 4, samples = 3;
    int8_t *w = calloc((size_t)row * rows, 1), *work = malloc((size_t)row);
    float *x = malloc(sizeof(float) * n_in * samples), *out = malloc(sizeof(float) * n_out * samples);
    float *scale = malloc(sizeof(float) * n_out), *bias = malloc(sizeof(float) * n_out);
    for (int j = 0; j < n_out; j++) {
        for (int i = 0; i < n_in; i++)
            w[(size_t)j * row + i] = (int8_t)((int)(next_random() % 255) - 127);
        scale[j] = (float)(next_random() % 1000 + 1) / 4096.0f;
        bias[j] = (float)((int)(next_random() % 200) - 100) / 16.0f;
    }
    for (int i = 0; i < n_in * samples; i++)
        x[i] = (float)((int)(next_random() % 20001) - 10000) / 1024.0f;
    for (int i = 0; i < n_in; i++)
        x[2 * n_in + i] = 0.0f;                         /* the third sample: all zero */
    bnn_step step = {.op = BNN_DENSE_INT8, .n_in = n_in, .n_out = n_out, .row_bytes = row,
                     .in_stride = 4 * n_in, .out_stride = 4 * n_out, .out = out, .work = (uint8_t *)work,
                     .weight = (const uint8_t *)w, .scale = scale, .shift = bias, .relu = relu};
    expect(bnn_run(&step, 1, x, samples) == 0, "int8: finite input", n_in, n_out);
    for (int s = 0; s < samples; s++) {
        const float *xs = x + (size_t)s * n_in;
        float top = 0.0f;
        for (int i = 0; i < n_in; i++)
            top = fabsf(xs[i]) > top ? fabsf(xs[i]) : top;
        volatile float q_scale = top / 127.0f;
        for (int j = 0; j < n_out; j++) {
            int32_t acc = 0;
            for (int i = 0; q_scale > 0.0f && i < n_in; i++) {
                volatile float ratio = xs[i] / q_scale;
                acc += (int32_t)lrintf(ratio) * w[(size_t)j * row + i];
            }
            volatile float multiplier = q_scale * scale[j];
            volatile float product = (float)acc * multiplier;
            volatile float want = product + bias[j];
            const float expected = relu && want < 0.0f ? 0.0f : want;
            expect(memcmp(&out[s * n_out + j], &expected, sizeof(float)) == 0, "int8 value", s, j);
        }
    }
    mix(out, sizeof(float) * n_out * samples);
    x[n_in / 2] = NAN;
    expect(bnn_run(&step, 1, x, 1) != 0, "int8: NaN refused", n_in, n_out);
    free(w); free(work); free(x); free(out); free(scale); free(bias);
}

/* The float dense layer against its formula in bnn.h, summed here over
 * every input, zeros too (adding a zero product changes no sum: the kernel
 * skips them), in a bnn_run chain over a batch; about a third of the
 * inputs are zero, as after a ReLU. */
static void test_float(int n_in, int n_out, int relu)
{
    const int samples = 3;
    float *w = malloc(sizeof(float) * n_in * n_out), *bias = malloc(sizeof(float) * n_out);
    float *x = malloc(sizeof(float) * n_in * samples), *out = malloc(sizeof(float) * n_out * samples);
    float *work = malloc(8 * (size_t)n_in);
    for (int i = 0; i < n_in * n_out; i++)
        w[i] = (float)((int)(next_random() % 20001) - 10000) / 8192.0f;
    for (int j = 0; j < n_out; j++)
        bias[j] = (float)((int)(next_random() % 200) - 100) / 16.0f;
    for (int i = 0; i < n_in * samples; i++)
        x[i] = next_random() % 3 ? (float)((int)(next_random() % 20001) - 10000) / 1024.0f : 0.0f;
    bnn_step step = {.op = BNN_DENSE_FLOAT, .n_in = n_in, .n_out = n_out,
                     .in_stride = 4 * n_in, .out_stride = 4 * n_out, .out = out,
                     .work = (uint8_t *)work, .weight = (const uint8_t *)w, .shift = bias,
                     .relu = relu};
    expect(bnn_run(&step, 1, x, samples) == 0, "float: ran", n_in, n_out);
    for (int s = 0; s < samples; s++)
        for (int j = 0; j < n_out; j++) {
            volatile float sum = 0.0f;
            for (int i = 0; i < n_in; i++) {
                volatile float product = x[s * n_in + i] * w[(size_t)i * n_out + j];
                sum = sum + product;
            }
            volatile float want = sum + bias[j];
            const float expected = relu && want < 0.0f ? 0.0f : want;
            expect(memcmp(&out[s * n_out + j], &expected, sizeof(float)) == 0, "float value", s, j);
        }
    mix(out, sizeof(float) * n_out * samples);
    free(w); free(bias); free(x); free(out); free(work);
}

/* The float convolution and pooling against their formulas in bnn.h, in a
 * bnn_run chain (conv, max pool, average pool); a third of the inputs zero. */
static void test_conv_float(bnn_conv_shape s, int relu)
{
    const int taps = s.kernel_h * s.kernel_w * s.channels, n_out = s.out_channels;
    const int out_h = bnn_conv_size(s.height, s.kernel_h, s.stride_h, s.pad_h);
    const int out_w = bnn_conv_size(s.width, s.kernel_w, s.stride_w, s.pad_w);
    const size_t n_in = (size_t)s.height * s.width * s.channels, n_conv = (size_t)out_h * out_w * n_out;
    float *x = malloc(sizeof(float) * n_in), *w = malloc(sizeof(float) * taps * n_out);
    float *bias = malloc(sizeof(float) * n_out), *conv = malloc(sizeof(float) * n_conv);
    for (size_t i = 0; i < n_in; i++)
        x[i] = next_random() % 3 ? (float)((int)(next_random() % 20001) - 10000) / 1024.0f : 0.0f;
    for (int i = 0; i < taps * n_out; i++)
        w[i] = (float)((int)(next_random() % 20001) - 10000) / 8192.0f;
    for (int j = 0; j < n_out; j++)
        bias[j] = (float)((int)(next_random() % 200) - 100) / 16.0f;
    /* pools of 2x2 windows, stride 1 across: overlapping windows */
    bnn_conv_shape pool = {out_h, out_w, n_out, 0, n_out, 2, 2, 2, 1, 0, 0, 1, 1};
    const int pool_h = bnn_conv_size(out_h, 2, 2, 0), pool_w = bnn_conv_size(out_w, 2, 1, 0);
    const size_t n_pool = (size_t)(pool_h > 0 ? pool_h : 0) * (pool_w > 0 ? pool_w : 0) * n_out;
    float *top = malloc(sizeof(float) * (n_pool + 1)), *mean = malloc(sizeof(float) * (n_pool + 1));
    bnn_step steps[3] = {
        {.op = BNN_CONV_FLOAT, .out = conv, .weight = (const uint8_t *)w,
         .shift = bias, .conv = &s, .relu = relu},
        {.op = BNN_MAX_POOL, .in = conv, .out = top, .conv = &pool},
        {.op = BNN_AVERAGE_POOL, .in = conv, .out = mean, .conv = &pool}};
    expect(bnn_run(steps, n_pool ? 3 : 1, x, 1) == 0, "conv float: ran", taps, n_out);
    for (int oy = 0; oy < out_h; oy++)
        for (int ox = 0; ox < out_w; ox++)
            for (int o = 0; o < n_out; o++) {
                volatile float sum = 0.0f;
                for (int ky = 0; ky < s.kernel_h; ky++)
                    for (int kx = 0; kx < s.kernel_w; kx++)
                        for (int c = 0; c < s.channels; c++) {
                            int iy = oy * s.stride_h - s.pad_h + ky, ix = ox * s.stride_w - s.pad_w + kx;
                            float v = iy < 0 || iy >= s.height || ix < 0 || ix >= s.width ? 0.0f
                                      : x[((size_t)iy * s.width + ix) * s.channels + c];
                            int flipped = s.kernel_w - 1 - kx;
                            volatile float product = v * w[((ky * s.kernel_w + flipped) * s.channels + c) * n_out + o];
                            sum = sum + product;
                        }
                volatile float want = sum + bias[o];
                const float expected = relu && want < 0.0f ? 0.0f : want;
                expect(memcmp(&conv[((size_t)oy * out_w + ox) * n_out + o], &expected, sizeof(float)) == 0,
                       "conv float value", oy * out_w + ox, o);
            }
    for (int py = 0; py < pool_h; py++)
        for (int px = 0; px < pool_w; px++)
            for (int o = 0; o < n_out; o++) {
                volatile float sum = 0.0f;
                float largest = conv[((size_t)(2 * py) * out_w + px) * n_out + o];
                for (int ky = 0; ky < 2; ky++)
                    for (int kx = 0; kx < 2; kx++) {
                        float v = conv[((size_t)(2 * py + ky) * out_w + px + kx) * n_out + o];
                        sum = sum + v;
                        largest = v > largest ? v : largest;
                    }
                volatile float rounded = sum / 4.0f;
                const float average = rounded;
                const size_t at = ((size_t)py * pool_w + px) * n_out + o;
                expect(memcmp(&top[at], &largest, sizeof(float)) == 0, "max pool value", (int)at, o);
                expect(memcmp(&mean[at], &average, sizeof(float)) == 0,
                       "average pool value", (int)at, o);
            }
    mix(conv, sizeof(float) * n_conv);
    mix(top, sizeof(float) * n_pool);
    mix(mean, sizeof(float) * n_pool);
    free(x); free(w); free(bias); free(conv); free(top); free(mean);
}

static void test_conv(bnn_conv_shape s)
{
    int cb = bnn_sign_bytes(s.channels), ob = bnn_sign_bytes(s.out_channels);
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
        random_signs(x, s.height * s.width, s.channels, cb);
    random_signs(w, s.out_channels * s.kernel_h * s.kernel_w, s.channels, cb);
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

static void test_pack_signs(void)
{
    float floats[19] = {0.0f, -0.0f, 1.5f, -2.0f, 3.0f, -1e-30f, 1e-30f, 7.0f, -7.0f, 0.5f,
                        -0.5f, 2.0f, -3.0f, 4.0f, -4.0f, 0.0f, 1.0f, -1.0f, 9.0f};
    uint8_t packed[3];
    int32_t bad = bnn_pack_signs(floats, 19, packed);
    expect(packed[0] == 0xEB && packed[1] == 0x55 && packed[2] == 0xA0, "pack_signs", packed[0], packed[1]);
    expect(bad == 0, "pack_signs: finite values", bad, 0);
    mix(packed, 3);
    float many[40];
    uint8_t many_packed[5];
    for (int k = 0; k < 40; k++)
        many[k] = (float)((int)(next_random() % 201) - 100) * (k % 3 ? 1.0f : -0.0f);
    bad = bnn_pack_signs(many, 40, many_packed);
    for (int k = 0; k < 40; k++)
        expect(bit_at(many_packed, k) == (many[k] >= 0.0f), "pack_signs: long", k, bit_at(many_packed, k));
    expect(bad == 0, "pack_signs: long, finite values", bad, 0);
    mix(many_packed, 5);
    const float odd[10] = {1.0f, NAN, -INFINITY, 2.0f, 0.0f, 3.0f, 4.0f, 5.0f, INFINITY, -1.0f};
    uint8_t odd_packed[2];
    bad = bnn_pack_signs(odd, 10, odd_packed);
    expect(bad != 0, "pack_signs: NaN and infinite values flagged", bad, 1);
    for (int k = 0; k < 40; k++) {       /* each position alone: in the vectors and the tail */
        float one[40];
        for (int i = 0; i < 40; i++)
            one[i] = (float)i;
        one[k] = k % 3 == 0 ? NAN : k % 3 == 1 ? -INFINITY : INFINITY;
        bad = bnn_pack_signs(one, 40 - k % 5, many_packed);
        expect(bad != 0 || k >= 40 - k % 5, "pack_signs: one bad value flagged", k, bad);
    }
}

static void test_all(void)
{
    /* up to past the AVX2 byte counters' flush (31 steps of 32 bytes) */
    static const int bits[] = {1, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257,
                               511, 512, 513, 1000, 31 * 256 + 8, 8200};
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        for (int whole_words = 0; whole_words < 2; whole_words++) {
            test_dense(bits[i], 1, 2, whole_words);
            test_dense(bits[i], 13, 7, whole_words);
            if (bits[i] <= 1000)
                test_dense(bits[i], 64, 5, whole_words);
        }
    test_chain(100, 72, 10, 9, 0);
    test_chain(300, 129, 7, 6, 0);
    test_chain(100, 72, 10, 5, 1);
    /* the byte kernel: values short of a vector, rows short of a block, its
     * 16-bit sums flushed (past 2048 values) */
    test_chain(100, 72, 10, 5, 2);
    test_chain(33, 6, 3, 4, 2);
    test_chain(2100, 13, 4, 3, 2);
    static const int int8_sizes[][2] = {{1, 1}, {31, 3}, {32, 4}, {33, 5}, {100, 13}, {784, 10}};
    for (size_t i = 0; i < sizeof int8_sizes / sizeof int8_sizes[0]; i++)
        for (int relu = 0; relu < 2; relu++)
            test_int8(int8_sizes[i][0], int8_sizes[i][1], relu);
    static const int float_sizes[][2] = {{1, 1}, {3, 7}, {9, 8}, {100, 9}, {77, 64}, {130, 65},
                                         {784, 130}, {20, 200}};
    for (size_t i = 0; i < sizeof float_sizes / sizeof float_sizes[0]; i++)
        for (int relu = 0; relu < 2; relu++)
            test_float(float_sizes[i][0], float_sizes[i][1], relu);
    static const bnn_conv_shape float_convs[] = {
        /* h, w, c, -, out, kh, kw, sh, sw, ph, pw, -, - */
        {28, 28, 1, 0, 6, 5, 5, 1, 1, 2, 2, 1, 1},
        {12, 12, 6, 0, 16, 5, 5, 1, 1, 0, 0, 1, 1},
        {7, 9, 3, 0, 9, 3, 2, 2, 1, 1, 0, 1, 1},
        {5, 4, 13, 0, 65, 1, 1, 1, 2, 0, 0, 1, 1},
        {3, 3, 2, 0, 3, 3, 3, 1, 1, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof float_convs / sizeof float_convs[0]; i++)
        for (int relu = 0; relu < 2; relu++)
            test_conv_float(float_convs[i], relu);
    static const bnn_conv_shape convs[] = {
        /* h, w, c, uint8, out, kh, kw, sh, sw, ph, pw, pool_h, pool_w */
        {5, 5, 1, 0, 1, 3, 3, 1, 1, 0, 0, 1, 1},
        {7, 9, 3, 0, 5, 3, 3, 1, 1, 1, 1, 2, 2},
        {8, 6, 8, 0, 9, 2, 3, 2, 1, 0, 1, 1, 2},
        {11, 7, 9, 0, 16, 3, 2, 1, 2, 2, 1, 3, 2},
        {6, 13, 17, 0, 3, 1, 5, 1, 1, 0, 2, 2, 3},
        {4, 4, 64, 0, 8, 3, 3, 1, 1, 1, 1, 4, 4},
        {5, 4, 200, 0, 9, 3, 3, 1, 1, 1, 1, 1, 2},
        {28, 28, 1, 1, 16, 3, 3, 1, 1, 0, 0, 2, 2},
        {9, 7, 3, 1, 5, 3, 2, 2, 1, 1, 1, 2, 1},
    };
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        test_conv(convs[i]);
    test_pack_signs();
}

int main(void)
{
    /* every path this build has that the CPU supports, the default (fastest) last */
    static const char *const paths[] = {"portable", "neon", "popcnt", "avx2", "avx512"};
    const char *best = bnn_popcount_path();
    uint32_t first = 0;
    int tested = 0;
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        if (!bnn_use_popcount_path(paths[p]))
            continue;
        state = 12345u;
        checksum = 2166136261u;
        test_all();
        if (tested++ && checksum != first)
            expect(0, paths[p], (int)checksum, (int)first);
        first = checksum;
    }
    expect(bnn_use_popcount_path(best) && strcmp(bnn_popcount_path(), best) == 0,
           "the default path comes back", tested, 0);
    printf("bnn selftest: %s, popcount path %s, checksum %08x\n",
           failures ? "FAILED" : "ok", best, (unsigned)checksum);
    return failures ? 1 : 0;
}
