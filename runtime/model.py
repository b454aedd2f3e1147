"""Model: a validated chain of layers with its input contract and classes.

Building a ``Model`` checks that every layer fits the signal reaching it, so a
model that exists can run. Each thread gets its own chain of per-sample
functions (each owning its work buffers) on its first call and reuses it:
``forward`` allocates nothing.
"""
import math
import threading
from itertools import groupby

import numpy as np

from .bitpack import packed_bytes, padding_mask
from .errors import NON_FINITE, InputError, InputTypeError, ModelFormatError
from .inputs import INPUT_DTYPES, MAX_INPUT_VALUES, PadWords, Preprocess, input_kind
from .layers import Signal
from .layers.base import KernelLayer
from .limits import Cost, Limits, check_range


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


class Model:
    """A chain of layers with the input it accepts and the classes it names.

    >>> model = Model([Dense(w1, b1, "relu"), Dense(w2, b2)],
    ...               input_shape=(28, 28), input_dtype="uint8",
    ...               input_scale=1 / 255, classes=[str(d) for d in range(10)])

    ``input_dtype="bits"`` takes packed signs (docs/FORMAT.md): ``input_shape``
    is then the logical shape, a sample is a flat uint8 array of
    ``bitpack.packed_bytes(input_shape)`` bytes, ``input_dtype`` reads as
    uint8 and ``input_kind`` says "bits". This is how a tier above a device
    reads the device's packed feature map without unpacking it.

    ``limits`` (``edgebnn.limits.Limits``, default: sized for a Raspberry Pi 2)
    bounds the work per sample and the memory; a model over them is refused
    here, naming the layer, before its buffers are allocated.
    """

    def __init__(self, layers, input_shape, input_dtype="float32",
                 input_scale=1.0, input_offset=0.0, classes=None, kernels=None, limits=None):
        self.layers = list(layers)
        self.input_shape = tuple(int(n) for n in input_shape)
        self.input_kind = input_kind(input_dtype)
        self.input_dtype = np.dtype(np.uint8 if self.input_kind == "bits" else input_dtype)
        self.input_scale = float(input_scale)
        self.input_offset = float(input_offset)
        # the shape of the array classify takes: the logical shape, or the packed bytes
        self.sample_shape = self.input_shape
        self._check_header()
        if kernels is None:
            from .kernels import get_kernels
            kernels = get_kernels()
        self.kernels = kernels
        self.limits = limits if limits is not None else Limits()
        self._steps = self._bind(kernels)
        n_out = self.output.size
        self.classes = [str(c) for c in classes] if classes is not None else \
            [str(i) for i in range(n_out)]
        if len(self.classes) != n_out:
            raise ModelFormatError(
                f"{len(self.classes)} class names for {n_out} outputs of the last layer")
        if n_out < 2:
            raise ModelFormatError("the last layer must give at least 2 class scores")
        self._local = threading.local()
        self._thread_runs()

    def _check_header(self):
        if not self.layers:
            raise ModelFormatError("a model needs at least one layer")
        if not 1 <= len(self.input_shape) <= 3 or min(self.input_shape) < 1:
            raise ModelFormatError(f"input_shape {self.input_shape} must have 1 to 3 positive sizes")
        if math.prod(self.input_shape) > MAX_INPUT_VALUES:
            raise ModelFormatError(
                f"input_shape {self.input_shape} exceeds {MAX_INPUT_VALUES} values")
        if self.input_kind not in INPUT_DTYPES:
            raise ModelFormatError(
                f"input_dtype {self.input_kind} unsupported; supported: {', '.join(INPUT_DTYPES)}")
        for name in ("input_scale", "input_offset"):
            if not math.isfinite(getattr(self, name)):
                raise ModelFormatError(f"{name} must be finite")
        if self.input_scale == 0.0:
            raise ModelFormatError("input_scale must not be 0")
        if self.input_kind == "bits":
            self._check_bits_header()

    def _check_bits_header(self):
        """Signs have no scale, and only binary layers read them."""
        if (self.input_scale, self.input_offset) != (1.0, 0.0):
            raise ModelFormatError("bits input takes no preprocessing: input_scale must be 1 "
                                   "and input_offset 0")
        first = self.layers[0]
        if not first.TAKES_RAW_INPUT:
            raise ModelFormatError(f"bits input needs a binary first layer (binary_dense or "
                                   f"binary_conv2d), not {first.kind}")
        if first.kind == "binary_conv2d" and len(self.input_shape) != 3:
            raise ModelFormatError(f"a binary_conv2d on bits input needs input_shape (H, W, C), "
                                   f"not {self.input_shape}")
        self.sample_bytes = packed_bytes(self.input_shape)
        self.sample_shape = (self.sample_bytes,)
        stray = ~padding_mask(self.input_shape)
        self._stray_bits = stray if stray.any() else None

    def _bind(self, kernels):
        """Each layer's cost checked against the limits, then the layer bound to its input."""
        signal = Signal(self.input_kind, self.input_shape)
        steps = []
        self.signals = []       # the signal after each layer, for models cut in sections
        if self.input_kind == "bits":
            if self.sample_bytes % 8:
                steps.append(PadWords(self.sample_bytes))
        elif not self.layers[0].TAKES_RAW_INPUT:
            identity = self.input_scale == 1.0 and self.input_offset == 0.0
            if self.input_dtype != np.float32 or not identity:
                steps.append(Preprocess(signal.size, self.input_scale, self.input_offset))
            signal = Signal("float", self.input_shape)
        total = sum((step.cost(signal) for step in steps), Cost())
        magnitude = self._input_magnitude()
        for i, layer in enumerate(self.layers):
            where = f"layers/{i} ({layer.kind})"
            total += layer.cost(signal)
            self.limits.check(total, kernels.name, where)
            try:
                signal = layer.bind(signal, kernels)
            except ModelFormatError as error:
                raise ModelFormatError(f"{where}: {error}") from None
            magnitude = layer.bound(magnitude)
            check_range(magnitude, where)
            if getattr(layer, "activation", "none") == "softmax" and i != len(self.layers) - 1:
                raise ModelFormatError(f"layers/{i} ({layer.kind}): softmax only on the last layer")
            steps.append(layer)
            self.signals.append(signal)
        if signal.kind != "float":
            raise ModelFormatError(f"the last layer gives {signal.describe()}, expected float scores")
        self.output = signal
        # a sign step reading the (preprocessed) input refuses NaN and infinity
        # itself, in the same pass: the input check then need not scan the values
        first = next(step for step in steps if step.kind != "preprocess")
        self._sign_reads_input = first.kind == "sign"
        # the steps in stretches of kernel layers and of the others
        self._stretches = [(in_kernel, list(group)) for in_kernel, group
                           in groupby(steps, key=lambda step: isinstance(step, KernelLayer))]
        return steps

    def _input_magnitude(self):
        """The largest magnitude a float layer can see first: the uint8 range after
        preprocessing, or 1 for a float input (a unit scale: its range is the user's)."""
        top = 255.0 if self.input_kind == "uint8" else 1.0
        return abs(self.input_scale) * top + abs(self.input_offset)

    @property
    def backend(self):
        return self.kernels.name

    def with_kernels(self, kernels):
        """The same model bound to another kernel backend (fresh layers)."""
        return Model([layer.copy() for layer in self.layers], self.input_shape,
                     self.input_kind, self.input_scale, self.input_offset,
                     self.classes, kernels, self.limits)

    def check_input(self, x):
        """``x`` as the flat vector ``forward`` takes, or InputError / InputTypeError.

        The kernels read C-contiguous memory: a strided or reversed view is copied."""
        _check_type(x, "input")
        if x.shape != self.sample_shape:
            raise InputError(f"input shape {x.shape}, expected {self.sample_shape}")
        x = self._checked_values(x).reshape(-1)
        return x if x.flags.c_contiguous else x.copy()

    def check_batch(self, x):
        """``x`` as the ``(n, values)`` array ``forward_batch`` takes."""
        _check_type(x, "batch")
        if x.shape[1:] != self.sample_shape or x.ndim != len(self.sample_shape) + 1:
            raise InputError(
                f"batch shape {x.shape}, expected (n,) + {self.sample_shape}")
        if len(x) == 0:
            raise InputError(f"empty batch: shape {x.shape} holds no sample")
        values = math.prod(self.sample_shape)
        return np.ascontiguousarray(self._checked_values(x).reshape(len(x), values))

    def _checked_values(self, x):
        if self.input_kind == "uint8" and x.dtype is self.input_dtype:
            return x                            # the common sensor input, checked quickly
        if self.input_dtype.kind != "f":
            if x.dtype != self.input_dtype:
                raise InputError(f"input dtype {x.dtype}, expected {self.input_dtype}")
            return x if self.input_kind != "bits" else self._checked_bits(x)
        if x.dtype.kind != "f":
            raise InputError(f"input dtype {x.dtype}, expected a float array")
        # x.x is finite exactly when every value is, unless a huge value
        # overflows the square: only then look value by value.
        if not (self._sign_reads_input or math.isfinite(np.vdot(x, x)) or np.isfinite(x).all()):
            raise InputError(NON_FINITE)
        return x if x.dtype == np.float32 else x.astype(np.float32)

    def _checked_bits(self, x):
        """Packed signs must keep their padding bits 0: the kernels count every bit."""
        if self._stray_bits is not None and (x & self._stray_bits).any():
            raise InputError(f"packed input has padding bits set (they must be 0; the last axis "
                             f"of {self.input_shape} packs {self.input_shape[-1]} signs)")
        return np.ascontiguousarray(x)

    def _thread_runs(self):
        """This thread's per-step calls, and the same with neighbouring kernel layers chained.

        Made on a thread's first call, with that thread's own buffers (both
        lists write into the same ones)."""
        local = self._local
        local.runs, local.fused = [], []
        for in_kernel, steps in self._stretches:
            if in_kernel:
                links = [step.link() for step in steps]
                local.runs += [self.kernels.chain([link]) for link in links]
                local.fused.append(self.kernels.chain(links))
            else:
                runs = [step.runner() for step in steps]
                local.runs += runs
                local.fused += runs
        return local

    def forward(self, x):
        """Logits of one sample from ``check_input`` (float32, a reused buffer)."""
        try:
            runs = self._local.fused
        except AttributeError:          # this thread's first call
            runs = self._thread_runs().fused
        for run in runs:
            x = run(x)
        return x

    def forward_split(self, x, split):
        """``(logits, cut)`` of one sample: ``cut`` is the output of the first ``split``
        layers, e.g. the feature map a DDNN device sends up. Both are reused buffers."""
        try:
            runs = self._local.runs
        except AttributeError:
            runs = self._thread_runs().runs
        stop = len(runs) - len(self.layers) + split
        for run in runs[:stop]:
            x = run(x)
        cut = x
        for run in runs[stop:]:
            x = run(x)
        return x, cut

    def forward_batch(self, x):
        """Logits ``(n, classes)`` of samples from ``check_batch`` (a new array).

        Neighbouring kernel layers take the whole batch in one kernel call;
        each thread keeps the calls and buffers of its last batch size."""
        batch = getattr(self._local, "batch", None)
        if batch is None or batch[0] != len(x):
            batch = self._local.batch = (len(x), self._batch_runs(len(x)))
        for run in batch[1]:
            x = run(x)
        return x.copy()

    def _batch_runs(self, samples):
        runs = []
        for in_kernel, steps in self._stretches:
            if in_kernel:
                runs.append(self.kernels.chain([step.link(samples) for step in steps]))
            else:
                runs += [step.forward_batch for step in steps]
        return runs
