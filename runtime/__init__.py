"""edgebnn: packed float and binarized networks, classified on small boards.

    >>> from edgebnn import Runtime, models
    >>> rt = Runtime(models.path("mnist-bnn.h5"))
    >>> rt.classify(frame).label

The main path: ``Runtime`` (runtime.py) -> ``Model`` (model.py) -> layers
(layers/) -> kernels (kernels/, C with a NumPy twin). The other parts are
subpackages: packed/ (the file), net/ (the V2 protocol, client and servers)
and tiers/ (cascade, DDNN, coordinator). The network tiers (``RemoteModel``,
the DDNN) are imported on first use, so a sensor script that classifies
locally loads no HTTP or thread-pool code.
"""
if __name__ != "edgebnn":      # the source folder imported by path, unbuilt and misnamed
    raise ImportError(f"this is edgebnn's source folder, imported as {__name__!r}: install "
                      "the package (pip install -e .) and import edgebnn")

from .errors import (EdgeError, InputError, InputTypeError, ModelFileError,
                     ModelFormatError, ModelSignatureError, ModelVersionError, RemoteError,
                     RemoteTimeout)
from .packed.format import load_model, save_model
from .layers import BatchNorm, BinaryConv2d, BinaryDense, Conv2d, Dense, DenseInt8, Pool2d, Sign
from .limits import Limits
from .model import Model
from .result import Exit, Result
from .runtime import Runtime

__version__ = "0.2.0"

_LAZY = {"Policy": "tiers.cascade", "RemoteModel": "net.remote", "DDNN": "tiers.ddnn",
         "Device": "tiers.ddnn", "load_ddnn": "packed.format", "save_ddnn": "packed.format",
         "Coordinator": "tiers.coordinator"}

__all__ = ["Runtime", "Result", "Exit", "Model", "Limits", "Dense", "DenseInt8", "Conv2d", "Pool2d",
           "BatchNorm", "Sign", "BinaryDense", "BinaryConv2d", "load_model", "save_model", "EdgeError", "InputError",
           "InputTypeError", "ModelFileError", "ModelFormatError", "ModelSignatureError",
           "ModelVersionError", "RemoteError", "RemoteTimeout", *_LAZY]


def __getattr__(name):
    import importlib
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name == "models":          # the shipped demo models, found on first use
        value = importlib.import_module(".models", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
