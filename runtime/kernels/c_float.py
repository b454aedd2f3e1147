"""The C kernel's plans of float layers: dense (float and int8 weights), convolution,
pooling, the input's preprocessing and a final scale-shift.

Part of the C backend (``c_library`` exports them): each turns a layer's
constant arrays into checked pointers once and gives its ``bnn_step`` fields.
"""
import numpy as np

from ._bnn import ffi, lib
from .c_library import PlanBase, SampleBuffer, checked_pointer
from .contract import int8_shape


class DenseInt8(PlanBase):
    """int8 weights on float values, padded as ``int8_shape`` says."""

    def __init__(self, weight, scale, bias, relu):
        n_out, self.n_in = weight.shape
        rows, self.row = int8_shape(n_out, self.n_in)
        self.n_out, self.relu = n_out, int(relu)
        padded = np.zeros((rows, self.row), np.int8)
        padded[:n_out, :self.n_in] = weight
        self._keep = (padded, scale, bias)
        self.weight = checked_pointer(padded.view(np.uint8), np.uint8, padded.size, "weight")
        self.scale = checked_pointer(scale, np.float32, n_out, "scale")
        self.bias = checked_pointer(bias, np.float32, n_out, "bias")
        self.reads = SampleBuffer(np.float32, self.n_in, "input")
        self.writes = SampleBuffer(np.float32, n_out, "out")

    def fields(self, work):
        return {"op": lib.BNN_DENSE_INT8, "n_in": self.n_in, "n_out": self.n_out,
                "row_bytes": self.row, "weight": self.weight, "scale": self.scale,
                "shift": self.bias, "relu": self.relu,
                "work": checked_pointer(work, np.uint8, self.row, "quantized input")}


class DenseFloat(PlanBase):
    """Float weights, kept as the layer holds them: transposed, one row an input."""

    def __init__(self, weight_t, bias, relu):
        self.n_in, self.n_out = weight_t.shape
        self.relu = int(relu)
        self._keep = (weight_t, bias)
        self.weight = checked_pointer(weight_t.reshape(-1).view(np.uint8), np.uint8, 4 * weight_t.size,
                               "weight")
        self.bias = checked_pointer(bias, np.float32, self.n_out, "bias")
        self.reads = SampleBuffer(np.float32, self.n_in, "input")
        self.writes = SampleBuffer(np.float32, self.n_out, "out")

    def fields(self, work):
        return {"op": lib.BNN_DENSE_FLOAT, "n_in": self.n_in, "n_out": self.n_out,
                "weight": self.weight, "shift": self.bias, "relu": self.relu,
                "work": checked_pointer(work, np.uint8, 8 * self.n_in, "nonzero inputs")}


class ConvFloat(PlanBase):
    """Float convolution on a ``ConvShape`` (pool 1x1), its weights as (taps, out) columns,
    kept with the kernel's columns flipped (bnn.h: the updates along a window row)."""

    def __init__(self, shape, columns, bias, relu):
        self.c_shape = ffi.new("bnn_conv_shape *", shape._asdict())
        self.relu = int(relu)
        flipped = np.ascontiguousarray(columns.reshape(
            shape.kernel_h, shape.kernel_w, shape.channels, -1)[:, ::-1]).reshape(-1)
        self._keep = (flipped, bias)
        self.weight = checked_pointer(flipped.view(np.uint8), np.uint8, 4 * flipped.size, "columns")
        self.bias = checked_pointer(bias, np.float32, shape.out_channels, "bias")
        self.reads = SampleBuffer(np.float32, shape.height * shape.width * shape.channels, "input")
        self.writes = SampleBuffer(np.float32, shape.conv_h * shape.conv_w * shape.out_channels, "out")

    def fields(self, work):
        return {"op": lib.BNN_CONV_FLOAT, "conv": self.c_shape, "weight": self.weight,
                "shift": self.bias, "relu": self.relu}


class PoolFloat(PlanBase):
    """Float max or average pooling: windows ``kernel`` in size, ``stride`` apart."""

    def __init__(self, shape, average):
        self.c_shape = ffi.new("bnn_conv_shape *", shape._asdict())
        self.op = lib.BNN_AVERAGE_POOL if average else lib.BNN_MAX_POOL
        self.reads = SampleBuffer(np.float32, shape.height * shape.width * shape.channels, "input")
        self.writes = SampleBuffer(np.float32, shape.conv_h * shape.conv_w * shape.channels, "out")

    def fields(self, work):
        return {"op": self.op, "conv": self.c_shape}


class Preprocess(PlanBase):
    """The input's ``x * scale + offset`` into float32, uint8 or float32 values in."""

    def __init__(self, n, dtype, scale, offset):
        self.n, dtype = n, np.dtype(dtype)
        self._keep = (np.array([scale], np.float32), np.array([offset], np.float32))
        self.scale = checked_pointer(self._keep[0], np.float32, 1, "scale")
        self.shift = checked_pointer(self._keep[1], np.float32, 1, "offset")
        self.value_bytes = dtype.itemsize
        self.reads = SampleBuffer(dtype, n, "input")
        self.writes = SampleBuffer(np.float32, n, "out")

    def fields(self, work):
        return {"op": lib.BNN_PREPROCESS, "n_in": self.n, "row_bytes": self.value_bytes,
                "scale": self.scale, "shift": self.shift}


class ScaleShift(PlanBase):
    """Float ``x * scale + shift`` (a batch norm before the scores), in the chain."""

    def __init__(self, scale, shift):
        self.n = scale.size
        self._keep = (scale, shift)
        self.scale = checked_pointer(scale, np.float32, self.n, "scale")
        self.shift = checked_pointer(shift, np.float32, self.n, "shift")
        self.reads = SampleBuffer(np.float32, self.n, "input")
        self.writes = SampleBuffer(np.float32, self.n, "out")

    def fields(self, work):
        return {"op": lib.BNN_SCALE_SHIFT, "n_out": self.n, "scale": self.scale,
                "shift": self.shift}
