"""The NumPy twin of the C kernel: the plans of ``contract.Backend``, the same results, no compiler.

Each plan is built once per layer from the layer's constant arrays;
``runner(work=..., out=...)`` binds one thread's buffers and returns the
per-sample call ``run(x) -> out``.
The twin computes the same integers by a plain route (unpacked +-1 values
and integer matrix products), so comparing it with the C kernel tests both.
"""
import numpy as np

from ..bitpack import sign_bytes, unpack_signs
from ..errors import NON_FINITE, InputError
from ..exits import summarize  # noqa: F401  (the C backend's is bnn_summarize)

name = "numpy"


class _Plan:
    """Output stage shared by every layer: threshold bits, or raw dots."""

    def __init__(self, threshold, flip):
        self.threshold = threshold
        self.flip = None if flip is None else flip.astype(bool)

    def runner(self, *, work, out):
        def run(x):
            self(x, work, out)
            return out
        return run

    def emit(self, dots, out):
        """Write ``dots`` (..., n_out) to ``out`` as packed bits or float32 values."""
        if self.threshold is None:
            out[:dots.size] = dots.reshape(-1)
            return
        bits = np.packbits((dots >= self.threshold) ^ self.flip, axis=-1).reshape(-1)
        out[:bits.size] = bits


class DenseBits(_Plan):
    """Dense layer on packed signs: dot = n - 2 * popcount(x XOR w)."""

    def __init__(self, weight, n_bits, threshold=None, flip=None):
        super().__init__(threshold, flip)
        self.signs = unpack_signs(weight, weight.shape[1] * 8)
        self.n_bits = n_bits

    def __call__(self, x, work, out):
        x_signs = unpack_signs(x[:self.signs.shape[1] // 8], self.signs.shape[1])
        # padding bits are 0 (-1 here) in both: each pair adds +1, removed below
        padding = self.signs.shape[1] - self.n_bits
        self.emit(self.signs @ x_signs - padding, out)


class DensePlanes(_Plan):
    """Dense layer with +-1 weights on uint8 input: exact integer sum of x * w."""

    def __init__(self, weight, n_values, threshold=None, flip=None):
        super().__init__(threshold, flip)
        self.signs = unpack_signs(weight, n_values)

    def __call__(self, x, work, out):
        self.emit(self.signs @ x.astype(np.int32), out)


class ConvPool(_Plan):
    """Binary conv -> max pool -> threshold, computed unfused: the plain route."""

    def __init__(self, shape, weight, threshold, flip):
        super().__init__(threshold, flip)
        self.shape = shape
        # (out, kh, kw, C) signs
        self.signs = unpack_signs(weight, shape.channels)

    def __call__(self, x, work, out):
        s = self.shape
        if s.uint8_input:
            values = x.reshape(s.height, s.width, s.channels).astype(np.int32)
        else:
            packed = x[:s.height * s.width * sign_bytes(s.channels)]
            values = unpack_signs(packed.reshape(s.height, s.width, -1), s.channels)
        padded = np.zeros((s.height + 2 * s.pad_h, s.width + 2 * s.pad_w, s.channels), np.int32)
        padded[s.pad_h:s.pad_h + s.height, s.pad_w:s.pad_w + s.width] = values
        conv_h, conv_w = s.conv_h, s.conv_w
        dots = np.zeros((conv_h, conv_w, s.out_channels), np.int64)
        for ky in range(s.kernel_h):
            for kx in range(s.kernel_w):
                patch = padded[ky:ky + s.stride_h * (conv_h - 1) + 1:s.stride_h,
                               kx:kx + s.stride_w * (conv_w - 1) + 1:s.stride_w]
                dots += patch @ self.signs[:, ky, kx, :].T
        out_h, out_w = s.out_h, s.out_w
        pooled = dots[:out_h * s.pool_h, :out_w * s.pool_w].reshape(
            out_h, s.pool_h, out_w, s.pool_w, s.out_channels).max(axis=(1, 3))
        self.emit(pooled, out)


class PackSigns:
    def __init__(self, n):
        self.n = n

    def runner(self, *, work, out):
        def run(x):
            if not np.isfinite(x).all():    # a sign of NaN or infinity means nothing
                raise InputError(NON_FINITE)
            bits = np.packbits(x >= 0)
            out[:bits.size] = bits
            return out
        return run


class ScaleShift:
    """Float ``x * scale + shift`` (a batch norm before the scores)."""

    def __init__(self, scale, shift):
        self.scale, self.shift = scale, shift

    def runner(self, *, work, out):
        scale, shift, multiply, add = self.scale, self.shift, np.multiply, np.add

        def run(x):
            multiply(x, scale, out=out)
            return add(out, shift, out=out)
        return run


def chain(links):
    """The links' runs one after the other (the C backend makes them one call)."""
    runs = [link.plan.runner(work=link.work, out=link.out) for link in links]
    if len(runs) == 1:
        return runs[0]

    def run(x):
        for step in runs:
            x = step(x)
        return x
    return run
