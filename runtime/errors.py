"""Error classes of the runtime.

Each one subclasses the builtin a user would already catch: a broken model
file is a ``ValueError`` (bad content) or an ``OSError`` (cannot be read), a
bad sample is a ``ValueError`` or, for the wrong Python type, a ``TypeError``.
"""


class EdgeError(Exception):
    """Base of every error this package raises on purpose."""


class ModelFileError(EdgeError, OSError):
    """The model file cannot be read at all: missing, not HDF5, truncated."""


class ModelFormatError(EdgeError, ValueError):
    """The file is HDF5 but its content breaks the packed format."""


class ModelSignatureError(ModelFileError):
    """The file is not signed by a trusted key (or cannot be checked): refused unread."""


class ModelVersionError(ModelFormatError):
    """The file was written by a newer format version than this reader knows."""


class InputError(EdgeError, ValueError):
    """A sample does not fit the model: wrong shape, dtype or values."""


class InputTypeError(InputError, TypeError):
    """A sample is not a NumPy array."""


class RemoteError(EdgeError, OSError):
    """A remote tier could not give an answer: unreachable, late, refused or garbled."""


class RemoteTimeout(RemoteError):
    """A remote tier did not answer within the request's deadline."""


NON_FINITE = "input contains NaN or infinite values"
