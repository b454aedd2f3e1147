"""The packed HDF5 model format: a strict reader and its writer.

docs/FORMAT.md is the contract. The reader trusts nothing in the file: every
size is checked against the file and a byte budget before anything is read,
so a hostile or broken file gives a ``ModelFileError`` / ``ModelFormatError``
naming the file and the group or dataset, never a crash or a huge allocation.
"""
import os

import h5py
import numpy as np

from .errors import ModelFileError, ModelFormatError, ModelVersionError
from .layers import KINDS
from .model import Model

MAGIC = "edgebnn-packed"
VERSION = 1
MAX_MODEL_BYTES = 512 << 20
HEADER_ATTRS = ("format", "format_version", "input_shape", "input_dtype",
                "input_scale", "input_offset", "classes")


def save_model(model, path):
    """Write ``model`` to ``path`` in the packed format (overwrites)."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = MAGIC
        f.attrs["format_version"] = VERSION
        f.attrs["input_shape"] = np.array(model.input_shape, np.int64)
        f.attrs["input_dtype"] = model.input_dtype.name
        f.attrs["input_scale"] = model.input_scale
        f.attrs["input_offset"] = model.input_offset
        f.attrs["classes"] = np.array(model.classes, dtype=h5py.string_dtype())
        layers = f.create_group("layers")
        for i, layer in enumerate(model.layers):
            group = layers.create_group(str(i))
            group.attrs["kind"] = layer.kind
            attrs, arrays = layer.fields()
            for name, value in attrs.items():
                group.attrs[name] = value
            for name, value in arrays.items():
                group.create_dataset(name, data=value)


def load_model(path, kernels=None, max_bytes=MAX_MODEL_BYTES):
    """Read and validate a packed model file; return a ready ``Model``."""
    path = os.fspath(path)
    try:
        handle = h5py.File(path, "r")
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except OSError as error:
        raise ModelFileError(f"{path}: not a readable HDF5 file ({error})") from None
    with handle as f:
        reader = _Reader(path, f, max_bytes)
        header = reader.header()
        layers = reader.layers()
    try:
        return Model(layers, kernels=kernels, **header)
    except ModelFormatError as error:
        raise ModelFormatError(f"{path}: {error}") from None


class _Reader:
    """One pass over an open file; every error names the file and the place."""

    def __init__(self, path, f, max_bytes):
        self.path = path
        self.f = f
        self.file_size = os.path.getsize(path)
        self.budget = max_bytes

    def fail(self, where, problem):
        raise ModelFormatError(f"{self.path}: {where}: {problem}")

    def attr(self, obj, name, where):
        if name not in obj.attrs:
            self.fail(where, f"missing attribute {name!r}")
        try:
            return obj.attrs[name]
        except (OSError, TypeError, ValueError) as error:
            self.fail(where, f"attribute {name!r} unreadable ({error})")

    def header(self):
        f = self.f
        magic = self.attr(f, "format", "/")
        if _text(magic) != MAGIC:
            self.fail("/", f"format attribute is {magic!r}, expected {MAGIC!r}: not a packed model")
        version = self.attr(f, "format_version", "/")
        if not _is_int(version):
            self.fail("/", f"format_version {version!r} is not an integer")
        if int(version) > VERSION:
            raise ModelVersionError(
                f"{self.path}: format_version {int(version)} is newer than this "
                f"reader (knows up to {VERSION}); upgrade the runtime")
        if int(version) < 1:
            self.fail("/", f"format_version {int(version)} is not valid")
        extra = set(f.attrs) - set(HEADER_ATTRS)
        if extra:
            self.fail("/", f"unexpected attributes {sorted(extra)}")
        if set(f) != {"layers"}:
            self.fail("/", f"expected exactly one group 'layers', found {sorted(f)}")
        shape = np.asarray(self.attr(f, "input_shape", "/"))
        if shape.ndim != 1 or shape.dtype.kind not in "iu":
            self.fail("/", f"input_shape {shape!r} is not a list of integers")
        classes = np.asarray(self.attr(f, "classes", "/"))
        if classes.ndim != 1:
            self.fail("/", "classes must be a list of names")
        header = {
            "input_shape": tuple(int(n) for n in shape),
            "input_dtype": _text(self.attr(f, "input_dtype", "/")),
            "classes": [_text(c) for c in classes],
        }
        for name in ("input_scale", "input_offset"):
            value = self.attr(f, name, "/")
            if not _is_number(value):
                self.fail("/", f"{name} {value!r} is not a number")
            header[name] = float(value)
        return header

    def layers(self):
        group = self.f["layers"]
        if not isinstance(group, h5py.Group):
            self.fail("layers", "is not a group")
        names = sorted(group)
        if names != sorted(str(i) for i in range(len(names))):
            self.fail("layers", f"members must be named 0..n-1, found {names}")
        return [self.layer(group[str(i)], f"layers/{i}") for i in range(len(names))]

    def layer(self, group, where):
        if not isinstance(group, h5py.Group):
            self.fail(where, "is not a group")
        kind = _text(self.attr(group, "kind", where))
        cls = KINDS.get(kind)
        if cls is None:
            self.fail(where, f"unknown layer kind {kind!r}; supported: {', '.join(sorted(KINDS))}")
        where = f"{where} ({kind})"
        extra = set(group.attrs) - set(cls.ATTRS) - {"kind"}
        if extra:
            self.fail(where, f"unexpected attributes {sorted(extra)}")
        missing = sorted(set(cls.ARRAYS) - set(cls.OPTIONAL) - set(group))
        unexpected = sorted(set(group) - set(cls.ARRAYS))
        if missing or unexpected:
            self.fail(where, f"datasets missing {missing}, unexpected {unexpected}")
        kwargs = {}
        for name, kind_type in cls.ATTRS.items():
            kwargs[name] = self.typed_attr(group, name, kind_type, where)
        for name, dtype in cls.ARRAYS.items():
            if name in group:
                kwargs[name] = self.dataset(group[name], np.dtype(dtype), f"{where}/{name}")
        try:
            return cls(**kwargs)
        except ModelFormatError as error:
            self.fail(where, str(error))

    def typed_attr(self, group, name, kind_type, where):
        value = self.attr(group, name, where)
        if kind_type is str:
            return _text(value)
        if kind_type is int:
            if not _is_int(value):
                self.fail(where, f"attribute {name} {value!r} is not an integer")
            return int(value)
        if kind_type is tuple:
            value = np.asarray(value)
            if value.ndim != 1 or value.dtype.kind not in "iu":
                self.fail(where, f"attribute {name} {value!r} is not a list of integers")
            return tuple(int(v) for v in value)
        raise TypeError(f"unsupported attribute type {kind_type}")

    def dataset(self, dset, dtype, where):
        if not isinstance(dset, h5py.Dataset):
            self.fail(where, "is not a dataset")
        if dset.dtype.kind != dtype.kind or dset.dtype.itemsize != dtype.itemsize:
            self.fail(where, f"dtype {dset.dtype}, expected {dtype}")
        if dset.chunks is not None or dset.compression is not None:
            self.fail(where, "chunked or compressed datasets are not supported")
        nbytes = int(np.prod(dset.shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > self.budget:
            self.fail(where, f"declares {nbytes} bytes, over the {self.budget}-byte "
                             "limit left for this model")
        self.budget -= nbytes
        offset = dset.id.get_offset()
        if nbytes and (offset is None or offset + nbytes > self.file_size):
            self.fail(where, f"declares {nbytes} bytes that are not stored in the file (truncated?)")
        try:
            data = dset[()]
        except (OSError, ValueError) as error:
            self.fail(where, f"unreadable ({error})")
        data = np.ascontiguousarray(data, dtype=dtype)
        if dtype.kind == "f" and not np.isfinite(data).all():
            self.fail(where, "contains NaN or infinite values")
        return data


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value):
    return _is_int(value) or isinstance(value, (float, np.floating))
