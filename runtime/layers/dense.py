"""Float fully connected layer: ``y = act(W @ x + b)`` in NumPy.

The file stores weights ``(out, in)``; in memory they are kept transposed,
``(in, out)`` row-major: ``x @ W_t`` measured at least as fast as ``W @ x``
for one sample, and faster on large nets.
"""
import numpy as np

from ..errors import ModelFormatError
from ..limits import Cost
from .base import Layer, Signal, check_shape, checked_array

ACTIVATIONS = ("none", "relu", "softmax")


class Dense(Layer):
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
        self.expect(source, "float", self.weight_t.shape[0])
        return Signal("float", self.bias.shape)

    def cost(self, source):
        return self.shape_cost(*self.weight_t.shape)

    @staticmethod
    def shape_cost(n_in, n_out):
        memory = 4 * (n_in * n_out + 2 * n_out)        # weights, bias, output buffer
        return Cost(float_macs=n_in * n_out, memory_c=memory, memory_numpy=memory)

    def bound(self, magnitude):
        # a few rows at a time: all absolute values at once would copy the weights
        n_in, n_out = self.weight_t.shape
        step = max(1, 4096 // n_out)
        rows = np.zeros(n_out)
        for start in range(0, n_in, step):
            rows += np.abs(self.weight_t[start:start + step]).sum(axis=0, dtype=np.float64)
        return float((rows * magnitude + np.abs(self.bias)).max())

    def runner(self):
        out = np.empty(self.bias.shape, np.float32)
        weight_t, bias, dot, add, maximum = self.weight_t, self.bias, np.dot, np.add, np.maximum

        def run(x):
            dot(x, weight_t, out=out)
            add(out, bias, out=out)
            return out

        def run_relu(x):
            dot(x, weight_t, out=out)
            add(out, bias, out=out)
            return maximum(out, 0.0, out=out)
        return run_relu if self._relu else run

    def forward_batch(self, x):
        y = x @ self.weight_t
        y += self.bias
        if self._relu:
            np.maximum(y, 0.0, out=y)
        return y
