"""What a model takes: its input kinds, and the steps from a raw sample to the first layer.

The steps run like layers (``runner()`` per thread, ``forward_batch``) but
are not stored in a file: a model adds them from its input description.
"""
import numpy as np

from .bitpack import word_padded
from .errors import ModelFormatError
from .limits import Cost

INPUT_DTYPES = ("uint8", "float32", "bits")
MAX_INPUT_VALUES = 1 << 24


class Preprocess:
    """Raw input -> float32 ``x * scale + offset`` (a step, not stored)."""
    kind = "preprocess"

    def __init__(self, size, scale, offset):
        self.size = size
        self.scale = np.float32(scale)
        self.offset = np.float32(offset)

    def cost(self, source):
        return Cost(memory_c=4 * self.size, memory_numpy=4 * self.size)

    def runner(self):
        out = np.empty(self.size, np.float32)
        scale, offset, multiply, add = self.scale, self.offset, np.multiply, np.add

        def run(x):
            multiply(x, scale, out=out, casting="unsafe")
            return add(out, offset, out=out)
        return run

    def forward_batch(self, x):
        return x.astype(np.float32) * self.scale + self.offset


class PadWords:
    """Packed input -> a copy in a buffer of whole 64-bit words (a step, not stored).

    The kernels read whole words, so a packed sample whose size is not a
    multiple of 8 bytes is copied into a zero-padded buffer first.
    """
    kind = "pad_words"

    def __init__(self, nbytes):
        self.nbytes = nbytes

    def cost(self, source):
        return Cost(memory_c=word_padded(self.nbytes), memory_numpy=word_padded(self.nbytes))

    def runner(self):
        out = np.zeros(word_padded(self.nbytes), np.uint8)
        nbytes = self.nbytes

        def run(x):
            out[:nbytes] = x
            return out
        return run

    def forward_batch(self, x):
        out = np.zeros((len(x), word_padded(self.nbytes)), np.uint8)
        out[:, :self.nbytes] = x
        return out


def input_kind(input_dtype):
    """The name of an input dtype: a NumPy dtype's, or "bits" for packed signs."""
    if isinstance(input_dtype, str) and input_dtype == "bits":
        return "bits"
    try:
        return np.dtype(input_dtype).name
    except TypeError:
        raise ModelFormatError(f"input_dtype {input_dtype!r} unsupported; "
                               f"supported: {', '.join(INPUT_DTYPES)}") from None
