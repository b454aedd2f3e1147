"""Convert a Keras / Larq model saved as HDF5 (``model.save("net.h5")``) into a runtime ``Model``.

    from edgebnn.converters.keras import convert
    model = convert("net.h5")                  # a edgebnn.Model
    edgebnn.save_model(model, "models/net.h5")

Only h5py is needed: the architecture comes from the JSON in the file's
root attribute ``model_config`` and the weights from ``model_weights/<layer>``,
so converting on a board or in CI needs neither TensorFlow nor Larq. Both
the tf.keras / tf-keras (Keras 2) and the Keras 3 legacy-HDF5 layouts are
read: they differ in how the input shape is spelled (``batch_input_shape``
vs ``batch_shape``) and in the weight paths, which both list in each layer
group's ``weight_names``. A Keras 3 ``.keras`` archive (``model.save("net.keras")``)
is a zip of ``config.json`` (the same model config) and ``model.weights.h5``,
whose ``layers/<key>/vars/<i>`` hold each layer's weights in the order the
layer creates them. Keras keys them by class and position, as its own loader
finds them (``dense``, ``dense_1``, ... in the order of the layers), never by
the layer's name, which a model may set freely.

Larq's QuantDense / QuantConv2D keep real "latent" weights; their kernel
quantizer (ste_sign, or approx_sign / swish_sign, which binarize the same
way forward) takes the sign, sign(0) = +1. An input quantizer ste_sign
binarizes whatever the layer before gave: that sign is folded into the
previous binary layer's thresholds, or becomes a runtime ``sign`` layer after
float layers. Keras is channels-last, the runtime's own layout: the model
takes samples of the shape the Keras model takes (without the batch axis).

The source is untrusted: every weight is reached through hard links only and
read only when its data lies in the file itself (HDF5 external storage,
external or soft links and virtual datasets are refused, naming the place),
so converting a file never copies another local file into the model.
"""
import io
import json
import os
import re
import zipfile
from functools import partial

import h5py
import numpy as np

from edgebnn.fold import batchnorm_affine

from .common import Step, build_model, is_plus_minus_one, pair, unsupported

SUPPORTED = """supported Keras layers (a Sequential model, or a Functional one that is a single chain;
channels_last):
  float:  InputLayer; Flatten; Dropout; Dense (activation linear, relu, or softmax on the last layer);
          Activation or ReLU (relu after a Dense [+ BatchNormalization], linear, softmax as the
          last layer); Softmax as the last layer; BatchNormalization on a flat vector (folded into
          the Dense before it, if any); Conv2D with float weights (activation linear or relu;
          padding valid, or same with strides 1 and an odd kernel) [+ BatchNormalization], then
          MaxPooling2D / AveragePooling2D (strides = pool_size)
  binary: larq QuantDense and QuantConv2D with kernel_quantizer ste_sign (approx_sign and swish_sign
          binarize the same way) and input_quantizer ste_sign (binarizes the previous output) or none
          (only as the first layer, on the raw uint8 input); a Conv2D whose kernel is all +-1;
          a convolution [+ MaxPooling2D] [+ BatchNormalization] then a layer with an ste_sign input
          quantizer (conv padding valid, or same with stride 1 and odd kernel; pool strides = pool_size);
          QuantDense [+ BatchNormalization] as the last layers (float scores)"""
_fail = partial(unsupported, SUPPORTED)     # raise: what is wrong, then what converts

SIGN_QUANTIZERS = ("ste_sign", "approx_sign", "swish_sign", "SteSign", "ApproxSign", "SwishSign")


def convert(path, input_dtype=None, input_scale=1.0, input_offset=0.0, classes=None):
    """The runtime ``Model`` computing the Keras model saved at ``path``.

    The Keras model sees ``input_scale * x + input_offset`` where ``x`` is the
    runtime's input of ``input_dtype``; a first binary layer on uint8 input
    folds that into its thresholds.
    """
    path = os.fspath(path)
    config, weights = read_model(path)
    layers = _sequential_layers(config, path)
    steps = []
    for layer in layers:
        steps += _layer_steps(layer, weights)
    return build_model(steps, input_shape(config, layers, path), False,
                       input_dtype or _source_dtype(layers), input_scale, input_offset, classes,
                       SUPPORTED)


def _source_dtype(layers):
    """The dtype the Keras model takes: its input layer's, uint8 or (any float) float32."""
    dtype = layers[0].get("config", {}).get("dtype")
    if isinstance(dtype, dict):                       # Keras 3: a dtype policy
        dtype = (dtype.get("config") or {}).get("name")
    return "uint8" if dtype == "uint8" else "float32"


# reading the file --------------------------------------------------------------

def read_model(path):
    """``(config, weights)``: the parsed ``model_config`` and a reader of layer weights."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        return _read_archive(path)
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({error}); expected a Keras model "
                         "saved with model.save('net.h5')") from None
    with f:
        if "model_config" not in f.attrs:
            raise ValueError(f"{path}: no 'model_config' attribute: not a whole Keras model "
                             "(weights only, from save_weights?); save it with model.save('net.h5')")
        config = _parse_config(f.attrs["model_config"], path)
        if "model_weights" not in f:
            raise ValueError(f"{path}: no 'model_weights' group: the file holds no weights")
        weights = _read_weights(f["model_weights"], path)
    return config, weights


MAX_ARCHIVE_MEMBER = 1 << 30


def _read_archive(path):
    """``(config, weights)`` of a Keras 3 ``.keras`` archive."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: info for info in archive.infolist()}
        for name in ("config.json", "model.weights.h5"):
            if name not in members:
                raise ValueError(f"{path}: a zip without {name}: not a Keras 3 .keras archive")
            if members[name].file_size > MAX_ARCHIVE_MEMBER:
                raise ValueError(f"{path}: {name} unpacks to {members[name].file_size} bytes")
        config = _parse_config(archive.read("config.json"), path)
        weights_file = io.BytesIO(archive.read("model.weights.h5"))
    try:
        f = h5py.File(weights_file, "r")
    except OSError as error:
        raise ValueError(f"{path}: model.weights.h5 is not readable HDF5 ({error})") from None
    with f:
        if not isinstance(f.get("layers"), h5py.Group):
            raise ValueError(f"{path}: model.weights.h5 has no 'layers' group")
        weights = {}
        layers = [layer for layer in _sequential_layers(config, path)
                  if layer.get("class_name") != "InputLayer"]     # Sequential.layers omits it
        for layer, key in zip(layers, _archive_keys(layers)):
            name = str(layer.get("config", {}).get("name"))
            group = _inside(f, f"layers/{key}", path, h5py.Group, missing_ok=True)
            variables = group and _inside(group, "vars", path, h5py.Group, missing_ok=True)
            if variables is None:
                continue
            names = _archive_weight_names(layer)
            if len(names) != len(variables):
                raise ValueError(f"{path}: layers/{key} (layer {name!r}) holds {len(variables)} "
                                 f"weights; a {layer.get('class_name')} so configured has "
                                 f"{len(names)}")
            weights[name] = {key: _stored_array(variables, str(i), path)
                             for i, key in enumerate(names)}
    return config, _Weights(weights, path)


MAX_WEIGHT_BYTES = 1 << 30


def _inside(group, name, path, kind, missing_ok=False):
    """``group[name]`` (a path of '/'-separated parts) as a ``kind``, reached through hard
    links only: a soft or external link could point anywhere on this machine."""
    for part in name.split("/"):
        link = group.get(part, getlink=True)
        place = f"{group.name}/{part}".lstrip("/")
        if link is None:
            if missing_ok:
                return None
            raise ValueError(f"{path}: weight {place} is listed but missing")
        if not isinstance(link, h5py.HardLink):
            raise ValueError(f"{path}: {place} is a {type(link).__name__}: links are refused, "
                             "not followed")
        group = group[part]
    if not isinstance(group, kind):
        if missing_ok:
            return None
        raise ValueError(f"{path}: {group.name} is not a "
                         f"{'group' if kind is h5py.Group else 'dataset'}")
    return group


def _stored_array(group, name, path):
    """The array of the dataset ``group[name]``, read only when its data lies in the file
    itself: external storage and virtual datasets name other files."""
    dataset = _inside(group, name, path, h5py.Dataset)
    plist = dataset.id.get_create_plist()
    if plist.get_external_count() or plist.get_layout() == h5py.h5d.VIRTUAL:
        raise ValueError(f"{path}: {dataset.name} keeps its data outside the file (external "
                         "storage or a virtual dataset): refused, not read")
    if dataset.shape is None:
        raise ValueError(f"{path}: {dataset.name} is empty (no dataspace)")
    if int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize > MAX_WEIGHT_BYTES:
        raise ValueError(f"{path}: {dataset.name} of shape {dataset.shape} is over the "
                         f"{MAX_WEIGHT_BYTES}-byte limit for one weight")
    try:
        return np.asarray(dataset[()])
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: {dataset.name} is unreadable ({error})") from None


def _archive_keys(layers):
    """The group of each layer in a .keras archive: its class in snake case, then _1, _2, ...
    for the later layers of the same class (Keras's saving_lib names them so)."""
    seen, keys = {}, []
    for layer in layers:
        base = _snake_case(str(layer.get("class_name", "")))
        keys.append(base if base not in seen else f"{base}_{seen[base] + 1}")
        seen[base] = seen[base] + 1 if base in seen else 0
    return keys


def _snake_case(name):
    """``BatchNormalization`` -> ``batch_normalization``, as Keras turns class names."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _archive_weight_names(layer):
    """The names of a layer's weights in the order Keras 3 creates (and so saves) them."""
    kind, config = layer.get("class_name"), layer.get("config", {})
    if kind in ("Dense", "QuantDense", "Conv2D", "QuantConv2D"):
        return ["kernel"] + (["bias"] if config.get("use_bias", True) else [])
    if kind == "BatchNormalization":
        return (["gamma"] if config.get("scale", True) else []) + \
            (["beta"] if config.get("center", True) else []) + ["moving_mean", "moving_variance"]
    return []


def _parse_config(raw, path):
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path}: model_config is not valid JSON ({error})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"{path}: model_config has no class_name: not a Keras model config")
    return config


def _read_weights(group, path):
    """``{layer name: {weight name: array}}``; weight names lose their scope and ``:0``.

    Each layer group lists its datasets in ``weight_names``, relative to the
    group: Keras 2 writes ``dense/kernel:0``, Keras 3 ``sequential/dense/kernel``.
    """
    weights = {}
    for layer in group:
        member = _inside(group, layer, path, h5py.Group, missing_ok=True)
        if member is None:
            continue
        arrays = {}
        for name in member.attrs.get("weight_names", []):
            name = name.decode() if isinstance(name, bytes) else str(name)
            arrays[name.rsplit("/", 1)[-1].split(":")[0]] = _stored_array(member, name, path)
        weights[layer] = arrays
    return _Weights(weights, path)


class _Weights:
    """Layer weights by name, with a clear error for a missing one."""

    def __init__(self, arrays, path):
        self.arrays, self.path = arrays, path

    def get(self, layer, name, where, shape=None):
        array = self.arrays.get(layer, {}).get(name)
        if array is None:
            raise ValueError(f"{self.path}: {where}: weight '{name}' missing from "
                             f"model_weights/{layer}")
        if shape is not None and array.shape != tuple(shape):
            raise ValueError(f"{self.path}: {where}: weight '{name}' has shape {array.shape}, "
                             f"the config implies {tuple(shape)}")
        if array.dtype.kind != "f" or not np.isfinite(array).all():
            raise ValueError(f"{self.path}: {where}: weight '{name}' is not finite floats")
        return array


def _sequential_layers(config, path):
    """The model's layers in order: a Sequential's, or a Functional model's single chain."""
    kind, body = config["class_name"], config.get("config")
    if kind in ("Functional", "Model"):
        return _chain(body if isinstance(body, dict) else {}, path)
    if kind != "Sequential":
        raise ValueError(f"{path}: a {kind} model; only Sequential models and Functional ones "
                         f"that are a single chain are supported\n{SUPPORTED}")
    layers = body if isinstance(body, list) else (body or {}).get("layers")   # Keras < 2.2: a list
    if not layers:
        raise ValueError(f"{path}: the Sequential model config lists no layers")
    return layers


def _chain(body, path):
    """A Functional model's layers from its input to its output, when each takes the one
    before it: one input, one output, no branch, merge or shared layer."""
    layers = [layer for layer in body.get("layers") or [] if isinstance(layer, dict)]
    by_name = {layer.get("name", layer.get("config", {}).get("name")): layer for layer in layers}
    inputs, outputs = _ends(body.get("input_layers")), _ends(body.get("output_layers"))
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"{path}: a Functional model with {len(inputs)} inputs and "
                         f"{len(outputs)} outputs; only a single chain converts\n{SUPPORTED}")
    chain, name = [], outputs[0]
    while name in by_name and len(chain) <= len(layers):
        chain.append(by_name[name])
        sources = _inbound(by_name[name])
        if not sources:
            break
        if len(sources) != 1:
            raise ValueError(f"{path}: layer {name!r} takes {len(sources)} inputs (a merge, or a "
                             f"layer used twice); only a single chain converts\n{SUPPORTED}")
        name = sources[0]
    if name != inputs[0] or len(chain) != len(layers):
        raise ValueError(f"{path}: the Functional model's layers do not form one chain from "
                         f"{inputs[0]!r} to {outputs[0]!r} (a branch, or a layer off the "
                         f"path)\n{SUPPORTED}")
    return chain[::-1]


def _ends(entries):
    """Layer names of ``input_layers`` / ``output_layers``: [name, node, tensor] entries,
    or one such entry alone."""
    if isinstance(entries, list) and len(entries) == 3 and isinstance(entries[0], str):
        entries = [entries]
    return [entry[0] for entry in entries or [] if isinstance(entry, list) and entry
            and isinstance(entry[0], str)]


def _inbound(layer):
    """Names of the layers feeding ``layer`` over all its calls: Keras 2 nests
    [name, node, tensor, kwargs] lists, Keras 3 tensors with a ``keras_history``."""
    names = []

    def walk(item):
        if isinstance(item, dict):
            config = item.get("config")
            history = config.get("keras_history") if isinstance(config, dict) else None
            if isinstance(history, list) and history and isinstance(history[0], str):
                names.append(history[0])
                return
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
                names.append(item[0])
                return
            for value in item:
                walk(value)
    walk(layer.get("inbound_nodes") or [])
    return names


def input_shape(config, layers, path):
    """One sample's shape: from the InputLayer, the first layer or the model's build shape."""
    candidates = [layers[0].get("config", {})]
    body = config.get("config")
    if isinstance(body, dict):
        candidates.append({"batch_input_shape": body.get("build_input_shape")})
    for entry in candidates:
        shape = entry.get("batch_input_shape") or entry.get("batch_shape")
        if shape:
            dims = shape[1:]
            if not dims or not all(isinstance(n, int) and n > 0 for n in dims):
                raise ValueError(f"{path}: input shape {shape} must give every size but the batch")
            return tuple(dims)
    raise ValueError(f"{path}: the model config states no input shape (build the model with "
                     "an Input layer before saving)")


# layers -> steps ----------------------------------------------------------------

def _layer_steps(layer, weights):
    kind = layer.get("class_name")
    config = layer.get("config", {})
    where = f"layer {config.get('name')!r} ({kind})"
    handler = HANDLERS.get(kind)
    if handler is None:
        raise ValueError(f"{where} is not supported\n{SUPPORTED}")
    return handler(config, where, weights)



def _no_steps(config, where, weights):
    return []


def _flatten(config, where, weights):
    _channels_last(config, where)
    return [Step("flatten", where)]


def _activation_steps(activation, where):
    if not isinstance(activation, str) or activation not in ("linear", "relu", "softmax"):
        _fail(where, f"has activation {activation!r}; supported: linear, relu, softmax")
    return [] if activation == "linear" else [Step(activation, where)]


def _activation(config, where, weights):
    return _activation_steps(config.get("activation"), where)


def _relu(config, where, weights):
    """The ReLU layer, as plain max(x, 0) only: no cap, slope or threshold."""
    for key, plain in (("max_value", None), ("negative_slope", 0.0), ("threshold", 0.0)):
        if config.get(key, plain) != plain:
            _fail(where, f"has {key}={config[key]!r}; only a plain ReLU (max(x, 0)) is supported")
    return [Step("relu", where)]


def _softmax(config, where, weights):
    if config.get("axis", -1) not in (-1, [-1]):
        _fail(where, f"takes the softmax over axis {config['axis']!r}; only the last axis "
                     "is supported")
    return [Step("softmax", where)]


def _dense_weights(config, where, weights):
    """``(kernel (in, units), bias or None)`` of a Dense-like layer, shapes checked."""
    name, units = config["name"], config["units"]
    kernel = weights.get(name, "kernel", where)
    if kernel.ndim != 2 or kernel.shape[1] != units:
        _fail(where, f"has a kernel of shape {kernel.shape} for {units} units")
    bias = weights.get(name, "bias", where, (units,)) if config.get("use_bias", True) else None
    return kernel, bias


def _dense(config, where, weights):
    kernel, bias = _dense_weights(config, where, weights)
    return [Step("linear", where, weight=kernel.T, bias=bias, binary=False),
            *_activation_steps(config.get("activation", "linear"), where)]


def _batch_norm(config, where, weights):
    name = config["name"]
    mean = weights.get(name, "moving_mean", where)
    var = weights.get(name, "moving_variance", where, mean.shape)
    gamma = weights.get(name, "gamma", where, mean.shape) if config.get("scale", True) else 1.0
    beta = weights.get(name, "beta", where, mean.shape) if config.get("center", True) else 0.0
    axis = config.get("axis", -1)
    if isinstance(axis, list):
        if len(axis) != 1:
            _fail(where, f"normalizes over axes {axis}; only the channel axis is supported")
        axis = axis[0]
    scale, shift = batchnorm_affine(gamma, beta, mean, var, float(config.get("epsilon", 1e-3)))
    return [Step("batch_norm", where, scale=scale, shift=shift, axis=int(axis))]


def _pool(op, config, where, weights):
    """MaxPooling2D or AveragePooling2D, windows side by side."""
    _channels_last(config, where)
    size = pair(config.get("pool_size", (2, 2)))
    stride = pair(config.get("strides") or size)
    if stride != size or config.get("padding", "valid") != "valid":
        _fail(where, f"has pool_size {size}, strides {stride}, padding "
                     f"{config.get('padding')!r}; the runtime pools with strides = pool_size, "
                     "padding 'valid'")
    return [Step(op, where, size=size)]


def _conv(config, where, weights):
    """Conv2D or QuantConv2D: a float convolution (a Conv2D's float kernel), or a binary one,
    its input binarized or the raw input."""
    _channels_last(config, where)
    name = config["name"]
    if pair(config.get("dilation_rate", 1)) != (1, 1) or config.get("groups", 1) != 1:
        _fail(where, "must have dilation_rate 1 and groups 1")
    kernel = weights.get(name, "kernel", where)
    if kernel.ndim != 4 or kernel.shape[3] != config["filters"]:
        _fail(where, f"has a kernel of shape {kernel.shape} for {config['filters']} filters")
    size, stride = kernel.shape[:2], pair(config.get("strides", 1))
    padding = _conv_padding(config, where, size, stride)
    bias = weights.get(name, "bias", where, kernel.shape[3:]) if config.get("use_bias") else None
    if "kernel_quantizer" not in config and not is_plus_minus_one(kernel):      # a float Conv2D
        return [Step("conv", where, weight=kernel.transpose(3, 0, 1, 2), bias=bias, binary=False,
                     stride=stride, padding=padding),
                *_activation_steps(config.get("activation", "linear"), where)]
    signs = _kernel_signs(config, where, kernel).transpose(3, 0, 1, 2)    # (out, kh, kw, in)
    steps = _input_quantizer(config, where)
    steps.append(Step("conv", where, weight=signs, bias=bias, stride=stride, padding=padding))
    _linear_only(config, where)
    return steps


def _quant_dense(config, where, weights):
    kernel, bias = _dense_weights(config, where, weights)
    steps = _input_quantizer(config, where)
    steps.append(Step("linear", where, weight=_kernel_signs(config, where, kernel).T, bias=bias,
                      binary=True))
    _linear_only(config, where)
    return steps


def _linear_only(config, where):
    """A binary layer's output goes through batch norm and the next layer's input quantizer."""
    activation = config.get("activation", "linear")
    if activation != "linear":
        _fail(where, f"has activation {activation!r}; binary layers support only 'linear' "
                     "(binarize with the next layer's input_quantizer)")


def _kernel_signs(config, where, kernel):
    """+-1 weights: the sign of a Larq layer's latent kernel, or a Conv2D's own +-1 kernel."""
    if "kernel_quantizer" not in config:          # plain Conv2D of +-1
        return kernel.astype(np.float64)
    if not _is_sign(config["kernel_quantizer"]):
        _fail(where, f"has kernel_quantizer {_quantizer_name(config['kernel_quantizer'])}; "
                     "supported: ste_sign, approx_sign, swish_sign")
    return np.where(kernel >= 0, 1.0, -1.0)


def _input_quantizer(config, where):
    """A sign step for an ste_sign input quantizer, nothing for none."""
    quantizer = config.get("input_quantizer")
    if quantizer is None:
        return []
    if not _is_sign(quantizer):
        _fail(where, f"has input_quantizer {_quantizer_name(quantizer)}; supported: ste_sign, "
                     "approx_sign, swish_sign, or none on the raw input")
    return [Step("sign", where)]


def _conv_padding(config, where, size, stride):
    """Symmetric zero padding per side; 'same' only where it is symmetric whatever the input."""
    padding = config.get("padding", "valid")
    if padding == "valid":
        return (0, 0)
    if float(config.get("pad_values", 0.0)) != 0.0:
        _fail(where, f"pads with {config['pad_values']}; the runtime pads with zeros "
                     "(pad_values=0)")
    if padding == "same" and stride == (1, 1) and size[0] % 2 == 1 and size[1] % 2 == 1:
        return (size[0] // 2, size[1] // 2)
    _fail(where, f"has padding {padding!r} with kernel {tuple(size)} and strides {stride}; "
                 "supported: 'valid', or 'same' with strides 1 and an odd kernel")


def _is_sign(quantizer):
    return _quantizer_name(quantizer) in SIGN_QUANTIZERS


def _quantizer_name(quantizer):
    if isinstance(quantizer, dict):
        return quantizer.get("class_name")
    return quantizer


def _channels_last(config, where):
    if config.get("data_format", "channels_last") != "channels_last":
        _fail(where, f"uses data_format {config['data_format']!r}; only channels_last is supported")



HANDLERS = {
    "InputLayer": _no_steps, "Dropout": _no_steps, "Flatten": _flatten,
    "Dense": _dense, "Activation": _activation, "ReLU": _relu, "Softmax": _softmax,
    "BatchNormalization": _batch_norm,
    "MaxPooling2D": partial(_pool, "max_pool"), "AveragePooling2D": partial(_pool, "avg_pool"),
    "Conv2D": _conv, "QuantConv2D": _conv,
    "QuantDense": _quant_dense,
}
