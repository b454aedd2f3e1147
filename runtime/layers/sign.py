"""Sign: float values -> packed signs (sign(0) = +1), the door into binary layers."""
import numpy as np

from ..bitpack import word_padded
from .base import Layer, Signal


class Sign(Layer):
    kind = "sign"

    def bind(self, source, kernels):
        self.expect(source, "float")
        self._n = source.size
        self._pack = kernels.pack_signs
        return Signal("bits", (self._n,))

    def buffers(self):
        return np.zeros(word_padded(-(-self._n // 8)), np.uint8)

    def forward(self, x, out):
        self._pack(x, out)
        return out
