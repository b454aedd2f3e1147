"""Float fully connected layer: ``y = act(W @ x + b)`` in the kernel.

The file stores weights ``(out, in)``; in memory they are kept transposed,
``(in, out)`` row-major, one row an input: the C kernel adds the rows of the
nonzero inputs only (after a ReLU, or on a digit's blank background, most are
zero), and one call runs the chain of layers (csrc/bnn.h, bnn_dense_float).
"""
import numpy as np

from ..errors import ModelFormatError
from ..limits import Cost
from .base import KernelLayer, Signal, check_shape, checked_array

ACTIVATIONS = ("none", "relu", "softmax")


class Dense(KernelLayer):
    kind = "dense"
    ARRAYS = {"weight": "float32", "bias": "float32"}
    ATTRS = {"activation": str}

    def __init__(self, weight, bias, activation="none"):
        weight = checked_array(weight, np.float32, "weight", ndim=2)
        self.weight_t = np.ascontiguousarray(weight.T)
        self.bias = checked_array(bias, np.float32, "bias", ndim=1)
        check_shape(self.bias, weight.shape[:1], "bias")
        if activation not in ACTIVATIONS:
            raise ModelFormatError(
                f"activation {activation!r} unknown; supported: {', '.join(ACTIVATIONS)}")
        self.activation = activation
        self._relu = activation == "relu"

    @property
    def weight(self):
        return self.weight_t.T

    def bind(self, source, kernels):
        n_in, n_out = self.weight_t.shape
        self.expect(source, "float", n_in)
        self.plan = kernels.DenseFloat(self.weight_t, self.bias, self._relu)
        self.work_bytes = 8 * n_in               # the nonzero inputs and their places
        self.output = np.float32, n_out
        return Signal("float", (n_out,))

    def cost(self, source):
        return self.shape_cost(*self.weight_t.shape)

    @staticmethod
    def shape_cost(n_in, n_out):
        memory = 4 * (n_in * n_out + 2 * n_out + 2 * n_in)   # weights, bias, output, work
        return Cost(float_macs=n_in * n_out, memory_c=memory, memory_numpy=memory)

    def bound(self, magnitude):
        # a few rows at a time: all absolute values at once would copy the weights
        n_in, n_out = self.weight_t.shape
        step = max(1, 4096 // n_out)
        rows = np.zeros(n_out)
        for start in range(0, n_in, step):
            rows += np.abs(self.weight_t[start:start + step]).sum(axis=0, dtype=np.float64)
        return float((rows * magnitude + np.abs(self.bias)).max())
