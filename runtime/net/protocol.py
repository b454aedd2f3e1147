"""The Open Inference Protocol v2 (KServe, Triton, MLServer REST) and Triton's binary tensors.

Only what both ends of this package need: the paths, the datatype names and
the messages. A request carries its tensors under ``inputs``, a response
under ``outputs``; each tensor is ``{"name", "shape", "datatype", "data"}``
with the batch as its first axis and ``data`` flattened row-major. With
Triton's binary tensor extension a tensor's ``parameters`` say
``binary_data_size`` instead of giving ``data``: the body is then the JSON
message (its length in the ``Inference-Header-Content-Length`` header)
followed by each such tensor's raw little-endian bytes, in order.

Everything read is checked: a body that breaks the protocol is a
``ProtocolError`` (a ``ValueError``) naming the tensor and the problem.
"""
import json
import math

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_EXTENSION = "binary_tensor_data"
DATATYPES = {"UINT8": np.uint8, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
             "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
NAMES = {np.dtype(dtype): name for name, dtype in DATATYPES.items()}
MAX_DIMENSIONS = 8


class ProtocolError(ValueError):
    """A message that breaks the protocol (malformed JSON, tensors or binary parts)."""


def model_path(model, version=None):
    """``/v2/models/NAME`` or ``/v2/models/NAME/versions/V``."""
    return f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "")


def model_spec(metadata, output=None, classes=()):
    """What requests to a model need from its metadata: the input's name, dtype and shape,
    the outputs' names, the one to read (``output``, else the first), the widths and
    dtypes the outputs declare. ValueError when the metadata lacks them or its scores
    do not fit ``classes``."""
    try:
        first = metadata["inputs"][0]
        outputs = metadata["outputs"]
        names = [entry["name"] for entry in outputs]
        output = output or names[0]
        dtype = np.dtype(DATATYPES[first["datatype"]])
        shape = [int(n) for n in first["shape"]]
        widths = {o["name"]: int(o["shape"][-1]) for o in outputs
                  if len(o.get("shape") or []) == 2 and int(o["shape"][-1]) > 0}
        dtypes = {o["name"]: np.dtype(DATATYPES[o["datatype"]]) for o in outputs
                  if o.get("datatype") in DATATYPES}
        scores = next(o for o in outputs if o["name"] == output)["datatype"].startswith("FP") \
            if output in names else False
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(f"model metadata lacks its inputs or outputs "
                         f"({type(error).__name__}: {error})") from None
    if output not in names:
        raise ValueError(f"the model has no output {output!r} (it lists {', '.join(names)})")
    if classes and scores:      # class scores (not, e.g., a device's packed feature map)
        if widths.get(output, len(classes)) != len(classes):
            raise ValueError(f"output {output!r} gives {widths[output]} scores for "
                             f"{len(classes)} classes")
        widths[output] = len(classes)
    return {"input": first["name"], "dtype": dtype, "shape": shape, "outputs": names,
            "output": output, "widths": widths, "dtypes": dtypes}


def metadata_classes(metadata):
    """The class names a model's metadata gives in ``parameters.classes`` ([] when none)."""
    parameters = metadata.get("parameters")
    classes = parameters.get("classes") if isinstance(parameters, dict) else None
    return [str(c) for c in classes] if isinstance(classes, list) else []


def encode(message, key, tensors):
    """``(body, header_length)`` of ``message`` with ``tensors`` under ``key``.

    ``tensors`` are ``(name, array, binary)``; a binary tensor travels as raw
    bytes after the JSON, and ``header_length`` is then the JSON's length
    (else None: the body is plain JSON).
    """
    listed, raw = [], []
    for name, array, binary in tensors:
        array = np.asarray(array)
        tensor = {"name": name, "shape": list(array.shape), "datatype": NAMES[array.dtype]}
        if binary:
            data = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
            tensor["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            tensor["data"] = array.reshape(-1).tolist()
        listed.append(tensor)
    header = json.dumps({**message, key: listed}, separators=(",", ":")).encode()
    return (header + b"".join(raw), len(header)) if raw else (header, None)


def decode(body, header_length, key):
    """``(message, {name: array})``: a message and its tensors under ``key``, checked."""
    if header_length is not None and not 0 < header_length <= len(body):
        raise ProtocolError(f"{HEADER_LENGTH} {header_length} does not fit a body of "
                            f"{len(body)} bytes")
    end = len(body) if header_length is None else header_length
    try:
        message = json.loads(body[:end])
    except RecursionError:
        raise ProtocolError("malformed JSON: nested too deeply") from None
    except ValueError as error:           # JSONDecodeError, UnicodeDecodeError
        raise ProtocolError(f"malformed JSON: {error}") from None
    if not isinstance(message, dict) or not isinstance(message.get(key), list):
        raise ProtocolError(f"the message must be a JSON object with a list {key!r}")
    raw, tensors = memoryview(body)[end:], {}
    for tensor in message[key]:
        name, array, used = _tensor(tensor, raw)
        if name in tensors:
            raise ProtocolError(f"tensor {name!r} given twice")
        tensors[name] = array
        raw = raw[used:]
    if len(raw):
        raise ProtocolError(f"{len(raw)} bytes after the last binary tensor")
    return message, tensors


def _tensor(tensor, raw):
    """``(name, array, raw bytes used)`` of one tensor of a message."""
    if not isinstance(tensor, dict):
        raise ProtocolError("a tensor must be a JSON object")
    name, shape, datatype = (tensor.get(field) for field in ("name", "shape", "datatype"))
    if not isinstance(name, str):
        raise ProtocolError("tensor 'name' must be a string")
    if datatype not in DATATYPES:
        raise ProtocolError(f"tensor {name!r}: datatype {datatype!r} unsupported; "
                            f"supported: {', '.join(DATATYPES)}")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMENSIONS
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise ProtocolError(f"tensor {name!r}: shape must be a list of at most "
                            f"{MAX_DIMENSIONS} non-negative integers")
    dtype = np.dtype(DATATYPES[datatype])
    count = math.prod(shape)
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"tensor {name!r}: 'parameters' must be an object")
    size = parameters.get("binary_data_size")
    if size is not None:
        if type(size) is not int or size != count * dtype.itemsize or size > len(raw):
            raise ProtocolError(f"tensor {name!r}: binary_data_size {size!r} for shape {shape} "
                                f"of {NAMES[dtype]}, which takes {count * dtype.itemsize} "
                                f"bytes; the body has {len(raw)} binary bytes left")
        array = np.frombuffer(raw[:size], dtype.newbyteorder("<"), count).astype(dtype)
        return name, array.reshape(shape), size
    return name, _json_data(name, tensor.get("data"), dtype, count).reshape(shape), 0


def _json_data(name, data, dtype, count):
    """The numbers of a JSON tensor: an integer tensor takes whole numbers only, so 1.5
    or true is refused rather than truncated into another sample."""
    if not isinstance(data, list):
        raise ProtocolError(f"tensor {name!r}: 'data' must be a list (or the tensor binary)")
    try:
        array = np.array(data)
    except (TypeError, ValueError, OverflowError):
        array = None
    if array is None or array.dtype.kind not in "iuf":
        raise ProtocolError(f"tensor {name!r}: 'data' must hold numbers only")
    if array.size != count:
        raise ProtocolError(f"tensor {name!r}: {array.size} values for {count} in its shape")
    if dtype.kind in "iu" and array.size:
        if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.rint(array))):
            raise ProtocolError(f"tensor {name!r}: {NAMES[dtype]} values must be whole numbers")
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise ProtocolError(f"tensor {name!r}: values outside the {NAMES[dtype]} range")
    return array.astype(dtype).reshape(-1)


def requested_outputs(request, available):
    """``[(name, binary)]``: the outputs a request asks for (all by default), each
    binary when its own ``binary_data`` or the request's ``binary_data_output`` says so."""
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("request 'parameters' must be an object")
    default = _flag(parameters, "binary_data_output", "request")
    asked = request.get("outputs")
    if asked is None:
        return [(name, default) for name in available]
    if not isinstance(asked, list):
        raise ProtocolError("'outputs' must be a list of {\"name\": ...} objects")
    wanted = []
    for output in asked:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise ProtocolError("each requested output must be an object with a string 'name'")
        if output["name"] not in available:
            raise ProtocolError(f"unknown output {output['name']!r}; this model gives "
                                f"{', '.join(available)}")
        own = output.get("parameters") or {}
        if not isinstance(own, dict):
            raise ProtocolError(f"output {output['name']!r}: 'parameters' must be an object")
        binary = _flag(own, "binary_data", f"output {output['name']!r}")
        wanted.append((output["name"], default if "binary_data" not in own else binary))
    return wanted


def _flag(parameters, name, where):
    value = parameters.get(name, False)
    if type(value) is not bool:
        raise ProtocolError(f"{where}: parameter {name!r} must be true or false")
    return value
