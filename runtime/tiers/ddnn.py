"""Distributed deep neural networks (DDNN, Teerapittayanon, McDanel and Kung, ICDCS 2017).

One network cut across several end devices, an optional edge and the
cloud. Each device runs binary layers on its own view of the scene and
sends up two things: its exit classifier's class scores and the packed
feature map its first layers computed. The local tier aggregates the
present devices' scores; when the normalized entropy of their softmax is
below the threshold T the sample exits there, having cost each device only
its scores. Otherwise the feature maps are aggregated and go up: to the
edge section when there is one, which has its own exit (threshold
``edge_threshold``) and otherwise sends its own packed feature map to the
cloud; or straight to the cloud section, which always answers.

A device that is missing for a sample (``None`` in the views) is left out
of every aggregation; see runtime/tiers/aggregate.py for what each aggregator does
with a gap. docs/FORMAT.md ("DDNN files") describes the file (written and
read by format.py); runtime/tiers/placement.py says where sections can run and
runtime/tiers/coordinator.py runs devices, edge and cloud elsewhere.
"""
from typing import NamedTuple

import numpy as np

from . import aggregate
from ..errors import InputError, ModelFormatError, RemoteError
from ..exits import should_exit
from ..result import Exit, Result
from .placement import LocalTier

SCORE_BYTES = 4          # a device sends its class scores as float32


class NoDevicesError(InputError):
    """Every device is missing for a sample: there is nothing to classify."""


class DeviceOutput(NamedTuple):
    """What one device sends up for one sample."""
    scores: np.ndarray        # float32 class scores of its exit classifier
    features: np.ndarray      # packed feature map, ``feature_bytes`` uint8


class Device:
    """A device (or edge) section: a model whose first ``split`` layers give the
    feature map sent up.

    The layers after the split are the section's exit classifier. Keeping the
    two in one ``Model`` lets the whole chain be checked layer by layer, and
    runs the section in one pass. The edge is a ``Device`` whose input is the
    devices' aggregated feature maps.
    """

    def __init__(self, model, split):
        self.model = model
        self.split = int(split)
        if not 1 <= self.split < len(model.layers):
            raise ModelFormatError(f"split {self.split} must leave at least one layer on each "
                                   f"side (the model has {len(model.layers)} layers)")
        signal = model.signals[self.split - 1]
        if signal.kind != "bits":
            raise ModelFormatError(f"the first {self.split} layers give {signal.describe()}; "
                                   f"the feature map sent up must be packed signs")
        self.feature_shape = tuple(signal.shape)
        self.feature_bytes = aggregate.packed_bytes(self.feature_shape)

    def run(self, view):
        """The device's ``DeviceOutput`` for one view (InputError if it does not fit)."""
        return self.forward(self.model.check_input(view))

    def forward(self, x):
        """The ``DeviceOutput`` of one sample already checked by ``model.check_input``."""
        logits, cut = self.model.forward_split(x, self.split)
        return DeviceOutput(logits.copy(), cut[:self.feature_bytes].copy())


class DDNN:
    """Devices, a local exit, an optional edge and a cloud section, evaluated in one process.

    >>> ddnn = load_ddnn("models/ddnn.h5")
    >>> result = ddnn.classify([view0, None, view2])     # device 1 is missing
    >>> result.exit, result.label, result.bytes_sent

    ``local_aggregate`` and ``cloud_aggregate`` are "max", "average" or
    "concat". ``local`` is the model after a concatenation of scores (it
    exists exactly when ``local_aggregate`` is "concat"). ``cloud_aggregate``
    merges the devices' feature maps for the first tier above them: packed
    signs for max and concat, float32 for average. That tier is ``edge`` (a
    ``Device`` section with its exit at ``edge_threshold``) when given, and
    the cloud then reads the edge's packed feature map; else the cloud.
    """

    def __init__(self, devices, cloud, local=None, local_aggregate="max",
                 cloud_aggregate="concat", local_threshold=0.5, classes=None, edge=None,
                 edge_threshold=0.5):
        self.devices = list(devices)
        self.cloud, self.local, self.edge = cloud, local, edge
        self.local_aggregate, self.cloud_aggregate = local_aggregate, cloud_aggregate
        self.local_threshold = float(local_threshold)
        self.edge_threshold = float(edge_threshold)
        self.classes = [str(c) for c in (classes if classes is not None else cloud.classes)]
        self._check()

    # checks ---------------------------------------------------------------

    def _check(self):
        if not self.devices:
            raise ModelFormatError("devices: a DDNN needs at least one device")
        for name, kind in (("local_aggregate", self.local_aggregate),
                           ("cloud_aggregate", self.cloud_aggregate)):
            if kind not in aggregate.KINDS:
                raise ModelFormatError(f"{name} {kind!r} unknown; supported: "
                                       f"{', '.join(aggregate.KINDS)}")
        for name in ("local_threshold", "edge_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ModelFormatError(f"{name} {getattr(self, name)} must be within [0, 1]")
        shape = self.devices[0].feature_shape
        for i, device in enumerate(self.devices):
            self._check_classes(f"devices/{i}", device.model)
            if device.feature_shape != shape:
                raise ModelFormatError(f"devices/{i}: feature map {device.feature_shape}, but "
                                       f"devices/0 sends {shape}; every device must send the same")
        self.feature_shape = shape
        self._check_local()
        if self.edge is None:
            self._check_input("cloud", self.cloud, *self._cloud_input())
        else:
            self._check_input("edge", self.edge.model, *self._cloud_input())
            self._check_classes("edge", self.edge.model)
            self._check_input("cloud", self.cloud, "bits", self.edge.feature_shape)
        self._check_classes("cloud", self.cloud)

    def _check_local(self):
        if (self.local is not None) != (self.local_aggregate == "concat"):
            raise ModelFormatError("local: the local model exists exactly when local_aggregate "
                                   f"is 'concat' (it is {self.local_aggregate!r})")
        if self.local is not None:
            size = len(self.devices) * len(self.classes)
            self._check_input("local", self.local, "float32", (size,))
            self._check_classes("local", self.local)

    def _cloud_input(self):
        """``(input kind, logical shape)`` of the devices' merged maps (edge or cloud input)."""
        if self.cloud_aggregate == "average":
            return "float32", self.feature_shape
        if self.cloud_aggregate == "max":
            return "bits", self.feature_shape
        return "bits", aggregate.concat_shape(self.feature_shape, len(self.devices))

    def _check_input(self, where, model, kind, shape):
        if model.input_kind != kind or model.input_shape != tuple(shape):
            raise ModelFormatError(
                f"{where}: takes {model.input_kind} {model.input_shape}, but the aggregated "
                f"input is {kind} {tuple(shape)}")

    def _check_classes(self, where, model):
        if model.classes != self.classes:
            raise ModelFormatError(f"{where}: classes {model.classes} differ from the DDNN's "
                                   f"{self.classes}")

    # evaluation -------------------------------------------------------------

    def run_devices(self, views):
        """Each device's ``DeviceOutput`` for its view, None where the view is None."""
        if len(views) != len(self.devices):
            raise InputError(f"{len(views)} views for {len(self.devices)} devices "
                             f"(give None for a missing device)")
        outputs = []
        for i, (device, view) in enumerate(zip(self.devices, views)):
            try:
                outputs.append(None if view is None else device.run(view))
            except InputError as error:
                raise type(error)(f"device {i}: {error}") from None
        return outputs

    def classify(self, views, threshold=None, edge_threshold=None):
        """Classify one sample seen by the devices (``None`` for a missing one).

        Exits locally when the normalized entropy of the aggregated scores is
        below ``threshold`` (default: the file's ``local_threshold``), else
        at the edge, if any, when its entropy is below ``edge_threshold``
        (default: the file's), else in the cloud. Raises NoDevicesError when
        every device is missing.
        """
        outputs = self.run_devices(views)
        return self.decide([None if o is None else o.scores for o in outputs], threshold,
                           [None if o is None else o.features for o in outputs],
                           edge_threshold=edge_threshold)

    def decide(self, scores, threshold=None, features=None, cloud=None, edge=None,
               edge_threshold=None):
        """The answer from what the devices sent, wherever they ran.

        ``scores`` has each device's class scores, None for a missing device;
        ``features`` their packed feature maps, or a function that fetches
        them, called only when the sample does not exit locally (so a remote
        device sends its map only then). ``edge`` and ``cloud`` are the tiers
        (runtime/tiers/placement.py) that answer for those sections (default: the
        sections here; a Coordinator passes remote ones). If no map arrives
        at all, or the edge or the cloud fails (RemoteError), the answer of
        the tier below stands, marked "local-fallback" or "edge-fallback".
        """
        threshold = _threshold(self.local_threshold if threshold is None else threshold)
        edge_threshold = _threshold(self.edge_threshold if edge_threshold is None else edge_threshold)
        if all(s is None for s in scores):
            raise NoDevicesError(f"all {len(scores)} devices are missing for this sample")
        sent = [0 if s is None else SCORE_BYTES * len(self.classes) for s in scores]
        local = self._answer(self.local_logits(scores), Exit.LOCAL, sent)
        if should_exit(local.entropy, threshold):
            return local
        maps = features() if callable(features) else features
        if all(m is None for m in maps):
            local.exit = Exit.LOCAL_FALLBACK
            return local
        sent = [n + (0 if m is None else self.devices[0].feature_bytes) for n, m in zip(sent, maps)]
        below = local
        try:
            if self.edge is None:
                up = self.cloud_input(maps)
            else:
                output = self.edge_output(maps, edge)
                below = self._answer(output.scores, Exit.EDGE, sent)
                if should_exit(below.entropy, edge_threshold):
                    return below
                up = output.features
            logits = self._cloud(up, cloud)
        except RemoteError:
            below.exit = below.exit.fallback()
            return below
        return self._answer(logits, Exit.CLOUD, sent)

    def local_logits(self, scores):
        """Aggregated class scores of the present devices (through ``local`` for concat)."""
        merged = aggregate.scores(self.local_aggregate, scores)
        if self.local is None:
            return merged
        return self.local.forward(self.local.check_input(merged)).copy()

    def edge_output(self, maps, edge=None):
        """The edge's ``DeviceOutput`` on the devices' merged maps, from the tier ``edge``
        (default: the edge section here)."""
        merged = aggregate.feature_maps(self.cloud_aggregate, maps, self.feature_shape)
        output = (edge or LocalTier(self.edge)).outputs(merged, ("scores", "features"))
        scores, features = output["scores"], output["features"]
        if scores.shape != (len(self.classes),) or features.shape != (self.edge.feature_bytes,) \
                or features.dtype != np.uint8:
            raise RemoteError(f"edge output of shapes {scores.shape} and {features.shape}, "
                              f"expected ({len(self.classes)},) and ({self.edge.feature_bytes},)")
        return DeviceOutput(scores.astype(np.float32), features)

    def cloud_input(self, maps):
        """What reaches the cloud from the devices' maps: their merge, or the edge's map of it."""
        if self.edge is None:
            return aggregate.feature_maps(self.cloud_aggregate, maps, self.feature_shape)
        return self.edge_output(maps).features

    def cloud_logits(self, maps):
        """The cloud section's scores from the devices' packed feature maps."""
        return self._cloud(self.cloud_input(maps))

    def _cloud(self, x, cloud=None):
        """The cloud's scores on its input ``x``, from the tier ``cloud`` (default: here)."""
        logits = (cloud or LocalTier(self.cloud)).outputs(x, ("logits",))["logits"]
        if logits.shape != (len(self.classes),):
            raise RemoteError(f"cloud scores of shape {logits.shape}, expected ({len(self.classes)},)")
        return logits

    def _answer(self, logits, tier, sent):
        result = Result(logits, self.classes, tier, bytes_sent=sent)
        if not result.finite and tier == Exit.CLOUD:
            raise InputError("the cloud's outputs are not finite for this sample")
        return result

    def with_kernels(self, kernels):
        """The same DDNN with every section bound to another kernel backend."""
        def rebound(device):
            return Device(device.model.with_kernels(kernels), device.split)
        return DDNN([rebound(d) for d in self.devices], self.cloud.with_kernels(kernels),
                    self.local.with_kernels(kernels) if self.local is not None else None,
                    self.local_aggregate, self.cloud_aggregate, self.local_threshold,
                    self.classes, rebound(self.edge) if self.edge is not None else None,
                    self.edge_threshold)


def _threshold(value):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold {value} must be within [0, 1]")
    return value
