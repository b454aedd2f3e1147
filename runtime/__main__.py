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

from . import models
from .errors import EdgeError
from .runtime import Runtime
from .samples import read_samples


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
            answers = [(name, rt.classify(x)) for name, x in read_samples(file, rt.model)]
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
