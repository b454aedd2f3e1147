"""Binary dense layer: +-1 weights, XOR-popcount dot products in the kernel.

Input: packed signs (after a ``sign`` or another binary layer), or, as the
first layer, the raw uint8 input, whose exact integer dot product with the
signs is taken through its 8 bit planes. Output: packed signs through the
folded threshold (``threshold`` and ``flip`` present), or the integer dot
products (exact in float32) for the float layers that give the final scores.
"""
import numpy as np

from ..bitpack import packed_bytes, padding_mask, word_padded
from ..errors import ModelFormatError
from ..limits import Cost
from .base import Layer, Signal, check_shape, checked_array


class BinaryDense(Layer):
    kind = "binary_dense"
    ARRAYS = {"weight": "uint8", "threshold": "int32", "flip": "uint8"}
    OPTIONAL = ("threshold", "flip")
    TAKES_RAW_INPUT = True

    def __init__(self, weight, threshold=None, flip=None):
        self.weight = checked_array(weight, np.uint8, "weight", ndim=2)
        self.threshold, self.flip = check_threshold(threshold, flip, self.weight.shape[0])

    def bind(self, source, kernels):
        n_out, row_bytes = self.weight.shape
        if source.kind == "bits":
            layout, n_in = source.shape, source.size
        elif source.kind == "uint8":
            n_in = source.size
            layout = (n_in,)                # the raw input, flattened
        else:
            raise ModelFormatError(
                f"binary_dense takes packed signs or the raw uint8 input, not "
                f"{source.describe()}; put a sign layer before it")
        check_shape(self.weight, (n_out, packed_bytes(layout)), "weight")
        if n_in * (255 if source.kind == "uint8" else 1) >= 1 << 24:
            raise ModelFormatError(f"{n_in} inputs: dot products could exceed 2^24, "
                                   f"beyond exact float32 scores")
        check_padding_bits(self.weight, layout)
        self._n_in = n_in
        # rows padded to whole words so the kernel never reads a partial word
        self._stride = word_padded(row_bytes)
        padded = np.zeros((n_out, self._stride), np.uint8)
        padded[:, :row_bytes] = self.weight
        self._planes = source.kind == "uint8"
        if self._planes:
            self._plan = kernels.DensePlanes(padded, n_in, self.threshold, self.flip)
        else:
            self._plan = kernels.DenseBits(padded, n_in, self.threshold, self.flip)
        if self.threshold is None:
            return Signal("float", (n_out,))
        return Signal("bits", (n_out,))

    def cost(self, source):
        n_out, row_bytes = self.weight.shape
        planes = source.kind == "uint8"
        n_in, stride = source.size, word_padded(row_bytes)
        kept = self.weight.nbytes + n_out * stride + 5 * n_out      # + padded rows, thresholds
        buffers = 4 * n_out + (8 * stride if planes else 0)
        # the twin unpacks the weights to int32 +-1 (a second int32 copy while it does)
        unpacked = n_out * (n_in if planes else 8 * stride)
        return Cost(binary_ops=n_out * n_in * (8 if planes else 1), memory_c=kept + buffers,
                    memory_numpy=kept + buffers + 8 * unpacked + 8 * (unpacked // n_out))

    def bound(self, magnitude):
        if self.threshold is not None:
            return None
        return float(self._n_in * (255 if self._planes else 1))

    def runner(self):
        n_out = self.weight.shape[0]
        work = np.zeros(8 * self._stride if self._planes else 0, np.uint8)
        if self.threshold is not None:
            return self._plan.runner(work, np.zeros(word_padded(-(-n_out // 8)), np.uint8))
        return self._plan.runner(work, np.zeros(n_out, np.float32))


def check_threshold(threshold, flip, n_out):
    """Both or neither of the folded batch norm + sign arrays, one per output."""
    if (threshold is None) != (flip is None):
        raise ModelFormatError("threshold and flip come together (both or neither)")
    if threshold is None:
        return None, None
    threshold = checked_array(threshold, np.int32, "threshold", ndim=1)
    flip = checked_array(flip, np.uint8, "flip", ndim=1)
    check_shape(threshold, (n_out,), "threshold")
    check_shape(flip, (n_out,), "flip")
    if flip.max(initial=0) > 1:
        raise ModelFormatError("flip: values must be 0 or 1")
    return threshold, flip


def check_padding_bits(weight, layout):
    """Padding bits must be 0: the kernel counts every bit it reads.

    ``layout`` is the logical shape of one output's weights (last axis packed).
    """
    mask = padding_mask(layout)
    stray = weight.reshape(len(weight), -1) & ~mask
    if stray.any():
        row = int(np.flatnonzero(stray.any(axis=1))[0])
        raise ModelFormatError(f"weight: row {row} has padding bits set (they must be 0)")
