"""Convert a trained PyTorch ``nn.Sequential`` into the runtime's packed ``Model``.

    from edgebnn.converters.pytorch import convert
    model = convert(net.eval(), input_shape=(28, 28))      # a edgebnn.Model
    edgebnn.save_model(model, "models/net.h5")

A saved network comes in by ``load``: a ``torch.export`` program (``.pt2``,
``torch.export.save``) or a TorchScript module (``torch.jit.save``), which
``convert_saved`` converts through torch's own ONNX exporter and
converters/onnx.py. Neither runs Python code from the file. A whole module
pickled by ``torch.save(net, path)`` does: unpickling may run any code the
file names, so ``load`` takes it only with ``trust_pickle=True``; every other
``torch.load`` here is ``weights_only=True``.

The converter describes each module of the (flattened) sequence as
converters.common ``Step``s, which ``common.build_model`` groups into runtime
layers, as for Keras and ONNX; see ``SUPPORTED``. Batch norms use their
running statistics, so the result computes what the net computes in eval
mode. Anything it does not know raises a ValueError naming the module: a
model is never converted with a piece quietly left out.

Binary layers fold everything between their integer dot product and the
next sign into an integer threshold (edgebnn.fold), including, for a first
layer that reads the raw uint8 input, the preprocessing
``x_real = input_scale * x + input_offset``.

Layouts: PyTorch is channels-first, (channels, height, width); the runtime
keeps feature maps as (height, width, channels). So conv weights are
transposed to (out, kh, kw, in), a dense layer after ``Flatten`` of a feature
map gets its columns reordered from CHW to HWC, and a network that starts
with a convolution takes its input channels last: (H, W, C), or (H, W) for
one channel.
"""
import contextlib
import io
from functools import partial

import numpy as np
import torch
from torch import nn

from edgebnn.fold import batchnorm_affine

from . import binary_layers as bl
from .common import Step, archive_kind, build_model, pair, unsupported

SUPPORTED = """supported modules (in an nn.Sequential, nested ones flattened):
  float:  Flatten; Linear [+ ReLU | + final Softmax]; BatchNorm1d; Sign (binarizes a flat float vector);
          a final Softmax anywhere (classify applies softmax to the scores anyway);
          Dropout and Identity (no-ops at inference);
          Conv2d (numeric zero padding, no dilation or groups) [+ BatchNorm2d] [+ ReLU], then
          MaxPool2d(k) [+ ReLU] or AvgPool2d(k); Flatten of the map before a Linear
  binary: BinaryLinear [+ BatchNorm1d] + Sign;
          BinaryLinear [+ BatchNorm1d] without Sign (float scores, usually last);
          BinaryConv2d [+ MaxPool2d(k)] [+ BatchNorm2d] + Sign (pool before the batch norm);
          Flatten of a binary feature map before a BinaryLinear"""
_fail = partial(unsupported, SUPPORTED)     # raise: what is wrong, then what converts


def convert(module, input_shape, input_dtype=None, input_scale=1.0, input_offset=0.0,
            classes=None):
    """The runtime ``Model`` computing ``module`` (in eval mode).

    ``input_shape`` is one sample as ``module`` takes it, without the batch
    axis: e.g. (28, 28) for a net starting with ``Flatten``, (C, H, W) for one
    starting with a convolution. ``module`` sees ``input_scale * x +
    input_offset`` where ``x`` is the runtime's input of ``input_dtype``.
    """
    steps = []
    for name, child in _flatten(module):
        steps += _module_steps(child, f"layer {name} ({type(child).__name__})")
    return build_model(steps, input_shape, True, input_dtype, input_scale, input_offset, classes,
                       SUPPORTED)


def load(path, trust_pickle=False):
    """The network saved at ``path``, told by its content: an ``ExportedProgram``, a
    TorchScript module, or (``trust_pickle`` only) an unpickled ``nn.Module``."""
    import zipfile
    kind = archive_kind(path) if zipfile.is_zipfile(path) else "pytorch-pickle"
    if kind in ("pytorch-program", "pytorch-script"):
        what = "a torch.export program" if kind == "pytorch-program" else "TorchScript"
        try:
            if kind == "pytorch-program":
                return torch.export.load(path)
            return torch.jit.load(path, map_location="cpu")
        except Exception as error:      # torch raises many kinds on a damaged archive
            raise ValueError(f"{path}: named like {what} inside, but torch cannot load it: "
                             f"{type(error).__name__}: {str(error)[:300]}") from None
    if kind != "pytorch-pickle":
        raise ValueError(f"{path}: a zip archive that holds no PyTorch network")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:                   # classes beyond tensors and containers: a pickled module
        content = None
    if content is not None:
        raise ValueError(f"{path}: holds a {type(content).__name__}, not a network (a state_dict?); "
                         "save the network with torch.export.save(torch.export.export(net, "
                         "(sample,)), 'net.pt2')")
    if not trust_pickle:
        raise ValueError(f"{path}: a pickled module (torch.save(net, path)): unpickling runs "
                         "whatever code the file names, so it is refused unless you trust the "
                         "file (--trust-pickle, or trust_pickle=True). Safer: save the network "
                         "with torch.export.save(torch.export.export(net, (sample,)), 'net.pt2')")
    module = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(module, nn.Module):
        raise ValueError(f"{path}: holds a {type(module).__name__}, not a module")
    return module.eval()


def runnable(network):
    """A callable computing ``network`` as ``load`` gives it (for checks against the source)."""
    if isinstance(network, torch.export.ExportedProgram):
        return network.module()
    return network


def convert_saved(network, input_shape=None, input_dtype=None, input_scale=1.0,
                  input_offset=0.0, classes=None):
    """The runtime ``Model`` of a loaded ``ExportedProgram`` or TorchScript module, through
    torch's ONNX exporter (needs the onnx and onnxscript packages) and converters/onnx.py.

    A program records its example input, so ``input_shape`` may be left out; a
    TorchScript module needs it (one sample, without the batch axis).
    """
    from . import onnx as onnx_converter
    quiet = contextlib.redirect_stdout(io.StringIO())       # the exporter reports progress
    if isinstance(network, torch.export.ExportedProgram):
        args, _ = network.example_inputs
        with quiet:
            proto = torch.onnx.export(network, args, dynamo=True, verbose=False).model_proto
        input_shape = input_shape or tuple(args[0].shape[1:])
    else:
        if input_shape is None:
            raise ValueError("a TorchScript module does not record its input shape; give input_shape")
        buffer = io.BytesIO()
        with quiet:
            torch.onnx.export(network, (torch.zeros((1, *input_shape)),), buffer, dynamo=False)
        proto = onnx_converter.onnx.load_from_string(buffer.getvalue())
    return onnx_converter.convert(proto, input_dtype, input_scale, input_offset, classes,
                                  input_shape)


def _flatten(module, prefix=""):
    """``[(name, module)]`` with nested Sequentials opened; names are dotted paths."""
    if type(module) is not nn.Sequential:      # a subclass may have its own forward
        if prefix:
            return [(prefix, module)]
        raise ValueError(f"convert takes an nn.Sequential, not {type(module).__name__}")
    items = []
    for name, child in module.named_children():
        items += _flatten(child, f"{prefix}.{name}" if prefix else name)
    return items


def _module_steps(module, where):
    """The steps computing ``module``.

    Handlers go by exact type: a subclass (say, someone's own quantized
    Linear) computes something else, and must not pass for the layer it
    derives from.
    """
    handler = HANDLERS.get(type(module))
    if handler is None:
        _fail(where, "is not supported")
    return handler(module, where)



# modules -> steps -----------------------------------------------------------

def _no_steps(module, where):
    return []


def _flatten_step(module, where):
    if module.start_dim != 1 or module.end_dim != -1:
        _fail(where, "must flatten everything but the batch axis (start_dim=1, end_dim=-1)")
    return [Step("flatten", where)]


def _simple(op, module, where):
    return [Step(op, where)]


def _softmax(module, where):
    if module.dim not in (None, 1, -1):
        _fail(where, "must normalize over the class axis (dim=1 or -1)")
    return [Step("softmax", where)]


def _linear(module, where):
    bias = _numpy(module.bias) if module.bias is not None else None
    return [Step("linear", where, weight=_numpy(module.weight), bias=bias, binary=False)]


def _binary_linear(module, where):
    """Its forward uses the weights' signs (sign(0) = +1) and no bias."""
    return [Step("linear", where, weight=_signs(module), binary=True)]


def _binary_conv(module, where):
    _check_conv(module, where)
    return [Step("conv", where, weight=_signs(module).transpose(0, 2, 3, 1),
                 stride=tuple(module.stride), padding=tuple(module.padding))]


def _conv(module, where):
    """A float Conv2d."""
    _check_conv(module, where)
    bias = _numpy(module.bias) if module.bias is not None else None
    return [Step("conv", where, weight=_numpy(module.weight).transpose(0, 2, 3, 1), bias=bias,
                 binary=False, stride=tuple(module.stride), padding=tuple(module.padding))]


def _check_conv(module, where):
    if (isinstance(module.padding, str) or module.dilation != (1, 1) or module.groups != 1
            or module.padding_mode != "zeros"):
        _fail(where, "must use numeric zero padding, dilation 1 and groups 1")


def _pool(module, where):
    """A MaxPool2d or AvgPool2d of windows side by side: stride = kernel, no padding."""
    size = pair(module.kernel_size)
    plain = (pair(module.stride or module.kernel_size) == size and pair(module.padding) == (0, 0)
             and not module.ceil_mode)
    if isinstance(module, nn.MaxPool2d):
        plain = plain and pair(module.dilation) == (1, 1) and not module.return_indices
    elif module.divisor_override is not None:
        plain = False
    if not plain:
        _fail(where, f"must be a plain {type(module).__name__}(k): stride = kernel, no padding, "
                     "dilation 1, ceil_mode False")
    return [Step("max_pool" if isinstance(module, nn.MaxPool2d) else "avg_pool", where, size=size)]


def _batch_norm(rank, module, where):
    """With its running statistics, on ``rank``-D samples (1: BatchNorm1d, 3: BatchNorm2d)."""
    if module.running_mean is None:
        _fail(where, "has no running statistics (track_running_stats=False)")
    n = module.num_features
    gamma = _numpy(module.weight) if module.weight is not None else np.ones(n)
    beta = _numpy(module.bias) if module.bias is not None else np.zeros(n)
    scale, shift = batchnorm_affine(gamma, beta, _numpy(module.running_mean),
                                    _numpy(module.running_var), module.eps)
    return [Step("batch_norm", where, scale=scale, shift=shift, rank=rank)]


HANDLERS = {
    nn.Dropout: _no_steps, nn.Identity: _no_steps, nn.Flatten: _flatten_step,
    nn.Linear: _linear, nn.ReLU: partial(_simple, "relu"), nn.Softmax: _softmax,
    nn.BatchNorm1d: partial(_batch_norm, 1), nn.BatchNorm2d: partial(_batch_norm, 3),
    nn.Conv2d: _conv, nn.MaxPool2d: _pool, nn.AvgPool2d: _pool, bl.Sign: partial(_simple, "sign"),
    bl.BinaryLinear: _binary_linear, bl.BinaryConv2d: _binary_conv,
}


def _signs(module):
    return np.where(_numpy(module.weight) >= 0, 1.0, -1.0)



def _numpy(tensor):
    return tensor.detach().cpu().double().numpy()
