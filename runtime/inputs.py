"""What a model takes: its input contract, and the steps from a raw sample to the first layer.

``InputSpec`` is the contract of a file's header (shape, dtype, scale and
offset) and the checks every sample passes before a pointer reaches C. The
steps run like layers (``runner()`` per thread, ``forward_batch``) but are
not stored in a file: a model adds them from its input description.
"""
import math

import numpy as np

from .bitpack import packed_bytes, padding_mask, word_padded
from .errors import NON_FINITE, InputError, InputTypeError, ModelFormatError
from .layers.base import KernelLayer, Signal
from .limits import Cost

INPUT_DTYPES = ("uint8", "float32", "bits")
MAX_INPUT_VALUES = 1 << 24


class Preprocess(KernelLayer):
    """Raw input -> float32 ``x * scale + offset`` (a step, not stored), in the kernel: it
    joins the C call of the kernel layers after it."""
    kind = "preprocess"

    def __init__(self, size, dtype, scale, offset, kernels):
        self.size = size
        self.plan = kernels.Preprocess(size, np.dtype(dtype), scale, offset)
        self.output = np.float32, size

    def cost(self, source):
        return Cost(memory_c=4 * self.size, memory_numpy=4 * self.size)


class PadWords:
    """Packed input -> a copy in a buffer of whole 64-bit words (a step, not stored).

    The kernels read whole words, so a packed sample whose size is not a
    multiple of 8 bytes is copied into a zero-padded buffer first.
    """
    kind = "pad_words"

    def __init__(self, nbytes):
        self.nbytes = nbytes

    def cost(self, source):
        return Cost(memory_c=word_padded(self.nbytes), memory_numpy=word_padded(self.nbytes))

    def runner(self):
        out = np.zeros(word_padded(self.nbytes), np.uint8)
        nbytes = self.nbytes

        def run(x):
            out[:nbytes] = x
            return out
        return run

    def forward_batch(self, x):
        out = np.zeros((len(x), word_padded(self.nbytes)), np.uint8)
        out[:, :self.nbytes] = x
        return out


def input_kind(input_dtype):
    """The name of an input dtype: a NumPy dtype's, or "bits" for packed signs."""
    if isinstance(input_dtype, str) and input_dtype == "bits":
        return "bits"
    try:
        return np.dtype(input_dtype).name
    except TypeError:
        raise ModelFormatError(f"input_dtype {input_dtype!r} unsupported; "
                               f"supported: {', '.join(INPUT_DTYPES)}") from None


class InputSpec:
    """A model's input: ``shape`` (logical), ``dtype`` ("uint8", "float32" or "bits": packed
    signs), and the preprocessing ``x * scale + offset`` before the first float layer.

    ``sample_shape`` is the shape of the array a sample comes as: the logical
    shape, or for bits the flat ``packed_bytes(shape)`` bytes.
    """

    def __init__(self, shape, dtype="float32", scale=1.0, offset=0.0):
        self.shape = tuple(int(n) for n in shape)
        self.kind = input_kind(dtype)
        self.dtype = np.dtype(np.uint8 if self.kind == "bits" else dtype)
        self.scale, self.offset = float(scale), float(offset)
        self._check()
        self.sample_shape = self.shape
        self.scans_values = True        # False when the first step (a sign) scans them itself
        if self.kind == "bits":
            self.sample_shape = (packed_bytes(self.shape),)
            stray = ~padding_mask(self.shape)
            self._stray_bits = stray if stray.any() else None

    def _check(self):
        if not 1 <= len(self.shape) <= 3 or min(self.shape) < 1:
            raise ModelFormatError(f"input_shape {self.shape} must have 1 to 3 positive sizes")
        if math.prod(self.shape) > MAX_INPUT_VALUES:
            raise ModelFormatError(f"input_shape {self.shape} exceeds {MAX_INPUT_VALUES} values")
        if self.kind not in INPUT_DTYPES:
            raise ModelFormatError(
                f"input_dtype {self.kind} unsupported; supported: {', '.join(INPUT_DTYPES)}")
        for name, value in (("input_scale", self.scale), ("input_offset", self.offset)):
            if not math.isfinite(value):
                raise ModelFormatError(f"{name} must be finite")
        if self.scale == 0.0:
            raise ModelFormatError("input_scale must not be 0")
        if self.kind == "bits" and (self.scale, self.offset) != (1.0, 0.0):
            raise ModelFormatError("bits input takes no preprocessing: input_scale must be 1 "
                                   "and input_offset 0")

    def entry(self, first, kernels):
        """``(steps, signal)``: the steps from a checked sample to the layer ``first``, and the
        signal that reaches it. Only binary layers read packed signs."""
        signal = Signal(self.kind, self.shape)
        if self.kind == "bits":
            if not first.TAKES_RAW_INPUT:
                raise ModelFormatError(f"bits input needs a binary first layer (binary_dense or "
                                       f"binary_conv2d), not {first.kind}")
            if first.kind == "binary_conv2d" and len(self.shape) != 3:
                raise ModelFormatError(f"a binary_conv2d on bits input needs input_shape "
                                       f"(H, W, C), not {self.shape}")
            nbytes = self.sample_shape[0]
            return ([PadWords(nbytes)] if nbytes % 8 else []), signal
        if first.TAKES_RAW_INPUT:
            return [], signal
        identity = self.scale == 1.0 and self.offset == 0.0
        steps = [] if self.dtype == np.float32 and identity else \
            [Preprocess(signal.size, self.dtype, self.scale, self.offset, kernels)]
        return steps, Signal("float", self.shape)

    def magnitude(self):
        """The largest magnitude a first float layer can see: the uint8 range after
        preprocessing, or 1 for a float input (a unit scale: its range is the user's)."""
        top = 255.0 if self.kind == "uint8" else 1.0
        return abs(self.scale) * top + abs(self.offset)

    def check(self, x):
        """``x`` as the flat vector a model's ``forward`` takes, or InputError.

        The kernels read C-contiguous memory: a strided or reversed view is copied.
        A plain contiguous array of the model's own dtype and shape, the common
        sensor sample, goes through a shorter path with the same checks."""
        if type(x) is np.ndarray and x.dtype is self.dtype and x.shape == self.sample_shape \
                and x.flags.c_contiguous:
            if self.kind != "float32" or self.scans_values:
                x = self._checked_values(x)
            return x if x.ndim == 1 else x.reshape(-1)
        _check_type(x, "input")
        if x.shape != self.sample_shape:
            raise InputError(f"input shape {x.shape}, expected {self.sample_shape}")
        x = self._checked_values(x).reshape(-1)
        return x if x.flags.c_contiguous else x.copy()

    def check_batch(self, x):
        """``x`` as the ``(n, values)`` array a model's ``forward_batch`` takes."""
        _check_type(x, "batch")
        if x.shape[1:] != self.sample_shape or x.ndim != len(self.sample_shape) + 1:
            raise InputError(f"batch shape {x.shape}, expected (n,) + {self.sample_shape}")
        if len(x) == 0:
            raise InputError(f"empty batch: shape {x.shape} holds no sample")
        values = math.prod(self.sample_shape)
        return np.ascontiguousarray(self._checked_values(x).reshape(len(x), values))

    def _checked_values(self, x):
        if self.kind == "uint8" and x.dtype is self.dtype:
            return x                            # the common sensor input, checked quickly
        if self.dtype.kind != "f":
            if x.dtype != self.dtype:
                raise InputError(f"input dtype {x.dtype}, expected {self.dtype}")
            return x if self.kind != "bits" else self._checked_bits(x)
        if x.dtype.kind != "f":
            raise InputError(f"input dtype {x.dtype}, expected a float array")
        # x.x is finite exactly when every value is, unless a huge value
        # overflows the square: only then look value by value.
        if self.scans_values and not (math.isfinite(np.vdot(x, x)) or np.isfinite(x).all()):
            raise InputError(NON_FINITE + _which_samples(x, len(self.sample_shape)))
        return x if x.dtype == np.float32 else x.astype(np.float32)

    def _checked_bits(self, x):
        """Packed signs must keep their padding bits 0: the kernels count every bit."""
        if self._stray_bits is not None and (x & self._stray_bits).any():
            raise InputError(f"packed input has padding bits set (they must be 0; the last axis "
                             f"of {self.shape} packs {self.shape[-1]} signs)")
        return np.ascontiguousarray(x)


def _which_samples(x, sample_dimensions):
    """Where the non-finite values are: " in sample 3 and 2 more" of a batch, "" in a sample."""
    if x.ndim == sample_dimensions:
        return ""
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    return f" in sample {bad[0]}" + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")


def _check_type(x, what):
    """A plain ndarray (or a subclass that is one): a matrix is always 2-D and a masked
    array's mask would be silently ignored, so both are refused."""
    if isinstance(x, np.ma.MaskedArray):
        raise InputTypeError(f"{what} is a masked array, whose mask the model cannot honour; "
                             "pass x.filled(value) or leave the masked samples out")
    if isinstance(x, np.matrix):
        raise InputTypeError(f"{what} is a numpy.matrix; pass numpy.asarray(x) in the model's "
                             "input shape")
    if not isinstance(x, np.ndarray):
        raise InputTypeError(
            f"{what} must be a numpy.ndarray, got {type(x).__name__}; use numpy.asarray")
