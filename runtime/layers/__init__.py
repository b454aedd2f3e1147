"""Layer kinds of the packed format, one module each, found by ``kind``."""
from .base import Layer, Signal
from .dense import Dense

KINDS = {cls.kind: cls for cls in (Dense,)}

__all__ = ["KINDS", "Layer", "Signal", "Dense"]
