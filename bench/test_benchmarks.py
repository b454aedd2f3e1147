"""pytest-benchmark suite: the kernels and ``classify`` on the nets the README quotes.

    python -m pytest bench --benchmark-only

Kept out of the default test run (pyproject's testpaths is tests/): these
measure, they do not check. Every binary case runs on each kernel backend.
"""
import numpy as np
import pytest

from edgebnn.bench.binary import binary_mlp, conv_net, float_mlp
from edgebnn import Runtime
from edgebnn.bitpack import pack_signs, word_padded
from edgebnn.fold import fold_sign
from edgebnn.kernels import c_available, get_kernels

c_library = get_kernels("c") if c_available() else None

BACKENDS = [pytest.param("c", marks=pytest.mark.skipif(not c_available(), reason="C kernel not built")),
            "numpy"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def padded_signs(rng, n_out, n_in):
    """Random packed sign rows, padded to whole words as the layers keep them."""
    packed = pack_signs(rng.standard_normal((n_out, n_in)))
    rows = np.zeros((n_out, word_padded(packed.shape[1])), np.uint8)
    rows[:, :packed.shape[1]] = packed
    return rows


def test_kernel_dense_bits_1000x784(benchmark, backend):
    rng = np.random.default_rng(0)
    weight = padded_signs(rng, 1000, 784)
    threshold, flip = fold_sign(rng.standard_normal(1000), rng.standard_normal(1000))
    x = np.zeros(weight.shape[1], np.uint8)
    x[:98] = pack_signs(rng.standard_normal(784))
    out = np.zeros(word_padded(125), np.uint8)
    run = get_kernels(backend).DenseBits(weight, 784, threshold, flip).runner(work=None, out=out)
    benchmark(run, x)


def test_kernel_dense_planes_uint8_784x1000(benchmark, backend):
    rng = np.random.default_rng(1)
    weight = padded_signs(rng, 1000, 784)
    x = rng.integers(0, 256, 784, dtype=np.uint8)
    work = np.zeros(8 * weight.shape[1], np.uint8)
    run = get_kernels(backend).DensePlanes(weight, 784).runner(work=work, out=np.zeros(1000, np.float32))
    benchmark(run, x)


def test_kernel_pack_signs_784(benchmark, backend):
    x = np.random.default_rng(2).standard_normal(784).astype(np.float32)
    run = get_kernels(backend).PackSigns(784).runner(work=None, out=np.zeros(word_padded(98), np.uint8))
    benchmark(run, x)


def test_classify_float_784_1000_500_10(benchmark):
    rng = np.random.default_rng(3)
    rt = Runtime(float_mlp(rng))
    x = rng.standard_normal(784).astype(np.float32)
    benchmark(rt.classify, x)


def test_classify_binary_784_1000_500_10(benchmark, backend):
    rng = np.random.default_rng(4)
    rt = Runtime(binary_mlp(rng), backend=backend)
    x = rng.standard_normal(784).astype(np.float32)
    benchmark(rt.classify, x)


def test_classify_loop_of_64_binary_784_1000_500_10(benchmark, backend):
    """A loop of classify over 64 samples: the baseline of classify_batch below."""
    rng = np.random.default_rng(4)
    rt = Runtime(binary_mlp(rng), backend=backend)
    x = rng.standard_normal((64, 784)).astype(np.float32)
    benchmark(lambda: [rt.classify(sample) for sample in x])


def test_classify_batch_of_64_binary_784_1000_500_10(benchmark, backend):
    rng = np.random.default_rng(4)
    rt = Runtime(binary_mlp(rng), backend=backend)
    x = rng.standard_normal((64, 784)).astype(np.float32)
    benchmark(rt.classify_batch, x)


@pytest.mark.parametrize("path", c_library.popcount_paths if c_available() else [])
def test_forward_binary_784_1000_500_10_per_popcount_path(benchmark, path):
    """The C kernel's one call alone on each popcount path this CPU has."""
    rng = np.random.default_rng(4)
    model = Runtime(binary_mlp(rng), backend="c").model
    x = model.check_input(rng.standard_normal(784).astype(np.float32))
    default = c_library.use_popcount_path(path)
    try:
        benchmark(model.forward, x)
    finally:
        c_library.use_popcount_path(default)


def test_classify_binary_conv_net(benchmark, backend):
    rng = np.random.default_rng(5)
    rt = Runtime(conv_net(rng), backend=backend)
    image = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    benchmark(rt.classify, image)
