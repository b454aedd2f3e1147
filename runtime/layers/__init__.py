"""Layer kinds of the packed format, one module each, found by ``kind``."""
from .base import Layer, Signal
from .batch_norm import BatchNorm
from .binary_conv import BinaryConv2d
from .binary_dense import BinaryDense
from .conv import Conv2d
from .dense import Dense
from .dense_int8 import DenseInt8
from .pool import Pool2d
from .sign import Sign

KINDS = {cls.kind: cls for cls in (Dense, DenseInt8, Conv2d, Pool2d, BatchNorm, Sign, BinaryDense,
                                   BinaryConv2d)}

__all__ = ["KINDS", "Layer", "Signal", "Dense", "DenseInt8", "Conv2d", "Pool2d", "BatchNorm", "Sign",
           "BinaryDense", "BinaryConv2d"]
