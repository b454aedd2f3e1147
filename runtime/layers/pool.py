"""Float 2-D pooling, channels last: the max or the mean of each window, in NumPy.

Windows ``size`` apart by ``stride`` (the size by default) over an
``(H, W, C)`` map, no padding: ``(H - size_h) // stride_h + 1`` positions
down (a partial last window is dropped, as both Keras's 'valid' and
PyTorch's floor mode do), likewise across. A float convolution's pooling
(the binary convolution fuses its own max pool).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ModelFormatError
from ..kernels.geometry import conv_size
from ..limits import Cost
from .base import Layer, Signal, int_pair, map_shape

MODES = ("max", "average")


class Pool2d(Layer):
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
        self._in = (height, width, channels)
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

    def runner(self):
        def run(x):
            return self.forward_batch(x[None]).reshape(-1)
        return run

    def forward_batch(self, x):
        windows = sliding_window_view(x.reshape((len(x),) + self._in), self.size, axis=(1, 2))
        windows = windows[:, ::self.stride[0], ::self.stride[1]]     # (n, Ho, Wo, C, sh, sw)
        pooled = windows.max(axis=(4, 5)) if self.mode == "max" else \
            windows.mean(axis=(4, 5), dtype=np.float32)
        return pooled.reshape(len(x), -1)
