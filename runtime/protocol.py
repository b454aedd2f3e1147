"""The Open Inference Protocol v2 (KServe, Triton, MLServer) as JSON over HTTP.

Only what both ends of this package need: the paths, the datatype names and
the tensor <-> JSON conversions. A tensor in a request or response is
``{"name", "shape", "datatype", "data"}`` with ``data`` flattened row-major.
"""
import numpy as np

DATATYPES = {"UINT8": np.uint8, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
             "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
NAMES = {np.dtype(dtype): name for name, dtype in DATATYPES.items()}


def infer_path(model):
    return f"/v2/models/{model}/infer"


def model_path(model):
    return f"/v2/models/{model}"


def encode_tensor(name, array):
    """A JSON-ready tensor of ``array`` (its dtype must have a v2 name)."""
    array = np.asarray(array)
    return {"name": name, "shape": list(array.shape), "datatype": NAMES[array.dtype],
            "data": array.reshape(-1).tolist()}


def decode_tensor(tensor):
    """``(name, array)`` of a JSON tensor; ValueError naming what is wrong."""
    if not isinstance(tensor, dict):
        raise ValueError("a tensor must be a JSON object")
    name, shape, datatype, data = (tensor.get(key) for key in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str):
        raise ValueError("tensor 'name' must be a string")
    if datatype not in DATATYPES:
        raise ValueError(f"tensor {name!r}: datatype {datatype!r} unsupported; "
                         f"supported: {', '.join(DATATYPES)}")
    if (not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape)
            or len(shape) > 8):
        raise ValueError(f"tensor {name!r}: shape must be a list of non-negative integers")
    if not isinstance(data, list):
        raise ValueError(f"tensor {name!r}: 'data' must be a list")
    try:
        array = np.array(data, dtype=np.float64 if datatype.startswith("FP") else np.int64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"tensor {name!r}: 'data' must hold numbers only") from None
    if array.size != int(np.prod(shape)):
        raise ValueError(f"tensor {name!r}: {array.size} values for shape {shape}")
    dtype = np.dtype(DATATYPES[datatype])
    if dtype.kind in "iu":
        limits = np.iinfo(dtype)
        if array.size and (array.min() < limits.min or array.max() > limits.max):
            raise ValueError(f"tensor {name!r}: values outside the {datatype} range")
    return name, array.astype(dtype).reshape(shape)
