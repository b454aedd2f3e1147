"""Where a DDNN section runs: in this process, or behind the V2 protocol.

A tier takes one input (a device's view, or the maps that reach the edge or
the cloud) and gives named outputs: a device or the edge its class
``scores`` and packed ``features``, the cloud (or any plain model) its
``logits``. ``DDNN.decide`` and the ``Coordinator`` ask tiers and do not care
where they run: here (``LocalTier``), or in an ``edgebnn-serve`` process or
on MLServer (``RemoteTier``: both speak V2, the same endpoint code answers).
A tier that fails raises ``RemoteError``.
"""
from typing import Protocol

import numpy as np

from ..model import Model


class Tier(Protocol):
    def outputs(self, x, names):
        """``{name: array}`` for one input ``x``: the outputs ``names`` (no batch axis)."""

    def close(self):
        """Release connections (nothing for a local tier)."""


class LocalTier:
    """A section evaluated in this process: a ``ddnn.Device`` or a ``Model``."""

    def __init__(self, section):
        self.section = section

    def outputs(self, x, names):
        if isinstance(self.section, Model):
            model = self.section
            found = {"logits": model.forward(model.check_input(x)).copy()}
        else:
            output = self.section.run(x)
            found = {"scores": output.scores, "features": output.features}
        return {name: found[name] for name in names}

    def close(self):
        pass


class RemoteTier:
    """A section behind V2 at ``url`` under the model name ``name`` (``edgebnn-serve
    --section ...``, or MLServer with ``edgebnn.mlserver.EdgeBNNRuntime``); one request
    per call, bounded by ``deadline`` seconds. ``options`` go to ``RemoteModel``."""

    def __init__(self, url, name, deadline=1.0, **options):
        from ..net.remote import RemoteModel
        self.remote = RemoteModel(url, name, deadline, dtype=None, **options)

    def outputs(self, x, names):
        rows = self.remote.infer_outputs(np.asarray(x)[None], list(names))
        return {name: rows[name][0] for name in names}

    def close(self):
        self.remote.close()
