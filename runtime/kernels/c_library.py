"""The C kernel (csrc/, built by cffi at install time) behind the same plans as the twin.

A plan turns its constant arrays into C pointers once; per call it checks
the arrays it is given (dtype, contiguity, size) and passes their pointers.
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


class _Plan:
    def __init__(self, weight, threshold, flip, n_out):
        self._keep = (weight, threshold, flip)          # the pointers' owners
        self.n_out = n_out
        self.weight = _pointer(weight, np.uint8, weight.size, "weight")
        if threshold is None:
            self.threshold = self.flip = ffi.NULL
            self.out_size, self.out_dtype = n_out, np.int32
        else:
            self.threshold = _pointer(threshold, np.int32, n_out, "threshold")
            self.flip = _pointer(flip, np.uint8, n_out, "flip")
            self.out_size, self.out_dtype = -(-n_out // 8), np.uint8

    def outputs(self, out):
        """(bits pointer, dots pointer) for ``out``: one of them NULL."""
        pointer = _pointer(out, self.out_dtype, self.out_size, "out")
        return (ffi.NULL, pointer) if self.threshold == ffi.NULL else (pointer, ffi.NULL)


class DenseBits(_Plan):
    def __init__(self, weight, n_bits, threshold=None, flip=None):
        super().__init__(weight, threshold, flip, weight.shape[0])
        self.row_bytes = weight.shape[1]
        self.n_bits = n_bits

    def __call__(self, x, work, out):
        bits, dots = self.outputs(out)
        lib.bnn_dense_bits(_pointer(x, np.uint8, self.row_bytes, "x"), self.weight, self.n_out,
                           self.row_bytes, self.n_bits, self.threshold, self.flip, bits, dots)


class DensePlanes(_Plan):
    def __init__(self, weight, n_values, threshold=None, flip=None):
        super().__init__(weight, threshold, flip, weight.shape[0])
        self.row_bytes = weight.shape[1]
        self.n_values = n_values

    def __call__(self, x, work, out):
        planes = _pointer(work, np.uint8, 8 * self.row_bytes, "planes")
        lib.bnn_bitplanes(_pointer(x, np.uint8, self.n_values, "x"), 1, self.n_values,
                          self.row_bytes, planes)
        bits, dots = self.outputs(out)
        lib.bnn_dense_planes(planes, self.weight, self.n_out, self.row_bytes,
                             self.threshold, self.flip, bits, dots)


class ConvPool(_Plan):
    def __init__(self, shape, weight, threshold, flip):
        super().__init__(weight, threshold, flip, shape.out_channels)
        self.shape = shape
        self.c_shape = ffi.new("bnn_conv_shape *", shape._asdict())

    def __call__(self, x, work, out):
        s = self.shape
        if s.n_planes:
            source = _pointer(work, np.uint8, 8 * s.plane_bytes, "planes")
            lib.bnn_bitplanes(_pointer(x, np.uint8, s.height * s.width * s.channels, "x"),
                              s.height * s.width, s.channels, s.plane_bytes, source)
        else:
            source = _pointer(x, np.uint8, s.in_bytes, "x")
        lib.bnn_conv_pool(source, self.c_shape, self.weight, self.threshold, self.flip,
                          _pointer(out, np.uint8, s.out_bytes, "out"))


def pack_signs(x, out):
    n = x.size
    lib.bnn_pack_signs(_pointer(x, np.float32, n, "x"), n,
                       _pointer(out, np.uint8, -(-n // 8), "out"))
