/* edgebnn binary kernel: XOR-popcount layers on packed signs.
 *
 * Read by humans, by the C compiler and (without the preprocessor lines) by
 * cffi's cdef. Bit layout, as in docs/FORMAT.md: signs packed 8 per byte,
 * most significant bit first, 1 = +1, padding bits 0. Over n real bits,
 * dot(a, w) = n - 2 * popcount(a XOR w).
 *
 * Every layer ends either in packed output signs, bit = (dot >= threshold[j])
 * XOR flip[j] (a batch norm + sign folded at conversion), or, when threshold
 * is NULL, in the integer dot products themselves as floats (exact below
 * 2^24; for the float layers that give the final scores). Callers check
 * every size in Python first.
 *
 * The popcount is the fastest the CPU has (bnn_popcount_path names it):
 * NEON's vcnt, 16 bytes a step, on ARM builds with NEON; on x86, chosen at
 * run time from what the CPU and OS support, AVX-512 VPOPCNTDQ (64 bytes a
 * step), AVX2 (32 bytes a step through vpshufb nibble tables) or the POPCNT
 * instruction; else portable C.
 */
#include <stdint.h>

/* Binary dense layer on packed input signs.
 *   x          [row_bytes]             input signs
 *   weight     [n_out][row_bytes]      one packed row per output
 *   lanes      the same from bnn_dense_lanes, or NULL
 *   n_bits     real (unpadded) input bits
 *   threshold, flip [n_out]            or NULL for dot output
 *   out_bits   [ceil(n_out / 8)]       when threshold != NULL
 *   out_dots   [n_out]                 when threshold == NULL            */
void bnn_dense_bits(const uint8_t *x, const uint8_t *weight, const uint8_t *lanes, int32_t n_out,
                    int32_t row_bytes, int32_t n_bits, const int32_t *threshold,
                    const uint8_t *flip, uint8_t *out_bits, float *out_dots);

/* The weights of a dense layer on packed signs regrouped for the kernels
 * that count 8 rows in one vector (the AVX-512 path): for each block of 8
 * rows, word k of the 8 rows side by side at lanes + 8 * row_bytes * block
 * + 64 * k; rows past the last whole block stay in `weight` only. Its size
 * is bnn_dense_lanes_bytes: 0 where this CPU cannot run a kernel that reads
 * it (or rows are not whole 64-bit words), and NULL lanes then serve. */
int32_t bnn_dense_lanes_bytes(int32_t n_out, int32_t row_bytes);
void bnn_dense_lanes(const uint8_t *weight, int32_t n_out, int32_t row_bytes, uint8_t *lanes);

/* Bit planes of uint8 values: plane b holds bit b (b = 0 least significant)
 * of every value, packed like signs.
 *   x       [n]
 *   planes  [8][plane_bytes], plane_bytes >= ceil(n / 8)                   */
void bnn_bitplanes(const uint8_t *x, int32_t n, int32_t plane_bytes, uint8_t *planes);

/* Dense layer with binary weights on uint8 input, exactly:
 * dot = sum_i x_i * w_i = sum_b 2^b * (2 * popcount(P_b AND w) - popcount(P_b)).
 *   planes  [8][row_bytes]  from bnn_bitplanes(x, n, row_bytes, planes)
 *   other arguments as bnn_dense_bits                                      */
void bnn_dense_planes(const uint8_t *planes, const uint8_t *weight, int32_t n_out,
                      int32_t row_bytes, const int32_t *threshold, const uint8_t *flip,
                      uint8_t *out_bits, float *out_dots);

/* The weights of a dense layer on uint8 input widened for the kernel that
 * multiplies bytes (the AVX2 path, vpmaddubsw): one int8 +1 or -1 per
 * weight, rows of bnn_wide_row(n_values) bytes (zero past n_values), rows
 * in blocks of 4 (zero rows past n_out). 8x the packed bits, it takes the
 * bit planes' place where this CPU can run that kernel; elsewhere its size,
 * bnn_dense_wide_bytes, is 0, and NULL serves.
 *   weight  [n_out][row_bytes]  packed signs, as for bnn_dense_planes      */
int32_t bnn_wide_row(int32_t n_values);
int64_t bnn_dense_wide_bytes(int32_t n_out, int32_t n_values);
void bnn_dense_wide(const uint8_t *weight, int32_t n_out, int32_t row_bytes, int32_t n_values,
                    int8_t *wide);

/* Geometry of a fused binary convolution + max pool + threshold. */
typedef struct {
    int32_t height, width, channels;      /* input size */
    int32_t uint8_input;                  /* 0: packed signs; 1: uint8 values */
    int32_t out_channels;
    int32_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, pool_h, pool_w;
} bnn_conv_shape;

/* Fused eBNN-style layer: for every pooled output and output channel, the
 * max over the pool window of the convolution's integer dot products (zero
 * padding contributes 0), then the threshold. One integer temporary per
 * output: no feature map is stored.
 *   x          packed signs [height][width][ceil(channels / 8)], or uint8
 *              values [height][width][channels] (exact integer dot products)
 *   weight     [out_channels][kernel_h][kernel_w][ceil(channels / 8)]
 *   threshold, flip [out_channels]
 *   out        [out_h][out_w][ceil(out_channels / 8)], with
 *              out_h = ((height + 2 pad_h - kernel_h) / stride_h + 1) / pool_h  */
void bnn_conv_pool(const uint8_t *x, const bnn_conv_shape *shape, const uint8_t *weight,
                   const int32_t *threshold, const uint8_t *flip, uint8_t *out);

/* Signs of float values, packed: bit = (x >= 0). Returns nonzero when a
 * value is NaN or infinite (its sign means nothing; the caller refuses it). */
int32_t bnn_pack_signs(const float *x, int32_t n, uint8_t *out);

/* Float scores: out[j] = in[j] * scale[j] + shift[j], rounded to float after
 * the product and after the sum (as NumPy does: no fused multiply-add). */
void bnn_scale_shift(const float *in, int32_t n, const float *scale, const float *shift,
                     float *out);

/* A model's input preprocessing: out[j] = (float)in[j] * scale + offset for
 * n values of value_bytes each (1: uint8, 4: float), the product rounded to
 * float, then the sum (as NumPy computes it in float32).                   */
void bnn_preprocess(const void *in, int32_t n, int32_t value_bytes, float scale, float offset,
                    float *out);

/* Dense layer with int8 weights on float values, the activations quantized
 * per sample (dynamic range): s = max|x| / 127, q_i = rint(x_i / s) (0 when
 * s is 0), acc_j = sum_i q_i * w_ji in int32, then
 * out_j = (float)acc_j * (s * scale_j) + bias_j, each product and sum
 * rounded to float (as NumPy does), negatives set to 0 when relu.
 *   x       [n_in] floats
 *   weight  [n_out][row_bytes] int8 in [-127, 127], row_bytes a multiple
 *           of 32 >= n_in, zero past n_in; rows past n_out up to a multiple
 *           of 4 present and zero
 *   scale, bias [n_out] floats
 *   work    [row_bytes] scratch for q
 * Returns nonzero (and writes nothing) when a value is NaN or infinite.  */
int32_t bnn_dense_int8(const float *x, int32_t n_in, const int8_t *weight, int32_t n_out,
                       int32_t row_bytes, const float *scale, const float *bias, int32_t relu,
                       int8_t *work, float *out);

/* Float dense layer: out_j = sum_i x_i * w_ji + bias_j (negatives set to 0
 * when relu). Each sum runs over i in increasing order from 0, each product
 * and sum rounded to float (no fused multiply-add), and the zeros of x are
 * skipped, as they add nothing: every path of one build gives the same bits.
 * BLAS sums in another order, so the NumPy twin agrees to rounding only.
 *   x         [n_in] floats
 *   weight_t  [n_in][n_out] floats: the weights transposed, one row an input
 *   bias      [n_out]
 *   work      scratch: [n_in] floats, then [n_in] int32 (x's nonzero
 *             values and their places)                                     */
void bnn_dense_float(const float *x, int32_t n_in, const float *weight_t, int32_t n_out,
                     const float *bias, int32_t relu, float *work, float *out);

/* Float convolution, channels last: each output is bnn_dense_float of its
 * window (the part over the padded edge adds nothing), the same sum in the
 * same order, computed by scattering each nonzero input's products.
 *   x        [height][width][channels] floats
 *   shape    its sizes, out_channels, kernel, stride and padding (pool 1x1,
 *            uint8_input 0: unused)
 *   columns  [kernel_h][kernel_w][channels][out_channels] floats: the
 *            weights (out, kh, kw, C) transposed, one row a window value,
 *            kw flipped (column kx holds the weights of kernel_w - 1 - kx)
 *   bias     [out_channels]
 *   out      [out_h][out_w][out_channels], out_h = bnn_conv_size(height,
 *            kernel_h, stride_h, pad_h), likewise out_w                   */
void bnn_conv_float(const float *x, const bnn_conv_shape *shape, const float *columns,
                    const float *bias, int32_t relu, float *out);

/* Float pooling, channels last, no padding: windows of kernel_h x kernel_w
 * values stride_h, stride_w apart (other fields of shape unused); each
 * output is the window's largest value or, when average, its sum in row
 * order divided by the window's size.
 *   x    [height][width][channels]
 *   out  [out_h][out_w][channels], out_h = bnn_conv_size(height, kernel_h,
 *        stride_h, 0), likewise out_w                                     */
void bnn_pool_float(const float *x, const bnn_conv_shape *shape, int32_t average, float *out);

/* What a tier needs from its n class scores: the top class, its softmax
 * probability and the normalized entropy -sum(p log p) / log(n) of the
 * softmax, in double, from the shifted scores z = x - max(x) (see
 * runtime/exits.py, which computes the same in Python). Confidence and
 * entropy are NaN when a score is not finite. */
typedef struct {
    int32_t label;
    double confidence, entropy;
} bnn_summary;

bnn_summary bnn_summarize(const float *logits, int32_t n);

/* bnn_summarize of each of `rows` vectors of n scores stored one after the
 * other, into labels, confidences and entropies [rows]. */
void bnn_summarize_rows(const float *logits, int32_t n, int32_t rows, int32_t *labels,
                        double *confidences, double *entropies);

/* A chain of the calls above run by one bnn_run call: the kernel layers of a
 * model back to back, with nothing between them on the Python side. */
enum bnn_op { BNN_PACK_SIGNS, BNN_DENSE_BITS, BNN_DENSE_PLANES, BNN_CONV_POOL, BNN_SCALE_SHIFT,
              BNN_DENSE_INT8, BNN_PREPROCESS, BNN_DENSE_FLOAT, BNN_CONV_FLOAT, BNN_MAX_POOL,
              BNN_AVERAGE_POOL };

/* One call of a chain. Its input `in` is the previous step's `out`, except
 * in the first step, which reads bnn_run's `input`. Over a batch, sample n's
 * input starts at in + n * in_stride and its output at out + n * out_stride
 * (bytes). Fields per op:
 *   PACK_SIGNS    n_in floats -> bits
 *   DENSE_BITS    bnn_dense_bits(in, weight, lanes, n_out, row_bytes, n_in, threshold,
 *                 flip, out as bits when threshold != NULL, else as dots)
 *   DENSE_PLANES  bnn_bitplanes(in, n_in, row_bytes, work), then
 *                 bnn_dense_planes(work, weight, n_out, row_bytes, threshold, flip, out);
 *                 with `wide` (from bnn_dense_wide) on a path that has the
 *                 byte kernel, the same outputs from the values and `wide`
 *   CONV_POOL     bnn_conv_pool(in, conv, weight, threshold, flip, out)
 *   SCALE_SHIFT   bnn_scale_shift(in, n_out, scale, shift, out)
 *   DENSE_INT8    bnn_dense_int8(in, n_in, weight, n_out, row_bytes, scale, shift (the
 *                 bias), relu, work, out)
 *   PREPROCESS    bnn_preprocess(in, n_in, row_bytes (bytes a value), scale[0],
 *                 shift[0], out)
 *   DENSE_FLOAT   bnn_dense_float(in, n_in, weight (as floats), n_out, shift (the bias),
 *                 relu, work, out)
 *   CONV_FLOAT    bnn_conv_float(in, conv, weight (as floats), shift (the bias), relu, out)
 *   MAX_POOL, AVERAGE_POOL  bnn_pool_float(in, conv, op == AVERAGE_POOL, out)                                                */
typedef struct {
    int32_t op;                       /* an enum bnn_op */
    int32_t n_in, n_out, row_bytes;
    int32_t in_stride, out_stride;
    const void *in;
    void *out;
    uint8_t *work;                    /* one sample's: the samples of a batch take turns */
    const uint8_t *weight;
    const uint8_t *lanes;
    const int32_t *threshold;
    const uint8_t *flip;
    const float *scale;
    const float *shift;
    const bnn_conv_shape *conv;
    const int8_t *wide;
    int32_t relu;                     /* DENSE_INT8, DENSE_FLOAT, CONV_FLOAT: negatives to 0 */
} bnn_step;

/* Runs n_samples samples through the chain, one step after the other; a
 * dense layer on packed signs takes the batch in blocks of rows, each block
 * read once for every sample (see bnn_kernels.inc), and so does a dense
 * layer on uint8 values with wide weights. Returns nonzero when a
 * PACK_SIGNS or DENSE_INT8 step met a NaN or infinite value. */
int32_t bnn_run(const bnn_step *steps, int32_t n_steps, const void *input, int32_t n_samples);

/* Which popcount the kernels use: "neon" (ARM builds with NEON); on x86 the
 * fastest the running CPU and OS support, "avx512" (AVX-512 VPOPCNTDQ),
 * "avx2" or "popcnt"; or "portable" (bit-parallel C, anywhere). */
const char *bnn_popcount_path(void);

/* The paths this build has and this CPU supports, slowest first, separated
 * by spaces; the last is the default. */
const char *bnn_popcount_paths(void);

/* From now on, for the whole process, use the path `name`, one of
 * bnn_popcount_paths: for tests and benchmarks that compare paths. Returns 0
 * and changes nothing when it cannot. */
int32_t bnn_use_popcount_path(const char *name);

/* Sizes the Python side computes too (runtime/bitpack.py sign_bytes,
 * runtime/kernels/geometry.py conv_size; the tests check that they agree):
 * the bytes of n packed signs, and the positions of a convolution along one
 * axis, 0 when the kernel does not fit the padded input. */
int32_t bnn_sign_bytes(int32_t n);
int32_t bnn_conv_size(int32_t size, int32_t kernel, int32_t stride, int32_t pad);
