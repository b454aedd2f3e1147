"""What a kernel backend provides: the contract ``c_library`` and ``numpy_twin`` both keep.

A backend is a module with the members of :class:`Backend`, giving the same
results bit for bit, float dense and convolution layers' to rounding
(tests/test_kernels.py checks both modules against this class, names and
signatures). Its plans turn one layer's constant arrays into the backend's
form once, at model load; a :class:`Link` then pairs a plan with the buffers it writes, and
``chain`` runs a list of links as one call: the kernel layers of a model
that follow each other, for one sample or for a batch.

Buffers: ``out`` holds one sample's output (1-D), or one row per sample of
a batch (2-D); bits outputs are packed signs, otherwise float32 values.
``work`` is one sample's scratch (``DensePlanes``: its input's 8 bit
planes; ``DenseInt8``: its quantized input, ``int8_row(n_in)`` bytes; the
samples of a batch take turns) or None.
"""
from typing import Callable, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from . import Link

Run = Callable[[np.ndarray], np.ndarray]


def int8_row(n_in):
    """Bytes of a row of int8 values as the C kernel reads them, 32 at a time (csrc/bnn.h)."""
    return -(-n_in // 32) * 32


def int8_shape(n_out, n_in):
    """``(rows, row bytes)`` of int8 weights as the C kernel reads them: rows padded to
    ``int8_row`` bytes, and their count to a multiple of 4 (it computes 4 rows at once)."""
    return -(-n_out // 4) * 4, int8_row(n_in)


class Plan(Protocol):
    def runner(self, *, work: Optional[np.ndarray], out: np.ndarray) -> Run:
        """``run(x) -> out``: ``chain`` of this plan's one link."""


@runtime_checkable
class Backend(Protocol):
    """The module-level members of a kernel backend."""
    name: str

    def DenseBits(self, weight: np.ndarray, n_bits: int, threshold: Optional[np.ndarray] = None,
                  flip: Optional[np.ndarray] = None) -> Plan:
        """Dense layer on packed signs; ``weight`` rows padded to whole 64-bit words.

        Without ``threshold`` and ``flip`` it writes the integer dot products
        as float32, else the packed bits ``(dot >= threshold) XOR flip``."""

    def DensePlanes(self, weight: np.ndarray, n_values: int, threshold: Optional[np.ndarray] = None,
                    flip: Optional[np.ndarray] = None) -> Plan:
        """Dense layer with +-1 weights on uint8 values: the exact integer dot products."""

    def ConvPool(self, shape, weight: np.ndarray, threshold: np.ndarray, flip: np.ndarray) -> Plan:
        """Binary convolution, max pool and threshold fused; ``shape`` a ``geometry.ConvShape``."""

    def DenseInt8(self, weight: np.ndarray, scale: np.ndarray, bias: np.ndarray,
                  relu: bool) -> Plan:
        """Dense layer with int8 weights (out, in) in [-127, 127] on float32 values, each
        sample's values quantized to int8 by their own largest magnitude (bnn.h's formula);
        NaN or infinity raise InputError."""

    def DenseFloat(self, weight_t: np.ndarray, bias: np.ndarray, relu: bool) -> Plan:
        """Float dense layer, ``weight_t`` (in, out) float32: ``x @ weight_t + bias``. The one
        plan whose results agree between backends to rounding only (summation order):
        the C kernel's are the same bits on every path, one sample or a batch; the
        twin's (BLAS) may differ in the last bits between a batch and one by one."""

    def ConvFloat(self, shape, columns: np.ndarray, bias: np.ndarray, relu: bool) -> Plan:
        """Float convolution, channels last, on a ``geometry.ConvShape`` (pool 1x1);
        ``columns`` (kernel_h * kernel_w * C, out) float32. Equal to rounding, as
        ``DenseFloat``: each output is ``DenseFloat`` of its window."""

    def PoolFloat(self, shape, average: bool) -> Plan:
        """Float max (or average) pooling, channels last, windows ``shape.kernel_*`` in size
        and ``shape.stride_*`` apart, no padding."""

    def PackSigns(self, n: int) -> Plan:
        """float32 values -> packed signs, sign(0) = +1; NaN or infinity raise InputError."""

    def Preprocess(self, n: int, dtype: np.dtype, scale: float, offset: float) -> Plan:
        """uint8 or float32 values -> float32 ``x * scale + offset``, rounded as NumPy rounds
        in float32 (no fused multiply-add)."""

    def ScaleShift(self, scale: np.ndarray, shift: np.ndarray) -> Plan:
        """float32 ``x * scale + shift``, rounded as NumPy rounds (no fused multiply-add)."""

    def summarize(self, logits: np.ndarray) -> Tuple[int, float, float]:
        """``(label, confidence, normalized_entropy)`` of one vector of scores (``exits.summarize``)."""

    def summarize_rows(self, logits: np.ndarray) -> List[Tuple[int, float, float]]:
        """``summarize`` of each row of ``logits`` (samples, classes), exactly as ``summarize`` gives it."""

    def chain(self, links: Sequence[Link]) -> Run:
        """``run(x) -> links[-1].out``: ``x`` through every link, each reading its predecessor's ``out``.

        ``x`` is one sample, or, when the links' buffers hold a batch, as
        many rows as they have, computed bit for bit as one by one."""

