"""Classify files with a packed model: ``edgebnn-classify`` / ``python -m edgebnn``.

    edgebnn-classify MODEL.h5 FILE... [--json] [--backend c|numpy]

FILE is a ``.npy`` array or an ``.npz`` archive's (its ``x``, else its first),
holding one sample in the model's input shape and dtype or a batch of them,
or a PNG / PGM image. MODEL may also name a model
shipped in the package (``mnist-bnn.h5``; see ``edgebnn.models``). Prints
one line per sample: label, class name, confidence, normalized entropy and
exit; ``--json`` prints one JSON object per line instead. Exit status 1
when a file could not be classified, 2 when the model could not be loaded.
"""
import json
import sys

from .commands import command_parser, model_path, quiet_on_closed_pipe
from .errors import EdgeError, InputError
from .runtime import Runtime
from .samples import read_samples


@quiet_on_closed_pipe
def main(argv=None):
    parser = command_parser("edgebnn", __doc__.splitlines()[0])
    parser.add_argument("model", type=model_path,
                        help="packed model file, or the name of a shipped one")
    parser.add_argument("files", nargs="+", help=".npy / .npz arrays, PNG or PGM images")
    parser.add_argument("--json", action="store_true", help="one JSON object per sample")
    parser.add_argument("--backend", choices=["c", "numpy"])
    args = parser.parse_args(argv)
    try:
        rt = Runtime(args.model, backend=args.backend)
    except (EdgeError, ImportError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    status = 0
    for file in args.files:
        try:
            answers = [(name, classify(rt, name, x)) for name, x in read_samples(file, rt.model)]
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


def classify(rt, name, x):
    """``rt.classify(x)``; a sample that does not fit says which one it is."""
    try:
        return rt.classify(x)
    except InputError as error:
        raise InputError(f"{name}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
