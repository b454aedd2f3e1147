"""Binary layers inside models: building, files, errors, both backends agreeing."""
import tracemalloc

import numpy as np
import pytest

from edgebnn import (BatchNorm, BinaryConv2d, BinaryDense, Dense, InputError, Model, ModelFormatError,
                     Runtime, Sign, save_model)
from edgebnn.bitpack import pack_signs
from edgebnn.fold import fold_sign
from conftest import run_threads

pytestmark = pytest.mark.usefixtures("backend")     # every test runs the kernels


def thresholds(rng, n_out, span):
    return fold_sign(rng.standard_normal(n_out), rng.uniform(-0.3, 0.3, n_out) * span)


def binary_mlp(seed=0, sizes=(784, 200, 64, 10)):
    """uint8 input -> binary dense (bit planes) -> binary dense -> scores."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        weight = pack_signs(rng.standard_normal((n_out, n_in)))
        if i < len(sizes) - 2:
            t, f = thresholds(rng, n_out, n_in * (64 if i == 0 else 1))
            layers.append(BinaryDense(weight, t, f))
        else:
            layers += [BinaryDense(weight),
                       BatchNorm(rng.uniform(0.5, 1.5, n_out), rng.standard_normal(n_out))]
    return Model(layers, (28, 28), "uint8", 1 / 255)


def binary_conv_net(seed=0):
    """uint8 28x28 -> conv 3x3x16 + pool 2 -> conv 3x3x9 + pool 2 (pad 1) -> dense -> scores."""
    rng = np.random.default_rng(seed)
    t1, f1 = thresholds(rng, 16, 9 * 255)
    t2, f2 = thresholds(rng, 9, 9 * 16)
    conv1 = BinaryConv2d(pack_signs(rng.standard_normal((16, 3, 3, 1))), t1, f1, pool=(2, 2))
    conv2 = BinaryConv2d(pack_signs(rng.standard_normal((9, 3, 3, 16))), t2, f2,
                         padding=(1, 1), pool=(2, 2))
    dense = BinaryDense(pack_signs(rng.standard_normal((10, 6 * 6, 9))).reshape(10, -1))
    return Model([conv1, conv2, dense, BatchNorm(np.full(10, 0.1), np.zeros(10))],
                 (28, 28), "uint8", 1 / 255)


def images(n, seed=5):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("make", [binary_mlp, binary_conv_net])
def test_backends_give_identical_logits(make):
    model = make()
    numpy_model = Runtime(model, backend="numpy")
    try:
        c_model = Runtime(model, backend="c")
    except ImportError:
        pytest.skip("the C kernel is not built")
    for x in images(30):
        np.testing.assert_array_equal(c_model.classify(x).logits, numpy_model.classify(x).logits)


def sign_mlp(seed=0, sizes=(100, 72, 24, 10)):
    """float input -> sign -> binary dense (bits) x2 -> binary dense (dots) -> batch norm."""
    rng = np.random.default_rng(seed)
    layers = [Sign()]
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(BinaryDense(pack_signs(rng.standard_normal((n_out, n_in))),
                                  *thresholds(rng, n_out, n_in)))
    layers += [BinaryDense(pack_signs(rng.standard_normal((sizes[-1], sizes[-2])))),
               BatchNorm(rng.uniform(0.5, 1.5, sizes[-1]), rng.standard_normal(sizes[-1]))]
    return Model(layers, (sizes[0],))


def samples_for(model, n, seed=5):
    if model.input_dtype == np.uint8:
        return images(n, seed)
    return np.random.default_rng(seed).standard_normal((n, *model.input_shape)).astype(np.float32)


@pytest.mark.parametrize("make", [binary_mlp, binary_conv_net, sign_mlp])
def test_classify_batch_equals_a_loop_bit_for_bit(make):
    runtime = Runtime(make())
    for n in (1, 2, 4, 5, 9, 64, 4):          # sizes change: each thread's batch buffers follow
        x = samples_for(runtime.model, n, seed=n)
        batch = runtime.classify_batch(x)
        assert len(batch) == n
        for sample, result in zip(x, batch):
            alone = runtime.classify(sample)
            np.testing.assert_array_equal(result.logits, alone.logits)
            assert (result.label, result.confidence, result.entropy) == \
                (alone.label, alone.confidence, alone.entropy)


@pytest.mark.parametrize("make", [binary_mlp, binary_conv_net, sign_mlp])
def test_an_empty_batch_is_refused_before_the_kernel(make):
    runtime = Runtime(make())
    with pytest.raises(InputError, match="empty batch"):
        runtime.classify_batch(samples_for(runtime.model, 0))


@pytest.mark.parametrize("make", [binary_mlp, binary_conv_net, sign_mlp])
def test_backends_give_identical_batches(make):
    model = make()
    try:
        c_batch = Runtime(model, backend="c").classify_batch(samples_for(model, 13))
    except ImportError:
        pytest.skip("the C kernel is not built")
    numpy_batch = Runtime(model, backend="numpy").classify_batch(samples_for(model, 13))
    for c_result, numpy_result in zip(c_batch, numpy_batch):
        np.testing.assert_array_equal(c_result.logits, numpy_result.logits)


def test_threads_classify_batches_as_serial_calls():
    """Each thread keeps its own batch buffers: batches of other threads never mix in."""
    runtime = Runtime(sign_mlp())
    batches = [samples_for(runtime.model, n, seed=n) for n in (3, 8, 8, 5)]
    serial = [[r.logits for r in runtime.classify_batch(x)] for x in batches]
    got = {}

    def work(k):
        for _ in range(20):
            got.setdefault(k, []).append([r.logits for r in runtime.classify_batch(batches[k])])

    run_threads(work, len(batches))
    for k, runs in got.items():
        for logits in runs:
            np.testing.assert_array_equal(logits, serial[k])
    assert len(got) == len(batches)


def test_a_batch_keeps_its_answers_when_the_next_batch_comes():
    runtime = Runtime(sign_mlp())
    first = runtime.classify_batch(samples_for(runtime.model, 6, seed=1))
    kept = [result.logits.copy() for result in first]
    runtime.classify_batch(samples_for(runtime.model, 6, seed=2))
    for result, logits in zip(first, kept):
        np.testing.assert_array_equal(result.logits, logits)


@pytest.mark.parametrize("make", [binary_mlp, binary_conv_net])
def test_strided_views_classify_as_their_copies(make):
    """A crop of a bigger frame is not contiguous: the C kernel must get a contiguous copy."""
    runtime = Runtime(make())
    frames = np.random.default_rng(8).integers(0, 256, (4, 56, 28), dtype=np.uint8)
    for frame in frames:
        view = frame[::2]
        assert not view.flags.c_contiguous
        np.testing.assert_array_equal(runtime.classify(view).logits,
                                      runtime.classify(view.copy()).logits)
    batch = frames[:, ::2]
    for result, view in zip(runtime.classify_batch(batch), batch):
        np.testing.assert_array_equal(result.logits, runtime.classify(view.copy()).logits)
    flat = Model([BinaryDense(pack_signs(np.ones((3, 20))))], (20,), "uint8")
    np.testing.assert_array_equal(Runtime(flat).classify(np.arange(40, dtype=np.uint8)[::2]).logits,
                                  Runtime(flat).classify(np.arange(0, 40, 2, dtype=np.uint8)).logits)


@pytest.mark.parametrize("make", [binary_mlp, binary_conv_net])
def test_binary_model_round_trips_through_a_file(tmp_path, make):
    model = make()
    path = tmp_path / "binary.h5"
    save_model(model, path)
    loaded = Runtime(path)
    original = Runtime(model)
    for x in images(10):
        np.testing.assert_array_equal(loaded.classify(x).logits, original.classify(x).logits)


def test_binary_scores_are_integers_times_the_batch_norm():
    model = binary_mlp()
    rt = Runtime(model)
    last = model.layers[-1]
    for x in images(5):
        dots = (rt.classify(x).logits - last.shift) / last.scale
        np.testing.assert_allclose(dots, np.round(dots), atol=1e-3)


def test_sign_layer_feeds_binary_layers_from_float_input():
    rng = np.random.default_rng(2)
    w = pack_signs(rng.standard_normal((3, 20)))
    model = Model([Dense(rng.standard_normal((20, 5)), np.zeros(20)), Sign(), BinaryDense(w)], (5,))
    x = rng.standard_normal(5).astype(np.float32)
    signs = np.where(model.layers[0].weight @ x >= 0, 1, -1)
    weight_signs = np.unpackbits(w, axis=1, count=20).astype(int) * 2 - 1
    np.testing.assert_array_equal(Runtime(model).classify(x).logits, weight_signs @ signs)


def test_binary_dense_on_float_input_asks_for_a_sign_layer():
    w = pack_signs(np.ones((3, 5)))
    with pytest.raises(ModelFormatError, match="put a sign layer before it"):
        Model([Dense(np.ones((5, 5)), np.zeros(5)), BinaryDense(w)], (5,))


def test_binary_dense_weight_width_must_match_the_packed_input():
    with pytest.raises(ModelFormatError, match=r"weight: shape \(3, 2\), expected \(3, 98\)"):
        Model([BinaryDense(np.zeros((3, 2), np.uint8))], (28, 28), "uint8")


def test_padding_bits_set_in_weights_are_refused():
    weight = pack_signs(np.ones((2, 12)))
    weight[1, 1] |= 0x01                       # bit 16 of a 12-bit row
    with pytest.raises(ModelFormatError, match="row 1 has padding bits set"):
        Model([BinaryDense(weight)], (12,), "uint8")


def test_threshold_without_flip_is_refused():
    with pytest.raises(ModelFormatError, match="threshold and flip come together"):
        BinaryDense(np.zeros((2, 1), np.uint8), threshold=np.zeros(2, np.int32))


def test_flip_must_be_zero_or_one():
    with pytest.raises(ModelFormatError, match="flip: values must be 0 or 1"):
        BinaryDense(np.zeros((2, 1), np.uint8), np.zeros(2, np.int32), np.array([0, 2], np.uint8))


def test_threshold_length_must_match_outputs():
    with pytest.raises(ModelFormatError, match=r"threshold: shape \(3,\), expected \(2,\)"):
        BinaryDense(np.zeros((2, 1), np.uint8), np.zeros(3, np.int32), np.zeros(3, np.uint8))


def test_conv_pool_larger_than_its_input_is_refused():
    conv = BinaryConv2d(np.zeros((1, 3, 3, 1), np.uint8), np.zeros(1, np.int32),
                        np.zeros(1, np.uint8), pool=(4, 4))
    with pytest.raises(ModelFormatError, match="pool 4x4 larger than the convolution's output 3x3"):
        Model([conv, BinaryDense(np.zeros((2, 1), np.uint8))], (5, 5), "uint8")


def test_conv_kernel_larger_than_its_input_is_refused():
    conv = BinaryConv2d(np.zeros((1, 5, 5, 1), np.uint8), np.zeros(1, np.int32),
                        np.zeros(1, np.uint8))
    with pytest.raises(ModelFormatError, match="kernel 5x5 larger than the padded input 4x4"):
        Model([conv, BinaryDense(np.zeros((2, 1), np.uint8))], (4, 4), "uint8")


def test_conv_attributes_are_checked():
    with pytest.raises(ModelFormatError, match="stride .* must be two integers >= 1"):
        BinaryConv2d(np.zeros((1, 3, 3, 1), np.uint8), np.zeros(1, np.int32),
                     np.zeros(1, np.uint8), stride=(0, 1))


def test_model_must_end_in_float_scores():
    t, f = np.zeros(10, np.int32), np.zeros(10, np.uint8)
    with pytest.raises(ModelFormatError, match="the last layer gives bits 10, expected float"):
        Model([BinaryDense(np.zeros((10, 98), np.uint8), t, f)], (28, 28), "uint8")


def test_conv_net_classify_stores_no_float_feature_map():
    rt = Runtime(binary_conv_net())
    x = images(1)[0]
    rt.classify(x)
    tracemalloc.start()
    rt.classify(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    smallest_float_map = 13 * 13 * 16 * 4      # the first pooled map as float32
    if rt.backend == "c":
        assert peak < smallest_float_map / 4, peak
    else:                                      # the twin computes unfused: it may
        assert peak > 0                        # hold maps; it only has to be right


def test_per_thread_runners_and_buffers_are_made_once():
    rt = Runtime(binary_mlp())
    first = rt.model._local.runs
    rt.classify(images(1)[0])
    assert rt.model._local.runs is first
    assert len(first) == 4 and len(rt.model._local.fused) == 1     # every layer in one chain


@pytest.mark.parametrize("where", [0, 7, 8, 20])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_signs_of_nan_or_infinity_are_refused(where, bad):
    """The sign step checks its input itself (the model then skips its own scan)."""
    rng = np.random.default_rng(3)
    model = Model([Sign(), BinaryDense(pack_signs(rng.standard_normal((4, 21))))], (21,))
    runtime = Runtime(model)
    x = rng.standard_normal(21).astype(np.float32)
    assert np.isfinite(runtime.classify(x).entropy)
    x[where] = bad
    with pytest.raises(InputError, match="NaN or infinite"):
        runtime.classify(x)
    with pytest.raises(InputError, match="NaN or infinite"):
        runtime.classify_batch(np.stack([np.zeros_like(x), x]))


def test_a_plain_sample_and_a_strided_view_of_it_get_the_same_answer():
    """A flat contiguous float32 sample takes the input check's quick path, a strided
    view the general one (copied): both must reach the kernel with the same values."""
    rng = np.random.default_rng(4)
    model = Model([Sign(), BinaryDense(pack_signs(rng.standard_normal((4, 21))))], (21,))
    runtime = Runtime(model)
    wide = rng.standard_normal((21, 2)).astype(np.float32)
    strided, plain = wide[:, 1], np.ascontiguousarray(wide[:, 1])
    np.testing.assert_array_equal(runtime.classify(strided).logits,
                                  runtime.classify(plain).logits)


def test_a_sign_after_an_overflowing_float_layer_refuses_it():
    dense = Dense(np.full((16, 3), 1e30), np.zeros(16))
    model = Model([dense, Sign(), BinaryDense(pack_signs(np.ones((2, 16))))], (3,))
    runtime = Runtime(model)
    assert runtime.classify(np.full(3, 1e-3, np.float32)).label in (0, 1)
    with np.errstate(over="ignore"), pytest.raises(InputError, match="NaN or infinite"):
        runtime.classify(np.full(3, 1e10, np.float32))
