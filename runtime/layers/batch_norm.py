"""Batch norm kept in float, folded to ``y = x * scale + shift`` per feature.

Used before the final scores, which must stay real numbers for softmax and
entropy; a batch norm before a sign is folded into the binary layer's
threshold instead (runtime.fold).
"""
import numpy as np

from .base import Layer, Signal, check_shape, checked_array


class BatchNorm(Layer):
    kind = "batch_norm"
    ARRAYS = {"scale": "float32", "shift": "float32"}

    def __init__(self, scale, shift):
        self.scale = checked_array(scale, np.float32, "scale", ndim=1)
        self.shift = checked_array(shift, np.float32, "shift", ndim=1)
        check_shape(self.shift, self.scale.shape, "shift")

    def bind(self, source, kernels):
        self.expect(source, "float", self.scale.size)
        return Signal("float", self.scale.shape)

    def runner(self):
        out = np.empty(self.scale.shape, np.float32)
        scale, shift, multiply, add = self.scale, self.shift, np.multiply, np.add

        def run(x):
            multiply(x, scale, out=out)
            return add(out, shift, out=out)
        return run

    def forward_batch(self, x):
        return x * self.scale + self.shift
