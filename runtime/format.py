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
STAMP_ATTRS = ("format", "format_version")
MODEL_ATTRS = STAMP_ATTRS + ("input_shape", "input_dtype", "input_scale", "input_offset", "classes")


def save_model(model, path):
    """Write ``model`` to ``path`` in the packed format (overwrites)."""
    with h5py.File(path, "w") as f:
        write_stamp(f)
        write_model(f, model)


def write_stamp(f):
    """The magic and version every packed file starts with."""
    f.attrs["format"] = MAGIC
    f.attrs["format_version"] = VERSION


def write_model(group, model):
    """A model's header attributes and its ``layers`` into ``group``."""
    group.attrs["input_shape"] = np.array(model.input_shape, np.int64)
    group.attrs["input_dtype"] = model.input_kind
    group.attrs["input_scale"] = model.input_scale
    group.attrs["input_offset"] = model.input_offset
    group.attrs["classes"] = np.array(model.classes, dtype=h5py.string_dtype())
    layers = group.create_group("layers")
    for i, layer in enumerate(model.layers):
        member = layers.create_group(str(i))
        member.attrs["kind"] = layer.kind
        attrs, arrays = layer.fields()
        for name, value in attrs.items():
            member.attrs[name] = value
        for name, value in arrays.items():
            member.create_dataset(name, data=value)


def load_model(path, kernels=None, max_bytes=MAX_MODEL_BYTES):
    """Read and validate a packed model file; return a ready ``Model``."""
    with open_packed(path, max_bytes) as reader:
        reader.only(reader.f, MODEL_ATTRS, {"layers"}, "/")
        return reader.model(reader.f, "/", kernels)


class open_packed:
    """``with open_packed(path) as reader``: an HDF5 file checked for the magic and version."""

    def __init__(self, path, max_bytes=MAX_MODEL_BYTES):
        self.path = os.fspath(path)
        self.max_bytes = max_bytes

    def __enter__(self):
        try:
            self.handle = h5py.File(self.path, "r")
        except FileNotFoundError:
            raise ModelFileError(f"{self.path}: no such file") from None
        except OSError as error:
            raise ModelFileError(f"{self.path}: not a readable HDF5 file ({error})") from None
        reader = _Reader(self.path, self.handle, self.max_bytes)
        try:
            reader.stamp()
        except BaseException:
            self.handle.close()
            raise
        return reader

    def __exit__(self, *exc):
        self.handle.close()


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

    def stamp(self):
        """The root's magic and version."""
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

    def only(self, group, attrs, members, where):
        """Refuse attributes and members of ``group`` beyond the ones named."""
        extra = set(group.attrs) - set(attrs)
        if extra:
            self.fail(where, f"unexpected attributes {sorted(extra)}")
        if set(group) != set(members):
            self.fail(where, f"expected the groups {sorted(members)}, found {sorted(group)}")

    def model(self, group, where, kernels):
        """A ``Model`` from a group holding a model header and ``layers``."""
        header = self.header(group, where)
        layers = self.layers(group["layers"], f"{where.rstrip('/')}/layers")
        try:
            return Model(layers, kernels=kernels, **header)
        except ModelFormatError as error:
            prefix = "" if where == "/" else f"{where}: "
            raise ModelFormatError(f"{self.path}: {prefix}{error}") from None

    def header(self, group, where):
        shape = np.asarray(self.attr(group, "input_shape", where))
        if shape.ndim != 1 or shape.dtype.kind not in "iu":
            self.fail(where, f"input_shape {shape!r} is not a list of integers")
        classes = np.asarray(self.attr(group, "classes", where))
        if classes.ndim != 1:
            self.fail(where, "classes must be a list of names")
        header = {
            "input_shape": tuple(int(n) for n in shape),
            "input_dtype": _text(self.attr(group, "input_dtype", where)),
            "classes": [_text(c) for c in classes],
        }
        for name in ("input_scale", "input_offset"):
            value = self.attr(group, name, where)
            if not _is_number(value):
                self.fail(where, f"{name} {value!r} is not a number")
            header[name] = float(value)
        return header

    def layers(self, group, where):
        if not isinstance(group, h5py.Group):
            self.fail(where, "is not a group")
        names = sorted(group)
        if names != sorted(str(i) for i in range(len(names))):
            self.fail(where, f"members must be named 0..n-1, found {names}")
        return [self.layer(group[str(i)], f"{where}/{i}") for i in range(len(names))]

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
