"""The C kernel (csrc/, built by cffi at install time) behind the plans of ``contract.Backend``.

A plan turns a layer's constant arrays into C pointers once, at model load.
``chain(links)`` then turns the plans and one thread's buffers into one
``bnn_run`` call over a ``bnn_step`` per link; per sample it only converts
its input (an input it saw last time, a previous layer's buffer, keeps its
pointer). Every array is checked (dtype, contiguity, size) before its
pointer is made.
"""
from typing import NamedTuple

import numpy as np

from ..bitpack import sign_bytes
from ..errors import NON_FINITE, InputError
from ._bnn import ffi, lib
from .contract import Link

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


class _Reads(NamedTuple):
    """What a step reads per sample: ``size`` items of ``dtype``."""
    dtype: np.dtype
    size: int
    what: str = "input"

    def pointer(self, x):
        return _pointer(x, self.dtype, self.size, self.what)

    def last_pointer(self):
        """``pointer_of(x)``: the pointer of the last array seen, else check and convert.

        The last ``(array, pointer)`` pair is replaced in one assignment, so a
        ``pointer_of`` shared by threads never pairs one array with another's
        pointer.
        """
        last = [(None, None)]
        dtype, c_type = np.dtype(self.dtype), _C_TYPES[np.dtype(self.dtype)]

        def pointer_of(x):
            seen, pointer = last[0]
            if x is not seen:
                if type(x) is np.ndarray and x.dtype is dtype and x.size >= self.size:
                    pointer = ffi.from_buffer(c_type, x)    # refuses a non-contiguous array
                else:
                    pointer = self.pointer(x)
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


_logits_pointer = _Reads(np.float32, 2, "logits").last_pointer()      # shared by every thread


def chain(links):
    """``run(x) -> out`` of the last link: the links' ``bnn_step``s in one ``bnn_run``.

    Python's fixed cost per call (argument conversion, the call itself) is
    paid once per chain instead of once per layer.
    """
    fields = [link.plan.fields(link.work, link.out) for link in links]
    for k in range(1, len(links)):
        # each step reads the buffer its predecessor writes, checked as any input
        fields[k]["in"] = links[k].plan.reads.pointer(links[k - 1].out)
    return _Call(ffi.new("bnn_step[]", fields), links[0].plan.reads.last_pointer(),
                 links[-1].out, (fields, links))


class _Call:
    """``run(x) -> out``: one ``bnn_run`` over ``steps``, ``source(x)`` the first one's input."""
    __slots__ = ("steps", "n_steps", "source", "out", "owners")

    def __init__(self, steps, source, out, owners):
        self.steps, self.n_steps, self.source, self.out = steps, len(steps), source, out
        self.owners = owners            # the arrays behind the pointers in steps

    def __call__(self, x):
        if lib.bnn_run(self.steps, self.n_steps, self.source(x)):  # a sign step met NaN or infinity
            raise InputError(NON_FINITE)
        return self.out


class _Plan:
    """Common to every plan: ``reads`` (what one sample's input is) and ``fields``."""
    reads: _Reads

    def fields(self, work, out):
        """The ``bnn_step`` fields of this plan writing into ``out`` (all but its input)."""
        raise NotImplementedError

    def runner(self, *, work, out):
        return chain([Link(self, work, out)])


class _Layer(_Plan):
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

    def layer_fields(self, op, out, out_bytes):
        """The fields every layer has; ``out`` gets bits (``out_bytes``), or dots without thresholds."""
        if self.threshold == ffi.NULL:
            out = _pointer(out, np.float32, self.n_out, "out")
        else:
            out = _pointer(out, np.uint8, out_bytes, "out")
        return {"op": op, "n_out": self.n_out, "weight": self.weight,
                "threshold": self.threshold, "flip": self.flip, "out": out}


class DenseBits(_Layer):
    def __init__(self, weight, n_bits, threshold=None, flip=None):
        super().__init__(weight, threshold, flip, weight.shape[0])
        self.row_bytes = weight.shape[1]
        self.n_bits = n_bits
        self.reads = _Reads(np.uint8, self.row_bytes)

    def fields(self, work, out):
        fields = self.layer_fields(lib.BNN_DENSE_BITS, out, sign_bytes(self.n_out))
        fields.update(n_in=self.n_bits, row_bytes=self.row_bytes)
        return fields


class DensePlanes(_Layer):
    def __init__(self, weight, n_values, threshold=None, flip=None):
        super().__init__(weight, threshold, flip, weight.shape[0])
        self.row_bytes = weight.shape[1]
        self.n_values = n_values
        self.reads = _Reads(np.uint8, n_values)

    def fields(self, work, out):
        fields = self.layer_fields(lib.BNN_DENSE_PLANES, out, sign_bytes(self.n_out))
        fields.update(n_in=self.n_values, row_bytes=self.row_bytes,
                      work=_pointer(work, np.uint8, 8 * self.row_bytes, "planes"))
        return fields


class ConvPool(_Layer):
    def __init__(self, shape, weight, threshold, flip):
        super().__init__(weight, threshold, flip, shape.out_channels)
        self.shape = shape
        self.c_shape = ffi.new("bnn_conv_shape *", shape._asdict())
        self.reads = _Reads(np.uint8, shape.in_bytes)

    def fields(self, work, out):
        fields = self.layer_fields(lib.BNN_CONV_POOL, out, self.shape.out_bytes)
        fields.update(conv=self.c_shape)
        return fields


class PackSigns(_Plan):
    def __init__(self, n):
        self.n = n
        self.reads = _Reads(np.float32, n)

    def fields(self, work, out):
        return {"op": lib.BNN_PACK_SIGNS, "n_in": self.n,
                "out": _pointer(out, np.uint8, sign_bytes(self.n), "out")}


class ScaleShift(_Plan):
    """Float ``x * scale + shift`` (a batch norm before the scores), in the chain."""

    def __init__(self, scale, shift):
        self.n = scale.size
        self._keep = (scale, shift)
        self.scale = _pointer(scale, np.float32, self.n, "scale")
        self.shift = _pointer(shift, np.float32, self.n, "shift")
        self.reads = _Reads(np.float32, self.n)

    def fields(self, work, out):
        return {"op": lib.BNN_SCALE_SHIFT, "n_out": self.n, "scale": self.scale,
                "shift": self.shift, "out": _pointer(out, np.float32, self.n, "out")}
