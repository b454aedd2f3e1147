"""Batch norm kept in float, folded to ``y = x * scale + shift`` per feature.

Used before the final scores, which must stay real numbers for softmax and
entropy; a batch norm before a sign is folded into the binary layer's
threshold instead (edgebnn.fold).
"""
import numpy as np

from ..limits import Cost
from .base import KernelLayer, Signal, check_shape, checked_array


class BatchNorm(KernelLayer):
    kind = "batch_norm"
    ARRAYS = {"scale": "float32", "shift": "float32"}

    def __init__(self, scale, shift):
        self.scale = checked_array(scale, np.float32, "scale", ndim=1)
        self.shift = checked_array(shift, np.float32, "shift", ndim=1)
        check_shape(self.shift, self.scale.shape, "shift")

    def bind(self, source, kernels):
        self.expect(source, "float", self.scale.size)
        # in the kernel: after binary layers it joins their C call
        self.plan = kernels.ScaleShift(self.scale, self.shift)
        self.output = np.float32, self.scale.size
        return Signal("float", self.scale.shape)

    def cost(self, source):
        return self.shape_cost(self.scale.size)

    @staticmethod
    def shape_cost(n):
        return Cost(float_macs=n, memory_c=12 * n, memory_numpy=12 * n)

    def bound(self, magnitude):
        return float((np.abs(self.scale.astype(np.float64)) * magnitude + np.abs(self.shift)).max())
