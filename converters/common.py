"""Steps -> runtime layers: the half of the converters that knows no framework.

A front end (keras.py, onnx.py, pytorch.py) reads its model and describes
the network as a list of ``Step``s, one per operation, in the framework's
own terms (weights already as +-1 signs where the layer is binary).
``build_model`` then groups them the way the runtime needs them: a float
linear layer takes the batch norm (folded into its weights) and the ReLU or
final softmax after it; a binary layer takes
the max pool, batch norm and sign after it, folded into integer thresholds
(edgebnn.fold), including, for a first layer on the raw uint8 input, the
preprocessing ``x_real = input_scale * x + input_offset``: the runtime takes
the exact integer dot over the raw values, and ``sum(w * x_real) =
input_scale * dot + input_offset * sum(w)``.

This module imports neither TensorFlow nor torch nor onnx, so the Keras
converter runs with h5py alone.

Layouts: the runtime holds feature maps as (H, W, C) and packs signs along C.
A channels-last front end (Keras) already has that order; a channels-first
one (ONNX, PyTorch) gives (C, H, W) shapes, so a dense layer after a
flattened binary map gets its columns reordered from CHW to HWC, and a net
that starts with a convolution takes (H, W, C) samples, or (H, W) for C = 1.
Convolution weights always arrive as (out, kh, kw, in).
"""
import zipfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

import edgebnn as rt
from edgebnn.bitpack import pack_signs
from edgebnn.fold import fold_sign
from edgebnn.kernels import numpy_twin
from edgebnn.kernels.geometry import conv_size
from edgebnn.layers import Signal


@dataclass
class Step:
    """One operation of the source network: ``op`` is linear, conv, batch_norm,
    relu, softmax, sign, max_pool, avg_pool or flatten.

    ``where`` names it in the source's words for error messages, e.g.
    ``layer 'dense_1' (Dense)``. Fields by ``op``:

    - linear: ``weight`` (out, in), ``bias`` or None, ``binary``: True (a
      binary layer: its weights must be +-1), False (float) or None (binary
      exactly when its weights are all +-1 and it reads signs or the raw
      uint8 input; ONNX has no separate binary op)
    - conv: ``weight`` (out, kh, kw, in), ``bias``, ``stride``, ``padding``
      (symmetric, per side), ``binary`` as for linear
    - batch_norm: ``scale``, ``shift`` (y = x * scale + shift), ``axis`` the
      source's axis incl. batch (None: the channel axis of the layout),
      ``rank`` of the samples it takes, without the batch axis (None: any)
    - max_pool, avg_pool: ``size`` (window = stride); flatten: ``size`` if the source
      states the flat length; relu, softmax, sign: nothing
    """
    op: str
    where: str
    weight: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None
    binary: Optional[bool] = None
    scale: Optional[np.ndarray] = None
    shift: Optional[np.ndarray] = None
    axis: Optional[int] = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    size: object = None
    rank: Optional[int] = None


@dataclass
class _Signal:
    """What flows between steps: "input" (the raw sample), "float" or "bits";
    ``shape`` in the source's layout without the batch axis; ``chw`` is the
    (C, H, W) map flat bits came from, when the columns need reordering."""
    kind: str
    shape: tuple
    chw: tuple = None

    @property
    def size(self):
        return int(np.prod(self.shape))


def build_model(steps, input_shape, channels_first, input_dtype, input_scale, input_offset,
                classes, supported):
    """The runtime ``Model`` computing ``steps`` on ``input_shape`` (source layout, no batch).

    ``input_dtype`` is the runtime's; None means the source graph's, float32
    (a front end whose source states another passes that). ``supported`` is the front end's list of what
    it converts, appended to every error so a refused model says what would
    be accepted.
    """
    shape = tuple(int(n) for n in input_shape)
    input_dtype = "float32" if input_dtype is None else input_dtype
    chain = _Chain(_sign_before_flatten(steps), shape, channels_first, str(input_dtype),
                   float(input_scale), float(input_offset), supported)
    layers = chain.run()
    return rt.Model(layers, chain.runtime_input_shape(), input_dtype, input_scale, input_offset,
                    classes)


def with_int8_weights(model):
    """``model`` with every float ``dense`` layer's weights rounded to int8, a scale per
    output (``DenseInt8``): a quarter of the file, inputs quantized per sample at run time."""
    layers = [rt.DenseInt8.quantized(layer) if isinstance(layer, rt.Dense) else layer.copy()
              for layer in model.layers]
    return rt.Model(layers, model.input_shape, model.input_kind, model.input_scale,
                    model.input_offset, model.classes)


def _sign_before_flatten(steps):
    """Swap each flatten + sign into sign + flatten: the same values, since sign
    works value by value, and the binary layer before can then fold the sign
    (Larq puts the sign in the next layer's input quantizer, after Flatten)."""
    steps = list(steps)
    for i in range(len(steps) - 1):
        if steps[i].op == "flatten" and steps[i + 1].op == "sign":
            steps[i], steps[i + 1] = steps[i + 1], steps[i]
    return steps


def archive_kind(path):
    """What a zip file holds, from its member names: "keras" (a Keras 3 ``.keras``
    archive), "pytorch-program" (``torch.export.save``), "pytorch-script"
    (``torch.jit.save``), "pytorch-pickle" (``torch.save``), or None."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if {"config.json", "model.weights.h5"} <= set(names):
        return "keras"
    if any(name.endswith("/archive_format") for name in names):
        return "pytorch-program"
    if any("/code/" in name or name.endswith("/constants.pkl") for name in names):
        return "pytorch-script"
    if any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        return "pytorch-pickle"
    return None


def unsupported(supported, where, problem):
    """Refuse a source's layer: what is wrong with it, then what converts (``supported``)."""
    raise ValueError(f"{where} {problem}\n{supported}")


def pair(value):
    """``(h, w)`` from a framework's kernel, stride or padding argument: one number or two."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def is_plus_minus_one(array):
    return array is not None and array.size > 0 and bool(np.all(np.abs(array) == 1))


def scaled_signs(weight):
    """``(signs, row_scale)`` when every output row (first axis) of ``weight`` is +-c with
    one c > 0 per row, else None.

    Exporters that fold a batch norm into the layer before it (torch 2.13's
    ONNX exporter does) store a binary layer's weights as sign * scale: the
    same binary layer, followed by a per-output scale.
    """
    if weight is None or weight.size == 0:
        return None
    magnitude = np.abs(np.asarray(weight, np.float64)).reshape(len(weight), -1)
    row_scale = magnitude[:, 0]
    if not (np.all(row_scale > 0) and np.all(magnitude == row_scale[:, None])):
        return None
    return np.where(np.asarray(weight) >= 0, 1.0, -1.0), row_scale


class _Chain:
    """One pass over the steps; each handler consumes a run and emits runtime layers."""

    def __init__(self, steps, shape, channels_first, dtype, scale, offset, supported):
        self.steps = steps
        self.input_shape = shape
        self.signal = _Signal("input", shape)
        self.channels_first = channels_first
        self.dtype, self.scale, self.offset = dtype, scale, offset
        self.supported = supported
        self.layers = []

    def run(self):
        handlers = {"linear": self.linear, "conv": self.conv, "batch_norm": self.batch_norm,
                    "sign": self.sign, "softmax": self.softmax, "flatten": self.flatten,
                    "relu": self.stray_relu, "max_pool": self.pool, "avg_pool": self.pool}
        i = 0
        while i < len(self.steps):
            i = handlers[self.steps[i].op](i)
        if not self.layers:
            raise ValueError(f"the network has no layer to convert\n{self.supported}")
        if self.signal.kind == "bits":
            self.fail(len(self.steps) - 1, "ends the network with signs; the last layer must "
                      "give float scores (e.g. a binary dense layer + batch norm without a sign)")
        return self.layers

    def runtime_input_shape(self):
        """Channels-first nets starting with a convolution take (H, W, C), or (H, W) for C = 1."""
        first = next((s for s in self.steps if s.op != "flatten"), None)
        if not (self.channels_first and first is not None and first.op == "conv"):
            return self.input_shape
        channels, height, width = self.input_shape     # checked to be 3-D by the conv
        return (height, width) if channels == 1 else (height, width, channels)

    def fail(self, i, problem):
        raise ValueError(f"{self.steps[i].where} {problem}\n{self.supported}")

    def next_is(self, i, op):
        """The step at ``i`` if it is an ``op``, else None."""
        if i < len(self.steps) and self.steps[i].op == op:
            return self.steps[i]
        return None

    def flat_size(self, i, wanted=None):
        """The size of the incoming flat vector; fails unless it is 1-D (and ``wanted``)."""
        if len(self.signal.shape) != 1:
            self.fail(i, f"gets a {self.signal.shape} tensor; the runtime's float layers and "
                         "signs take flat vectors: flatten before it")
        if wanted is not None and self.signal.size != wanted:
            self.fail(i, f"expects {wanted} inputs but gets {self.signal.size}")
        return self.signal.size

    def float_input(self, i):
        if self.signal.kind == "bits":
            self.fail(i, "gets +-1 signs; only binary layers may follow a sign")

    # float steps -----------------------------------------------------------

    def linear(self, i):
        step = self.steps[i]
        if self.is_binary(i):
            return self.binary(i)
        self.float_input(i)
        n_out, n_in = step.weight.shape
        self.flat_size(i, n_in)
        weight, bias = step.weight, step.bias if step.bias is not None else np.zeros(n_out)
        if self.signal.chw is not None:             # the runtime holds the map as (H, W, C)
            weight = np.asarray(weight).reshape(n_out, *self.signal.chw).transpose(0, 2, 3, 1)
            weight = weight.reshape(n_out, n_in)
        activation, end = "none", i + 1
        norm = self.next_is(end, "batch_norm")
        if norm is not None:            # folded: (W x + b) * scale + shift, one layer
            self.check_norm(end, norm, n_out, rank=1)
            weight = np.asarray(weight, np.float64) * np.asarray(norm.scale, np.float64)[:, None]
            bias = np.asarray(bias, np.float64) * norm.scale + norm.shift
            end += 1
        if self.next_is(end, "relu"):
            activation, end = "relu", end + 1
        elif self.next_is(end, "softmax") and end == len(self.steps) - 1:
            activation, end = "softmax", end + 1
        self.layers.append(rt.Dense(weight, bias, activation))
        self.signal = _Signal("float", (n_out,))
        return end

    def is_binary(self, i):
        """Whether a linear step becomes a binary layer (see ``Step``)."""
        step = self.steps[i]
        if step.binary is not None:
            return step.binary
        if self.signal.kind == "bits":
            if scaled_signs(step.weight) is None:
                self.fail(i, "gets +-1 signs but its weights are not +-1 (or +-c, one c per "
                             "output): only binary layers may follow a sign")
            return True
        return (self.signal.kind == "input" and self.dtype == "uint8"
                and scaled_signs(step.weight) is not None)

    def batch_norm(self, i):
        step = self.steps[i]
        self.float_input(i)
        self.check_norm(i, step, self.flat_size(i), rank=1)
        self.layers.append(rt.BatchNorm(step.scale, step.shift))
        self.signal = _Signal("float", self.signal.shape)
        return i + 1

    def check_norm(self, i, step, n_features, rank):
        """The batch norm's features are the channels of the ``rank``-D signal it gets."""
        if step.rank is not None and step.rank != rank:
            self.fail(i, f"normalizes {step.rank}-D samples but gets {rank}-D ones")
        if len(step.scale) != n_features:
            self.fail(i, f"has {len(step.scale)} features, the layer before it {n_features} "
                         "outputs")
        channel = 1 if self.channels_first else rank
        if step.axis is not None and step.axis not in (channel, channel - rank - 1):
            self.fail(i, f"normalizes axis {step.axis}; only the channel axis ({channel}) "
                         "is supported")

    def sign(self, i):
        """Float values (a vector, or the raw input of any shape) -> flat signs."""
        self.float_input(i)
        if len(self.signal.shape) != 1 and self.next_is(i + 1, "conv"):
            self.fail(i, "binarizes a float feature map, but the runtime's sign gives flat signs "
                         "that no convolution can read (a first convolution reads the raw uint8 "
                         "input itself, without a sign)")
        self.layers.append(rt.Sign())
        self.signal = _Signal("bits", (self.signal.size,), self.map_order())
        return i + 1

    def map_order(self):
        """The (C, H, W) shape of the incoming signal when it is a channels-first float map
        (which the runtime holds as (H, W, C)), else what it already carries."""
        signal = self.signal
        if signal.kind in ("bits", "float") and len(signal.shape) == 3 and self.channels_first:
            return signal.shape
        return signal.chw

    def softmax(self, i):
        if i != len(self.steps) - 1:
            self.fail(i, "is only supported as the last operation")
        self.float_input(i)
        self.flat_size(i)
        return i + 1      # classify's scores are already the softmax of the last outputs

    def flatten(self, i):
        step = self.steps[i]
        signal = self.signal
        if step.size is not None and step.size != signal.size:
            self.fail(i, f"reshapes {signal.size} values to {step.size}")
        self.signal = _Signal(signal.kind, (signal.size,), self.map_order())
        return i + 1

    def stray_relu(self, i):
        self.fail(i, "follows no float dense layer; the runtime applies ReLU only as the "
                     "activation of a dense layer")

    def pool(self, i):
        """Max or average pooling of a float map (a binary convolution fuses its own)."""
        step = self.steps[i]
        if self.signal.kind != "float" or len(self.signal.shape) != 3:
            self.fail(i, "follows no float convolution; the runtime pools float feature maps, "
                         "and max-pools signs only inside a binary convolution (convolution -> "
                         "max pool -> batch norm -> sign)")
        size = tuple(step.size)
        layer = rt.Pool2d("max" if step.op == "max_pool" else "average", size)
        self.signal = _Signal("float", self.map_signal(i, layer))
        self.layers.append(layer)
        before = self.layers[-2] if len(self.layers) > 1 else None
        if (self.next_is(i + 1, "relu") and layer.mode == "max" and isinstance(before, rt.Conv2d)
                and before.activation == "none"):
            before.activation = "relu"          # max pool then ReLU = ReLU then max pool
            return i + 2
        return i + 1

    def map_signal(self, i, layer):
        """The source-layout shape of ``layer``'s output on the incoming float map."""
        shape = self.signal.shape
        height, width, channels = (shape[1], shape[2], shape[0]) if self.channels_first else shape
        try:
            # bound to the twin, whose plans only keep the arrays, for the output's shape
            out = layer.bind(Signal("float", (height, width, channels)), numpy_twin).shape
        except rt.ModelFormatError as error:
            self.fail(i, f"does not fit its {shape} input: {error}")
        return (out[2], out[0], out[1]) if self.channels_first else out

    # float convolution -----------------------------------------------------

    def conv(self, i):
        """A convolution: binary when its weights are +-1 (or +-c per output) and it reads
        signs or the raw uint8 input, else float."""
        step = self.steps[i]
        binary = step.binary
        if binary is None:
            reads_bits = self.signal.kind == "bits" or (self.signal.kind == "input"
                                                        and self.dtype == "uint8")
            binary = reads_bits and scaled_signs(step.weight) is not None
        return self.binary(i) if binary else self.float_conv(i)

    def float_conv(self, i):
        """A float convolution and the batch norm (folded) and ReLU after it."""
        step = self.steps[i]
        self.float_input(i)
        if len(self.signal.shape) != 3:
            self.fail(i, f"takes a 3-D map, not a {self.signal.shape} signal")
        weight = np.asarray(step.weight, np.float64)            # (out, kh, kw, in)
        n_out = len(weight)
        bias = np.zeros(n_out) if step.bias is None else np.asarray(step.bias, np.float64)
        end = i + 1
        norm = self.next_is(end, "batch_norm")
        if norm is not None:
            self.check_norm(end, norm, n_out, rank=3)
            weight = weight * np.asarray(norm.scale, np.float64)[:, None, None, None]
            bias = bias * norm.scale + norm.shift
            end += 1
        activation = "none"
        if self.next_is(end, "relu"):
            activation, end = "relu", end + 1
        layer = rt.Conv2d(weight, bias, step.stride, step.padding, activation)
        self.signal = _Signal("float", self.map_signal(i, layer))
        self.layers.append(layer)
        return end


    # binary steps ----------------------------------------------------------

    def binary(self, i):
        """A binary layer and the pool / batch norm / sign after it, as one runtime layer."""
        step = self.steps[i]
        conv = step.op == "conv"
        split = scaled_signs(step.weight)
        if split is None:
            self.fail(i, "has weights that are not all +-1 or +-c per output (a binary layer "
                         "needs them)")
        signs, row_scale = split
        j = i + 1
        pool = self.next_is(j, "max_pool") if conv else None
        j += pool is not None
        norm_at = j
        norm = self.next_is(j, "batch_norm")
        j += norm is not None
        sign = self.next_is(j, "sign")
        j += sign is not None
        if conv and not pool and self.next_is(j, "max_pool"):
            self.fail(j, "after the batch norm or sign cannot be fused; build convolution -> "
                         "max pool -> batch norm -> sign (pool before the norm)")
        n_out = signs.shape[0]
        scale, shift = self.dot_affine(i, signs, pool)
        scale, shift = row_scale * scale, row_scale * shift
        if step.bias is not None:
            shift = shift + np.asarray(step.bias, np.float64)
        if norm is not None:
            self.check_norm(norm_at, norm, n_out, rank=3 if conv else 1)
            scale, shift = norm.scale * scale, norm.scale * shift + norm.shift
        if conv:
            if sign is None:
                self.fail(i, "must be followed by a sign (after any max pool and batch norm): "
                             "the runtime keeps convolution outputs as packed signs")
            weight, attrs, out_shape = self.conv_geometry(i, step, pool)
            self.layers.append(rt.BinaryConv2d(weight, *fold_sign(scale, shift), **attrs))
            self.signal = _Signal("bits", out_shape)
            return j
        weight = self.dense_weight(i, signs)
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
        """``(scale, shift)`` per output from the runtime's integer dot to the source's value."""
        n_out = signs.shape[0]
        if self.signal.kind == "bits":
            return np.ones(n_out), np.zeros(n_out)
        if self.signal.kind != "input":
            self.fail(i, "gets float values; binary layers take signs (binarize its input) "
                         "or, as the first layer, the raw uint8 input")
        if self.dtype != "uint8":
            self.fail(i, f"is the first layer on {self.dtype} input; the runtime's binary "
                         "layers read raw input only as uint8 (use input_dtype='uint8')")
        step = self.steps[i]
        if self.offset != 0.0 and max(step.padding) > 0:
            self.fail(i, "pads its input while input_offset != 0: the padded zeros then "
                         "weigh differently at the borders; use input_offset=0 or no padding")
        if pool is not None and self.scale < 0:
            self.fail(i, "pools the raw input with input_scale < 0 (max would become min)")
        row_sums = signs.reshape(n_out, -1).sum(axis=1)
        return np.full(n_out, self.scale), self.offset * row_sums

    def dense_weight(self, i, signs):
        """Packed rows in the order the runtime holds the incoming signs or values."""
        self.flat_size(i, signs.shape[1])
        if self.signal.kind == "bits" and self.signal.chw is not None:
            channels, height, width = self.signal.chw
            signs = signs.reshape(len(signs), channels, height, width).transpose(0, 2, 3, 1)
        return pack_signs(signs).reshape(len(signs), -1)

    def conv_geometry(self, i, step, pool):
        """Packed weights, runtime attributes and output shape (source layout) of a conv."""
        shape = self.signal.shape
        if self.signal.kind not in ("bits", "input") or len(shape) != 3:
            layout = "(C, H, W)" if self.channels_first else "(H, W, C)"
            self.fail(i, f"takes a {layout} map of signs or the raw {layout} input, not "
                         f"{self.signal.kind} {shape}")
        if self.channels_first:
            channels, height, width = shape
        else:
            height, width, channels = shape
        n_out, kh, kw, in_channels = step.weight.shape
        if in_channels != channels:
            self.fail(i, f"has {in_channels} input channels but gets {channels}")
        pool_size = tuple(pool.size) if pool is not None else (1, 1)
        (sh, sw), (ph, pw) = step.stride, step.padding
        conv_h, conv_w = conv_size(height, kh, sh, ph), conv_size(width, kw, sw, pw)
        out_h, out_w = conv_h // pool_size[0], conv_w // pool_size[1]
        if min(conv_h, conv_w, out_h, out_w) < 1:
            self.fail(i, f"leaves no output for a {shape} input")
        weight = pack_signs(step.weight)          # (out, kh, kw, ceil(in / 8))
        attrs = {"stride": (sh, sw), "padding": (ph, pw), "pool": pool_size}
        out = (n_out, out_h, out_w) if self.channels_first else (out_h, out_w, n_out)
        return weight, attrs, out
