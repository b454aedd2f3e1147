"""The C kernel (csrc/, built by cffi at install time) behind the plans of ``contract.Backend``.

A plan turns a layer's constant arrays into C pointers once, at model load.
``chain(links)`` then turns the plans and one thread's buffers into one
``bnn_run`` call over a ``bnn_step`` per link; per sample it only converts
its input (an input it saw last time, a previous layer's buffer, keeps its
pointer); links whose buffers hold a batch make one call for the batch.
Every array is checked (dtype, contiguity, size) before its pointer is made.
The plans of binary layers are here, those of float layers in ``c_float``.
"""
from typing import NamedTuple

import numpy as np

from ..bitpack import sign_bytes
from ..errors import NON_FINITE, InputError
from ._bnn import ffi, lib
from . import Link

name = "c"
# the popcount the kernels use (the fastest this CPU supports), and all it supports
popcount_path = ffi.string(lib.bnn_popcount_path()).decode()
popcount_paths = tuple(ffi.string(lib.bnn_popcount_paths()).decode().split())
_C_TYPES = {np.dtype(np.uint8): "uint8_t[]", np.dtype(np.int8): "int8_t[]",
            np.dtype(np.int32): "int32_t[]", np.dtype(np.float32): "float[]"}


def use_popcount_path(path):
    """Run every kernel call on ``path`` (one of ``popcount_paths``) from now on, in the
    whole process: for tests and benchmarks that compare paths. Returns the path used
    until now."""
    before = ffi.string(lib.bnn_popcount_path()).decode()
    if path not in popcount_paths or not lib.bnn_use_popcount_path(path.encode()):
        raise ValueError(f"popcount path {path!r} unknown here; this build on this CPU has "
                         f"{', '.join(popcount_paths)}")
    return before


def checked_pointer(array, dtype, size, what):
    """A C pointer to ``array``, after checking it can hold ``size`` items of ``dtype``."""
    if (not isinstance(array, np.ndarray) or array.dtype != dtype
            or not array.flags.c_contiguous or array.size < size):
        raise ValueError(f"{what}: expected a C-contiguous {np.dtype(dtype)} array of at "
                         f"least {size} items, got {getattr(array, 'dtype', type(array))} "
                         f"{getattr(array, 'shape', '')}")
    return ffi.from_buffer(_C_TYPES[array.dtype], array)


class SampleBuffer(NamedTuple):
    """What a step reads or writes per sample: ``size`` items of ``dtype``."""
    dtype: np.dtype
    size: int
    what: str

    def rows(self, array, samples=None):
        """``(pointer, stride in bytes)``: one sample's buffer, or ``samples`` rows of one each."""
        if samples is None:
            return checked_pointer(array, self.dtype, self.size, self.what), 0
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[0] != samples \
                or array.shape[1] < self.size:
            raise ValueError(f"{self.what}: expected {samples} rows of at least {self.size} "
                             f"items, got shape {getattr(array, 'shape', type(array))}")
        return checked_pointer(array, self.dtype, 0, self.what), array.strides[0]

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
                    pointer = self.rows(x)[0]
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


_logits_pointer = SampleBuffer(np.float32, 2, "logits").last_pointer()      # shared by every thread


def summarize_rows(logits):
    """``summarize`` of each row of ``logits`` (samples, classes), in one C call."""
    if not isinstance(logits, np.ndarray) or logits.ndim != 2:
        raise ValueError(f"logits: expected one row of scores per sample, got "
                         f"{getattr(logits, 'shape', type(logits))}")
    rows, n = logits.shape
    labels, confidences, entropies = np.empty(rows, np.int32), np.empty(rows), np.empty(rows)
    lib.bnn_summarize_rows(checked_pointer(logits, np.float32, rows * n, "logits"), n, rows,
                           ffi.from_buffer("int32_t[]", labels),
                           ffi.from_buffer("double[]", confidences),
                           ffi.from_buffer("double[]", entropies))
    return list(zip(labels.tolist(), confidences.tolist(), entropies.tolist()))


def chain(links):
    """``run(x) -> out`` of the last link: the links' ``bnn_step``s in one ``bnn_run``.

    Python's fixed cost per call (argument conversion, the call itself) is
    paid once per chain instead of once per layer, and once per batch when
    the links' buffers hold a batch.
    """
    out = links[-1].out
    samples = len(out) if out.ndim == 2 else None
    fields = _fields(links, samples)
    steps = ffi.new("bnn_step[]", fields)
    reads = links[0].plan.reads
    if samples is None:
        source = reads.last_pointer()
    else:
        def source(x):
            pointer, steps[0].in_stride = reads.rows(x, samples)
            return pointer
    return _Call(steps, source, out, 1 if samples is None else samples, (fields, links))


def _fields(links, samples):
    """The ``bnn_step`` fields of the links: each writes its own ``out`` and reads its
    predecessor's (checked as any input); the first one's input is given per call."""
    fields = []
    for k, link in enumerate(links):
        step = link.plan.fields(link.work)
        step["out"], step["out_stride"] = link.plan.writes.rows(link.out, samples)
        if k:
            step["in"], step["in_stride"] = link.plan.reads.rows(links[k - 1].out, samples)
        fields.append(step)
    return fields


class _Call:
    """``run(x) -> out``: one ``bnn_run`` over ``steps``, ``source(x)`` the first one's input."""
    __slots__ = ("steps", "n_steps", "source", "out", "samples", "owners")

    def __init__(self, steps, source, out, samples, owners):
        self.steps, self.n_steps, self.source, self.out = steps, len(steps), source, out
        self.samples = samples
        self.owners = owners            # the arrays behind the pointers in steps

    def __call__(self, x):
        if lib.bnn_run(self.steps, self.n_steps, self.source(x), self.samples):
            raise InputError(NON_FINITE)    # a sign step met NaN or infinity
        return self.out


class PlanBase:
    """Common to every plan: what one sample reads and writes, and its ``bnn_step`` fields."""
    reads: SampleBuffer
    writes: SampleBuffer

    def fields(self, work):
        """The plan's ``bnn_step`` fields, all but its input and output."""
        raise NotImplementedError

    def runner(self, *, work, out):
        return chain([Link(self, work, out)])


class _Layer(PlanBase):
    """Constant pointers of a layer: weights and, for sign outputs, thresholds."""

    def __init__(self, op, weight, threshold, flip, n_out, out_bits):
        self._keep = (weight, threshold, flip)          # the pointers' owners
        self.op, self.n_out = op, n_out
        self.weight = checked_pointer(weight, np.uint8, weight.size, "weight")
        if threshold is None:
            self.threshold = self.flip = ffi.NULL
            self.writes = SampleBuffer(np.float32, n_out, "out")
        else:
            self.threshold = checked_pointer(threshold, np.int32, n_out, "threshold")
            self.flip = checked_pointer(flip, np.uint8, n_out, "flip")
            self.writes = SampleBuffer(np.uint8, out_bits, "out")

    def fields(self, work):
        return {"op": self.op, "n_out": self.n_out, "weight": self.weight,
                "threshold": self.threshold, "flip": self.flip}


class DenseBits(_Layer):
    def __init__(self, weight, n_bits, threshold=None, flip=None):
        n_out, self.row_bytes = weight.shape
        super().__init__(lib.BNN_DENSE_BITS, weight, threshold, flip, n_out, sign_bytes(n_out))
        self.n_bits = n_bits
        self.reads = SampleBuffer(np.uint8, self.row_bytes, "input")
        # the rows regrouped for kernels that count 8 rows at once, where the build has one
        lanes = np.empty(lib.bnn_dense_lanes_bytes(n_out, self.row_bytes), np.uint8)
        self.lanes = ffi.NULL
        if lanes.size:
            self.lanes = checked_pointer(lanes, np.uint8, lanes.size, "lanes")
            lib.bnn_dense_lanes(self.weight, n_out, self.row_bytes, self.lanes)
        self._keep += (lanes,)

    def fields(self, work):
        return dict(super().fields(work), lanes=self.lanes, n_in=self.n_bits,
                    row_bytes=self.row_bytes)


class DensePlanes(_Layer):
    def __init__(self, weight, n_values, threshold=None, flip=None):
        n_out, self.row_bytes = weight.shape
        super().__init__(lib.BNN_DENSE_PLANES, weight, threshold, flip, n_out, sign_bytes(n_out))
        self.n_values = n_values
        self.reads = SampleBuffer(np.uint8, n_values, "input")
        # the signs as int8 +-1 for the kernel that multiplies bytes, where the CPU has one:
        # 8x the packed bits, and no bit planes to take per sample
        wide = np.empty(lib.bnn_dense_wide_bytes(n_out, n_values), np.int8)
        self.wide = ffi.NULL
        if wide.size:
            self.wide = checked_pointer(wide, np.int8, wide.size, "wide")
            lib.bnn_dense_wide(self.weight, n_out, self.row_bytes, n_values, self.wide)
        self._keep += (wide,)

    def fields(self, work):
        return dict(super().fields(work), n_in=self.n_values, row_bytes=self.row_bytes,
                    work=checked_pointer(work, np.uint8, 8 * self.row_bytes, "planes"), wide=self.wide)


class ConvPool(_Layer):
    def __init__(self, shape, weight, threshold, flip):
        super().__init__(lib.BNN_CONV_POOL, weight, threshold, flip, shape.out_channels,
                         shape.out_bytes)
        self.c_shape = ffi.new("bnn_conv_shape *", shape._asdict())
        self.reads = SampleBuffer(np.uint8, shape.in_bytes, "input")

    def fields(self, work):
        return dict(super().fields(work), conv=self.c_shape)


class PackSigns(PlanBase):
    def __init__(self, n):
        self.n = n
        self.reads = SampleBuffer(np.float32, n, "input")
        self.writes = SampleBuffer(np.uint8, sign_bytes(n), "out")

    def fields(self, work):
        return {"op": lib.BNN_PACK_SIGNS, "n_in": self.n}


# the plans of float layers, in their own module (which builds on the classes above)
from .c_float import ConvFloat, DenseFloat, DenseInt8, PoolFloat, Preprocess, ScaleShift  # noqa: E402,F401
