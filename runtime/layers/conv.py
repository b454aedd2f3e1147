"""Float 2-D convolution, channels last: ``y = act(conv(x, W) + b)`` in the kernel.

The small CNNs people train first (LeNet-sized) are float. Each output is
a float dense layer of its window (``kernel_h * kernel_w * C`` values, zeros
past the edge): the C kernel adds each nonzero input's products to the
outputs whose windows hold it (csrc/bnn.h, bnn_conv_float), the NumPy twin
gathers every window into one matrix for one BLAS product (im2col). Output ``(Ho, Wo,
out)``, flat in that order as the next layer reads it.
"""
import numpy as np

from ..errors import ModelFormatError
from ..kernels.geometry import ConvShape, conv_size
from ..limits import Cost
from .base import KernelLayer, Signal, check_shape, checked_array, int_pair, map_shape

ACTIVATIONS = ("none", "relu")


class Conv2d(KernelLayer):
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
        shape = ConvShape(height, width, channels, 0, n_out, kernel_h, kernel_w, *self.stride,
                          *self.padding, 1, 1)
        columns = np.ascontiguousarray(self.weight.reshape(n_out, -1).T)
        self.plan = kernels.ConvFloat(shape, columns, self.bias, self.activation == "relu")
        self.output = np.float32, out_h * out_w * n_out
        return Signal("float", (out_h, out_w, n_out))

    def cost(self, source):
        if source.kind != "float" or len(source.shape) not in (2, 3):
            return Cost()                       # refused by bind
        (height, width, channels), (out_h, out_w) = self.geometry(source)
        n_out, kernel_h, kernel_w, _ = self.weight.shape
        taps, positions = kernel_h * kernel_w * channels, max(0, out_h) * max(0, out_w)
        padded = (height + 2 * self.padding[0]) * (width + 2 * self.padding[1]) * channels
        # the weights twice (as stored, as columns), bias and output; the twin also the
        # padded input and a row per position
        kept = 4 * (2 * n_out * taps + n_out + positions * n_out)
        return Cost(float_macs=positions * taps * n_out, memory_c=kept,
                    memory_numpy=kept + 4 * (padded + positions * taps))

    def bound(self, magnitude):
        rows = np.abs(self.weight.astype(np.float64)).reshape(len(self.weight), -1).sum(axis=1)
        return float((rows * magnitude + np.abs(self.bias)).max())
