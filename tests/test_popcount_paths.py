"""The C kernel's popcount paths: the fastest the CPU has is the one chosen, and each computes the same.

What the CPU has is read from /proc/cpuinfo (Linux): the kernel lists
there only what the OS also enables (AVX and AVX-512 register state).
Not for emulated CPUs under qemu-user, whose /proc/cpuinfo is the host's:
.ci/boards.sh checks the path there with the C self-test instead.
"""
import platform
import re

import numpy as np
import pytest

from edgebnn.bitpack import pack_signs, sign_bytes, word_padded
from edgebnn.kernels import c_available, numpy_twin
from edgebnn.kernels.contract import Link
from edgebnn.kernels.geometry import ConvShape

pytestmark = pytest.mark.skipif(not c_available(), reason="the C kernel is not built")


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            found = re.search(r"^(flags|Features)\s*:(.*)$", f.read(), re.M)
    except OSError:
        found = None
    if found is None:
        pytest.skip("no /proc/cpuinfo flags to compare with")
    return set(found.group(2).split())


def fastest_path(machine, flags):
    """The path the kernel must take on a CPU with ``flags``."""
    if re.match(r"(x86_64|amd64|i[3-6]86)$", machine, re.I):
        if {"avx512f", "avx512bw", "avx512_vpopcntdq", "avx2", "popcnt"} <= flags:
            return "avx512"
        if {"avx2", "popcnt"} <= flags:
            return "avx2"
        return "popcnt" if "popcnt" in flags else "portable"
    if machine.startswith("aarch64") or (machine.startswith("armv7") and "neon" in flags):
        return "neon"
    return "portable"


def test_the_fastest_path_the_cpu_has_is_the_one_taken():
    from edgebnn.kernels import c_library
    assert c_library.popcount_path == fastest_path(platform.machine(), cpu_flags())
    assert c_library.popcount_paths[-1] == c_library.popcount_path


def test_the_rule_names_each_path():
    x86 = {"popcnt", "avx2", "avx512f", "avx512bw", "avx512_vpopcntdq"}
    assert fastest_path("x86_64", x86) == "avx512"
    assert fastest_path("x86_64", x86 - {"avx512_vpopcntdq"}) == "avx2"
    assert fastest_path("i686", {"popcnt", "sse4_2"}) == "popcnt"
    assert fastest_path("i686", {"sse3"}) == "portable"
    assert fastest_path("armv7l", {"vfp", "neon"}) == "neon"
    assert fastest_path("armv7l", {"vfp"}) == "portable"


@pytest.fixture
def each_path():
    """Every path this CPU supports in turn, the default one back afterwards."""
    from edgebnn.kernels import c_library
    yield c_library.popcount_paths
    c_library.use_popcount_path(c_library.popcount_path)


def test_every_path_the_cpu_has_computes_what_the_twin_computes(each_path):
    """Long rows (every vector loop and its counter flushes), 8-row blocks, batches."""
    from edgebnn.kernels import c_library
    rng = np.random.default_rng(1)
    n_bits, n_out, samples = 31 * 256 + 8, 21, 6
    row = word_padded(sign_bytes(n_bits))
    weight = np.zeros((n_out, row), np.uint8)
    weight[:, :sign_bytes(n_bits)] = pack_signs(rng.standard_normal((n_out, n_bits)))
    x = np.zeros((samples, row), np.uint8)
    x[:, :sign_bytes(n_bits)] = pack_signs(rng.standard_normal((samples, n_bits)))
    values = rng.integers(0, 256, (samples, n_bits)).astype(np.uint8)
    floats = rng.standard_normal((samples, 1000)).astype(np.float32)
    threshold = rng.integers(-50, 50, n_out).astype(np.int32)
    flip = rng.integers(0, 2, n_out).astype(np.uint8)
    conv = ConvShape(6, 5, 70, 0, 9, 3, 3, 1, 1, 1, 1, 2, 1)
    conv_weight = pack_signs(rng.standard_normal((9, 3, 3, 70)))
    conv_x = pack_signs(rng.standard_normal((samples, 6, 5, 70))).reshape(samples, -1)
    int8_weight = rng.integers(-127, 128, (n_out, 1000)).astype(np.int8)
    int8_scale = rng.uniform(0.001, 0.1, n_out).astype(np.float32)

    def outputs(kernels):
        cases = [(kernels.DenseBits(weight, n_bits), x, np.float32, n_out, None),
                 (kernels.DenseBits(weight, n_bits, threshold, flip), x, np.uint8, 8, None),
                 (kernels.DensePlanes(weight, n_bits), values, np.float32, n_out,
                  np.zeros(8 * row, np.uint8)),
                 (kernels.PackSigns(1000), floats, np.uint8, 128, None),
                 (kernels.DenseInt8(int8_weight, int8_scale, threshold[:n_out].astype(np.float32),
                                    True), floats, np.float32, n_out, np.zeros(1024, np.uint8)),
                 (kernels.ConvPool(conv, conv_weight, threshold[:9], flip[:9]), conv_x, np.uint8,
                  word_padded(conv.out_bytes), None)]
        return [kernels.chain([Link(plan, work, np.zeros((samples, size), dtype))])(data)
                for plan, data, dtype, size, work in cases]

    expected = outputs(numpy_twin)
    assert len(each_path) >= 1
    for path in each_path:
        c_library.use_popcount_path(path)
        for got, want in zip(outputs(c_library), expected):
            np.testing.assert_array_equal(got, want, err_msg=path)


def test_every_path_sums_a_float_dense_layer_to_the_same_bits(each_path):
    """The twin's BLAS sums in another order; the paths must agree with each other exactly
    (odd widths: the vector loops, 4 rows at a time, and their leftovers)."""
    from edgebnn.kernels import c_library
    rng = np.random.default_rng(2)
    weight_t = rng.standard_normal((1003, 77)).astype(np.float32)
    bias = rng.standard_normal(77).astype(np.float32)
    x = np.maximum(rng.standard_normal((6, 1003)), 0).astype(np.float32)
    outputs = {}
    for path in each_path:
        c_library.use_popcount_path(path)
        out = np.zeros((6, 77), np.float32)
        plan = c_library.DenseFloat(weight_t, bias, True)
        outputs[path] = c_library.chain([Link(plan, np.zeros(8 * 1003, np.uint8), out)])(x)
    for path, got in outputs.items():
        np.testing.assert_array_equal(got, outputs[each_path[0]], err_msg=path)
    np.testing.assert_allclose(got, np.maximum(x @ weight_t + bias, 0), rtol=1e-4, atol=1e-4)


def test_an_unknown_path_is_refused():
    from edgebnn.kernels import c_library
    with pytest.raises(ValueError, match="popcount path 'sse9' unknown here"):
        c_library.use_popcount_path("sse9")
    assert c_library.popcount_path in c_library.popcount_paths
