"""Binary 2-D convolution fused with max pooling, batch norm and sign (eBNN style).

For each pooled output the kernel takes the max of the convolution's integer
dot products over the pool window, then the folded threshold, so one integer
temporary exists per output and only packed signs are stored. Input: packed
signs ``(H, W, C)``, or, as the first layer, the raw uint8 input ``(H, W)``
or ``(H, W, C)``, whose dot products with the signs are exact integer sums.
Zero padding contributes 0.
"""
import numpy as np

from ..bitpack import sign_bytes, word_padded
from ..errors import ModelFormatError
from ..kernels.geometry import ConvShape
from ..limits import Cost
from .base import KernelLayer, Signal, check_shape, checked_array, int_pair
from .binary_dense import check_padding_bits, check_threshold


class BinaryConv2d(KernelLayer):
    kind = "binary_conv2d"
    ARRAYS = {"weight": "uint8", "threshold": "int32", "flip": "uint8"}
    ATTRS = {"stride": tuple, "padding": tuple, "pool": tuple}
    TAKES_RAW_INPUT = True

    def __init__(self, weight, threshold, flip, stride=(1, 1), padding=(0, 0), pool=(1, 1)):
        self.weight = checked_array(weight, np.uint8, "weight", ndim=4)
        self.threshold, self.flip = check_threshold(threshold, flip, self.weight.shape[0])
        if self.threshold is None:
            raise ModelFormatError("binary_conv2d needs threshold and flip")
        self.stride, self.padding, self.pool = (
            int_pair(value, name, minimum)
            for value, name, minimum in ((stride, "stride", 1), (padding, "padding", 0),
                                         (pool, "pool", 1)))

    def geometry(self, source):
        """The ``ConvShape`` of this layer on ``source`` (sizes unchecked)."""
        height, width = source.shape[:2]
        channels = source.shape[2] if len(source.shape) == 3 else 1
        n_out, kernel_h, kernel_w, _ = self.weight.shape
        return ConvShape(height, width, channels, int(source.kind == "uint8"), n_out,
                         kernel_h, kernel_w, *self.stride, *self.padding, *self.pool)

    def cost(self, source):
        if len(source.shape) not in (2, 3):
            return Cost()                       # refused by bind
        s = self.geometry(source)
        conv_h, conv_w = max(0, s.conv_h), max(0, s.conv_w)
        positions = max(0, s.out_h) * s.pool_h * max(0, s.out_w) * s.pool_w
        taps = s.kernel_h * s.kernel_w * s.channels
        kept = self.weight.nbytes + 5 * s.out_channels
        out = word_padded(max(0, s.out_h) * max(0, s.out_w) * sign_bytes(s.out_channels))
        # the twin: int32 signs and input, the zero-padded input, int64 dots and a product
        padded = (s.height + 2 * s.pad_h) * (s.width + 2 * s.pad_w) * s.channels
        twin = 4 * (s.out_channels * taps + s.height * s.width * s.channels + padded
                    + conv_h * conv_w * s.channels) + 16 * conv_h * conv_w * s.out_channels
        return Cost(binary_ops=positions * s.out_channels * taps * (8 if s.uint8_input else 1),
                    memory_c=kept + out, memory_numpy=kept + out + twin)

    def bound(self, magnitude):
        return None

    def bind(self, source, kernels):
        if source.kind not in ("bits", "uint8") or len(source.shape) not in (2, 3):
            raise ModelFormatError(
                f"binary_conv2d takes packed signs (H, W, C) or the raw uint8 image, "
                f"not {source.describe()}")
        shape = self.geometry(source)
        height, width, channels = shape.height, shape.width, shape.channels
        n_out, kernel_h, kernel_w = shape.out_channels, shape.kernel_h, shape.kernel_w
        check_shape(self.weight, (n_out, kernel_h, kernel_w, sign_bytes(channels)), "weight")
        check_padding_bits(self.weight, (kernel_h * kernel_w, channels))
        if kernel_h > height + 2 * shape.pad_h or kernel_w > width + 2 * shape.pad_w:
            raise ModelFormatError(
                f"kernel {kernel_h}x{kernel_w} larger than the padded input "
                f"{height + 2 * shape.pad_h}x{width + 2 * shape.pad_w}")
        if shape.out_h < 1 or shape.out_w < 1:
            raise ModelFormatError(
                f"pool {shape.pool_h}x{shape.pool_w} larger than the convolution's "
                f"output {shape.conv_h}x{shape.conv_w}")
        self.plan = kernels.ConvPool(shape, self.weight, self.threshold, self.flip)
        self.output = np.uint8, word_padded(shape.out_bytes)
        return Signal("bits", (shape.out_h, shape.out_w, n_out))
