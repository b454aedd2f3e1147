"""Model: a validated chain of layers with its input contract and classes.

Building a ``Model`` checks that every layer fits the signal reaching it, so a
model that exists can run. Each thread gets its own chain of per-sample
functions (each owning its work buffers) on its first call and reuses it:
``forward`` allocates nothing.
"""
import threading
from itertools import groupby

from .errors import ModelFormatError
from .inputs import InputSpec
from .layers.base import KernelLayer
from .limits import Cost, Limits, check_range


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
        if not self.layers:
            raise ModelFormatError("a model needs at least one layer")
        self.input = InputSpec(input_shape, input_dtype, input_scale, input_offset)
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

    def _bind(self, kernels):
        """Each layer's cost checked against the limits, then the layer bound to its input."""
        steps, signal = self.input.entry(self.layers[0], kernels)
        self.signals = []       # the signal after each layer, for models cut in sections
        total = sum((step.cost(signal) for step in steps), Cost())
        magnitude = self.input.magnitude()
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
        self.input.scans_values = first.kind != "sign"
        # the steps in stretches of kernel layers and of the others
        self._stretches = [(in_kernel, list(group)) for in_kernel, group
                           in groupby(steps, key=lambda step: isinstance(step, KernelLayer))]
        return steps

    # the input contract, as the file's header names it
    input_shape = property(lambda self: self.input.shape)
    input_kind = property(lambda self: self.input.kind)
    input_dtype = property(lambda self: self.input.dtype)
    input_scale = property(lambda self: self.input.scale)
    input_offset = property(lambda self: self.input.offset)
    sample_shape = property(lambda self: self.input.sample_shape)

    def check_input(self, x):
        """``x`` as the flat vector ``forward`` takes, or InputError (``InputSpec.check``)."""
        return self.input.check(x)

    def check_batch(self, x):
        """``x`` as the ``(n, values)`` array ``forward_batch`` takes, or InputError."""
        return self.input.check_batch(x)

    @property
    def backend(self):
        return self.kernels.name

    def with_kernels(self, kernels, limits=None):
        """The same model bound to ``kernels`` (fresh layers), checked against ``limits``
        (default: the model's own)."""
        return Model([layer.copy() for layer in self.layers], self.input_shape,
                     self.input_kind, self.input_scale, self.input_offset,
                     self.classes, kernels, limits if limits is not None else self.limits)

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
