"""Samples from files, shaped as a model takes them: .npy / .npz arrays, PNG and PGM images.

Shared by ``edgebnn-classify``, the converters' ``--check`` and ``edgebnn-bench
latency --input``, so a file means the same samples to all three. Every
failure is an InputError naming the file.
"""
import os

import numpy as np

from .errors import InputError
from .images import read_image

SUFFIXES = (".npy", ".npz", ".png", ".pgm")


def read_samples(path, model):
    """``(name, sample)`` pairs of one file, shaped as the model takes them."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if not path.endswith((".npy", ".npz")):
        return [(path, image_sample(read_image(path), model, path))]
    try:
        array = _array(path)
    except (OSError, ValueError, IndexError) as error:
        raise InputError(f"{path}: not a NumPy .npy array or .npz archive ({error})") from None
    shape = model.sample_shape
    if array.shape == shape:
        return [(path, array)]
    if array.shape[1:] != shape:
        raise InputError(f"{path}: an array of shape {array.shape}; the model takes one sample "
                         f"of shape {shape} or a batch of shape (n, {', '.join(map(str, shape))})")
    if len(array) == 0:
        raise InputError(f"{path}: an empty batch, no sample in it")
    return [(f"{path}[{i}]", row) for i, row in enumerate(array)]


def _array(path):
    """A .npy file's array; an .npz archive's array ``x``, or its first."""
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        return loaded["x" if "x" in loaded.files else loaded.files[0]]


def read_folder(folder, model):
    """``(name, sample)`` pairs of every .npy, PNG and PGM file in ``folder``, by name,
    and the number of other files left out."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as error:
        raise InputError(f"{folder}: cannot list it ({error.strerror})") from None
    files = [os.path.join(folder, name) for name in names
             if name.lower().endswith(SUFFIXES) and os.path.isfile(os.path.join(folder, name))]
    if not files:
        raise InputError(f"{folder}: no {', '.join(SUFFIXES)} files in it")
    return [pair for path in files for pair in read_samples(path, model)], len(names) - len(files)


def image_sample(image, model, path):
    """Pixels as the model's input: grey or colour as its shape says, float in [0, 1]."""
    shape = model.sample_shape
    if image.ndim == 3 and len(shape) == 2:           # colour image, grey model
        image = image[:, :, :3] @ np.array([0.299, 0.587, 0.114])[:image.shape[2]]
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    elif image.ndim == 2 and len(shape) == 3 and shape[2] == 1:
        image = image[:, :, None]
    if image.shape != shape:
        raise InputError(f"{path}: image of shape {image.shape}, the model takes {shape}")
    if model.input_dtype == np.float32:
        return image.astype(np.float32) / 255
    return image.astype(model.input_dtype)
