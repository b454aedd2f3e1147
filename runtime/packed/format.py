"""The packed HDF5 format: the sealed, deterministic writer, and models and DDNNs read back.

docs/FORMAT.md is the contract. The writer is deterministic (no
timestamps): the same model gives the same bytes, so a digest names a
model, and each file is sealed (runtime/packed/seal.py) so that the reader
(runtime/packed/reader.py) can check its bytes before libhdf5 parses any.
"""
import io
import os

import h5py
import numpy as np

from . import seal
from ..errors import ModelFormatError
from ..model import Model
from .reader import LEGACY_VERSION, MAGIC, MAX_MODEL_BYTES, VERSION, listed, read_packed

STAMP_ATTRS = ("format", "format_version")
MODEL_ATTRS = STAMP_ATTRS + ("input_shape", "input_dtype", "input_scale", "input_offset", "classes")
HEADER_ATTRS = MODEL_ATTRS[len(STAMP_ATTRS):]
SYSTEM = "ddnn"
DDNN_ATTRS = STAMP_ATTRS + ("system", "classes", "local_aggregate", "local_threshold",
                            "cloud_aggregate")
EDGE_ATTRS = ("edge_threshold",)       # with an "edge" group only

__all__ = ["save_model", "load_model", "save_ddnn", "load_ddnn", "upgrade", "VERSION",
           "LEGACY_VERSION", "MAGIC"]


# writing -------------------------------------------------------------------

def save_model(model, path):
    """Write ``model`` to ``path`` in the packed format (overwrites)."""
    def fill(f):
        write_stamp(f)
        write_model(f, model)
    write_packed(path, fill)


def write_packed(path, fill):
    """An HDF5 file filled by ``fill(root)``, sealed, then put at ``path`` in one rename."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", userblock_size=seal.USER_BLOCK) as f:
        fill(f)
    path = os.fspath(path)
    partial = f"{path}.partial"
    with open(partial, "wb") as out:
        out.write(seal.seal(buffer.getbuffer()))
    os.replace(partial, path)


def write_stamp(f):
    """The magic and version every packed file starts with."""
    f.attrs["format"] = fixed_text(MAGIC)
    f.attrs["format_version"] = VERSION


def write_model(group, model):
    """A model's header attributes and its ``layers`` into ``group``."""
    group.attrs["input_shape"] = np.array(model.input_shape, np.int64)
    group.attrs["input_dtype"] = fixed_text(model.input_kind)
    group.attrs["input_scale"] = model.input_scale
    group.attrs["input_offset"] = model.input_offset
    group.attrs["classes"] = fixed_text(model.classes)
    layers = group.create_group("layers")
    for i, layer in enumerate(model.layers):
        member = layers.create_group(str(i))
        member.attrs["kind"] = fixed_text(layer.kind)
        attrs, arrays = layer.fields()
        for name, value in attrs.items():
            member.attrs[name] = fixed_text(value) if isinstance(value, str) else value
        for name, value in arrays.items():
            member.create_dataset(name, data=value, track_times=False)


def fixed_text(text):
    """Text as fixed-length UTF-8 bytes (a string or a list of them): the reader can size
    it from its type before reading, which it cannot for variable-length strings."""
    if isinstance(text, str):
        return np.bytes_(text.encode())
    encoded = [t.encode() for t in text]
    return np.array(encoded, dtype=f"S{max(1, *map(len, encoded))}")


# reading -------------------------------------------------------------------

def load_model(path, kernels=None, max_bytes=MAX_MODEL_BYTES, limits=None, trusted_keys=None):
    """Read and validate a packed model file; return a ready ``Model``.

    ``limits`` (a ``edgebnn.limits.Limits``) bounds each layer's work and
    memory; the default is sized for a Raspberry Pi 2. ``trusted_keys``
    admits only files signed by one of those public keys (signing.py).
    """
    def parse(reader):
        reader.only(reader.f, MODEL_ATTRS, {"layers"}, "/")
        return reader.model(reader.f, "/", kernels, limits)
    return read_packed(path, parse, max_bytes, trusted_keys=trusted_keys)


def upgrade(old, new):
    """Rewrite the packed file ``old`` (format version 1 or 2) as a sealed version-2 file ``new``.

    Version 1 had no seal, so ``old`` is parsed by libhdf5 unchecked: upgrade
    only files you trust. It is then read by the same strict reader, and
    written by ``save_model`` / ``save_ddnn``: the same weights, a new seal.
    """
    def parse(reader):
        if "system" in reader.f.attrs:
            return read_ddnn(reader, None, None)
        reader.only(reader.f, MODEL_ATTRS, {"layers"}, "/")
        return reader.model(reader.f, "/", None, None)
    loaded = read_packed(old, parse, legacy=True)
    if isinstance(loaded, Model):
        save_model(loaded, new)
    else:
        save_ddnn(loaded, new)
    return loaded


# DDNN files ----------------------------------------------------------------

def save_ddnn(ddnn, path):
    """Write ``ddnn`` to ``path`` (overwrites): the packed format's stamp, sections as groups."""
    write_packed(path, lambda f: _write(f, ddnn))


def _write(f, ddnn):
    write_stamp(f)
    f.attrs["system"] = fixed_text(SYSTEM)
    f.attrs["classes"] = fixed_text(ddnn.classes)
    f.attrs["local_aggregate"] = fixed_text(ddnn.local_aggregate)
    f.attrs["local_threshold"] = ddnn.local_threshold
    f.attrs["cloud_aggregate"] = fixed_text(ddnn.cloud_aggregate)
    devices = f.create_group("devices")
    for i, device in enumerate(ddnn.devices):
        group = devices.create_group(str(i))
        write_model(group, device.model)
        group.attrs["split"] = device.split
    if ddnn.local is not None:
        write_model(f.create_group("local"), ddnn.local)
    if ddnn.edge is not None:
        f.attrs["edge_threshold"] = ddnn.edge_threshold
        group = f.create_group("edge")
        write_model(group, ddnn.edge.model)
        group.attrs["split"] = ddnn.edge.split
    write_model(f.create_group("cloud"), ddnn.cloud)


def load_ddnn(path, kernels=None, max_bytes=MAX_MODEL_BYTES, limits=None, trusted_keys=None):
    """Read and validate a DDNN file; every error names the file and the group.

    ``limits`` (``edgebnn.limits.Limits``) applies to each section; ``trusted_keys``
    admits only files signed by one of those public keys (signing.py)."""
    return read_packed(path, lambda reader: read_ddnn(reader, kernels, limits), max_bytes,
                       trusted_keys=trusted_keys)


def read_ddnn(reader, kernels, limits):
    """The DDNN of a file open in ``reader`` (reader.read_packed)."""
    from ..tiers.ddnn import DDNN
    f = reader.f
    if "system" not in f.attrs:
        reader.fail("/", "no 'system' attribute: a single model, not a DDNN (use load_model)")
    system = reader.typed_attr(f, "system", str, "/")
    if system != SYSTEM:
        reader.fail("/", f"system {system!r}, expected {SYSTEM!r}")
    local_aggregate = reader.typed_attr(f, "local_aggregate", str, "/")
    has_edge = "edge" in set(f)
    members = {"devices", "cloud"} | ({"local"} if local_aggregate == "concat" else set()) \
        | ({"edge"} if has_edge else set())
    reader.only(f, DDNN_ATTRS + (EDGE_ATTRS if has_edge else ()), members, "/")
    threshold = _number(reader, f, "local_threshold")
    edge_threshold = _number(reader, f, "edge_threshold") if has_edge else 0.5
    classes = np.asarray(reader.attr(f, "classes", "/"))
    if classes.ndim != 1:
        reader.fail("/", "classes must be a list of names")
    bind = (kernels, limits)
    devices = _read_devices(reader, reader.member(f, "devices", "devices", h5py.Group), bind)
    local = _read_section(reader, f, "local", bind) if "local" in members else None
    edge = _read_device(reader, f, "edge", bind) if has_edge else None
    cloud = _read_section(reader, f, "cloud", bind)
    try:
        return DDNN(devices, cloud, local, local_aggregate,
                    reader.typed_attr(f, "cloud_aggregate", str, "/"), threshold,
                    [c.decode() if isinstance(c, bytes) else str(c) for c in classes],
                    edge, edge_threshold)
    except ModelFormatError as error:
        raise ModelFormatError(f"{reader.path}: {error}") from None


def _read_devices(reader, group, bind):
    reader.count(group, "devices", "devices", bind[1])
    names = sorted(group)
    if not names or names != sorted(str(i) for i in range(len(names))):
        reader.fail("devices", f"members must be named 0..n-1 (at least one), found {listed(names)}")
    return [_read_device(reader, group, str(i), bind, f"devices/{i}") for i in range(len(names))]


def _read_device(reader, parent, name, bind, where=None):
    """A device or the edge: a model group with its ``split``."""
    from ..tiers.ddnn import Device
    where = where or name
    model, group = _read_section(reader, parent, name, bind, where, ("split",))
    try:
        return Device(model, reader.typed_attr(group, "split", int, where))
    except ModelFormatError as error:
        reader.fail(where, str(error))


def _number(reader, f, name):
    value = reader.attr(f, name, "/")
    if not isinstance(value, (float, int, np.floating, np.integer)):
        reader.fail("/", f"{name} {value!r} is not a number")
    return float(value)


def _read_section(reader, parent, name, bind, where=None, extra=()):
    """A model group inside a DDNN file, through the packed format's own reader
    (with ``extra`` attributes: ``(model, group)``)."""
    where = where or name
    group = reader.member(parent, name, where, h5py.Group)
    reader.only(group, HEADER_ATTRS + extra, {"layers"}, where)
    model = reader.model(group, where, *bind)
    return (model, group) if extra else model
