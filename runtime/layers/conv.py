"""Float 2-D convolution, channels last: ``y = act(conv(x, W) + b)`` in NumPy.

The small CNNs people train first (LeNet-sized) are float. The input map is
zero-padded into a buffer, its windows gathered into rows (im2col, one row of
``kernel_h * kernel_w * C`` values per output position) and multiplied by
the weights in one BLAS call, so a sample costs one copy and one matrix
product. Output ``(Ho, Wo, out)``, flat in that order as the next layer reads it.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ModelFormatError
from ..kernels.geometry import conv_size
from ..limits import Cost
from .base import Layer, Signal, check_shape, checked_array, int_pair, map_shape

ACTIVATIONS = ("none", "relu")


class Conv2d(Layer):
    kind = "conv2d"
    ARRAYS = {"weight": "float32", "bias": "float32"}
    ATTRS = {"stride": tuple, "padding": tuple, "activation": str}

    def __init__(self, weight, bias, stride=(1, 1), padding=(0, 0), activation="none"):
        self.weight = checked_array(weight, np.float32, "weight", ndim=4)
        self.bias = checked_array(bias, np.float32, "bias", ndim=1)
        check_shape(self.bias, self.weight.shape[:1], "bias")
        self.stride = int_pair(stride, "stride", 1)
        self.padding = int_pair(padding, "padding", 0)
        if activation not in ACTIVATIONS:
            raise ModelFormatError(
                f"activation {activation!r} unknown; supported: {', '.join(ACTIVATIONS)}")
        self.activation = activation

    def geometry(self, source):
        """``((H, W, C), (Ho, Wo))`` on ``source``: its map and the output positions."""
        height, width, channels = map_shape(source, self.kind)
        _, kernel_h, kernel_w, _ = self.weight.shape
        return ((height, width, channels),
                (conv_size(height, kernel_h, self.stride[0], self.padding[0]),
                 conv_size(width, kernel_w, self.stride[1], self.padding[1])))

    def bind(self, source, kernels):
        (height, width, channels), (out_h, out_w) = self.geometry(source)
        n_out, kernel_h, kernel_w, in_channels = self.weight.shape
        if in_channels != channels:
            raise ModelFormatError(f"conv2d has {in_channels} input channels, its input "
                                   f"{source.describe()} has {channels}")
        if min(out_h, out_w) < 1:
            raise ModelFormatError(f"kernel {kernel_h}x{kernel_w} larger than the padded input "
                                   f"{height + 2 * self.padding[0]}x{width + 2 * self.padding[1]}")
        self._in = (height, width, channels)
        self._out = (out_h, out_w)
        self._columns = np.ascontiguousarray(self.weight.reshape(n_out, -1).T)
        return Signal("float", (out_h, out_w, n_out))

    def cost(self, source):
        if source.kind != "float" or len(source.shape) not in (2, 3):
            return Cost()                       # refused by bind
        (height, width, channels), (out_h, out_w) = self.geometry(source)
        n_out, kernel_h, kernel_w, _ = self.weight.shape
        taps, positions = kernel_h * kernel_w * channels, max(0, out_h) * max(0, out_w)
        padded = (height + 2 * self.padding[0]) * (width + 2 * self.padding[1]) * channels
        # the weights twice (as stored, as columns), the padded input, the rows, the output
        memory = 4 * (2 * n_out * taps + n_out + padded + positions * (taps + n_out))
        return Cost(float_macs=positions * taps * n_out, memory_c=memory, memory_numpy=memory)

    def bound(self, magnitude):
        rows = np.abs(self.weight.astype(np.float64)).reshape(len(self.weight), -1).sum(axis=1)
        return float((rows * magnitude + np.abs(self.bias)).max())

    def runner(self):
        padded = np.zeros((1,) + self._padded_shape(), np.float32)
        rows = np.empty((self._out[0] * self._out[1], self._columns.shape[0]), np.float32)
        out = np.empty((len(rows), len(self.bias)), np.float32)
        (pad_h, pad_w), (height, width, channels) = self.padding, self._in
        inside = padded[0, pad_h:pad_h + height, pad_w:pad_w + width]

        def run(x):
            inside[...] = x.reshape(height, width, channels)
            self._gather(padded, rows)
            return self._multiply(rows, out).reshape(-1)
        return run

    def forward_batch(self, x):
        n = len(x)
        padded = np.zeros((n,) + self._padded_shape(), np.float32)
        (pad_h, pad_w), (height, width, _) = self.padding, self._in
        padded[:, pad_h:pad_h + height, pad_w:pad_w + width] = x.reshape((n,) + self._in)
        rows = np.empty((n * self._out[0] * self._out[1], self._columns.shape[0]), np.float32)
        self._gather(padded, rows)
        out = np.empty((len(rows), len(self.bias)), np.float32)
        return self._multiply(rows, out).reshape(n, -1)

    def _padded_shape(self):
        (pad_h, pad_w), (height, width, channels) = self.padding, self._in
        return height + 2 * pad_h, width + 2 * pad_w, channels

    def _gather(self, padded, rows):
        """Each output position's window of ``padded`` (n, Hp, Wp, C) as one row of ``rows``,
        in the weights' (kernel_h, kernel_w, C) order."""
        _, kernel_h, kernel_w, channels = self.weight.shape
        windows = sliding_window_view(padded, (kernel_h, kernel_w), axis=(1, 2))
        windows = windows[:, ::self.stride[0], ::self.stride[1]]        # (n, Ho, Wo, C, kh, kw)
        np.copyto(rows.reshape(windows.shape[:3] + (kernel_h, kernel_w, channels)),
                  windows.transpose(0, 1, 2, 4, 5, 3))

    def _multiply(self, rows, out):
        np.dot(rows, self._columns, out=out)
        out += self.bias
        if self.activation == "relu":
            np.maximum(out, 0.0, out=out)
        return out
