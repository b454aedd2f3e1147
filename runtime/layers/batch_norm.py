"""Batch norm kept in float, folded to ``y = x * scale + shift`` per feature.

Used before the final scores, which must stay real numbers for softmax and
entropy; a batch norm before a sign is folded into the binary layer's
threshold instead (edgebnn.fold).
"""
import numpy as np

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
