"""Embedded inference runtime: packed binary and float networks for small boards.

The main path: ``Runtime`` (runtime.py) -> ``Model`` (model.py) -> layers
(layers/) -> kernels (kernels/, C with a NumPy twin).
"""
from .errors import (EdgeError, InputError, InputTypeError, ModelFileError,
                     ModelFormatError, ModelVersionError)
from .format import load_model, save_model
from .layers import BatchNorm, BinaryConv2d, BinaryDense, Dense, Sign
from .cascade import Policy
from .ddnn import DDNN, Device, load_ddnn, save_ddnn
from .model import Model
from .remote import RemoteError, RemoteModel
from .result import Result
from .runtime import Runtime

__all__ = ["Runtime", "Result", "Policy", "RemoteModel", "RemoteError", "Model", "Dense",
           "BatchNorm", "Sign", "BinaryDense", "BinaryConv2d", "load_model", "save_model",
           "EdgeError", "InputError", "InputTypeError", "ModelFileError", "ModelFormatError",
           "ModelVersionError", "DDNN", "Device", "load_ddnn", "save_ddnn"]
