"""Signs <-> packed bits, the layout every binary layer and the C kernel share.

A bits tensor of logical shape ``(..., n)`` packs its last axis: 8 signs per
byte, most significant bit first (the order of ``numpy.packbits``), bit 1
meaning +1 and 0 meaning -1, ``sign(0) = +1``, the last byte of each run
padded with 0 bits. The padding is never counted: over ``n`` real bits,
``dot(a, w) = n - 2 * popcount(a XOR w)`` holds because padding bits are 0
in both operands.
"""
import numpy as np

WORD_BYTES = 8   # the kernel reads 64-bit words; buffers are padded to whole words


def sign_bytes(n):
    """Bytes that hold ``n`` packed signs: one row, its last byte padded (C: bnn_sign_bytes)."""
    return -(-n // 8)


def packed_bytes(shape):
    """Bytes of a bits tensor of logical ``shape`` (last axis packed)."""
    return int(np.prod(shape[:-1], dtype=np.int64)) * sign_bytes(shape[-1])


def word_padded(nbytes):
    """``nbytes`` rounded up to whole 64-bit words."""
    return -(-nbytes // WORD_BYTES) * WORD_BYTES


def pack_signs(values):
    """Pack ``values >= 0`` along the last axis (sign(0) = +1)."""
    return np.packbits(np.asarray(values) >= 0, axis=-1)


def unpack_signs(packed, n):
    """+1/-1 int32 values of the first ``n`` bits along the last axis."""
    signs = np.unpackbits(np.asarray(packed, np.uint8), axis=-1, count=n).astype(np.int32)
    signs *= 2                  # in place: the temporaries of ``* 2 - 1`` are a NumPy build's choice
    signs -= 1
    return signs


def padding_mask(shape):
    """Packed bytes of a bits tensor of ``shape`` with every real bit set to 1."""
    return np.packbits(np.ones(shape, bool), axis=-1).reshape(-1)
