"""What every layer kind shares: its file schema and the checks on its arrays.

A layer is built from named arrays and attributes (exactly the datasets and
attributes of its group in the packed file), then bound to the signal that
reaches it, which checks that the two fit and prepares anything the kernel
needs. ``runner()`` then gives one thread its own per-sample function, which
owns that thread's work buffers, so the hot path allocates nothing.
"""
from typing import NamedTuple

import numpy as np

from ..bitpack import sign_bytes, word_padded
from ..errors import ModelFormatError
from ..kernels import Link


class Signal(NamedTuple):
    """What flows between two layers.

    ``kind`` is ``"float"`` (float32 values), ``"bits"`` (signs packed along
    the last axis, see docs/FORMAT.md) or ``"uint8"`` (raw input pixels).
    """
    kind: str
    shape: tuple

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def describe(self):
        return f"{self.kind} {'x'.join(map(str, self.shape))}"


class Layer:
    """Base class: subclasses set ``kind``, ``ARRAYS`` and ``ATTRS``.

    ``ARRAYS`` maps each dataset name to its dtype, ``ATTRS`` each attribute
    name to its Python type; the constructor takes exactly those names as
    keyword arguments, which is how the reader builds a layer from a group.
    """
    kind = None
    ARRAYS = {}
    ATTRS = {}
    OPTIONAL = ()             # datasets that may be absent (None in the constructor)
    TAKES_RAW_INPUT = False   # True: gets the raw input, not x * scale + offset

    def bind(self, source, kernels):
        """Check the incoming ``Signal``, return the outgoing one."""
        raise NotImplementedError

    def cost(self, source):
        """The ``limits.Cost`` of one sample through this layer on ``source``, from shapes
        alone: called before ``bind``, so nothing is allocated for a model over budget."""
        raise NotImplementedError

    def bound(self, magnitude):
        """After ``bind``: the largest magnitude of the float outputs when no input value
        passes ``magnitude`` (None when the layer gives signs)."""
        raise NotImplementedError

    def runner(self):
        """For one thread: ``run(x) -> output``, writing into buffers it owns."""
        raise NotImplementedError

    def forward_batch(self, x):
        """Many samples at once (first axis). A model runs the batches of its
        ``KernelLayer``s through the kernel backend instead."""
        raise NotImplementedError

    def fields(self):
        """The layer as the file stores it: ``(attributes, arrays)``."""
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        return ({name: getattr(self, name) for name in self.ATTRS},
                {name: value for name, value in arrays.items() if value is not None})

    def copy(self):
        """A fresh, unbound layer with the same content."""
        attrs, arrays = self.fields()
        return type(self)(**attrs, **arrays)

    def expect(self, source, kind, size=None):
        """Raise a clear error unless ``source`` is of ``kind`` (and ``size``)."""
        if source.kind != kind or (size is not None and source.size != size):
            wanted = kind if size is None else f"{kind} of {size} values"
            raise ModelFormatError(
                f"{self.kind} layer expects {wanted} but gets {source.describe()}")


class KernelLayer(Layer):
    """A layer the kernel backend computes: a model runs neighbouring ones as one call.

    ``bind`` sets ``plan`` (the backend's plan of the layer), ``output`` (the
    dtype and size of one sample's output buffer) and, if the plan needs
    scratch, ``work_bytes``. A model makes the links and runs them, alone
    or joined to their neighbours, one sample or a batch (``Backend.chain``).
    """
    plan = None
    output = None
    work_bytes = 0

    def link(self, samples=None):
        """The plan with new buffers: for one sample, or ``samples`` rows of outputs."""
        dtype, size = self.output
        rows = () if samples is None else (samples,)
        work = np.zeros(self.work_bytes, np.uint8) if self.work_bytes else None
        return Link(self.plan, work, np.zeros(rows + (size,), dtype))

    def runner(self):
        link = self.link()
        return link.plan.runner(work=link.work, out=link.out)


def bits_output(n):
    """The output buffer of ``n`` packed signs: padded to whole words, which the kernel reads."""
    return np.uint8, word_padded(sign_bytes(n))


def checked_array(value, dtype, name, ndim, finite=True):
    """``value`` as a C-contiguous array of ``dtype``, or a ModelFormatError.

    Floats of any width are cast (models built in memory come as float64);
    integer arrays must have the exact dtype, since their bits are the data.
    """
    array = np.asarray(value)
    dtype = np.dtype(dtype)
    same = array.dtype.kind == dtype.kind and (
        dtype.kind == "f" or array.dtype.itemsize == dtype.itemsize)
    if not same:
        raise ModelFormatError(f"{name}: dtype {array.dtype}, expected {dtype}")
    if array.ndim != ndim:
        raise ModelFormatError(
            f"{name}: {array.ndim}-D array of shape {array.shape}, expected {ndim}-D")
    if array.size == 0:
        raise ModelFormatError(f"{name}: shape {array.shape} holds no values")
    if finite and dtype.kind == "f" and not np.isfinite(array).all():
        raise ModelFormatError(f"{name}: contains NaN or infinite values")
    return np.ascontiguousarray(array, dtype=dtype)


def check_shape(array, shape, name):
    if array.shape != tuple(shape):
        raise ModelFormatError(f"{name}: shape {array.shape}, expected {tuple(shape)}")


def int_pair(value, name, minimum):
    """``(h, w)`` of a stride, padding or window attribute, each from ``minimum`` to 2^16."""
    pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < minimum or max(pair) > 1 << 16:
        raise ModelFormatError(f"{name} {value!r} must be two integers >= {minimum}")
    return pair


def map_shape(source, kind):
    """``(H, W, C)`` of a feature map signal (a 2-D one has one channel), or a clear error."""
    if source.kind != "float" or len(source.shape) not in (2, 3):
        raise ModelFormatError(f"{kind} takes a float feature map (H, W) or (H, W, C), "
                               f"not {source.describe()}")
    return tuple(source.shape) + (1,) * (3 - len(source.shape))
