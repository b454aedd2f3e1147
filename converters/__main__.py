"""Convert a trained model into the runtime's packed file, and optionally check it.

    python -m edgebnn.converters SOURCE OUT.h5 [--check] [--input-shape 28,28] [--input-dtype uint8]
                         [--scale 0.00392156862745098] [--offset 0] [--classes a,b,...] [--trust-pickle]
                         [--weights int8]

The kind of SOURCE comes from its content, never its name: an HDF5 file
with a Keras ``model_config`` (``model.save("net.h5")``) or a zip with
``config.json`` and ``model.weights.h5`` (Keras 3, ``model.save("net.keras")``)
is converted by edgebnn.converters.keras; an ONNX protobuf by
edgebnn.converters.onnx; a ``torch.export`` program (``torch.export.save``)
or a TorchScript module (``torch.jit.save``) by edgebnn.converters.pytorch,
through torch's ONNX exporter. A module pickled whole (``torch.save(net,
path)``) is unpickled only with ``--trust-pickle``: unpickling runs whatever
code the file names. A packed model of format version 1 (no seal) is
rewritten as a sealed version-2 file with the same weights
(``edgebnn.packed.format.upgrade``).

The runtime takes the source graph's input dtype (float32) unless
``--input-dtype uint8`` asks for raw bytes, which the source then sees as
``x * scale + offset``. ``--weights int8`` keeps float dense layers' weights
as int8 with a scale per output (``dense_int8``: a quarter of the file,
each sample's input quantized at run time, as LiteRT's dynamic-range
quantization does). The result is written by ``edgebnn.save_model`` and
read back. With ``--check`` the source framework and the runtime classify
the same samples, your own (``--samples FILE.npy`` or a folder of .npy /
PNG / PGM files) or random ones, and the largest difference of class
probabilities, the label agreement and the worst sample are printed
(edgebnn.converters.check).

Exit status: 0 done (and checked, with --check), 1 the check found the
converted model disagreeing with the source (label agreement under
``--min-agreement``), 2 a bad command line, bad samples or a source that
cannot be converted (the message says why), 3 the check could not run (the
source framework is not installed, or the source model failed in it).
"""
import argparse
import os
import sys
import zipfile

import h5py
import numpy as np

from edgebnn import Runtime, save_model
from edgebnn.packed import seal
from edgebnn.commands import PERCENT, POSITIVE_INT, command_parser, quiet_on_closed_pipe
from edgebnn.packed.format import VERSION, upgrade

from . import check
from .common import archive_kind, with_int8_weights


class SourceError(Exception):
    """The source cannot be read or converted: exit status 2 with this message."""


@quiet_on_closed_pipe
def main(argv=None):
    """The exit status; OUT is written (through OUT.partial) only when it is not 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.check and args.samples is not None:
        parser.error("--samples is for --check")
    partial = f"{args.out}.partial"
    try:
        status = _convert(args, partial)
        if status != 2:
            os.replace(partial, args.out)
        return status
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _convert(args, out):
    """Convert (and check) ``args.source`` into ``out``; the exit status."""
    try:
        kind = source_kind(args.source)
        if kind == "packed-v1":
            upgrade(args.source, out)
            print(f"{args.out}: {args.source} (packed format version 1) rewritten as version "
                  f"{VERSION}, sealed, {os.path.getsize(out)} bytes")
            return 0
        model, source_shape = convert(kind, args)
        if args.weights == "int8":
            model = with_int8_weights(model)
        save_model(model, out)
        written = Runtime(out)
    except (SourceError, ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    kinds = ", ".join(layer.kind for layer in model.layers)
    print(f"{args.out}: {kind.split('-')[0]} model -> {len(model.layers)} layers ({kinds}), input "
          f"{written.model.input_dtype.name} {written.model.input_shape}, "
          f"{len(written.classes)} classes, {os.path.getsize(out)} bytes")
    if not args.check:
        return 0
    try:
        return check.run(lambda x: SOURCE_RUNNERS[kind](args.source, x), written, source_shape,
                         args.samples, args.random, args.min_agreement)
    except (ValueError, OSError) as error:      # the samples: InputError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser():
    parser = command_parser(
        "edgebnn.converters",
        "Convert a Keras/Larq .h5, ONNX or PyTorch model to the packed runtime format.")
    parser.add_argument("source", help="Keras .h5 or .keras (model.save), ONNX, a torch.export "
                        "program (.pt2) or TorchScript; a pickled module only with --trust-pickle")
    parser.add_argument("out", help="the packed model file to write")
    parser.add_argument("--check", action="store_true",
                        help="compare the source framework and the runtime on the same samples")
    parser.add_argument("--input-shape", type=_shape,
                        help="one sample's shape as the source takes it, e.g. 28,28 or 1,28,28 "
                             "(required for PyTorch)")
    parser.add_argument("--input-dtype", choices=("uint8", "float32"),
                        help="the runtime's input (default: the source graph's, float32)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="the source sees x * scale + offset (default 1; e.g. 1/255 for a "
                             "model trained on [0, 1] given uint8 input)")
    parser.add_argument("--offset", type=float, default=0.0)
    parser.add_argument("--classes", type=lambda text: text.split(","),
                        help="comma-separated class names, one per output")
    parser.add_argument("--weights", choices=("float32", "int8"), default="float32",
                        help="how float dense layers keep their weights: float32 (default), or "
                             "int8 with a scale per output, a quarter of the file, each sample's "
                             "input quantized at run time (--check shows what it changes)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="unpickle a whole torch.save(net) module: runs code from the file")
    parser.add_argument("--samples", metavar="FILE.npy|FOLDER",
                        help="your own samples for --check: a .npy / .npz array (n, *input "
                             "shape) or a folder of .npy, .npz, PNG or PGM files, as "
                             "edgebnn-classify reads them")
    parser.add_argument("--random", type=POSITIVE_INT, default=100, metavar="N",
                        help="random samples for --check when --samples is not given (100)")
    parser.add_argument("--min-agreement", type=PERCENT, default=check.MIN_AGREEMENT,
                        metavar="PERCENT", help="labels that must agree for --check to pass "
                        f"({check.MIN_AGREEMENT:g}; why: edgebnn.converters.check)")
    return parser


def _shape(text):
    try:
        shape = tuple(int(n) for n in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of sizes")
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be positive")
    return shape


def source_kind(path):
    """"keras", "onnx", "pytorch-program", "pytorch-script", "pytorch-pickle" or
    "packed-v1", from the file's content alone."""
    if not os.path.isfile(path):
        raise SourceError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(len(seal.MAGIC))
    if head == seal.MAGIC:
        raise SourceError(f"{path}: already a packed runtime model")
    if zipfile.is_zipfile(path):
        kind = archive_kind(path)
        if kind is None:
            raise SourceError(f"{path}: a zip archive that is neither a Keras 3 .keras archive "
                              "nor a saved PyTorch network")
        return kind
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
    if head[:1] == b"\x08":           # a protobuf starting with field 1, ONNX's ir_version
        return "onnx"
    if head[:1] == b"\x80":           # a pickle: torch.save's format before zip archives
        return "pytorch-pickle"
    raise SourceError(f"{path}: cannot tell the kind of model; supported: Keras (.h5 or .keras "
                      "from model.save), ONNX, a torch.export program (.pt2) or TorchScript")


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
    torch_converter = _optional("edgebnn.converters.pytorch", "torch")
    network = torch_converter.load(args.source, trust_pickle=args.trust_pickle)
    if kind != "pytorch-program" and args.input_shape is None:
        raise SourceError("a PyTorch module does not record its input shape; give --input-shape")
    if kind == "pytorch-pickle":
        return torch_converter.convert(network, args.input_shape, **options), args.input_shape
    _optional("onnxscript", "onnxscript", extra="onnx")     # torch's ONNX exporter
    model = torch_converter.convert_saved(network, args.input_shape, **options)
    return model, args.input_shape or tuple(network.example_inputs[0][0].shape[1:])


def _optional(module, package, extra=None):
    """Import a converter whose framework is an optional extra, or say how to install it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if getattr(error, "name", None) != package:
            raise
        raise SourceError(f"this source needs the {package} package: pip install "
                          f"'edgebnn[{extra or package}]'") from None


# the source frameworks, for --check: each runs SOURCE on samples already in its layout

def _run_keras(path, x):
    from .keras import read_model
    config, _ = read_model(path)
    layers = (config.get("config") or {}).get("layers", [])
    larq = any(layer.get("class_name", "").startswith("Quant") for layer in layers)
    if larq and "tensorflow" not in sys.modules:    # TensorFlow picks its Keras on import
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    if larq:
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
        raise RuntimeError(f"larq cannot be imported ({error}); Larq 0.14 needs Keras 2: pip "
                           "install tf-keras, and leave TF_USE_LEGACY_KERAS unset or 1") from None


def _run_onnx(path, x):
    from .onnx import FLOAT_TYPES, load, real_input, scores_output
    proto = load(path)
    value = real_input(proto.graph)
    x = x.astype(FLOAT_TYPES[value.type.tensor_type.elem_type])
    scores = scores_output(proto.graph)
    try:
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    except ImportError:        # the onnx package's own (slower) reference evaluator
        from onnx.reference import ReferenceEvaluator
        session = ReferenceEvaluator(proto)
    wanted = None if scores is None else [scores.output]

    def run(batch):
        out = session.run(wanted, {value.name: batch})[0]
        if scores is not None and scores.output != scores.tensor:     # a ZipMap's maps
            return np.array([list(row.values()) for row in out], np.float32)
        return out
    batch = value.type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value") and batch.dim_value == 1:    # exported for one sample
        return np.concatenate([run(row[None]) for row in x])
    return run(x)


def _run_pytorch(path, x):
    """A saved network; a pickled one is reached only after main accepted --trust-pickle."""
    import torch
    from .pytorch import load, runnable
    network = runnable(load(path, trust_pickle=True))
    with torch.no_grad():       # one sample at a time: an exported program keeps its batch size
        return np.concatenate([network(torch.from_numpy(row[None])).numpy() for row in x])


SOURCE_RUNNERS = {"keras": _run_keras, "onnx": _run_onnx, "pytorch-program": _run_pytorch,
                  "pytorch-script": _run_pytorch, "pytorch-pickle": _run_pytorch}

if __name__ == "__main__":
    sys.exit(main())
