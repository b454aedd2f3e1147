"""Read MNIST-style IDX files (MNIST, Fashion-MNIST): the data of the benchmarks and recipes.

Get the files from the MNIST or Fashion-MNIST home pages (or Debian's
``dataset-fashion-mnist``); the four ``*-idx?-ubyte.gz`` files go in one folder.
"""
import gzip
import os
import struct

import numpy as np

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path):
    """One IDX file as a uint8 array (images: (n, rows, cols); labels: (n,))."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">i", data[:4])
    dims = {2049: 1, 2051: 3}.get(magic)
    if dims is None:
        raise ValueError(f"{path}: magic {magic} is not an IDX label (2049) or image (2051) file")
    shape = struct.unpack(f">{dims}i", data[4:4 + 4 * dims])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * dims)
    if body.size != np.prod(shape):
        raise ValueError(f"{path}: {body.size} bytes of data for shape {shape}")
    return body.reshape(shape)


def load(folder, split):
    """``(images, labels)`` of ``split`` ("train" or "test") from ``folder``."""
    images, labels = (read_idx(os.path.join(folder, name)) for name in FILES[split])
    return images, labels


def train_validation(folder, validation=10_000):
    """The paper's split: the first 50,000 training images train, the last 10,000 validate."""
    images, labels = load(folder, "train")
    cut = len(images) - validation
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])
