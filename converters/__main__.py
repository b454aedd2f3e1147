"""Convert a trained model into the runtime's packed file, and optionally check it.

    python -m edgebnn.converters SOURCE OUT.h5 [--check] [--input-shape 28,28] [--input-dtype uint8]
                         [--scale 0.00392156862745098] [--offset 0] [--classes a,b,...]

A packed model of format version 1 (no seal) is rewritten as a sealed
version-2 file with the same weights (``edgebnn.format.upgrade``).

The kind of SOURCE comes from the file itself: an HDF5 file with a Keras
``model_config`` (``model.save("net.h5")``) is converted by edgebnn.converters.keras,
an ``.onnx`` file by edgebnn.converters.onnx, and a ``.pt`` / ``.pth`` file holding a
whole module (``torch.save(net, path)``) by edgebnn.converters.pytorch. The result is
written by ``edgebnn.save_model``, read back, and with ``--check`` both the
source framework (when installed) and the runtime classify the same random
samples, and the largest difference of class probabilities and the label
agreement are printed.

Exit status: 0 done, 2 for a bad command line or a source that cannot be
converted (the message says why).
"""
import argparse
import os
import sys

import h5py
import numpy as np

from edgebnn import Runtime, save_model, seal
from edgebnn.format import VERSION, upgrade

class SourceError(Exception):
    """The source cannot be read or converted: exit status 2 with this message."""


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        kind = source_kind(args.source)
        if kind == "packed-v1":
            upgrade(args.source, args.out)
            print(f"{args.out}: {args.source} (packed format version 1) rewritten as version "
                  f"{VERSION}, sealed, {os.path.getsize(args.out)} bytes")
            return 0
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
    return check(kind, args, written, source_shape) if args.check else 0


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m edgebnn.converters",
        description="Convert a Keras/Larq .h5, ONNX or PyTorch model to the packed runtime format.")
    parser.add_argument("source", help="Keras .h5 (model.save), .onnx, or .pt/.pth "
                        "(torch.save of a whole nn.Sequential; unpickling runs code: trusted files only)")
    parser.add_argument("out", help="the packed model file to write")
    parser.add_argument("--check", action="store_true",
                        help="compare the source framework and the runtime on random samples")
    parser.add_argument("--input-shape", type=_shape,
                        help="one sample's shape as the source takes it, e.g. 28,28 or 1,28,28 "
                             "(required for PyTorch)")
    parser.add_argument("--input-dtype", default="uint8", choices=("uint8", "float32"))
    parser.add_argument("--scale", type=float, default=1 / 255,
                        help="the source sees x * scale + offset (default 1/255)")
    parser.add_argument("--offset", type=float, default=0.0)
    parser.add_argument("--classes", type=lambda text: text.split(","),
                        help="comma-separated class names, one per output")
    parser.add_argument("--samples", type=_positive, default=100,
                        help="random samples for --check (default 100)")
    return parser


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
    with open(path, "rb") as f:
        if f.read(len(seal.MAGIC)) == seal.MAGIC:
            raise SourceError(f"{path}: already a packed runtime model")
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                attrs = set(f.attrs)
        except OSError as error:
            raise SourceError(f"{path}: not a readable HDF5 file ({error})") from None
        if "model_config" in attrs:
            return "keras"
        if "format" in attrs:
            return "packed-v1"
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


# --check ----------------------------------------------------------------------

def check(kind, args, written, source_shape):
    """Print how far the runtime's class probabilities are from the source framework's.

    Returns the exit status: 1 when the source framework is installed but
    fails to run the model, else 0 (a missing framework is only reported).
    """
    model = written.model
    rng = np.random.default_rng(0)
    shape = (args.samples, *model.input_shape)
    if model.input_dtype == np.uint8:
        x = rng.integers(0, 256, shape).astype(np.uint8)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    x_real = x.astype(np.float32) * np.float32(model.input_scale) + np.float32(model.input_offset)
    try:
        theirs = SOURCE_RUNNERS[kind](args.source, _source_layout(x_real, source_shape))
    except ImportError as error:
        print(f"check: {error.name or error} is not installed, so the source model was not run")
        return 0
    except Exception as error:          # whatever the framework raises
        print(f"check: the source model did not run ({type(error).__name__}: {error})")
        return 1
    ours = np.array([result.scores for result in written.classify_batch(x)])
    theirs = _probabilities(np.asarray(theirs, np.float64).reshape(len(x), -1))
    agree = int((ours.argmax(axis=1) == theirs.argmax(axis=1)).sum())
    print(f"check on {len(x)} random samples: largest class-probability difference "
          f"{np.abs(ours - theirs).max():.3g}; labels agree on {agree}/{len(x)}")
    return 0


def _source_layout(x, source_shape):
    """Samples in the source's layout: channels-first sources get (C, H, W) from (H, W[, C])."""
    if x.shape[1:] == tuple(source_shape):
        return x
    channels, height, width = source_shape
    return x.reshape(len(x), height, width, channels).transpose(0, 3, 1, 2).copy()


def _probabilities(outputs):
    """Rows that are already probabilities stay; logits (or log-probabilities) get softmax."""
    if np.all(outputs >= 0) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-4):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


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
