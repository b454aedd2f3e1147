"""Aggregators that merge what several DDNN devices sent for one sample.

Every function takes one entry per device, ``None`` for a device that is
missing (dead, or late past the deadline), and combines the devices that
are present, so a sample still gets an answer when some devices fail.

Class scores (float vectors, one per device):

- ``max``: the element-wise max over the present devices;
- ``average``: the element-wise mean over the present devices;
- ``concat``: the devices' vectors end to end in device order, an absent
  device's slot filled with zeros. A layer follows a concatenation and
  expects every slot, so a missing device has to be given some value; zero
  is the value that adds nothing to the next layer's dot products.

Packed feature maps (signs, docs/FORMAT.md; one packed array per device):

- ``max``: the max of +-1 values is +1 when any is +1: a bitwise OR of the
  packed bytes (padding bits stay 0), still packed signs;
- ``average``: the mean of the unpacked +-1 values, float32 in [-1, 1] of
  the map's logical shape;
- ``concat``: the packed maps one after the other, each device in its own
  slot; an absent device's slot is all -1 (zero bytes), the packed
  counterpart of "zeros". The result is a bits tensor of
  :func:`concat_shape`.
"""
import numpy as np

from ..bitpack import packed_bytes, sign_bytes, unpack_signs

KINDS = ("max", "average", "concat")


def _present(entries):
    present = [entry for entry in entries if entry is not None]
    if not present:
        raise ValueError("no device is present: nothing to aggregate")
    return present


def max_scores(scores):
    """Element-wise max of the present devices' score vectors."""
    return np.max(_present(scores), axis=0).astype(np.float32)


def average_scores(scores):
    """Element-wise mean of the present devices' score vectors."""
    return np.mean(_present(scores), axis=0, dtype=np.float64).astype(np.float32)


def concat_scores(scores):
    """All devices' vectors end to end; a missing device gives zeros."""
    size = len(_present(scores)[0])
    zeros = np.zeros(size, np.float32)
    return np.concatenate([zeros if s is None else np.asarray(s, np.float32) for s in scores])


def max_bits(maps):
    """Max over +-1 values of packed maps: the bitwise OR of their bytes."""
    return np.bitwise_or.reduce(_present(maps), axis=0).astype(np.uint8)


def average_bits(maps, shape):
    """Mean of the present maps' +-1 values: float32 in [-1, 1] of the logical ``shape``."""
    present = _present(maps)
    rows = shape[:-1] + (sign_bytes(shape[-1]),)
    total = np.zeros(shape, np.int32)
    for packed in present:
        total += unpack_signs(np.asarray(packed).reshape(rows), shape[-1])
    return (total / len(present)).astype(np.float32)


def concat_bits(maps, shape):
    """The packed maps in device slots; a missing device's slot is all -1 (zero bytes)."""
    _present(maps)
    nbytes = packed_bytes(shape)
    zeros = np.zeros(nbytes, np.uint8)
    return np.concatenate([zeros if m is None else np.asarray(m, np.uint8).reshape(-1)[:nbytes]
                           for m in maps])


def concat_shape(shape, devices):
    """Logical shape of ``devices`` maps of ``shape`` laid end to end.

    Packing works along the last axis, so stacking along a new first axis
    (or, for a 3-D map, along the height) keeps every device's bytes whole:
    the concatenation's packed form is exactly the devices' packed maps one
    after the other, whatever the number of channels.
    """
    shape = tuple(shape)
    if len(shape) < 3:
        return (devices,) + shape
    return (devices * shape[0],) + shape[1:]


def scores(kind, entries):
    """Aggregate class score vectors with ``kind`` (see the module's doc)."""
    return {"max": max_scores, "average": average_scores, "concat": concat_scores}[kind](entries)


def feature_maps(kind, entries, shape):
    """Aggregate packed feature maps of logical ``shape`` with ``kind``."""
    if kind == "max":
        return max_bits(entries)
    if kind == "average":
        return average_bits(entries, tuple(shape))
    return concat_bits(entries, tuple(shape))
