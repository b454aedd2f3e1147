"""Sign: float values -> packed signs (sign(0) = +1), the door into binary layers."""
from .base import KernelLayer, Signal, bits_output


class Sign(KernelLayer):
    kind = "sign"

    def bind(self, source, kernels):
        self.expect(source, "float")
        self.plan = kernels.PackSigns(source.size)
        self.output = bits_output(source.size)
        return Signal("bits", (source.size,))
