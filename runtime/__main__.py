"""Classify files with a packed model: ``edgebnn-classify`` / ``python -m edgebnn``.

    edgebnn-classify MODEL.h5 FILE... [--json] [--backend c|numpy]

FILE is a ``.npy`` array (one sample in the model's input shape and dtype,
or a batch of them) or a PNG / PGM image. MODEL may also name a model
shipped in the package (``mnist-bnn.h5``; see ``edgebnn.models``). Prints
one line per sample: label, class name, confidence, normalized entropy and
exit; ``--json`` prints one JSON object per line instead. Exit status 1
when a file could not be classified, 2 when the model could not be loaded.
"""
import argparse
import json
import os
import sys

import numpy as np

from . import models
from .errors import EdgeError, InputError
from .images import read_image
from .runtime import Runtime


def samples(path, model):
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="edgebnn-classify", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="packed model file, or the name of a shipped one")
    parser.add_argument("files", nargs="+", help=".npy arrays, PNG or PGM images")
    parser.add_argument("--json", action="store_true", help="one JSON object per sample")
    parser.add_argument("--backend", choices=["c", "numpy"])
    args = parser.parse_args(argv)
    path = args.model
    if not os.path.exists(path) and path in models.available():
        path = models.path(path)
    try:
        rt = Runtime(path, backend=args.backend)
    except (EdgeError, ImportError) as error:
        parser.exit(2, f"error: {error}\n")
    status = 0
    for file in args.files:
        try:
            answers = [(name, rt.classify(x)) for name, x in samples(file, rt.model)]
        except (EdgeError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            status = 1
            continue
        for name, result in answers:
            if args.json:
                print(json.dumps({"file": name, **result.to_dict()}))
            else:
                print(f"{name}: {result.label} {result.name!r} confidence {result.confidence:.4f} "
                      f"entropy {result.entropy:.4f} exit {result.exit}")
    return status


if __name__ == "__main__":
    sys.exit(main())
