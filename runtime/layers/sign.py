"""Sign: float values -> packed signs (sign(0) = +1), the door into binary layers."""
import numpy as np

from ..bitpack import word_padded
from ..limits import Cost
from .base import Layer, Signal


class Sign(Layer):
    kind = "sign"

    def bind(self, source, kernels):
        self.expect(source, "float")
        self._n = source.size
        self._plan = kernels.PackSigns(self._n)
        return Signal("bits", (self._n,))

    def cost(self, source):
        n = source.size
        return Cost(memory_c=word_padded(-(-n // 8)), memory_numpy=2 * n)   # bits; bools

    def bound(self, magnitude):
        return None

    def runner(self):
        return self._plan.runner(None, np.zeros(word_padded(-(-self._n // 8)), np.uint8))
