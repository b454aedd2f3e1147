"""The demo models shipped inside the package, found wherever it is installed.

    >>> from edgebnn import Runtime, models
    >>> rt = Runtime("mnist-bnn.h5")            # = Runtime(models.path("mnist-bnn.h5"))

``mnist-mlp.h5`` (float 784-256-128-10), ``mnist-bnn.h5`` (binary
784-1000-500-10) and ``biglittle/little-binary-1-small.h5`` (a one-vs-all
little net for the digit 1) ship in the wheel, with ``mnist-samples.npz``
(16 MNIST test digits and their labels) for the demo. A source checkout
holds more (the Big-Little and DDNN models of the reports).
"""
import os

FOLDER = os.path.dirname(os.path.abspath(__file__))


def path(name):
    """The absolute path of the shipped file ``name``, e.g. ``"mnist-bnn.h5"``."""
    full = os.path.join(FOLDER, *name.split("/"))
    if not os.path.isfile(full):
        raise FileNotFoundError(f"no shipped model {name!r}; shipped: {', '.join(available())}")
    return full


def resolve(path_or_name):
    """A file's path as given, or, when no such file exists, the shipped model so named."""
    text = os.fspath(path_or_name)
    if not os.path.exists(text) and text in available():
        return path(text)
    return text


def available():
    """The model files shipped here, as names ``path`` takes."""
    names = []
    for folder, _, files in os.walk(FOLDER):
        relative = os.path.relpath(folder, FOLDER)
        names += [name if relative == "." else f"{relative}/{name}"
                  for name in files if name.endswith(".h5")]
    return sorted(names)
