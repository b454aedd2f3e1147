"""Float 2-D pooling, channels last: the max or the mean of each window, in the kernel.

Windows ``size`` apart by ``stride`` (the size by default) over an
``(H, W, C)`` map, no padding: ``(H - size_h) // stride_h + 1`` positions
down (a partial last window is dropped, as both Keras's 'valid' and
PyTorch's floor mode do), likewise across. A float convolution's pooling
(the binary convolution fuses its own max pool).
"""
import numpy as np

from ..errors import ModelFormatError
from ..kernels.geometry import ConvShape, conv_size
from ..limits import Cost
from .base import KernelLayer, Signal, int_pair, map_shape

MODES = ("max", "average")


class Pool2d(KernelLayer):
    kind = "pool2d"
    ATTRS = {"mode": str, "size": tuple, "stride": tuple}

    def __init__(self, mode="max", size=(2, 2), stride=None):
        if mode not in MODES:
            raise ModelFormatError(f"pool mode {mode!r} unknown; supported: {', '.join(MODES)}")
        self.mode = mode
        self.size = int_pair(size, "size", 1)
        self.stride = int_pair(self.size if stride is None else stride, "stride", 1)

    def geometry(self, source):
        """``((H, W, C), (Ho, Wo))`` on ``source``: its map and the pooled positions."""
        height, width, channels = map_shape(source, self.kind)
        return ((height, width, channels),
                (conv_size(height, self.size[0], self.stride[0], 0),
                 conv_size(width, self.size[1], self.stride[1], 0)))

    def bind(self, source, kernels):
        (height, width, channels), (out_h, out_w) = self.geometry(source)
        if min(out_h, out_w) < 1:
            raise ModelFormatError(f"pool window {self.size[0]}x{self.size[1]} larger than its "
                                   f"input {height}x{width}")
        shape = ConvShape(height, width, channels, 0, channels, *self.size, *self.stride,
                          0, 0, 1, 1)
        self.plan = kernels.PoolFloat(shape, self.mode == "average")
        self.output = np.float32, out_h * out_w * channels
        return Signal("float", (out_h, out_w, channels))

    def cost(self, source):
        if source.kind != "float" or len(source.shape) not in (2, 3):
            return Cost()                       # refused by bind
        (_, _, channels), (out_h, out_w) = self.geometry(source)
        outputs = max(0, out_h) * max(0, out_w) * channels
        return Cost(float_macs=outputs * self.size[0] * self.size[1], memory_c=4 * outputs,
                    memory_numpy=4 * outputs)

    def bound(self, magnitude):
        return magnitude                        # a max or a mean of values within it
