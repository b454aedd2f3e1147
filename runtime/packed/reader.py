"""The strict reader of packed files: every failure names the file and the place.

``read_packed`` checks a file's seal (runtime/packed/seal.py) before libhdf5 parses
any of its bytes, then lets libhdf5 parse exactly the bytes that were
checked, from memory. A ``Reader`` walks the open file trusting nothing:
links are refused, not followed; every attribute's type and size and every
dataset's storage are checked before anything is read; and whatever h5py,
libhdf5 or NumPy raise on a damaged structure becomes a ``ModelFormatError``
naming the file and the place. format.py builds models and DDNNs with it.
"""
import io
import os

import h5py
import numpy as np

from . import seal
from ..errors import EdgeError, ModelFileError, ModelFormatError, ModelVersionError
from ..layers import KINDS
from ..limits import Limits
from ..model import Model

MAGIC = "edgebnn-packed"          # the root's "format" attribute
VERSION = seal.VERSION
LEGACY_VERSION = 1              # no seal, variable-length strings: read only by ``upgrade``
MAX_MODEL_BYTES = 512 << 20
MAX_ATTRIBUTE_BYTES = 1 << 20


def read_packed(path, parse, max_bytes=MAX_MODEL_BYTES, legacy=False, trusted_keys=None):
    """``parse(reader)`` on the packed file at ``path``; every failure is a ModelFileError
    or ModelFormatError naming the file and the place.

    ``legacy`` also takes files of format version 1 (no seal), for ``upgrade``.
    ``trusted_keys`` (public key files or objects; None: no check) admits only files
    signed by one of them (signing.py), checked before libhdf5 reads a byte.
    """
    path = os.fspath(path)
    data = _read_bytes(path, max_bytes)
    version = VERSION
    if legacy and not data.startswith(seal.MAGIC):
        version = LEGACY_VERSION
    else:
        seal.check(path, data)
    if trusted_keys is not None:
        from . import signing
        signing.verify(path, data, signing.trusted(trusted_keys))
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except Exception as error:          # libhdf5 refused the superblock
        raise ModelFileError(f"{path}: not a readable HDF5 file ({error})") from None
    reader = Reader(path, f, len(data), max_bytes, version)
    try:
        with f:
            reader.root()
            return parse(reader)
    except EdgeError:
        raise
    except Exception as error:          # whatever h5py, libhdf5 or NumPy raise on a damaged file
        raise ModelFormatError(f"{path}: {reader.place}: unreadable "
                               f"({type(error).__name__}: {error})") from None


def _read_bytes(path, max_bytes):
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise ModelFileError(f"{path}: {size} bytes, over the {max_bytes}-byte limit "
                                     "for a model file")
            return f.read(size)         # read(n) allocates n bytes first: no more than needed
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, not a model file") from None
    except ModelFileError:
        raise
    except OSError as error:
        raise ModelFileError(f"{path}: cannot be read ({error})") from None


class Reader:
    """One pass over an open file; every error names the file and the place."""

    def __init__(self, path, f, file_size, max_bytes, version):
        self.path = path
        self.f = f
        self.file_size = file_size
        self.budget = max_bytes
        self.version = version
        self.place = "/"

    def fail(self, where, problem):
        raise ModelFormatError(f"{self.path}: {where}: {problem}")

    def root(self):
        """The root's links, magic and version."""
        self.linked_once(self.f, "/")
        f = self.f
        magic = _text(self.attr(f, "format", "/"))
        if magic != MAGIC:
            self.fail("/", f"format attribute is {magic!r}, expected {MAGIC!r}: not a packed model")
        version = self.attr(f, "format_version", "/")
        if not _is_int(version):
            self.fail("/", f"format_version {version!r} is not an integer")
        if int(version) > VERSION:
            raise ModelVersionError(
                f"{self.path}: format_version {int(version)} is newer than this "
                f"reader (knows up to {VERSION}); upgrade edgebnn")
        if int(version) != self.version:
            sealed = "sealed" if self.version == VERSION else "unsealed"
            self.fail("/", f"format_version {int(version)} in a file {sealed} as version "
                           f"{self.version}")

    def attr(self, obj, name, where):
        """An attribute, its type and size checked before it is read."""
        self.place = f"{where} attribute {name!r}"
        if name not in obj.attrs:
            self.fail(where, f"missing attribute {name!r}")
        info = obj.attrs.get_id(name)
        dtype, shape = info.dtype, info.shape
        legacy_text = self.version == LEGACY_VERSION and h5py.check_string_dtype(dtype)
        if dtype.kind not in "iufS" and not legacy_text:
            self.fail(where, f"attribute {name!r} has the type {dtype}; supported: numbers and "
                             "fixed-length strings")
        if shape is None:
            self.fail(where, f"attribute {name!r} is empty")
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > MAX_ATTRIBUTE_BYTES:
            self.fail(where, f"attribute {name!r} of shape {shape} is over the "
                             f"{MAX_ATTRIBUTE_BYTES}-byte limit for an attribute")
        return obj.attrs[name]

    def member(self, group, name, where, kind):
        """``group[name]``, a ``kind`` (h5py.Group or h5py.Dataset) reached by its only link."""
        self.place = where
        link = group.get(name, getlink=True)
        if link is None:
            self.fail(where, "missing")
        if not isinstance(link, h5py.HardLink):
            self.fail(where, f"is a {type(link).__name__}: links are refused, not followed")
        obj = group[name]
        if not isinstance(obj, kind):
            self.fail(where, f"is not a {'group' if kind is h5py.Group else 'dataset'}")
        self.linked_once(obj, where)
        return obj

    def count(self, group, what, where, limits):
        """Refuse more members of ``group`` than ``limits`` allow ``what``, before any is read."""
        problem = (limits or Limits()).over(len(group), what)
        if problem:
            self.fail(where, problem)

    def linked_once(self, obj, where):
        """One hard link per object: no aliases of another object, no cycles."""
        links = h5py.h5o.get_info(obj.id).rc
        if links != 1:
            self.fail(where, f"is reached by {links} links; every object must have exactly one")

    def only(self, group, attrs, members, where):
        """Refuse attributes and members of ``group`` beyond the ones named."""
        self.place = where
        extra = set(group.attrs) - set(attrs)
        if extra:
            self.fail(where, f"unexpected attributes {listed(extra)}")
        if set(group) != set(members):
            self.fail(where, f"expected the groups {sorted(members)}, found {listed(group)}")

    def model(self, group, where, kernels, limits):
        """A ``Model`` from a group holding a model header and ``layers``."""
        header = self.header(group, where)
        layers = self.layers(self.member(group, "layers", _join(where, "layers"), h5py.Group),
                             _join(where, "layers"), limits)
        self.place = where
        try:
            return Model(layers, kernels=kernels, limits=limits, **header)
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

    def layers(self, group, where, limits):
        self.place = where
        self.count(group, "layers", where, limits)
        names = sorted(group)
        if names != sorted(str(i) for i in range(len(names))):
            self.fail(where, f"members must be named 0..n-1, found {listed(names)}")
        return [self.layer(self.member(group, str(i), f"{where}/{i}", h5py.Group), f"{where}/{i}")
                for i in range(len(names))]

    def layer(self, group, where):
        kind = _text(self.attr(group, "kind", where))
        cls = KINDS.get(kind)
        if cls is None:
            self.fail(where, f"unknown layer kind {kind!r}; supported: {', '.join(sorted(KINDS))}")
        where = f"{where} ({kind})"
        extra = set(group.attrs) - set(cls.ATTRS) - {"kind"}
        if extra:
            self.fail(where, f"unexpected attributes {listed(extra)}")
        missing = sorted(set(cls.ARRAYS) - set(cls.OPTIONAL) - set(group))
        unexpected = sorted(set(group) - set(cls.ARRAYS))
        if missing or unexpected:
            self.fail(where, f"datasets missing {missing}, unexpected {listed(unexpected)}")
        kwargs = {}
        for name, kind_type in cls.ATTRS.items():
            kwargs[name] = self.typed_attr(group, name, kind_type, where)
        for name, dtype in cls.ARRAYS.items():
            if name in group:
                dset = self.member(group, name, f"{where}/{name}", h5py.Dataset)
                kwargs[name] = self.dataset(dset, np.dtype(dtype), f"{where}/{name}")
        self.place = where
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
        """A dataset's array, its storage checked to lie in this file before it is read."""
        if dset.shape is None:
            self.fail(where, "is empty (no dataspace)")
        if dset.dtype.kind != dtype.kind or dset.dtype.itemsize != dtype.itemsize:
            self.fail(where, f"dtype {dset.dtype}, expected {dtype}")
        plist = dset.id.get_create_plist()
        if plist.get_layout() != h5py.h5d.CONTIGUOUS or plist.get_external_count():
            self.fail(where, "must be stored contiguous in this file (not chunked, compressed, "
                             "compact, virtual or external)")
        nbytes = int(np.prod(dset.shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > self.budget:
            self.fail(where, f"declares {nbytes} bytes, over the {self.budget}-byte "
                             "limit left for this model")
        self.budget -= nbytes
        offset = dset.id.get_offset()
        stored = dset.id.get_storage_size() == nbytes and offset is not None and \
            seal.USER_BLOCK <= offset <= self.file_size - nbytes
        if nbytes and not stored:
            self.fail(where, f"declares {nbytes} bytes that are not stored in the file (truncated?)")
        data = np.ascontiguousarray(dset[()], dtype=dtype)
        # NaN and infinities show in the extremes: no mask of a byte per value is made
        if dtype.kind == "f" and data.size and not np.isfinite([data.min(), data.max()]).all():
            self.fail(where, "contains NaN or infinite values")
        return data


def listed(names, most=10):
    """Names for a refusal, sorted, the first ``most`` of them: a crafted file may hold
    100,000, and a message is not the place for them."""
    names = sorted(names)
    shown = ", ".join(map(repr, names[:most]))
    return f"[{shown}]" if len(names) <= most else f"[{shown}, ... {len(names) - most:,} more]"


def _join(where, name):
    return f"{where.rstrip('/')}/{name}" if where != "/" else name


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value):
    return _is_int(value) or isinstance(value, (float, np.floating))
