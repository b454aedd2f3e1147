"""The gateway of a DDNN whose tiers run elsewhere: devices, and optionally edge and cloud.

It is the local aggregator: it gathers the devices' scores within a
deadline, takes the local exit through ``DDNN.decide``, and asks for the
devices' feature maps (and the edge's and the cloud's answers) only when the
sample goes up. A device that has not answered within the deadline, fails or
answers garbage (another shape or dtype, scores that are not finite, a map
with bits set in its padding) is missing for that phase of that sample; a failing edge or
cloud leaves the answer of the tier below ("local-fallback", "edge-fallback").
"""
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from ..bitpack import padding_mask
from ..errors import InputError, RemoteError
from .placement import RemoteTier


class Coordinator:
    """Runs ``ddnn`` with its devices (and edge and cloud, when given) as tiers elsewhere.

    >>> coordinator = Coordinator(ddnn, ["http://127.0.0.1:8101", ...], deadline=0.5,
    ...                           cloud="http://127.0.0.1:8200")
    >>> coordinator.classify(views)

    ``devices`` are tiers (``edgebnn.tiers.placement``) or URLs of V2 servers serving
    ``device0``, ``device1``, ... (``edgebnn-serve DDNN.h5 --section devices/I
    --name deviceI``, or MLServer). In these experiments the coordinator hands
    each device its view, standing in for the device's own sensor. ``edge``
    and ``cloud`` likewise (models named ``edge`` and ``cloud`` at a URL),
    asked within ``cloud_timeout`` seconds; None runs them here. The answers
    are the in-process ones for the devices that answered.
    """

    def __init__(self, ddnn, devices, deadline=1.0, cloud=None, edge=None, cloud_timeout=5.0):
        if len(devices) != len(ddnn.devices):
            raise ValueError(f"{len(devices)} devices for the {len(ddnn.devices)} of the DDNN")
        self.ddnn, self.deadline = ddnn, deadline
        self.devices = [_tier(d, f"device{i}", deadline) for i, d in enumerate(devices)]
        self.cloud = _tier(cloud, "cloud", cloud_timeout)
        self.edge = _tier(edge, "edge", cloud_timeout)
        self.missing = [0] * len(devices)          # per device: phases it missed
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4 * len(devices), thread_name_prefix="device")

    def classify(self, views, threshold=None, edge_threshold=None):
        """Like ``DDNN.classify``, with each present view sent to its device."""
        if len(views) != len(self.devices):
            raise InputError(f"{len(views)} views for {len(self.devices)} devices "
                             f"(give None for a missing device)")
        scores = self._gather("scores", views, (len(self.ddnn.classes),), np.float32,
                              lambda value: np.isfinite(value).all())
        asked = [None if s is None else v for s, v in zip(scores, views)]
        device = self.ddnn.devices[0]
        stray = ~padding_mask(device.feature_shape).reshape(-1)     # bits that must be 0
        return self.ddnn.decide(
            scores, threshold,
            features=lambda: self._gather("features", asked, (device.feature_bytes,), np.uint8,
                                          lambda value: not (value & stray).any()),
            cloud=self.cloud, edge=self.edge, edge_threshold=edge_threshold)

    def _gather(self, output, views, shape, dtype, valid):
        """Each device's ``output`` of the ``shape`` and ``dtype`` that passes ``valid``;
        None when late, failed, or not that."""
        futures = [None if v is None else self._pool.submit(tier.outputs, v, (output,))
                   for tier, v in zip(self.devices, views)]
        wait([f for f in futures if f is not None], timeout=self.deadline)
        replies = []
        for i, future in enumerate(futures):
            reply = None if future is None else _reply(future, output, shape, dtype, valid)
            if reply is None and future is not None:
                with self._lock:
                    self.missing[i] += 1
            replies.append(reply)
        return replies

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
        for tier in self.devices + [t for t in (self.cloud, self.edge) if t is not None]:
            tier.close()


def _tier(tier, name, deadline):
    """A tier as given, or a ``RemoteTier`` for a URL (None stays None)."""
    return RemoteTier(tier, name, deadline) if isinstance(tier, str) else tier


def _reply(future, output, shape, dtype, valid):
    """A device's reply as ``dtype``, or None: a peer may send anything, and what it sends
    must never make ``classify`` raise (NaN scores would, or a map with stray bits)."""
    if not future.done():
        future.cancel()
        return None
    try:
        value = future.result()[output]
    except (RemoteError, LookupError, TypeError):        # failed, or a reply of another form
        return None
    if not isinstance(value, np.ndarray) or value.shape != shape \
            or value.dtype.kind != np.dtype(dtype).kind:
        return None
    value = value.astype(dtype)
    return value if valid(value) else None

