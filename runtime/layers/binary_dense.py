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
from .base import KernelLayer, Signal, bits_output, check_shape, checked_array


class BinaryDense(KernelLayer):
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
        self._largest_dot = n_in * (255 if source.kind == "uint8" else 1)
        # rows padded to whole words so the kernel never reads a partial word
        stride = word_padded(row_bytes)
        padded = np.zeros((n_out, stride), np.uint8)
        padded[:, :row_bytes] = self.weight
        if source.kind == "uint8":
            self.plan = kernels.DensePlanes(padded, n_in, self.threshold, self.flip)
            self.work_bytes = 8 * stride            # the input's bit planes
        else:
            self.plan = kernels.DenseBits(padded, n_in, self.threshold, self.flip)
            self.work_bytes = 0
        if self.threshold is None:
            self.output = np.float32, n_out
            return Signal("float", (n_out,))
        self.output = bits_output(n_out)
        return Signal("bits", (n_out,))

    def cost(self, source):
        n_out, row_bytes = self.weight.shape
        return self.shape_cost(n_out, row_bytes, source.size, planes=source.kind == "uint8")

    @staticmethod
    def shape_cost(n_out, row_bytes, n_in, planes):
        """The cost of a layer of ``n_out`` rows of ``row_bytes`` on ``n_in`` inputs
        (``planes``: raw uint8 input, read as 8 bit planes)."""
        stride = word_padded(row_bytes)
        # the rows as stored, padded to words and (on AVX-512) regrouped; thresholds;
        # on uint8 input, (on AVX2) a byte per sign, rows of 32 and blocks of 4 rows
        kept = n_out * row_bytes + 2 * n_out * stride + 5 * n_out
        if planes:
            kept += -(-n_out // 4) * 4 * -(-n_in // 32) * 32
        buffers = 4 * n_out + (8 * stride if planes else 0)
        # the twin unpacks the weights to int32 +-1, through a byte per sign
        unpacked = n_out * (n_in if planes else 8 * stride)
        return Cost(binary_ops=n_out * n_in * (8 if planes else 1), memory_c=kept + buffers,
                    memory_numpy=kept + buffers + 5 * unpacked + 8 * (unpacked // n_out))

    def bound(self, magnitude):
        return None if self.threshold is not None else float(self._largest_dot)


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
