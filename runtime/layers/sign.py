"""Sign: float values -> packed signs (sign(0) = +1), the door into binary layers."""
from ..bitpack import sign_bytes, word_padded
from ..limits import Cost
from .base import KernelLayer, Signal, bits_output


class Sign(KernelLayer):
    kind = "sign"

    def bind(self, source, kernels):
        self.expect(source, "float")
        self.plan = kernels.PackSigns(source.size)
        self.output = bits_output(source.size)
        return Signal("bits", (source.size,))

    def cost(self, source):
        return self.shape_cost(source.size)

    @staticmethod
    def shape_cost(n):
        return Cost(memory_c=word_padded(sign_bytes(n)), memory_numpy=2 * n)   # bits; bools

    def bound(self, magnitude):
        return None
