"""Layer kinds of the packed format, one module each, found by ``kind``."""
from .base import Layer, Signal
from .batch_norm import BatchNorm
from .binary_conv import BinaryConv2d
from .binary_dense import BinaryDense
from .dense import Dense
from .sign import Sign

KINDS = {cls.kind: cls for cls in (Dense, BatchNorm, Sign, BinaryDense, BinaryConv2d)}

__all__ = ["KINDS", "Layer", "Signal", "Dense", "BatchNorm", "Sign", "BinaryDense",
           "BinaryConv2d"]
