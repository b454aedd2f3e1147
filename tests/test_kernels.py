"""The binary kernels (each backend) against plain references and hand-made vectors."""
import inspect

import numpy as np
import pytest

from edgebnn.bitpack import pack_signs, padding_mask, sign_bytes, unpack_signs, word_padded
from edgebnn.errors import InputError
from edgebnn.exits import summarize
from edgebnn.fold import fold_sign
from edgebnn.kernels import c_available, get_kernels
from edgebnn.kernels.contract import Backend, Link, Plan, int8_row
from edgebnn.kernels.geometry import ConvShape, conv_size

pytestmark = pytest.mark.usefixtures("backend")     # every test runs the kernels

AWKWARD_BITS = [1, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000]
LONG_ROWS = [31 * 256 + 8, 8200]    # past the 31 steps of 32 bytes an AVX2 byte counter takes


@pytest.fixture
def kernels(backend):
    return get_kernels(backend)


def parameters(function, drop_self=False):
    """What a caller sees of a signature: names, kinds and defaults (no annotations)."""
    found = [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]
    return found[1:] if drop_self else found


def test_each_backend_keeps_the_kernel_contract(kernels):
    """Every member of contract.Backend, with its signature; every plan's runner as Plan's."""
    assert isinstance(kernels, Backend)
    assert isinstance(kernels.name, str)
    members = [name for name, value in vars(Backend).items()
               if callable(value) and not name.startswith("_")]
    assert "chain" in members and "DenseBits" in members
    for name in members:
        declared = getattr(Backend, name)
        assert parameters(getattr(kernels, name)) == parameters(declared, drop_self=True), name
        if inspect.signature(declared).return_annotation is Plan:
            assert parameters(getattr(kernels, name).runner, drop_self=True) == \
                parameters(Plan.runner, drop_self=True), name


def random_signs(rng, shape):
    """Packed signs of ``shape`` (last axis packed), padding bits 0."""
    return pack_signs(rng.standard_normal(shape))


def output_bits(dots, threshold, flip):
    return np.packbits((dots >= threshold) ^ flip.astype(bool), axis=-1)


@pytest.mark.parametrize("n_bits", AWKWARD_BITS + LONG_ROWS)
@pytest.mark.parametrize("n_out", [1, 9, 64])
@pytest.mark.parametrize("whole_words", [False, True])
def test_dense_bits_equals_plain_dot_products(kernels, n_bits, n_out, whole_words):
    rng = np.random.default_rng(n_bits * 100 + n_out)
    x = random_signs(rng, n_bits)
    weight = random_signs(rng, (n_out, n_bits))
    expected = unpack_signs(weight, n_bits) @ unpack_signs(x, n_bits)
    if whole_words:      # the layout layers use: rows padded to whole 64-bit words
        pad = -len(x) % 8
        x = np.concatenate([x, np.zeros(pad, np.uint8)])
        weight = np.pad(weight, ((0, 0), (0, pad)))
    dots = np.full(n_out, -7, np.float32)
    kernels.DenseBits(weight, n_bits).runner(work=None, out=dots)(x)
    np.testing.assert_array_equal(dots, expected)

    threshold = rng.integers(-n_bits, n_bits + 1, n_out).astype(np.int32)
    flip = rng.integers(0, 2, n_out).astype(np.uint8)
    bits = np.full(-(-n_out // 8), 0xAA, np.uint8)
    kernels.DenseBits(weight, n_bits, threshold, flip).runner(work=None, out=bits)(x)
    np.testing.assert_array_equal(bits, output_bits(expected, threshold, flip))


@pytest.mark.parametrize("n_values", [1, 7, 9, 64, 65, 784])
def test_dense_planes_is_the_exact_integer_dot_product(kernels, n_values):
    rng = np.random.default_rng(n_values)
    x = rng.integers(0, 256, n_values).astype(np.uint8)
    x[:1] = 255
    weight = random_signs(rng, (13, n_values))
    expected = unpack_signs(weight, n_values) @ x.astype(np.int64)
    row_bytes = -(-n_values // 8)
    dots = np.zeros(13, np.float32)
    kernels.DensePlanes(weight, n_values).runner(work=np.zeros(8 * row_bytes, np.uint8), out=dots)(x)
    np.testing.assert_array_equal(dots, expected)


def reference_conv_pool_sign(values, signs, shape, scale, shift):
    """Unfused, in float64: convolution -> max pool -> affine (batch norm) -> sign."""
    s = shape
    h, w = s.height + 2 * s.pad_h, s.width + 2 * s.pad_w
    padded = np.zeros((h, w, s.channels))
    padded[s.pad_h:s.pad_h + s.height, s.pad_w:s.pad_w + s.width] = values
    conv = np.zeros((s.conv_h, s.conv_w, s.out_channels))
    for oy in range(s.conv_h):
        for ox in range(s.conv_w):
            window = padded[oy * s.stride_h:oy * s.stride_h + s.kernel_h,
                            ox * s.stride_w:ox * s.stride_w + s.kernel_w]
            conv[oy, ox] = np.tensordot(signs, window, axes=([1, 2, 3], [0, 1, 2]))
    pooled = np.full((s.out_h, s.out_w, s.out_channels), -np.inf)
    for py in range(s.out_h):
        for px in range(s.out_w):
            pooled[py, px] = conv[py * s.pool_h:(py + 1) * s.pool_h,
                                  px * s.pool_w:(px + 1) * s.pool_w].max(axis=(0, 1))
    return np.packbits(pooled * scale + shift >= 0, axis=-1).reshape(-1)


CONV_CASES = [
    # height, width, channels, out, kernel, stride, padding, pool
    (5, 5, 1, 1, (3, 3), (1, 1), (0, 0), (1, 1)),
    (7, 9, 3, 5, (3, 3), (1, 1), (1, 1), (2, 2)),
    (8, 6, 8, 9, (2, 3), (2, 1), (0, 1), (1, 2)),
    (11, 7, 9, 16, (3, 2), (1, 2), (2, 1), (3, 2)),
    (6, 13, 17, 3, (1, 5), (1, 1), (0, 2), (2, 3)),
    (4, 4, 64, 8, (3, 3), (1, 1), (1, 1), (4, 4)),
    (3, 3, 1, 1, (3, 3), (2, 2), (1, 1), (2, 2)),
]


@pytest.mark.parametrize("uint8_input", [False, True])
@pytest.mark.parametrize("case", CONV_CASES)
def test_fused_conv_pool_sign_equals_unfused_float_reference(kernels, case, uint8_input):
    height, width, channels, n_out, kernel, stride, padding, pool = case
    rng = np.random.default_rng(hash(case) % 2**32)
    weight = random_signs(rng, (n_out, *kernel, channels))
    signs = unpack_signs(weight, channels).astype(np.float64)
    shape = ConvShape(height, width, channels, int(uint8_input), n_out,
                      *kernel, *stride, *padding, *pool)
    if uint8_input:
        x = rng.integers(0, 256, (height, width, channels)).astype(np.uint8)
        values, span = x.astype(np.float64), 255 * kernel[0] * kernel[1] * channels
    else:
        x = random_signs(rng, (height, width, channels))
        values, span = unpack_signs(x, channels).astype(np.float64), kernel[0] * kernel[1] * channels
    scale = rng.standard_normal(n_out)
    scale[0] = -abs(scale[0])                          # a negative gamma: flipped
    shift = rng.uniform(-0.5, 0.5, n_out) * span * np.abs(scale)
    if n_out > 2:
        scale[2] = 0.0                                 # a constant output
    threshold, flip = fold_sign(scale, shift)
    out = np.full(shape.out_bytes, 0x55, np.uint8)
    kernels.ConvPool(shape, weight, threshold, flip).runner(work=None, out=out)(x.reshape(-1))
    np.testing.assert_array_equal(out, reference_conv_pool_sign(values, signs, shape, scale, shift))


@pytest.mark.parametrize("n", AWKWARD_BITS)
def test_pack_signs_follows_numpy_packbits_with_sign_zero_positive(kernels, n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    x[::5] = 0.0
    x[1::7] = -0.0
    out = np.zeros(-(-n // 8), np.uint8)
    kernels.PackSigns(n).runner(work=None, out=out)(x)
    np.testing.assert_array_equal(out, np.packbits(x >= 0))


def test_dense_known_answer(kernels):
    # x = (+1, -1, +1); rows (+1, +1, +1) and (-1, +1, -1): dots 1 and -3
    x = np.array([0b10100000], np.uint8)
    weight = np.array([[0b11100000], [0b01000000]], np.uint8)
    dots = np.zeros(2, np.float32)
    kernels.DenseBits(weight, 3).runner(work=None, out=dots)(x)
    assert dots.tolist() == [1, -3]
    bits = np.zeros(1, np.uint8)
    # (1 >= 1) xor 0 = 1; (-3 >= -3) xor 1 = 0
    kernels.DenseBits(weight, 3, np.array([1, -3], np.int32),
                      np.array([0, 1], np.uint8)).runner(work=None, out=bits)(x)
    assert bits.tolist() == [0b10000000]


def test_dense_planes_known_answer(kernels):
    x = np.array([3, 0, 255], np.uint8)
    weight = np.array([[0b10000000]], np.uint8)          # (+1, -1, -1)
    dots = np.zeros(1, np.float32)
    kernels.DensePlanes(weight, 3).runner(work=np.zeros(8, np.uint8), out=dots)(x)
    assert dots.tolist() == [3 - 0 - 255]


def test_conv_pool_known_answer(kernels):
    # input signs        kernel 2x2 all +1: conv = [[0, 0], [2, 2]], pooled max = 2
    #   +1 -1 +1
    #   -1 +1 -1
    #   +1 +1 +1
    image = np.array([[1, -1, 1], [-1, 1, -1], [1, 1, 1]])
    x = pack_signs(image[..., None]).reshape(-1)
    weight = np.full((2, 2, 2, 1), 0b10000000, np.uint8)
    shape = ConvShape(3, 3, 1, 0, 2, 2, 2, 1, 1, 0, 0, 2, 2)
    out = np.zeros(1, np.uint8)
    kernels.ConvPool(shape, weight, np.array([2, 3], np.int32),
                     np.zeros(2, np.uint8)).runner(work=None, out=out)(x)
    assert out.tolist() == [0b10000000]      # 2 >= 2 -> +1, 2 >= 3 -> -1


def test_fold_sign_equals_the_affine_sign_on_every_integer():
    rng = np.random.default_rng(3)
    scale = rng.standard_normal(500)
    scale[:10] = 0.0
    scale[10:20] = 1e-300
    shift = rng.standard_normal(500) * 40
    shift[:5] = -shift[:5] ** 2 - 1e-9
    threshold, flip = fold_sign(scale, shift)
    dots = np.arange(-300, 301)[:, None]
    np.testing.assert_array_equal((dots >= threshold) ^ flip.astype(bool),
                                  dots * scale + shift >= 0)


def test_c_and_python_agree_on_packed_bytes_and_conv_sizes():
    """bitpack.sign_bytes and geometry.conv_size are mirrored in C (bnn_sign_bytes, bnn_conv_size)."""
    if not c_available():
        pytest.skip("the C kernel is not built")
    from edgebnn.kernels._bnn import lib
    for n in list(range(70)) + [1000, 8191, 1 << 24]:
        assert lib.bnn_sign_bytes(n) == sign_bytes(n) == len(np.packbits(np.zeros(n, bool)))
    rng = np.random.default_rng(9)
    cases = rng.integers((1, 1, 1, 0), (40, 12, 5, 4), (3000, 4))
    for size, kernel, stride, pad in cases.tolist() + [[3, 5, 1, 0], [3, 5, 2, 1], [65536, 3, 1, 65536]]:
        python = conv_size(size, kernel, stride, pad)
        assert lib.bnn_conv_size(size, kernel, stride, pad) == python, (size, kernel, stride, pad)
        assert python == len(range(0, size + 2 * pad - kernel + 1, stride))


def test_padding_mask_marks_real_bits_per_pixel():
    assert padding_mask((2, 3)).tolist() == [0b11100000, 0b11100000]
    assert padding_mask((9,)).tolist() == [0xFF, 0x80]


def test_scale_shift_rounds_the_product_then_the_sum_as_numpy(kernels):
    # a fused multiply-add would round once and differ from NumPy on many of these
    rng = np.random.default_rng(5)
    n = 4099
    x, scale, shift = (rng.standard_normal(n).astype(np.float32) * 10.0 ** rng.integers(-3, 4, n)
                       for _ in range(3))
    x = x.astype(np.float32)
    out = np.zeros(n, np.float32)
    kernels.ScaleShift(scale.astype(np.float32), shift.astype(np.float32)).runner(work=None, out=out)(x)
    np.testing.assert_array_equal(out, x * scale.astype(np.float32) + shift.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_preprocess_rounds_in_float32_as_numpy(kernels, dtype):
    """The input's x * scale + offset: float32 product, then float32 sum, one row or a batch."""
    rng = np.random.default_rng(8)
    n, scale, offset = 785, np.float32(1 / 255), np.float32(-0.4242)
    x = (rng.integers(0, 256, (3, n)) if dtype == np.uint8 else
         rng.standard_normal((3, n)) * 100).astype(dtype)
    want = x.astype(np.float32) * scale + offset
    plan = kernels.Preprocess(n, np.dtype(dtype), scale, offset)
    out = np.zeros(n, np.float32)
    np.testing.assert_array_equal(plan.runner(work=None, out=out)(x[0]), want[0])
    rows = np.zeros((3, n), np.float32)
    np.testing.assert_array_equal(plan.runner(work=None, out=rows)(x), want)


def test_chained_links_give_what_the_links_give_one_by_one(kernels):
    """Sign -> binary dense (bits) -> binary dense (dots) -> scale/shift as one chain."""
    rng = np.random.default_rng(6)
    n_in, hidden, n_out = 100, 72, 10                 # 100 signs: not a whole word
    w1, w2 = random_signs(rng, (hidden, n_in)), random_signs(rng, (n_out, hidden))
    w1 = np.pad(w1, ((0, 0), (0, -w1.shape[1] % 8)))
    threshold = rng.integers(-20, 20, hidden).astype(np.int32)
    flip = rng.integers(0, 2, hidden).astype(np.uint8)
    plans = [kernels.PackSigns(n_in), kernels.DenseBits(w1, n_in, threshold, flip),
             kernels.DenseBits(w2, hidden), kernels.ScaleShift(np.full(n_out, 0.1, np.float32),
                                                               np.arange(n_out, dtype=np.float32))]
    outs = [np.zeros(16, np.uint8), np.zeros(16, np.uint8), np.zeros(n_out, np.float32),
            np.zeros(n_out, np.float32)]
    runs = [plan.runner(work=None, out=out) for plan, out in zip(plans, outs)]
    chained = kernels.chain([Link(plan, None, out) for plan, out in zip(plans, outs)])
    for x in rng.standard_normal((5, n_in)).astype(np.float32):
        expected = x
        for run in runs:
            expected = run(expected).copy()
        np.testing.assert_array_equal(chained(x), expected)
        assert np.unique(expected).size > 1


@pytest.mark.parametrize("n", [2, 3, 10, 64, 65, 1000])
def test_summarize_agrees_with_the_python_summary(kernels, n):
    rng = np.random.default_rng(n)
    for scale in (0.1, 3.0, 60.0, 1e30):
        logits = (rng.standard_normal(n) * scale).astype(np.float32)
        label, confidence, entropy = kernels.summarize(logits)
        assert label == int(np.argmax(logits))
        expected = summarize(logits)
        assert confidence == pytest.approx(expected[1], rel=1e-12)
        assert entropy == pytest.approx(expected[2], rel=1e-12, abs=1e-15)
    assert kernels.summarize(np.zeros(n, np.float32))[1:] == pytest.approx((1 / n, 1.0))
    ties = np.array([1.0, 5.0, 5.0] + [0.0] * (n - 3 if n > 3 else 0), np.float32)[:max(n, 3)]
    assert kernels.summarize(ties)[0] == 1                 # the first of equal scores
    bad = np.zeros(n, np.float32)
    bad[-1] = np.nan
    assert np.isnan(kernels.summarize(bad)[2])
    bad[-1] = np.inf
    assert np.isnan(kernels.summarize(bad)[2])


@pytest.mark.parametrize("n_bits", LONG_ROWS)
def test_long_rows_of_opposite_signs_count_every_bit(kernels, n_bits):
    """Every bit differs: SIMD byte counters overflow unless summed in time."""
    x = pack_signs(np.ones(n_bits))
    weight = pack_signs(-np.ones((5, n_bits)))
    pad = -len(x) % 8
    x, weight = np.pad(x, (0, pad)), np.pad(weight, ((0, 0), (0, pad)))
    dots = np.zeros(5, np.float32)
    kernels.DenseBits(weight, n_bits).runner(work=None, out=dots)(x)
    np.testing.assert_array_equal(dots, -n_bits)


@pytest.mark.parametrize("n_values", LONG_ROWS)
def test_long_rows_of_full_bit_planes_count_every_bit(kernels, n_values):
    """uint8 input 255 and +1 weights: every bit of every plane counts (SIMD overflow check)."""
    x = np.full(n_values, 255, np.uint8)
    weight = pack_signs(np.ones((3, n_values)))
    row_bytes = -(-n_values // 8)
    dots = np.zeros(3, np.float32)
    kernels.DensePlanes(np.pad(weight, ((0, 0), (0, -row_bytes % 8))), n_values).runner(
        work=np.zeros(8 * (row_bytes + -row_bytes % 8), np.uint8), out=dots)(x)
    np.testing.assert_array_equal(dots, 255 * n_values)


def batch_equals_one_by_one(kernels, plan, x, out_dtype, out_size, work=None):
    """Run ``x``'s rows as one batch and one at a time; every row must be the same, bit for bit."""
    batch = np.zeros((len(x), out_size), out_dtype)
    got = kernels.chain([Link(plan, work, batch)])(x)
    assert got is batch
    one = np.zeros(out_size, out_dtype)
    run = kernels.chain([Link(plan, work, one)])
    for sample, row in zip(x, batch):
        np.testing.assert_array_equal(row, run(sample))
    return batch


# blocks of 4 samples and the rest; two groups of the byte kernel's 16
@pytest.mark.parametrize("samples", [1, 4, 5, 9, 17])
@pytest.mark.parametrize("n_bits", [9, 100, 520, LONG_ROWS[0]])
@pytest.mark.parametrize("n_out", [1, 8, 13])              # blocks of 8 rows, of 4, single rows
def test_a_dense_batch_gives_what_its_samples_give_one_by_one(kernels, samples, n_bits, n_out):
    rng = np.random.default_rng(samples * 1000 + n_bits + n_out)
    row = word_padded(sign_bytes(n_bits))
    weight = np.zeros((n_out, row), np.uint8)
    weight[:, :sign_bytes(n_bits)] = random_signs(rng, (n_out, n_bits))
    x = np.zeros((samples, row), np.uint8)
    x[:, :sign_bytes(n_bits)] = random_signs(rng, (samples, n_bits))
    dots = batch_equals_one_by_one(kernels, kernels.DenseBits(weight, n_bits), x, np.float32, n_out)
    expected = unpack_signs(x[:, :sign_bytes(n_bits)], n_bits) @ unpack_signs(weight, n_bits).T
    np.testing.assert_array_equal(dots, expected)
    threshold = rng.integers(-n_bits, n_bits + 1, n_out).astype(np.int32)
    flip = rng.integers(0, 2, n_out).astype(np.uint8)
    bits = batch_equals_one_by_one(kernels, kernels.DenseBits(weight, n_bits, threshold, flip), x,
                                   np.uint8, word_padded(sign_bytes(n_out)))
    np.testing.assert_array_equal(bits[:, :sign_bytes(n_out)], output_bits(expected, threshold, flip))

    values = rng.integers(0, 256, (samples, n_bits)).astype(np.uint8)
    planes = kernels.DensePlanes(weight, n_bits)
    dots = batch_equals_one_by_one(kernels, planes, values, np.float32, n_out,
                                   work=np.zeros(8 * row, np.uint8))
    np.testing.assert_array_equal(dots, values.astype(np.int64) @ unpack_signs(weight, n_bits).T)


@pytest.mark.parametrize("samples", [1, 2, 5])
@pytest.mark.parametrize("case", CONV_CASES[1:4])
def test_a_conv_batch_gives_what_its_samples_give_one_by_one(kernels, samples, case):
    height, width, channels, n_out, kernel, stride, padding, pool = case
    rng = np.random.default_rng(samples)
    shape = ConvShape(height, width, channels, 0, n_out, *kernel, *stride, *padding, *pool)
    threshold = rng.integers(-5, 5, n_out).astype(np.int32)
    plan = kernels.ConvPool(shape, random_signs(rng, (n_out, *kernel, channels)), threshold,
                            rng.integers(0, 2, n_out).astype(np.uint8))
    x = random_signs(rng, (samples, height, width, channels)).reshape(samples, -1)
    batch_equals_one_by_one(kernels, plan, x, np.uint8, word_padded(shape.out_bytes))


@pytest.mark.parametrize("samples", [1, 4, 6])
def test_a_sign_and_scale_batch_gives_what_its_samples_give_one_by_one(kernels, samples):
    rng = np.random.default_rng(samples)
    x = rng.standard_normal((samples, 45)).astype(np.float32)
    x[:, ::4] = 0.0
    batch_equals_one_by_one(kernels, kernels.PackSigns(45), x, np.uint8, 8)
    scale, shift = rng.standard_normal((2, 45)).astype(np.float32)
    batch_equals_one_by_one(kernels, kernels.ScaleShift(scale, shift), x, np.float32, 45)
    x[-1, 17] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        kernels.chain([Link(kernels.PackSigns(45), None, np.zeros((samples, 8), np.uint8))])(x)


def test_a_batch_chain_gives_what_the_samples_give_one_by_one(kernels):
    """Sign -> dense (bits) -> dense (dots) -> scale/shift, one call for the batch."""
    rng = np.random.default_rng(12)
    n_in, hidden, n_out, samples = 100, 72, 10, 7
    w1 = np.pad(random_signs(rng, (hidden, n_in)), ((0, 0), (0, 3)))
    w2 = random_signs(rng, (n_out, hidden))
    threshold = rng.integers(-20, 20, hidden).astype(np.int32)
    flip = rng.integers(0, 2, hidden).astype(np.uint8)
    plans = [kernels.PackSigns(n_in), kernels.DenseBits(w1, n_in, threshold, flip),
             kernels.DenseBits(w2, hidden), kernels.ScaleShift(np.full(n_out, 0.1, np.float32),
                                                               np.arange(n_out, dtype=np.float32))]
    sizes = [(np.uint8, 16), (np.uint8, 16), (np.float32, n_out), (np.float32, n_out)]
    batch = kernels.chain([Link(plan, None, np.zeros((samples, size), dtype))
                           for plan, (dtype, size) in zip(plans, sizes)])
    one = kernels.chain([Link(plan, None, np.zeros(size, dtype))
                         for plan, (dtype, size) in zip(plans, sizes)])
    x = rng.standard_normal((samples, n_in)).astype(np.float32)
    scores = batch(x)
    for sample, row in zip(x, scores):
        np.testing.assert_array_equal(row, one(sample))
    assert np.unique(scores).size > samples


@pytest.mark.parametrize("n_in, n_out", [(1, 1), (31, 3), (32, 4), (33, 5), (100, 13), (784, 10)])
@pytest.mark.parametrize("relu", [False, True])
def test_int8_dense_is_the_float_product_within_its_quantization_error(kernels, n_in, n_out, relu):
    """Each sample quantized by its own largest value: every product is off by at most half
    a quantization step of x times |w|; a batch gives what its samples give one by one."""
    rng = np.random.default_rng(n_in * 100 + n_out)
    weight = rng.integers(-127, 128, (n_out, n_in)).astype(np.int8)
    scale = rng.uniform(0.001, 0.1, n_out).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    x = rng.standard_normal((5, n_in)).astype(np.float32)
    x[1] = 0                                         # scale 0: only the bias
    plan = kernels.DenseInt8(weight, scale, bias, relu)
    got = batch_equals_one_by_one(kernels, plan, x, np.float32, n_out,
                                  work=np.zeros(int8_row(n_in), np.uint8))
    real = weight.astype(np.float64) * scale[:, None]
    want = x.astype(np.float64) @ real.T + bias
    step = np.abs(x).max(axis=1, keepdims=True) / 127
    error = step / 2 * np.abs(real).sum(axis=1) + 1e-5 * (np.abs(want) + 1)
    if relu:
        want = np.maximum(want, 0)
    assert (np.abs(got - want) <= error).all()
    np.testing.assert_array_equal(got[1], np.maximum(bias, 0) if relu else bias)


def test_int8_dense_refuses_a_value_that_is_not_finite(kernels):
    plan = kernels.DenseInt8(np.ones((2, 3), np.int8), np.ones(2, np.float32),
                             np.zeros(2, np.float32), False)
    run = plan.runner(work=np.zeros(32, np.uint8), out=np.zeros(2, np.float32))
    for bad in (np.nan, np.inf):
        with pytest.raises(InputError, match="NaN or infinite"):
            run(np.array([1.0, bad, 2.0], np.float32))


@pytest.mark.parametrize("n_in, n_out", [(1, 1), (3, 7), (9, 8), (100, 9), (77, 64), (130, 65),
                                         (784, 130)])
@pytest.mark.parametrize("relu", [False, True])
def test_float_dense_is_the_product_to_rounding_and_c_sums_in_order(kernels, n_in, n_out, relu):
    """Both backends give the product within float32 rounding of each sum; the C kernel
    gives, bit for bit, the sum over the inputs in order, zeros skipped, a batch as its
    samples one by one (every path: tests/test_popcount_paths.py)."""
    rng = np.random.default_rng(n_in * 1000 + n_out)
    weight_t = rng.standard_normal((n_in, n_out)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    x = rng.standard_normal((5, n_in)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = 0                 # as after a ReLU
    x[1] = 0                                         # only the bias
    plan = kernels.DenseFloat(weight_t, bias, relu)
    work = np.zeros(8 * n_in, np.uint8)
    if kernels.name == "c":
        got = batch_equals_one_by_one(kernels, plan, x, np.float32, n_out, work)
        in_order = np.zeros((5, n_out), np.float32)
        for i in range(n_in):
            in_order += x[:, i:i + 1] * weight_t[i]
        in_order += bias
        np.testing.assert_array_equal(got, np.maximum(in_order, 0) if relu else in_order)
    else:
        got = np.zeros((5, n_out), np.float32)
        kernels.chain([Link(plan, work, got)])(x)
    products = x.astype(np.float64) @ weight_t.astype(np.float64)
    want = products + bias
    error = n_in * 2.0 ** -23 * (np.abs(x) @ np.abs(weight_t) + np.abs(bias)) + 1e-30
    if relu:
        want = np.maximum(want, 0)
    assert (np.abs(got - want) <= error).all()
    np.testing.assert_array_equal(got[1], np.maximum(bias, 0) if relu else bias)
