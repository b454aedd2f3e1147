"""Samples from files, shaped as a model takes them: .npy arrays, PNG and PGM images, folders.

Shared by ``edgebnn-classify`` and the converters' ``--check``, so a file
means the same sample to both. Every failure is an InputError naming the
file.
"""
import os

import numpy as np

from .errors import InputError
from .images import read_image

SUFFIXES = (".npy", ".png", ".pgm")


def read_samples(path, model):
    """``(name, sample)`` pairs of one file, shaped as the model takes them."""
    if path.endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: not a NumPy .npy array ({error})") from None
        if array.shape == model.sample_shape:
            return [(path, array)]
        return [(f"{path}[{i}]", row) for i, row in enumerate(array)]
    return [(path, image_sample(read_image(path), model, path))]


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
