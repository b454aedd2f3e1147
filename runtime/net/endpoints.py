"""What a server serves: a model or a DDNN section, answering whole batches.

An endpoint describes itself in v2 metadata (the batch as the first axis of
every tensor), checks one request's input tensor against it, and computes
its outputs for a batch of samples. The embedded server and the MLServer
runtime both serve endpoints, so both answer alike. ``Batcher`` merges the
samples of concurrent requests into one call.
"""
import queue
import threading
import time

import numpy as np

from ..errors import InputError
from .protocol import NAMES, ProtocolError
from ..runtime import Runtime

VERSION = "1"
INPUT = "input"


class Endpoint:
    """A model behind the protocol: ``outputs`` are ``(name, datatype, width)``."""

    def __init__(self, runtime, name, outputs, parameters=None):
        self.runtime, self.name = runtime, name
        model = runtime.model
        self.outputs = [output[0] for output in outputs]
        self.metadata = {
            "name": name, "versions": [VERSION], "platform": "edgebnn",
            "inputs": [{"name": INPUT, "datatype": NAMES[model.input_dtype],
                        "shape": [-1, *model.sample_shape]}],
            "outputs": [{"name": o, "datatype": datatype, "shape": [-1, width]}
                        for o, datatype, width in outputs],
            "parameters": {"classes": model.classes, **(parameters or {})},
        }
        if model.input_kind == "bits":      # packed signs travel as their UINT8 bytes
            self.metadata["parameters"].update(input_dtype="bits",
                                               input_shape=list(model.input_shape))

    def prepare(self, inputs):
        """The samples of a request's ``{name: array}`` inputs, checked, as ``(n, values)``."""
        if list(inputs) != [INPUT]:
            raise ProtocolError(f"the request must have exactly one input, named {INPUT!r} "
                                f"(got {', '.join(map(repr, inputs)) or 'none'})")
        x = inputs[INPUT]
        model = self.runtime.model
        expected = NAMES[model.input_dtype]
        if NAMES[x.dtype] != expected and not (expected == "FP32" and x.dtype.kind == "f"):
            raise ProtocolError(f"input datatype {NAMES[x.dtype]}, expected {expected}")
        shape = model.sample_shape
        if x.shape[1:] != shape or x.ndim != len(shape) + 1 or len(x) == 0:
            raise ProtocolError(f"input shape {list(x.shape)}, expected "
                                f"[n, {', '.join(map(str, shape))}] with n >= 1 (the batch first)")
        return model.check_batch(x.astype(model.input_dtype, copy=False))

    def compute(self, x):
        """``{output: array}`` for the checked samples ``x`` (any number of requests' rows)."""
        raise NotImplementedError

    def check(self, outputs):
        """Refuse one request's outputs that are not finite (the samples were far off)."""
        if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in outputs.values()):
            raise InputError("the model's outputs are not finite for this input "
                             "(values far outside the trained range?)")
        return outputs


class ModelEndpoint(Endpoint):
    """A packed model: its ``logits`` and their softmax ``probabilities``."""

    def __init__(self, runtime, name):
        size = runtime.model.output.size
        super().__init__(runtime, name, [("logits", "FP32", size), ("probabilities", "FP64", size)])

    def compute(self, x):
        logits = np.asarray(self.runtime.model.forward_batch(x), np.float32)
        with np.errstate(invalid="ignore", over="ignore"):
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True), dtype=np.float64)
            probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        return {"logits": logits, "probabilities": probabilities}


class DeviceEndpoint(Endpoint):
    """A DDNN device (or edge) section: each sample's class ``scores`` and packed ``features``."""

    def __init__(self, device, name, backend=None):
        self.device = device
        classes = len(device.model.classes)
        super().__init__(Runtime(device.model, backend=backend), name,
                         [("scores", "FP32", classes), ("features", "UINT8", device.feature_bytes)],
                         {"split": device.split, "feature_shape": list(device.feature_shape)})

    def compute(self, x):
        outputs = [self.device.forward(sample) for sample in x]
        return {"scores": np.array([o.scores for o in outputs], np.float32),
                "features": np.array([o.features for o in outputs], np.uint8)}


def load_endpoint(path, name, section=None, backend=None, trusted_keys=None):
    """The endpoint for a packed model file, or for one ``section`` of a DDNN file
    (``devices/I`` or ``edge`` answer like devices; ``local`` and ``cloud`` like models);
    with ``trusted_keys``, only a file signed by one of them."""
    if section is None:
        return ModelEndpoint(Runtime(path, backend=backend, trusted_keys=trusted_keys), name)
    from ..packed.format import load_ddnn
    from ..errors import ModelFormatError
    from ..kernels import get_kernels
    ddnn = load_ddnn(path, kernels=get_kernels(backend), trusted_keys=trusted_keys)
    kind, _, index = section.partition("/")
    if kind == "devices" and index.isdigit() and int(index) < len(ddnn.devices):
        return DeviceEndpoint(ddnn.devices[int(index)], name, backend)
    if section == "edge" and ddnn.edge is not None:
        return DeviceEndpoint(ddnn.edge, name, backend)
    model = {"cloud": ddnn.cloud, "local": ddnn.local}.get(section)
    if model is None:
        raise ModelFormatError(
            f"section {section!r} not in {path}: choose devices/0..devices/{len(ddnn.devices) - 1}, "
            "cloud" + (", local" if ddnn.local else "") + (", edge" if ddnn.edge else ""))
    return ModelEndpoint(Runtime(model, backend=backend), name)


class Batcher:
    """Runs ``compute`` on the samples of concurrent requests merged into one batch.

    The first request waits up to ``delay`` seconds for others to join, until
    ``max_rows`` samples, but only while ``in_flight()`` (the requests being
    answered) says there are others to wait for: a lone request runs at once.
    A request larger than ``max_rows`` runs alone. Each caller gets the rows
    of its own samples, or its own error: when a merged batch fails (a NaN
    that only the kernel finds, say), each request runs again alone, so one
    client's bad sample never fails its neighbours. ``on_batch(rows)`` is
    told each batch's size.
    """

    def __init__(self, compute, max_rows=32, delay=0.001, workers=1, on_batch=None,
                 in_flight=None):
        self.compute, self.max_rows, self.delay = compute, max_rows, delay
        self.on_batch = on_batch or (lambda rows: None)
        self.in_flight = in_flight or (lambda: self.max_rows)
        self._queue = queue.Queue()
        self._lock = threading.Lock()
        for i in range(workers):
            threading.Thread(target=self._work, name=f"batcher-{i}", daemon=True).start()

    def run(self, x):
        """``{output: rows}`` for the samples ``x`` (blocks until its batch ran)."""
        item = {"x": x, "done": threading.Event()}
        self._queue.put(item)
        item["done"].wait()
        if "error" in item:
            raise item["error"]
        return item["outputs"]

    def _work(self):
        carried = None
        while True:
            with self._lock:          # one worker gathers at a time, the others compute
                items = [carried or self._queue.get()]
                carried = None
                rows, until = len(items[0]["x"]), time.monotonic() + self.delay
                while rows < self.max_rows and self.in_flight() > len(items):
                    try:
                        item = self._queue.get(timeout=max(until - time.monotonic(), 0))
                    except queue.Empty:
                        break
                    if rows + len(item["x"]) > self.max_rows:
                        carried = item
                        break
                    items.append(item)
                    rows += len(item["x"])
            self._run(items, rows)

    def _run(self, items, rows):
        self.on_batch(rows)
        try:
            x = items[0]["x"] if len(items) == 1 else np.concatenate([i["x"] for i in items])
            outputs = self.compute(x)
        except Exception as error:
            if len(items) == 1:             # the request's own error
                items[0]["error"] = error
                items[0]["done"].set()
            else:                           # whose? each request alone says
                for item in items:
                    self._run([item], len(item["x"]))
            return
        start = 0
        for item in items:
            stop = start + len(item["x"])
            item["outputs"] = {name: array[start:stop] for name, array in outputs.items()}
            item["done"].set()
            start = stop
