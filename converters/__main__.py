"""Convert a trained model into the runtime's packed file, and optionally check it.

    python -m edgebnn.converters SOURCE OUT.h5 [--check] [--input-shape 28,28] [--input-dtype uint8]
                         [--scale 0.00392156862745098] [--offset 0] [--classes a,b,...]

The kind of SOURCE comes from the file itself: an HDF5 file with a Keras
``model_config`` (``model.save("net.h5")``) is converted by edgebnn.converters.keras,
an ``.onnx`` file by edgebnn.converters.onnx, and a ``.pt`` / ``.pth`` file holding a
whole module (``torch.save(net, path)``) by edgebnn.converters.pytorch. The result is
written by ``edgebnn.save_model`` and read back. With ``--check`` the source
framework and the runtime classify the same samples, your own (``--samples
FILE.npy`` or a folder of .npy / PNG / PGM files) or random ones, and the
largest difference of class probabilities, the label agreement and the
worst sample are printed (edgebnn.converters.check).

Exit status: 0 done (and checked, with --check), 1 the check found the
converted model disagreeing with the source (label agreement under
``--min-agreement``), 2 a bad command line, bad samples or a source that
cannot be converted (the message says why), 3 the check could not run (the
source framework is not installed, or the source model failed in it).
"""
import argparse
import os
import sys

import h5py
import numpy as np

from edgebnn import Runtime, save_model

from . import check


class SourceError(Exception):
    """The source cannot be read or converted: exit status 2 with this message."""


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.check and args.samples is not None:
        parser.error("--samples is for --check")
    try:
        kind = source_kind(args.source)
        model, source_shape = convert(kind, args)
        save_model(model, args.out)
        written = Runtime(args.out)
    except (SourceError, ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kinds = ", ".join(layer.kind for layer in model.layers)
    print(f"{args.out}: {kind} model -> {len(model.layers)} layers ({kinds}), input "
          f"{written.model.input_dtype.name} {written.model.input_shape}, "
          f"{len(written.classes)} classes, {os.path.getsize(args.out)} bytes")
    if not args.check:
        return 0
    try:
        return check.run(lambda x: SOURCE_RUNNERS[kind](args.source, x), written, source_shape,
                         args.samples, args.random, args.min_agreement)
    except (ValueError, OSError) as error:      # the samples: InputError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m edgebnn.converters",
        description="Convert a Keras/Larq .h5, ONNX or PyTorch model to the packed runtime format.")
    parser.add_argument("source", help="Keras .h5 (model.save), .onnx, or .pt/.pth "
                        "(torch.save of a whole nn.Sequential; unpickling runs code: trusted files only)")
    parser.add_argument("out", help="the packed model file to write")
    parser.add_argument("--check", action="store_true",
                        help="compare the source framework and the runtime on the same samples")
    parser.add_argument("--input-shape", type=_shape,
                        help="one sample's shape as the source takes it, e.g. 28,28 or 1,28,28 "
                             "(required for PyTorch)")
    parser.add_argument("--input-dtype", default="uint8", choices=("uint8", "float32"))
    parser.add_argument("--scale", type=float, default=1 / 255,
                        help="the source sees x * scale + offset (default 1/255)")
    parser.add_argument("--offset", type=float, default=0.0)
    parser.add_argument("--classes", type=lambda text: text.split(","),
                        help="comma-separated class names, one per output")
    parser.add_argument("--samples", metavar="FILE.npy|FOLDER",
                        help="your own samples for --check: a .npy array (n, *input shape) or a "
                             "folder of .npy, PNG or PGM files, as edgebnn-classify reads them")
    parser.add_argument("--random", type=_positive, default=100, metavar="N",
                        help="random samples for --check when --samples is not given (100)")
    parser.add_argument("--min-agreement", type=_percent, default=check.MIN_AGREEMENT,
                        metavar="PERCENT", help="labels that must agree for --check to pass "
                        f"({check.MIN_AGREEMENT:g}; why: edgebnn.converters.check)")
    return parser


def _percent(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage from 0 to 100")
    return value


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _shape(text):
    try:
        shape = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of sizes")
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return shape


def source_kind(path):
    """"keras", "onnx" or "pytorch", from the file's content and name."""
    if not os.path.isfile(path):
        raise SourceError(f"{path}: no such file")
    suffix = os.path.splitext(path)[1].lower()
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                attrs = set(f.attrs)
        except OSError as error:
            raise SourceError(f"{path}: not a readable HDF5 file ({error})") from None
        if "model_config" in attrs:
            return "keras"
        if "format" in attrs:
            raise SourceError(f"{path}: already a packed runtime model")
        raise SourceError(f"{path}: an HDF5 file without a Keras 'model_config' attribute "
                          "(weights only?); save the whole model with model.save('net.h5')")
    if suffix == ".onnx":
        return "onnx"
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    if suffix in (".pt", ".pth") or zipped:
        return "pytorch"
    raise SourceError(f"{path}: cannot tell the kind of model; supported: a Keras .h5 from "
                      "model.save, an .onnx file, a .pt/.pth file from torch.save(module)")


def convert(kind, args):
    """``(runtime Model, the shape one sample has in the source)``."""
    options = dict(input_dtype=args.input_dtype, input_scale=args.scale,
                   input_offset=args.offset, classes=args.classes)
    if kind == "keras":
        from . import keras
        model = keras.convert(args.source, **options)
        if args.input_shape and args.input_shape != model.input_shape:
            raise SourceError(f"--input-shape {args.input_shape} differs from the Keras model's "
                              f"{model.input_shape}")
        return model, model.input_shape
    if kind == "onnx":
        onnx_converter = _optional("edgebnn.converters.onnx", "onnx")
        proto = onnx_converter.load(args.source)
        model = onnx_converter.convert(proto, input_shape=args.input_shape, **options)
        return model, onnx_converter.source_input_shape(proto, args.input_shape)
    if args.input_shape is None:
        raise SourceError("a PyTorch module does not record its input shape; give --input-shape")
    torch_converter = _optional("edgebnn.converters.pytorch", "torch")
    module = _load_module(args.source)
    return torch_converter.convert(module, args.input_shape, **options), args.input_shape


def _optional(module, package):
    """Import a converter whose framework is an optional extra, or say how to install it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if getattr(error, "name", None) != package:
            raise
        raise SourceError(f"this source needs the {package} package: pip install "
                          f"'edgebnn[{package}]'") from None


def _load_module(path):
    import torch
    try:
        module = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:          # pickle and zip errors of every kind
        raise SourceError(f"{path}: not a loadable PyTorch file ({type(error).__name__}: "
                          f"{error})") from None
    if not isinstance(module, torch.nn.Module):
        raise SourceError(f"{path}: holds a {type(module).__name__}, not a module; save the "
                          "whole network with torch.save(net, path), not its state_dict")
    return module.eval()


# the source frameworks, for --check: each runs SOURCE on samples already in its layout

def _run_keras(path, x):
    import tensorflow as tf
    from .keras import read_model
    config, _ = read_model(path)
    layers = (config.get("config") or {}).get("layers", [])
    if any(layer.get("class_name", "").startswith("Quant") for layer in layers):
        _import_larq()
    model = tf.keras.models.load_model(path, compile=False)
    return model(x, training=False).numpy()


def _import_larq():
    """Larq registers its Quant layers with Keras on import; 0.14 needs Keras 2 (tf-keras)."""
    try:
        import larq  # noqa: F401
    except ImportError:
        raise
    except Exception as error:          # Keras 3 lacks layers larq subclasses
        raise RuntimeError(f"larq cannot be imported ({error}); it needs tf-keras: pip install "
                           "tf-keras and set TF_USE_LEGACY_KERAS=1") from None


def _run_onnx(path, x):
    from .onnx import FLOAT_TYPES, load, real_input
    proto = load(path)
    value = real_input(proto.graph)
    x = x.astype(FLOAT_TYPES[value.type.tensor_type.elem_type])
    try:
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    except ImportError:        # the onnx package's own (slower) reference evaluator
        from onnx.reference import ReferenceEvaluator
        session = ReferenceEvaluator(proto)
    batch = value.type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value") and batch.dim_value == 1:    # exported for one sample
        return np.concatenate([session.run(None, {value.name: row[None]})[0] for row in x])
    return session.run(None, {value.name: x})[0]


def _run_pytorch(path, x):
    import torch
    module = _load_module(path)
    dtype = next(module.parameters(), torch.zeros(())).dtype
    with torch.no_grad():
        return module(torch.from_numpy(x).to(dtype)).numpy()


SOURCE_RUNNERS = {"keras": _run_keras, "onnx": _run_onnx, "pytorch": _run_pytorch}

if __name__ == "__main__":
    sys.exit(main())
