"""Kernel backends: the C library or its NumPy twin.

Both expose the same functions with the same results, bit for bit (float
dense and convolution layers excepted: their sums agree to rounding, see
contract.py). The C backend is used when it was built at install time; the
environment variable ``EDGEBNN_BACKEND=numpy`` (or ``Runtime(...,
backend="numpy")``) forces the twin. Falling back to the twin without being
asked is never silent: the first time it happens, a ``SlowBackendWarning``
says why and what it costs.
"""
import os
import warnings
from collections import namedtuple

from . import numpy_twin

# One kernel layer ready to run: its plan (a backend's, see contract.py), the
# scratch buffer ``work`` (or None) and the buffer ``out`` it writes.
Link = namedtuple("Link", "plan work out")

BACKENDS = ("c", "numpy")
ENVIRONMENT_VARIABLE = "EDGEBNN_BACKEND"


class SlowBackendWarning(RuntimeWarning):
    """The C kernel is missing, so binary layers run on the much slower NumPy twin."""


def get_kernels(name=None):
    """The kernel module for ``name`` ("c", "numpy" or None for the default)."""
    given = f"backend {name!r}"
    if name is None:
        name = os.environ.get(ENVIRONMENT_VARIABLE) or ("c" if c_available() else _fallback())
        given = f"{ENVIRONMENT_VARIABLE}={name!r}: backend"
    if name not in BACKENDS:
        raise ValueError(f"{given} unknown; choose one of {', '.join(BACKENDS)}")
    if name == "numpy":
        return numpy_twin
    if not c_available():
        raise ImportError(f"the C backend was not built ({_c_error}); "
                          f"reinstall with a C compiler or use backend='numpy'")
    return _c_backend


_c_backend = None
_c_error = "not looked for yet"
_warned = False


def c_available():
    global _c_backend, _c_error
    if _c_backend is None and _c_error == "not looked for yet":
        try:
            from . import c_library
            _c_backend = c_library
        except ImportError as error:
            _c_error = str(error)
    return _c_backend is not None


def _fallback():
    """The twin, and a warning once per process of what it costs."""
    global _warned
    if not _warned:
        _warned = True
        message = (f"edgebnn's C kernel is not available ({_c_error}), so binary layers run "
                   f"on the NumPy backend, 15-200x slower. Install a C compiler (e.g. "
                   f"'apt install gcc python3-dev') and reinstall edgebnn, or set "
                   f"{ENVIRONMENT_VARIABLE}=numpy to choose the NumPy backend knowingly.")
        warnings.warn(message, SlowBackendWarning, stacklevel=4)
    return "numpy"
