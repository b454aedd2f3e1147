"""The NumPy twin of the C kernel: the plans of ``contract.Backend``, the same results, no compiler.

Each plan is built once per layer from the layer's constant arrays and
computes a batch, one row per sample, by a plain route (unpacked +-1 values
and integer matrix products), so comparing it with the C kernel tests both;
a single sample is a batch of one.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..bitpack import sign_bytes, unpack_signs
from ..errors import NON_FINITE, InputError
from ..exits import summarize    # the C backend's is bnn_summarize

name = "numpy"


def summarize_rows(logits):
    """``summarize`` of each row of ``logits`` (samples, classes)."""
    return [summarize(row) for row in logits]


class _Plan:
    """``plan(x, work, out)``: the rows of ``x`` into the rows of ``out``."""

    def runner(self, *, work, out):
        if out.ndim == 2:                   # a batch: one row per sample
            def run_batch(x):
                if len(x):
                    self(x, work, out)
                return out
            return run_batch
        rows = out.reshape(1, -1)           # a view: what the plan writes lands in out

        def run(x):
            self(x.reshape(1, -1), work, rows)
            return out
        return run


class _Layer(_Plan):
    """Output stage shared by every layer: threshold bits, or raw dots."""

    def __init__(self, threshold, flip):
        self.threshold = threshold
        self.flip = None if flip is None else flip.astype(bool)

    def emit(self, dots, out):
        """Write ``dots`` (samples, ..., n_out) to ``out``'s rows as packed bits or float32 values."""
        if self.threshold is not None:
            dots = np.packbits((dots >= self.threshold) ^ self.flip, axis=-1)
        values = dots.reshape(len(out), -1)
        out[:, :values.shape[1]] = values


class DenseBits(_Layer):
    """Dense layer on packed signs: dot = n - 2 * popcount(x XOR w)."""

    def __init__(self, weight, n_bits, threshold=None, flip=None):
        super().__init__(threshold, flip)
        self.signs = unpack_signs(weight, weight.shape[1] * 8)
        self.n_bits = n_bits

    def __call__(self, x, work, out):
        x_signs = unpack_signs(x[:, :self.signs.shape[1] // 8], self.signs.shape[1])
        # padding bits are 0 (-1 here) in both: each pair adds +1, removed below
        padding = self.signs.shape[1] - self.n_bits
        self.emit(x_signs @ self.signs.T - padding, out)


class DensePlanes(_Layer):
    """Dense layer with +-1 weights on uint8 input: exact integer sum of x * w."""

    def __init__(self, weight, n_values, threshold=None, flip=None):
        super().__init__(threshold, flip)
        self.signs = unpack_signs(weight, n_values)

    def __call__(self, x, work, out):
        self.emit(x[:, :self.signs.shape[1]].astype(np.int32) @ self.signs.T, out)


class ConvPool(_Layer):
    """Binary conv -> max pool -> threshold, computed unfused: the plain route."""

    def __init__(self, shape, weight, threshold, flip):
        super().__init__(threshold, flip)
        self.shape = shape
        # (out, kh, kw, C) signs
        self.signs = unpack_signs(weight, shape.channels)

    def __call__(self, x, work, out):
        self.emit(np.stack([self.pooled(sample) for sample in x]), out)

    def pooled(self, x):
        """One sample's max-pooled dot products (out_h, out_w, out_channels)."""
        s = self.shape
        if s.uint8_input:
            values = x[:s.in_bytes].reshape(s.height, s.width, s.channels).astype(np.int32)
        else:
            packed = x[:s.in_bytes]
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
        return dots[:out_h * s.pool_h, :out_w * s.pool_w].reshape(
            out_h, s.pool_h, out_w, s.pool_w, s.out_channels).max(axis=(1, 3))


class DenseInt8(_Plan):
    """int8 weights on float values quantized per sample, as csrc/bnn.h computes them."""

    def __init__(self, weight, scale, bias, relu):
        # the integer sums in float64 BLAS: exact, every partial sum is an integer below 2^53
        self.weight_t = weight.T.astype(np.float64)
        self.scale, self.bias, self.relu = scale, bias, relu

    def __call__(self, x, work, out):
        x = x[:, :self.weight_t.shape[0]]
        top = np.abs(x).max(axis=1)
        if not np.isfinite(top).all():
            raise InputError(NON_FINITE)
        s = (top / np.float32(127)).astype(np.float32)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s > 0, np.clip(np.rint(x / s), -127, 127), 0)
        sums = (q @ self.weight_t).astype(np.int64).astype(np.float32)
        np.multiply(sums, s * self.scale, out=out)
        np.add(out, self.bias, out=out)
        if self.relu:
            out[out < 0] = 0


class DenseFloat(_Plan):
    """Float weights by BLAS: the C kernel's sums in another order, equal to rounding."""

    def __init__(self, weight_t, bias, relu):
        self.weight_t, self.bias, self.relu = weight_t, bias, relu

    def __call__(self, x, work, out):
        np.dot(x[:, :self.weight_t.shape[0]], self.weight_t, out=out)
        np.add(out, self.bias, out=out)
        if self.relu:
            np.maximum(out, 0.0, out=out)


class ConvFloat(_Plan):
    """Float convolution by im2col: each output position's window gathered into a row
    of one matrix, multiplied by the weight columns in one BLAS call."""

    def __init__(self, shape, columns, bias, relu):
        self.shape, self.columns, self.bias, self.relu = shape, columns, bias, relu

    def __call__(self, x, work, out):
        s, n = self.shape, len(x)
        padded = np.zeros((n, s.height + 2 * s.pad_h, s.width + 2 * s.pad_w, s.channels),
                          np.float32)
        padded[:, s.pad_h:s.pad_h + s.height, s.pad_w:s.pad_w + s.width] = \
            x[:, :s.height * s.width * s.channels].reshape(n, s.height, s.width, s.channels)
        windows = sliding_window_view(padded, (s.kernel_h, s.kernel_w), axis=(1, 2))
        windows = windows[:, ::s.stride_h, ::s.stride_w]           # (n, Ho, Wo, C, kh, kw)
        rows = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, len(self.columns))
        values = rows @ self.columns
        values += self.bias
        if self.relu:
            np.maximum(values, 0.0, out=values)
        out[:, :values.size // n] = values.reshape(n, -1)


class PoolFloat(_Plan):
    """Float max or average pooling over sliding windows."""

    def __init__(self, shape, average):
        self.shape, self.average = shape, average

    def __call__(self, x, work, out):
        s, n = self.shape, len(x)
        values = x[:, :s.height * s.width * s.channels].reshape(n, s.height, s.width, s.channels)
        windows = sliding_window_view(values, (s.kernel_h, s.kernel_w), axis=(1, 2))
        windows = windows[:, ::s.stride_h, ::s.stride_w]           # (n, Ho, Wo, C, kh, kw)
        pooled = windows.mean(axis=(4, 5), dtype=np.float32) if self.average else \
            windows.max(axis=(4, 5))
        out[:, :pooled[0].size] = pooled.reshape(n, -1)


class PackSigns(_Plan):
    def __init__(self, n):
        self.n = n

    def __call__(self, x, work, out):
        x = x[:, :self.n]
        if not np.isfinite(x).all():    # a sign of NaN or infinity means nothing
            raise InputError(NON_FINITE)
        out[:, :sign_bytes(self.n)] = np.packbits(x >= 0, axis=-1)


class Preprocess(_Plan):
    """The input's ``x * scale + offset``, computed in float32 whatever the NumPy version
    (an explicit loop dtype: NumPy 1's value-based casting could pick float16)."""

    def __init__(self, n, dtype, scale, offset):
        self.n, self.scale, self.offset = n, np.float32(scale), np.float32(offset)

    def __call__(self, x, work, out):
        np.multiply(x[:, :self.n], self.scale, out=out, dtype=np.float32, casting="unsafe")
        np.add(out, self.offset, out=out)


class ScaleShift(_Plan):
    """Float ``x * scale + shift`` (a batch norm before the scores)."""

    def __init__(self, scale, shift):
        self.scale, self.shift = scale, shift

    def __call__(self, x, work, out):
        np.multiply(x[:, :self.scale.size], self.scale, out=out)
        np.add(out, self.shift, out=out)


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

