"""The C kernel (csrc/, built by cffi at install time) behind the same plans as the twin.

A plan turns a layer's constant arrays into C pointers once. ``runner(work,
out)`` then binds one thread's buffers and returns the per-sample call
``run(x) -> out`` (one ``bnn_step`` for ``bnn_run``), which only has to
convert its input: an input it saw last time (a previous layer's buffer)
keeps its pointer. ``fuse`` joins the steps of consecutive kernel layers
into one C call. Every array is checked (dtype, contiguity, size) before its
pointer is made.
"""
from itertools import groupby

import numpy as np

from ..errors import NON_FINITE, InputError
from ._bnn import ffi, lib

name = "c"
popcount_path = ffi.string(lib.bnn_popcount_path()).decode()

_C_TYPES = {np.dtype(np.uint8): "uint8_t[]", np.dtype(np.int32): "int32_t[]",
            np.dtype(np.float32): "float[]"}


def _pointer(array, dtype, size, what):
    """A C pointer to ``array``, after checking it can hold ``size`` items of ``dtype``."""
    if (not isinstance(array, np.ndarray) or array.dtype != dtype
            or not array.flags.c_contiguous or array.size < size):
        raise ValueError(f"{what}: expected a C-contiguous {np.dtype(dtype)} array of at "
                         f"least {size} items, got {getattr(array, 'dtype', type(array))} "
                         f"{getattr(array, 'shape', '')}")
    return ffi.from_buffer(_C_TYPES[array.dtype], array)


def _input(dtype, size, what="input"):
    """``pointer_of(x)``: the pointer of the last array seen, else check and convert.

    The last ``(array, pointer)`` pair is replaced in one assignment, so a
    ``pointer_of`` shared by threads never pairs one array with another's
    pointer.
    """
    last = [(None, None)]
    dtype = np.dtype(dtype)
    c_type = _C_TYPES[dtype]

    def pointer_of(x):
        seen, pointer = last[0]
        if x is not seen:
            if type(x) is np.ndarray and x.dtype is dtype and x.size >= size:
                pointer = ffi.from_buffer(c_type, x)    # refuses a non-contiguous array
            else:
                pointer = _pointer(x, dtype, size, what)
            last[0] = (x, pointer)
        return pointer
    return pointer_of


def summarize(logits):
    """``exits.summarize`` in C: ``(label, confidence, normalized_entropy)`` of float32 logits.

    The same formulas in double; the label is always the same, confidence and
    entropy may differ from Python's in the last bits (summation order). The
    pointer of the last array seen is kept: a model's output buffer, summarized
    sample after sample, is converted once.
    """
    if logits.ndim != 1:
        raise ValueError(f"logits: expected one vector of scores, got shape {logits.shape}")
    s = lib.bnn_summarize(_logits_pointer(logits), logits.size)
    return s.label, s.confidence, s.entropy


_logits_pointer = _input(np.float32, 2, "logits")      # shared by every thread


def _step(fields, source, out):
    """``run(x) -> out`` for one kernel step; ``fuse`` joins neighbouring ones.

    ``fields`` are the step's ``bnn_step`` fields but its input, which
    ``source(x)`` checks and converts per call.
    """
    run = _call([fields], source, out)
    run.step = (fields, source, out)
    return run


def fuse(runs):
    """``runs`` with every stretch of consecutive kernel steps joined into one C call.

    Python's fixed cost per call (argument conversion, the call itself) is
    paid once per stretch instead of once per layer.
    """
    fused = []
    for is_step, group in groupby(runs, key=lambda run: hasattr(run, "step")):
        group = list(group)
        fused += [_chain(group)] if is_step and len(group) > 1 else group
    return fused


def _chain(runs):
    fields = [dict(run.step[0]) for run in runs]
    for k in range(1, len(runs)):
        # each step reads the buffer its predecessor writes, checked as any input
        fields[k]["in"] = runs[k].step[1](runs[k - 1].step[2])
    return _call(fields, runs[0].step[1], runs[-1].step[2])


def _call(fields, source, out):
    """The per-sample call of the ``bnn_step``s ``fields``: one ``bnn_run``."""
    steps = ffi.new("bnn_step[]", fields)
    n_steps, call = len(fields), lib.bnn_run

    def run(x):
        if call(steps, n_steps, source(x)):     # a sign step met NaN or infinity
            raise InputError(NON_FINITE)
        return out
    run.keep = fields                           # the owners of the pointers in steps
    return run


class _Plan:
    """Constant pointers of a layer: weights and, for sign outputs, thresholds."""

    def __init__(self, weight, threshold, flip, n_out):
        self._keep = (weight, threshold, flip)          # the pointers' owners
        self.n_out = n_out
        self.weight = _pointer(weight, np.uint8, weight.size, "weight")
        if threshold is None:
            self.threshold = self.flip = ffi.NULL
        else:
            self.threshold = _pointer(threshold, np.int32, n_out, "threshold")
            self.flip = _pointer(flip, np.uint8, n_out, "flip")

    def fields(self, op, out):
        """The ``bnn_step`` fields every layer has; ``out`` gets bits, or dots without thresholds."""
        if self.threshold == ffi.NULL:
            out = _pointer(out, np.float32, self.n_out, "out")
        else:
            out = _pointer(out, np.uint8, -(-self.n_out // 8), "out")
        return {"op": op, "n_out": self.n_out, "weight": self.weight,
                "threshold": self.threshold, "flip": self.flip, "out": out}


class DenseBits(_Plan):
    def __init__(self, weight, n_bits, threshold=None, flip=None):
        super().__init__(weight, threshold, flip, weight.shape[0])
        self.row_bytes = weight.shape[1]
        self.n_bits = n_bits

    def runner(self, work, out):
        fields = self.fields(lib.BNN_DENSE_BITS, out)
        fields.update(n_in=self.n_bits, row_bytes=self.row_bytes)
        return _step(fields, _input(np.uint8, self.row_bytes), out)


class DensePlanes(_Plan):
    def __init__(self, weight, n_values, threshold=None, flip=None):
        super().__init__(weight, threshold, flip, weight.shape[0])
        self.row_bytes = weight.shape[1]
        self.n_values = n_values

    def runner(self, work, out):
        fields = self.fields(lib.BNN_DENSE_PLANES, out)
        fields.update(n_in=self.n_values, row_bytes=self.row_bytes,
                      work=_pointer(work, np.uint8, 8 * self.row_bytes, "planes"))
        return _step(fields, _input(np.uint8, self.n_values), out)


class ConvPool(_Plan):
    def __init__(self, shape, weight, threshold, flip):
        super().__init__(weight, threshold, flip, shape.out_channels)
        self.shape = shape
        self.c_shape = ffi.new("bnn_conv_shape *", shape._asdict())

    def runner(self, work, out):
        s = self.shape
        fields = self.fields(lib.BNN_CONV_POOL, out)
        fields.update(conv=self.c_shape, out=_pointer(out, np.uint8, s.out_bytes, "out"))
        return _step(fields, _input(np.uint8, s.in_bytes), out)


class PackSigns:
    def __init__(self, n):
        self.n = n

    def runner(self, work, out):
        fields = {"op": lib.BNN_PACK_SIGNS, "n_in": self.n,
                  "out": _pointer(out, np.uint8, -(-self.n // 8), "out")}
        return _step(fields, _input(np.float32, self.n), out)


class ScaleShift:
    """Float ``x * scale + shift`` (a batch norm before the scores), in the chain."""

    def __init__(self, scale, shift):
        self.n = scale.size
        self._keep = (scale, shift)
        self.scale = _pointer(scale, np.float32, self.n, "scale")
        self.shift = _pointer(shift, np.float32, self.n, "shift")

    def runner(self, work, out):
        fields = {"op": lib.BNN_SCALE_SHIFT, "n_out": self.n, "scale": self.scale,
                  "shift": self.shift, "out": _pointer(out, np.float32, self.n, "out")}
        return _step(fields, _input(np.float32, self.n), out)
