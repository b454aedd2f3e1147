"""Convert a trained PyTorch ``nn.Sequential`` into the runtime's packed ``Model``.

    from converters.pytorch import convert
    model = convert(net.eval(), input_shape=(28, 28))      # a runtime.Model
    runtime.save_model(model, "models/net.h5")

The converter walks the (flattened) sequence and turns known runs of modules
into runtime layers; see ``SUPPORTED``. Batch norms use their running
statistics, so the result computes what the net computes in eval mode.
Anything it does not know raises a ValueError naming the module: a model is
never converted with a piece quietly left out.

Binary layers fold everything between their integer dot product and the
next sign into an integer threshold (runtime.fold), including, for a first
layer that reads the raw uint8 input, the preprocessing
``x_real = input_scale * x + input_offset``: the runtime takes the exact
integer dot over the raw values, and ``sum(w * x_real) = input_scale * dot
+ input_offset * sum(w)``.

Layouts: the runtime packs signs along the last axis and keeps feature maps
as (height, width, channels); PyTorch is (channels, height, width). So conv
weights are transposed to (out, kh, kw, in) before packing, a dense layer
after ``Flatten`` of a feature map gets its columns reordered from CHW to
HWC, and a network that starts with a convolution takes its input channels
last: (H, W, C), or (H, W) for one channel.
"""
from dataclasses import dataclass

import numpy as np
from torch import nn

import runtime as rt
from runtime.bitpack import pack_signs
from runtime.fold import batchnorm_affine, fold_sign

from . import binary_layers as bl

SUPPORTED = """supported modules (in an nn.Sequential, nested ones flattened):
  float:  Flatten; Linear [+ ReLU | + final Softmax]; BatchNorm1d; Sign (binarizes a flat float vector);
          a final Softmax anywhere (classify applies softmax to the scores anyway);
          Dropout and Identity (no-ops at inference)
  binary: BinaryLinear [+ BatchNorm1d] + Sign;
          BinaryLinear [+ BatchNorm1d] without Sign (float scores, usually last);
          BinaryConv2d [+ MaxPool2d(k)] [+ BatchNorm2d] + Sign (pool before the batch norm);
          Flatten of a binary feature map before a BinaryLinear"""


@dataclass
class _Signal:
    """What flows between modules, described the way PyTorch sees it.

    ``kind`` is "input" (the raw sample; float layers see it preprocessed),
    "float" or "bits" (+-1 values); ``shape`` excludes the batch axis;
    ``chw`` is set on flat bits that came from flattening a (C, H, W) map,
    which the runtime holds as (H, W, C).
    """
    kind: str
    shape: tuple
    chw: tuple = None

    @property
    def size(self):
        return int(np.prod(self.shape))


def convert(module, input_shape, input_dtype="uint8", input_scale=1 / 255, input_offset=0.0,
            classes=None):
    """The runtime ``Model`` computing ``module`` (in eval mode).

    ``input_shape`` is one sample as ``module`` takes it, without the batch
    axis: e.g. (28, 28) for a net starting with ``Flatten``, (C, H, W) for one
    starting with a convolution. ``module`` sees ``input_scale * x +
    input_offset`` where ``x`` is the runtime's input of ``input_dtype``.
    """
    items = _flatten(module)
    shape = tuple(int(n) for n in input_shape)
    converter = _Converter(items, shape, str(input_dtype), float(input_scale), float(input_offset))
    layers = converter.run()
    return rt.Model(layers, _runtime_input_shape(items, shape), input_dtype, input_scale,
                    input_offset, classes)


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


NO_OPS = (nn.Dropout, nn.Identity)


def _runtime_input_shape(items, shape):
    """A net starting with a convolution takes (H, W, C) samples, or (H, W) for C = 1."""
    first = next((m for _, m in items if type(m) not in NO_OPS), None)
    if type(first) is not bl.BinaryConv2d:
        return shape
    channels, height, width = shape      # checked to be 3-D by the converter
    return (height, width) if channels == 1 else (height, width, channels)


class _Converter:
    """One pass over the modules; each handler consumes a run and emits layers."""

    def __init__(self, items, shape, dtype, scale, offset):
        self.items = items
        self.signal = _Signal("input", shape)
        self.dtype, self.scale, self.offset = dtype, scale, offset
        self.layers = []
        self.handlers = [
            (NO_OPS, self.no_op), (nn.Flatten, self.flatten),
            (bl.BinaryLinear, self.binary), (bl.BinaryConv2d, self.binary),
            (nn.Linear, self.linear), (nn.BatchNorm1d, self.batch_norm),
            (bl.Sign, self.sign), (nn.Softmax, self.softmax),
        ]

    def run(self):
        i = 0
        while i < len(self.items):
            module = self.items[i][1]
            handler = next((h for types, h in self.handlers if _is(module, types)), None)
            if handler is None:
                self.fail(i, "is not supported")
            i = handler(i)
        if not self.layers:
            raise ValueError(f"the network has no layer to convert\n{SUPPORTED}")
        if self.signal.kind == "bits":
            self.fail(len(self.items) - 1, "ends the network with signs; the last layer must "
                      "give float scores (e.g. BinaryLinear + BatchNorm1d without Sign)")
        return self.layers

    def fail(self, i, problem):
        name, module = self.items[i]
        raise ValueError(f"layer {name} ({type(module).__name__}) {problem}\n{SUPPORTED}")

    def next_is(self, i, types):
        """The module at ``i`` if it is one of ``types``, else None."""
        if i < len(self.items) and _is(self.items[i][1], types):
            return self.items[i][1]
        return None

    def flat_size(self, i, wanted=None):
        """The size of the incoming flat vector; fails unless it is 1-D (and ``wanted``)."""
        if len(self.signal.shape) != 1:
            self.fail(i, f"gets a {self.signal.shape} tensor; put nn.Flatten before it")
        if wanted is not None and self.signal.size != wanted:
            self.fail(i, f"expects {wanted} inputs but gets {self.signal.size}")
        return self.signal.size

    # float modules ---------------------------------------------------------

    def no_op(self, i):
        return i + 1

    def flatten(self, i):
        module = self.items[i][1]
        if module.start_dim != 1 or module.end_dim != -1:
            self.fail(i, "must flatten everything but the batch axis (start_dim=1, end_dim=-1)")
        signal = self.signal
        chw = signal.shape if signal.kind == "bits" and len(signal.shape) == 3 else signal.chw
        self.signal = _Signal(signal.kind, (signal.size,), chw)
        return i + 1

    def linear(self, i):
        module = self.items[i][1]
        self.float_input(i)
        self.flat_size(i, module.in_features)
        activation, end = "none", i + 1
        if self.next_is(end, nn.ReLU):
            activation, end = "relu", end + 1
        elif self.next_is(end, nn.Softmax) and end == len(self.items) - 1:
            self.check_softmax(end)
            activation, end = "softmax", end + 1
        bias = _numpy(module.bias) if module.bias is not None else np.zeros(module.out_features)
        self.layers.append(rt.Dense(_numpy(module.weight), bias, activation))
        self.signal = _Signal("float", (module.out_features,))
        return end

    def batch_norm(self, i):
        module = self.items[i][1]
        self.float_input(i)
        self.flat_size(i, module.num_features)
        self.layers.append(rt.BatchNorm(*_batchnorm_affine(module, self, i)))
        self.signal = _Signal("float", self.signal.shape)
        return i + 1

    def sign(self, i):
        self.float_input(i)
        self.flat_size(i)
        self.layers.append(rt.Sign())
        self.signal = _Signal("bits", self.signal.shape)
        return i + 1

    def softmax(self, i):
        if i != len(self.items) - 1:
            self.fail(i, "is only supported as the last module")
        self.float_input(i)
        self.check_softmax(i)
        return i + 1      # classify's scores are already the softmax of the last outputs

    def check_softmax(self, i):
        if self.items[i][1].dim not in (None, 1, -1):
            self.fail(i, "must normalize over the class axis (dim=1 or -1)")

    def float_input(self, i):
        if self.signal.kind == "bits":
            self.fail(i, "gets +-1 signs; only binary layers may follow a Sign")

    # binary modules --------------------------------------------------------

    def binary(self, i):
        """A binary layer and the pool / batch norm / sign after it, as one runtime layer."""
        module = self.items[i][1]
        conv = _is(module, bl.BinaryConv2d)
        j = i + 1
        pool = self.next_is(j, nn.MaxPool2d) if conv else None
        j += pool is not None
        norm_at = j
        norm = self.next_is(j, nn.BatchNorm2d if conv else nn.BatchNorm1d)
        j += norm is not None
        sign = self.next_is(j, bl.Sign)
        j += sign is not None
        if conv and not pool and self.next_is(j, nn.MaxPool2d):
            self.fail(j, "after the batch norm or sign cannot be fused; build "
                         "BinaryConv2d -> MaxPool2d -> BatchNorm2d -> Sign (pool before the norm)")
        signs = np.where(_numpy(module.weight) >= 0, 1.0, -1.0)
        n_out = signs.shape[0]
        scale, shift = self.dot_affine(i, signs, pool)
        if norm is not None:
            if norm.num_features != n_out:
                self.fail(norm_at, f"has {norm.num_features} features, the layer before "
                                   f"it {n_out} outputs")
            norm_scale, norm_shift = _batchnorm_affine(norm, self, norm_at)
            scale, shift = norm_scale * scale, norm_scale * shift + norm_shift
        if conv:
            if sign is None:
                self.fail(i, "must end in Sign: the runtime keeps convolution outputs as "
                             "packed signs")
            weight, attrs, out_shape = self.conv_geometry(i, module, pool, signs)
            self.layers.append(rt.BinaryConv2d(weight, *fold_sign(scale, shift), **attrs))
            self.signal = _Signal("bits", out_shape)
            return j
        weight = self.dense_weight(i, module, signs)
        if sign is not None:
            self.layers.append(rt.BinaryDense(weight, *fold_sign(scale, shift)))
            self.signal = _Signal("bits", (n_out,))
            return j
        # no sign: the integer dots leave as floats, then the affine map in float
        self.layers.append(rt.BinaryDense(weight))
        if not (np.all(scale == 1.0) and np.all(shift == 0.0)):
            self.layers.append(rt.BatchNorm(scale, shift))
        self.signal = _Signal("float", (n_out,))
        return j

    def dot_affine(self, i, signs, pool):
        """``(scale, shift)`` per output from the runtime's integer dot to PyTorch's value."""
        n_out = signs.shape[0]
        if self.signal.kind == "bits":
            return np.ones(n_out), np.zeros(n_out)
        if self.signal.kind != "input":
            self.fail(i, "gets float values; binary layers take signs (put Sign before it) "
                         "or, as the first layer, the raw uint8 input")
        if self.dtype != "uint8":
            self.fail(i, f"is the first layer on {self.dtype} input; the runtime's binary "
                         "layers read raw input only as uint8 (use input_dtype='uint8')")
        module = self.items[i][1]
        padding = getattr(module, "padding", (0, 0))
        if self.offset != 0.0 and not isinstance(padding, str) and max(padding) > 0:
            self.fail(i, "pads its input while input_offset != 0: the padded zeros then "
                         "weigh differently at the borders; use input_offset=0 or padding=0")
        if pool is not None and self.scale < 0:
            self.fail(i, "pools the raw input with input_scale < 0 (max would become min)")
        row_sums = signs.reshape(n_out, -1).sum(axis=1)
        return np.full(n_out, self.scale), self.offset * row_sums

    def dense_weight(self, i, module, signs):
        """Packed rows in the order the runtime holds the incoming signs or values."""
        self.flat_size(i, module.in_features)
        if self.signal.kind == "bits" and self.signal.chw is not None:
            channels, height, width = self.signal.chw
            signs = signs.reshape(len(signs), channels, height, width).transpose(0, 2, 3, 1)
        return pack_signs(signs).reshape(len(signs), -1)

    def conv_geometry(self, i, module, pool, signs):
        """Packed weights, runtime attributes and (C, H, W) output of a conv (+ pool)."""
        shape = self.signal.shape
        if self.signal.kind not in ("bits", "input") or len(shape) != 3:
            self.fail(i, f"takes a (C, H, W) map of signs or the raw (C, H, W) input, not "
                         f"{self.signal.kind} {shape}")
        if shape[0] != module.in_channels:
            self.fail(i, f"has {module.in_channels} input channels but gets {shape[0]}")
        if (isinstance(module.padding, str) or module.dilation != (1, 1) or module.groups != 1
                or module.padding_mode != "zeros"):
            self.fail(i, "must use numeric zero padding, dilation 1 and groups 1")
        pool_size = self.pool_size(i + 1, pool)
        (kh, kw), (sh, sw), (ph, pw) = module.kernel_size, module.stride, module.padding
        conv_h = (shape[1] + 2 * ph - kh) // sh + 1
        conv_w = (shape[2] + 2 * pw - kw) // sw + 1
        out_h, out_w = conv_h // pool_size[0], conv_w // pool_size[1]
        if min(conv_h, conv_w, out_h, out_w) < 1:
            self.fail(i, f"leaves no output for a {shape} input")
        weight = pack_signs(signs.transpose(0, 2, 3, 1))     # (out, kh, kw, ceil(in / 8))
        attrs = {"stride": (sh, sw), "padding": (ph, pw), "pool": pool_size}
        return weight, attrs, (signs.shape[0], out_h, out_w)

    def pool_size(self, i, pool):
        """``(kh, kw)`` of a MaxPool2d the runtime can fuse: stride = kernel, no padding."""
        if pool is None:
            return (1, 1)
        size = _pair(pool.kernel_size)
        if (_pair(pool.stride or pool.kernel_size) != size or _pair(pool.padding) != (0, 0)
                or _pair(pool.dilation) != (1, 1) or pool.ceil_mode or pool.return_indices):
            self.fail(i, "must be a plain MaxPool2d(k): stride = kernel, no padding, "
                         "dilation 1, ceil_mode False")
        return size


def _is(module, types):
    """Exact type match: a subclass (say, someone's own quantized Linear) computes
    something else, and must not pass for the float layer it derives from."""
    return type(module) in (types if isinstance(types, tuple) else (types,))


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _numpy(tensor):
    return tensor.detach().cpu().double().numpy()


def _batchnorm_affine(module, converter, i):
    """``(scale, shift)`` of a batch norm with its running statistics."""
    if module.running_mean is None:
        converter.fail(i, "has no running statistics (track_running_stats=False)")
    n = module.num_features
    gamma = _numpy(module.weight) if module.weight is not None else np.ones(n)
    beta = _numpy(module.bias) if module.bias is not None else np.zeros(n)
    return batchnorm_affine(gamma, beta, _numpy(module.running_mean),
                            _numpy(module.running_var), module.eps)
