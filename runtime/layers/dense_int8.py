"""Dense layer with int8 weights: ``y = act(scale * (W_q @ q(x)) + b)`` in the kernel.

The weights are int8 in [-127, 127] with a float scale per output
(symmetric), 4x smaller than float32; each sample's input is quantized to
int8 by its own largest magnitude when it arrives (dynamic range, as
LiteRT's dynamic-range quantization does), the products summed in int32 and
scaled back once per output (csrc/bnn.h, bnn_dense_int8). The converters
write it for ``--weights int8``.
"""
import numpy as np

from ..errors import ModelFormatError
from ..kernels.contract import int8_row, int8_shape
from ..limits import Cost
from .base import KernelLayer, Signal, check_shape, checked_array
from .dense import ACTIVATIONS


class DenseInt8(KernelLayer):
    kind = "dense_int8"
    ARRAYS = {"weight": "int8", "scale": "float32", "bias": "float32"}
    ATTRS = {"activation": str}

    def __init__(self, weight, scale, bias, activation="none"):
        self.weight = checked_array(weight, np.int8, "weight", ndim=2)
        if (self.weight == -128).any():
            raise ModelFormatError("weight: -128 is outside the symmetric range [-127, 127]")
        self.scale = checked_array(scale, np.float32, "scale", ndim=1)
        self.bias = checked_array(bias, np.float32, "bias", ndim=1)
        check_shape(self.scale, self.weight.shape[:1], "scale")
        check_shape(self.bias, self.weight.shape[:1], "bias")
        if activation not in ACTIVATIONS:
            raise ModelFormatError(
                f"activation {activation!r} unknown; supported: {', '.join(ACTIVATIONS)}")
        self.activation = activation

    @classmethod
    def quantized(cls, dense):
        """A float ``Dense`` with its weights rounded to int8, per output row."""
        weight = dense.weight.astype(np.float64)
        top = np.abs(weight).max(axis=1)
        scale = np.where(top > 0, top / 127, 1.0)
        codes = np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int8)
        return cls(codes, scale.astype(np.float32), dense.bias, dense.activation)

    def bind(self, source, kernels):
        n_out, n_in = self.weight.shape
        self.expect(source, "float", n_in)
        self.plan = kernels.DenseInt8(self.weight, self.scale, self.bias,
                                      self.activation == "relu")
        self.work_bytes = int8_row(n_in)           # the quantized input
        self.output = np.float32, n_out
        return Signal("float", (n_out,))

    def cost(self, source):
        return self.shape_cost(*self.weight.shape)

    @staticmethod
    def shape_cost(n_out, n_in):
        rows, row = int8_shape(n_out, n_in)
        # the weights as stored and as the C kernel pads them; scale, bias, output; the
        # quantized input; the twin's float64 copy of the weights
        kept = n_out * n_in + rows * row + 12 * n_out + row
        return Cost(float_macs=n_in * n_out, memory_c=kept, memory_numpy=kept + 8 * n_out * n_in)

    def bound(self, magnitude):
        # |q_i| <= 127 and s = max|x| / 127 <= magnitude / 127: each product at most
        # magnitude * |w| * scale
        # summed as integers: a float64 copy would cost 16 bytes a weight while loading
        rows = np.abs(self.weight).sum(axis=1, dtype=np.int64) * self.scale.astype(np.float64)
        return float((rows * magnitude + np.abs(self.bias)).max())
