"""Budgets checked at load: each layer's work per sample, its memory and its output range.

A model file only declares shapes, and shapes are cheap to declare: a 1x1
binary convolution padded and pooled by 20,000 fits in 12 KB and costs
seconds per sample. So before a layer allocates anything, ``Model`` asks it
for its ``Cost`` on the incoming signal (plain integer arithmetic on the
shapes) and refuses the model, naming the layer, once the running total
passes a limit. The defaults are sized for a Raspberry Pi 2 (1 GB of RAM, a
few hundred MFLOP/s): a classify that takes milliseconds, at most a few
tenths of a second, and a model that leaves most of the memory to the rest.

The output range is checked too: from a bound on the input's magnitude
(the uint8 range after preprocessing; 1 for a float input), each float
layer bounds its outputs, and one whose outputs could pass float32's
largest value is refused: its weights are too large for any classify to
give finite scores.
"""
from typing import NamedTuple

import numpy as np

from .errors import ModelFormatError

FLOAT32_MAX = float(np.finfo(np.float32).max)


class Cost(NamedTuple):
    """What one layer costs per sample: float multiply-adds, bit operations of binary
    dot products, and bytes of memory (its arrays, one thread's buffers and temporaries)
    on each kernel backend."""
    float_macs: int = 0
    binary_ops: int = 0
    memory_c: int = 0
    memory_numpy: int = 0

    def memory(self, backend):
        return self.memory_c if backend == "c" else self.memory_numpy

    def __add__(self, other):
        return Cost(*(a + b for a, b in zip(self, other)))


class Limits(NamedTuple):
    """The most one model may cost, summed over its layers.

    >>> Runtime("net.h5", limits=Limits(memory=512 << 20))

    Defaults: 2^25 float multiply-adds (a 33M-weight float net, about a tenth
    of a second per sample on a Pi 2), 2^30 bit operations (a binary net of a
    billion weight-bits per sample) and 256 MiB of memory. ``layers`` (per
    model or DDNN section) and ``devices`` (per DDNN) are counted before any
    is read, so a file cannot make loading itself slow: each layer costs a
    few milliseconds to check and bind on a Pi.
    """
    float_macs: int = 1 << 25
    binary_ops: int = 1 << 30
    memory: int = 256 << 20
    layers: int = 256
    devices: int = 64

    def over(self, count, what):
        """Why ``count`` ``what`` ("layers" or "devices") are too many, or None."""
        limit = getattr(self, what)
        if count > limit:
            return (f"{count:,} {what}, over the limit of {limit:,} (Limits.{what} in "
                    "edgebnn.limits; raise it knowingly)")
        return None

    def passed(self, total, backend):
        """The first limit ``total`` is over: ``(used, limit, what)``, or None."""
        for used, limit, what in ((total.float_macs, self.float_macs, "float multiply-adds"),
                                  (total.binary_ops, self.binary_ops, "binary bit operations"),
                                  (total.memory(backend), self.memory,
                                   f"bytes of memory on the {backend} backend")):
            if used > limit:
                return used, limit, what
        return None

    def check(self, total, backend, where):
        """Raise a ModelFormatError naming ``where`` if ``total`` is over a limit."""
        passed = self.passed(total, backend)
        if passed:
            used, limit, what = passed
            raise ModelFormatError(
                f"{where}: the model reaches {used:,} {what} per sample here, over the "
                f"limit of {limit:,} (Limits in edgebnn.limits; raise it knowingly)")


def check_range(bound, where):
    """Refuse float outputs that can overflow float32 within the input's range."""
    if bound is not None and not bound <= FLOAT32_MAX:
        raise ModelFormatError(
            f"{where}: outputs can reach {bound:.3g} for inputs within the model's range, beyond "
            f"float32's largest value {FLOAT32_MAX:.3g}: the weights are too large for finite "
            "scores")

