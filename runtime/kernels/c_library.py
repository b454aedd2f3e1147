"""The C kernel (csrc/, built by cffi at install time) behind the same plans as the twin.

A plan turns a layer's constant arrays into C pointers once. ``runner(work,
out)`` then binds one thread's buffers and returns the per-sample call
``run(x) -> out``, which only has to convert its input: an input it saw last time (a previous
layer's buffer) keeps its pointer. Every array is checked (dtype, contiguity,
size) before its pointer is made.
"""
import numpy as np

from ._bnn import ffi, lib

name = "c"
popcount_path = ffi.string(lib.bnn_popcount_path()).decode()

_C_TYPES = {np.dtype(np.uint8): "uint8_t[]", np.dtype(np.int32): "int32_t[]",
            np.dtype(np.float32): "float[]"}


def _pointer(array, dtype, size, what):
    """A C pointer to ``array``, after checking it can hold ``size`` items of ``dtype``."""
    if (not isinstance(array, np.ndarray) or array.dtype != dtype
            or not array.flags.c_contiguous or array.size < size):
        raise ValueError(f"{what}: expected a C-contiguous {np.dtype(dtype)} array of at "
                         f"least {size} items, got {getattr(array, 'dtype', type(array))} "
                         f"{getattr(array, 'shape', '')}")
    return ffi.from_buffer(_C_TYPES[array.dtype], array)


def _input(dtype, size):
    """``pointer_of(x)``: the pointer of the last array seen, else check and convert."""
    last = [None, None]

    def pointer_of(x):
        if x is not last[0]:
            last[1] = _pointer(x, dtype, size, "input")
            last[0] = x
        return last[1]
    return pointer_of


class _Plan:
    """Constant pointers of a layer: weights and, for sign outputs, thresholds."""

    def __init__(self, weight, threshold, flip, n_out):
        self._keep = (weight, threshold, flip)          # the pointers' owners
        self.n_out = n_out
        self.weight = _pointer(weight, np.uint8, weight.size, "weight")
        if threshold is None:
            self.threshold = self.flip = ffi.NULL
        else:
            self.threshold = _pointer(threshold, np.int32, n_out, "threshold")
            self.flip = _pointer(flip, np.uint8, n_out, "flip")

    def outputs(self, out):
        """(bits pointer, dots pointer) for ``out``: one of them NULL."""
        if self.threshold == ffi.NULL:
            return ffi.NULL, _pointer(out, np.float32, self.n_out, "out")
        return _pointer(out, np.uint8, -(-self.n_out // 8), "out"), ffi.NULL


class DenseBits(_Plan):
    def __init__(self, weight, n_bits, threshold=None, flip=None):
        super().__init__(weight, threshold, flip, weight.shape[0])
        self.row_bytes = weight.shape[1]
        self.n_bits = n_bits

    def runner(self, work, out):
        source = _input(np.uint8, self.row_bytes)
        args = (self.weight, self.n_out, self.row_bytes, self.n_bits, self.threshold, self.flip,
                *self.outputs(out))
        call = lib.bnn_dense_bits

        def run(x):
            call(source(x), *args)
            return out
        return run


class DensePlanes(_Plan):
    def __init__(self, weight, n_values, threshold=None, flip=None):
        super().__init__(weight, threshold, flip, weight.shape[0])
        self.row_bytes = weight.shape[1]
        self.n_values = n_values

    def runner(self, work, out):
        source = _input(np.uint8, self.n_values)
        planes = _pointer(work, np.uint8, 8 * self.row_bytes, "planes")
        args = (planes, self.weight, self.n_out, self.row_bytes, self.threshold, self.flip,
                *self.outputs(out))

        def run(x):
            lib.bnn_bitplanes(source(x), self.n_values, self.row_bytes, planes)
            lib.bnn_dense_planes(*args)
            return out
        return run


class ConvPool(_Plan):
    def __init__(self, shape, weight, threshold, flip):
        super().__init__(weight, threshold, flip, shape.out_channels)
        self.shape = shape
        self.c_shape = ffi.new("bnn_conv_shape *", shape._asdict())

    def runner(self, work, out):
        s = self.shape
        source = _input(np.uint8, s.in_bytes)
        args = (self.c_shape, self.weight, self.threshold, self.flip,
                _pointer(out, np.uint8, s.out_bytes, "out"))
        def run(x):
            lib.bnn_conv_pool(source(x), *args)
            return out
        return run


class PackSigns:
    def __init__(self, n):
        self.n = n

    def runner(self, work, out):
        source = _input(np.float32, self.n)
        args = (self.n, _pointer(out, np.uint8, -(-self.n // 8), "out"))
        def run(x):
            lib.bnn_pack_signs(source(x), *args)
            return out
        return run
