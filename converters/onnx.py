"""Convert an ONNX model (a file or a ``ModelProto``) into a runtime ``Model``.

    from edgebnn.converters.onnx import convert
    model = convert("net.onnx")                 # a edgebnn.Model
    edgebnn.save_model(model, "models/net.h5")

Needs the ``onnx`` package (an optional extra), nothing else. The graph
must be one chain from its single input to its single output (a classifier
from scikit-learn's converter, with a label output beside its
probabilities, is read up to the probabilities); every node on
it is matched against the supported operators, and anything else (a branch,
an unknown operator, an unsupported attribute) raises a ValueError naming
the node, its operator and what is supported.

Subgraphs that depend only on constants (or only on tensor shapes, read at
batch size 1) are evaluated first, with the ``onnx`` package's reference
evaluator: PyTorch exports a binary layer's weight as ``Where(W >= 0, 1, -1)``
over the latent weight, which becomes the +-1 weight that marks the layer as
binary. A MatMul / Gemm / Conv is binary
when its weights are all +-1 and it reads signs (after a Sign) or, as the
first layer, the raw uint8 input; the batch norm and sign after it fold
into integer thresholds (edgebnn.fold). Two forms count as a sign: PyTorch's
``Where(x >= 0, 1, -1)``, which is the runtime's (sign(0) = +1), and ONNX's
``Sign``, which gives 0 at exactly 0 where the runtime gives +1 (the two
agree unless a value is exactly 0, e.g. after a ReLU).

ONNX is channels-first like PyTorch, and the conversion matches
converters/pytorch.py: a net starting with a convolution takes (H, W, C)
samples, or (H, W) for one channel; other nets take the graph input's shape
without the batch axis.
"""
import os
from typing import NamedTuple, Optional

import numpy as np

import onnx
import onnx.external_data_helper
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator
from edgebnn.fold import batchnorm_affine

from .common import Step, build_model

SUPPORTED = """supported ONNX graphs: one chain from one input to one output, of
  float:  Gemm; MatMul [+ Add of a constant]; Relu after them; BatchNormalization on a flat vector;
          Flatten (axis 1) or Reshape to (batch, features); a final Softmax / LogSoftmax (over the
          classes); Identity, Dropout, Cast to FLOAT / DOUBLE; Conv with float weights (pads
          symmetric, no dilation or groups) [+ BatchNormalization] [+ Relu], then MaxPool [+ Relu]
          or AveragePool (strides = kernel_shape, no pads)
  scikit-learn classifiers (skl2onnx): the probabilities taken, the label output and ZipMap left out
  binary: Sign, or Where(x >= 0, 1, -1) as PyTorch exports it, then a Gemm / MatMul / Conv whose
          weights are all +-1 (a first one may read the raw uint8 input without a sign);
          Conv [+ MaxPool] [+ BatchNormalization] + sign (pads symmetric, no dilation or groups;
          MaxPool strides = kernel_shape, no pads, ceil_mode 0);
          Gemm / MatMul [+ BatchNormalization] [+ sign]"""

FLOAT_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}


def convert(source, input_dtype=None, input_scale=1.0, input_offset=0.0, classes=None,
            input_shape=None):
    """The runtime ``Model`` computing the ONNX model ``source`` (a path or a ``ModelProto``).

    The graph sees ``input_scale * x + input_offset`` where ``x`` is the
    runtime's input of ``input_dtype``. ``input_shape`` (without the batch
    axis) is needed only when the graph leaves sizes other than the batch
    symbolic; otherwise it must agree with the graph.
    """
    model = load(source)
    scores = scores_output(model.graph)
    if scores is not None:
        model = _pruned(model, scores.tensor)
        classes = scores.classes if classes is None else classes
    graph = model.graph
    shape = source_input_shape(model, input_shape)
    steps = _Walker(graph, _constants(model, shape)).walk(real_input(graph).name)
    return build_model(steps, shape, True, input_dtype, input_scale, input_offset, classes,
                       SUPPORTED)


class Scores(NamedTuple):
    """Where a classifier's class scores are: ``output`` is the graph output that gives
    them (a ZipMap's map, or the tensor itself), ``tensor`` the float tensor behind it,
    ``classes`` the ZipMap's labels (None without one)."""
    output: str
    tensor: str
    classes: Optional[list]


def scores_output(graph):
    """The scores of a graph with several outputs, as scikit-learn's converter writes a
    classifier (a label output beside the probabilities, through a ZipMap by default);
    None when the graph has one tensor output, or no single float one to choose."""
    producers = {out: node for node in graph.node for out in node.output}
    found = []
    for value in graph.output:
        node = producers.get(value.name)
        if node is not None and node.op_type == "ZipMap":
            labels = [_attr(node, key, None) for key in ("classlabels_int64s", "classlabels_strings")]
            labels = next((list(v) for v in labels if v), None)
            found.append(Scores(value.name, node.input[0],
                                None if labels is None else [_text(v) for v in labels]))
        elif value.type.tensor_type.elem_type in FLOAT_TYPES:
            found.append(Scores(value.name, value.name, None))
    plain = len(graph.output) == 1 and found and found[0].output == found[0].tensor
    return found[0] if len(found) == 1 and not plain else None


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _pruned(model, tensor):
    """A copy of ``model`` computing only ``tensor``, its one output: the nodes that do not
    lead to it (a label, a ZipMap) are left out."""
    needed, nodes = {tensor}, []
    for node in reversed(model.graph.node):
        if any(out in needed for out in node.output):
            nodes.append(node)
            needed.update(node.input)
    pruned = onnx.ModelProto()
    pruned.CopyFrom(model)
    del pruned.graph.node[:]
    pruned.graph.node.extend(reversed(nodes))
    del pruned.graph.output[:]
    pruned.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    return pruned


# the model, its input and its constants ------------------------------------------

def load(source):
    """A checked ``ModelProto`` from a path or a ``ModelProto``; ValueError when invalid."""
    if isinstance(source, onnx.ModelProto):
        model, where = source, "the ONNX model"
    else:
        where = os.fspath(source)
        if not os.path.exists(where):
            raise FileNotFoundError(f"{where}: no such file")
        try:
            model = onnx.load(where, load_external_data=False)
        except Exception as error:       # protobuf's DecodeError and friends
            raise ValueError(f"{where}: not an ONNX model ({type(error).__name__}: {error})") \
                from None
        folder = os.path.dirname(os.path.abspath(where))
        _check_external_data(model, folder, where)
        try:
            onnx.external_data_helper.load_external_data_for_model(model, folder)
        except (OSError, ValueError, onnx.checker.ValidationError) as error:
            raise ValueError(f"{where}: its external data cannot be read "
                             f"({type(error).__name__}: {error})") from None
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0]
        raise ValueError(f"{where}: not a valid ONNX model ({first})") from None
    if not model.graph.node:
        raise ValueError(f"{where}: the ONNX graph has no nodes")
    return model


def _check_external_data(model, folder, where):
    """Refuse weights stored outside ``folder`` (the model file's own): torch's exporter
    writes them in a file beside the model, and a hostile model could name any other
    file instead (an absolute path, ``..``, a symbolic link), whatever the onnx
    package's version checks."""
    home = os.path.realpath(folder)
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((entry.value for entry in tensor.external_data
                         if entry.key == "location"), "")
        inside = os.path.normpath(os.path.join(home, location))
        if (not location or os.path.isabs(location) or not inside.startswith(home + os.sep)
                or os.path.realpath(inside) != inside):        # a link on the way
            raise ValueError(f"{where}: tensor {tensor.name!r} keeps its data in {location!r}, "
                             f"outside the model's folder or through a link: refused")


def _tensors(graph):
    """Every tensor a graph holds: its initializers and its nodes' tensor attributes,
    subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            yield from ([attribute.t] if attribute.HasField("t") else [])
            yield from attribute.tensors
            for subgraph in ([attribute.g] if attribute.HasField("g") else []) + \
                    list(attribute.graphs):
                yield from _tensors(subgraph)


def real_input(graph):
    """The graph's one input that is not an initializer (old exporters list those too)."""
    constants = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in constants]
    if len(inputs) != 1:
        raise ValueError(f"the graph has {len(inputs)} inputs ({[v.name for v in inputs]}); "
                         f"supported: exactly one\n{SUPPORTED}")
    return inputs[0]


def source_input_shape(model, input_shape=None):
    """One sample's shape as the graph takes it (batch axis dropped), checked against ``input_shape``.

    ``input_shape`` fills sizes the graph leaves symbolic; where the graph
    states a size, the two must agree.
    """
    value = real_input(model.graph)
    tensor = value.type.tensor_type
    if tensor.elem_type not in FLOAT_TYPES:
        raise ValueError(f"input {value.name!r} has element type "
                         f"{onnx.TensorProto.DataType.Name(tensor.elem_type)}; supported: FLOAT, DOUBLE")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim][1:]
    stated = f"(batch, {', '.join(str(d or '?') for d in dims)})"
    if input_shape is not None:
        wanted = tuple(int(n) for n in input_shape)
        if len(wanted) != len(dims) or any(d is not None and d != w for d, w in zip(dims, wanted)):
            raise ValueError(f"input_shape {wanted} does not fit the graph input {value.name!r} "
                             f"of shape {stated}")
        return wanted
    if not dims or any(d is None or d < 1 for d in dims):
        raise ValueError(f"input {value.name!r} has shape {stated}; give input_shape")
    return tuple(dims)


def _constants(model, sample_shape):
    """Every tensor that depends on no sample value: initializers, constant nodes, shapes.

    The runtime classifies one sample at a time, so the graph is read at
    batch size 1: a ``Shape`` of a tensor is a constant then. That folds the
    side branches PyTorch exports for a dynamic batch, e.g.
    ``ConstantOfShape(Shape(x), 1)`` for ``torch.ones_like(x)`` or the
    ``(batch, -1)`` target of ``x.view(x.size(0), -1)``.
    """
    graph = model.graph
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    shapes = _static_shapes(model, sample_shape)
    opsets = {entry.domain or "": entry.version for entry in model.opset_import}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type.startswith("Random") or any(
                attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                for attr in node.attribute):
            continue
        if node.op_type == "Shape" and node.input[0] in shapes:
            feeds = {node.input[0]: np.zeros(shapes[node.input[0]], np.float32)}
        elif all(n == "" or n in values for n in node.input):
            feeds = {n: values[n] for n in node.input if n}
        else:
            continue
        try:
            outputs = ReferenceEvaluator(node, opsets=opsets).run(None, feeds)
        except Exception:               # left unevaluated: refused if it is on the chain
            continue
        values.update(zip(node.output, outputs))
    return values


def _static_shapes(model, sample_shape):
    """``{tensor name: shape}`` at batch size 1, from ONNX shape inference (empty if it fails)."""
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    dims = real_input(copy.graph).type.tensor_type.shape.dim
    for dim, size in zip(dims, (1, *sample_shape)):
        dim.Clear()
        dim.dim_value = size
    try:
        graph = onnx.shape_inference.infer_shapes(copy, data_prop=True).graph
    except Exception:                   # a graph inference cannot follow: no shapes folded
        return {}
    shapes = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        sizes = [d.dim_value if d.HasField("dim_value") else 0 for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.HasField("shape") and all(n > 0 for n in sizes):
            shapes[value.name] = tuple(sizes)
    return shapes


# walking the chain ---------------------------------------------------------------

class _Walker:
    """Follows the one tensor that carries the sample, node by node, into steps."""

    def __init__(self, graph, constants):
        self.graph = graph
        self.constants = constants
        self.outputs = [value.name for value in graph.output]
        self.consumers = {}
        for node in graph.node:
            if all(n == "" or n in constants for n in node.output):
                continue                          # folded into a constant
            for name in set(node.input):
                self.consumers.setdefault(name, []).append(node)
        self.handlers = {
            "Identity": self.no_op, "Dropout": self.no_op, "Cast": self.cast, "Gemm": self.gemm,
            "MatMul": self.matmul, "Relu": self.simple, "Softmax": self.softmax,
            "LogSoftmax": self.softmax, "BatchNormalization": self.batch_norm, "Conv": self.conv,
            "MaxPool": self.max_pool, "AveragePool": self.max_pool, "Flatten": self.flatten, "Reshape": self.reshape,
            "Sign": self.simple, "GreaterOrEqual": self.where_sign,
        }

    def walk(self, name):
        if len(self.outputs) != 1:
            raise ValueError(f"the graph has {len(self.outputs)} outputs {self.outputs}; "
                             f"supported: exactly one\n{SUPPORTED}")
        steps = []
        while name != self.outputs[0]:
            node = self.only_consumer(name)
            handler = self.handlers.get(node.op_type)
            if handler is None:
                self.fail(node, self.unsupported_reason(node))
            if node.domain not in ("", "ai.onnx"):
                self.fail(node, f"is from the operator domain {node.domain!r}; supported: ONNX's own")
            new_steps, name = handler(node, name)
            steps += new_steps
        return steps

    def only_consumer(self, name):
        nodes = self.consumers.get(name, [])
        if len(nodes) != 1:
            listed = ", ".join(f"{n.name!r} ({n.op_type})" for n in nodes)
            problem = f"feeds {len(nodes)} nodes ({listed})" if nodes else "feeds no node"
            raise ValueError(f"tensor {name!r} {problem} and is not the graph output; supported: "
                             f"a single chain from the input to the output\n{SUPPORTED}")
        node = nodes[0]
        computed = [n for n in node.input if n and n not in self.constants]
        if len(computed) != 1:
            self.fail(node, f"takes {len(computed)} computed inputs {computed}; branches are "
                            "not supported")
        for extra in node.output[1:]:
            if extra and (extra in self.consumers or extra in self.outputs):
                self.fail(node, f"has its second output {extra!r} used; only the first may be")
        return node

    @staticmethod
    def unsupported_reason(node):
        if node.op_type in ("Sigmoid", "Tanh", "HardSigmoid", "LeakyRelu", "Elu", "Selu"):
            return ("is not supported: the runtime's only activations are ReLU after a dense "
                    "layer, the sign before binary layers, and a final softmax")
        return "is not supported"

    def fail(self, node, problem):
        raise ValueError(f"{where(node)} {problem}\n{SUPPORTED}")

    def const(self, node, index, what):
        name = node.input[index] if index < len(node.input) else ""
        if name not in self.constants:
            self.fail(node, f"needs a constant {what} (input {index})")
        return np.asarray(self.constants[name])

    def optional_const(self, node, index, what):
        if index >= len(node.input) or node.input[index] == "":
            return None
        return self.const(node, index, what)

    def vector(self, node, value, n, what):
        """``value`` as n values, one per output (a scalar is repeated)."""
        value = np.asarray(value, np.float64).reshape(-1)
        if value.size not in (1, n):
            self.fail(node, f"has a {what} of {value.size} values for {n} outputs")
        return np.broadcast_to(value, (n,)).copy()

    def check_data_input(self, node, name, index=0):
        if node.input[index] != name:
            self.fail(node, f"must take the computed tensor as input {index}")

    # handlers: node -> (steps, the tensor that carries on) ------------------

    def no_op(self, node, name):
        return [], node.output[0]

    def cast(self, node, name):
        """A cast to float32 or float64 of values that are float already (scikit-learn's
        converter casts its input): nothing the runtime's float32 needs to do."""
        to = _attr(node, "to", None)
        if to not in FLOAT_TYPES:
            self.fail(node, f"casts to {onnx.TensorProto.DataType.Name(to) if to else to}; "
                            "supported: a cast to FLOAT or DOUBLE")
        return [], node.output[0]

    def simple(self, node, name):
        return [Step(node.op_type.lower(), where(node))], node.output[0]

    def softmax(self, node, name):
        if _attr(node, "axis", 1) not in (1, -1):     # either default is the class axis here
            self.fail(node, "must normalize over the class axis (axis 1 or -1)")
        return [Step("softmax", where(node))], node.output[0]

    def gemm(self, node, name):
        self.check_data_input(node, name)
        if _attr(node, "transA", 0):
            self.fail(node, "has transA = 1; supported: the sample as the first operand")
        b = self.const(node, 1, "weight")
        weight = (b if _attr(node, "transB", 0) else b.T) * _attr(node, "alpha", 1.0)
        bias = self.optional_const(node, 2, "bias")
        if bias is not None:
            bias = self.vector(node, bias * _attr(node, "beta", 1.0), len(weight), "bias")
        return [Step("linear", where(node), weight=weight, bias=bias)], node.output[0]

    def matmul(self, node, name):
        """MatMul by a constant (in, out) matrix, and the Add of a constant bias after it."""
        self.check_data_input(node, name)
        b = self.const(node, 1, "weight")
        if b.ndim != 2:
            self.fail(node, f"multiplies by a {b.ndim}-D tensor; supported: a 2-D weight")
        weight, bias, out = b.T, None, node.output[0]
        after = self.consumers.get(out, [])
        if len(after) == 1 and after[0].op_type == "Add" and out not in self.outputs:
            add = after[0]
            other = [n for n in add.input if n != out]
            if len(other) == 1 and other[0] in self.constants:
                bias = self.vector(add, self.constants[other[0]], len(weight), "bias")
                out = add.output[0]
        return [Step("linear", where(node), weight=weight, bias=bias)], out

    def batch_norm(self, node, name):
        self.check_data_input(node, name)
        if _attr(node, "training_mode", 0):
            self.fail(node, "is in training mode; export the model in eval mode")
        gamma, beta, mean, var = (self.const(node, k, what) for k, what in
                                  enumerate(("scale", "bias", "mean", "var"), start=1))
        eps = _float32_decimal(_attr(node, "epsilon", 1e-5))
        scale, shift = batchnorm_affine(gamma, beta, mean, var, eps)
        return [Step("batch_norm", where(node), scale=scale, shift=shift)], node.output[0]

    def conv(self, node, name):
        self.check_data_input(node, name)
        w = self.const(node, 1, "weight")
        if w.ndim != 4:
            self.fail(node, f"has a {w.ndim}-D weight; supported: 2-D convolutions")
        if _attr(node, "group", 1) != 1 or tuple(_attr(node, "dilations", (1, 1))) != (1, 1):
            self.fail(node, "must have group 1 and dilations 1")
        stride = tuple(_attr(node, "strides", (1, 1)))
        padding = self.pads(node)
        bias = self.optional_const(node, 2, "bias")
        if bias is not None:
            bias = self.vector(node, bias, len(w), "bias")
        step = Step("conv", where(node), weight=w.transpose(0, 2, 3, 1), bias=bias,
                    stride=stride, padding=padding)
        return [step], node.output[0]

    def pads(self, node):
        """Symmetric per-side zero padding (top == bottom, left == right), as the runtime pads."""
        auto_pad = _attr(node, "auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", "VALID"):
            self.fail(node, f"has auto_pad {auto_pad}; supported: explicit symmetric pads or VALID")
        pads = tuple(_attr(node, "pads", (0, 0, 0, 0))) if auto_pad == "NOTSET" else (0, 0, 0, 0)
        if pads[:2] != pads[2:]:
            self.fail(node, f"has pads {pads}; supported: the same padding on both sides")
        return pads[:2]

    def max_pool(self, node, name):
        """MaxPool or AveragePool of windows side by side."""
        size = tuple(_attr(node, "kernel_shape", ()))
        stride = tuple(_attr(node, "strides", (1,) * len(size)))
        if (len(size) != 2 or stride != size or any(self.pads(node))
                or _attr(node, "ceil_mode", 0) or tuple(_attr(node, "dilations", (1, 1))) != (1, 1)):
            self.fail(node, f"has kernel {size}, strides {stride}; supported: 2-D windows with "
                            "strides = kernel_shape, no pads, no dilation, ceil_mode 0")
        op = "max_pool" if node.op_type == "MaxPool" else "avg_pool"
        return [Step(op, where(node), size=size)], node.output[0]

    def flatten(self, node, name):
        if _attr(node, "axis", 1) != 1:
            self.fail(node, "must flatten everything but the batch axis (axis 1)")
        return [Step("flatten", where(node))], node.output[0]

    def reshape(self, node, name):
        """A Reshape to (batch, features): [0 | 1 | -1, -1 | n]."""
        self.check_data_input(node, name)
        shape = [int(n) for n in self.const(node, 1, "shape").reshape(-1)]
        if len(shape) != 2 or shape[0] not in (0, 1, -1) or (shape[0] == -1 and shape[1] < 1):
            self.fail(node, f"reshapes to {shape}; supported: (batch, features), i.e. a flatten")
        size = shape[1] if shape[1] > 0 else None
        return [Step("flatten", where(node), size=size)], node.output[0]

    def where_sign(self, node, name):
        """``Where(x >= 0, 1, -1)``: PyTorch's export of a sign with sign(0) = +1."""
        self.check_data_input(node, name)
        after = self.consumers.get(node.output[0], [])
        zero = self.const(node, 1, "0")
        if (not np.all(zero == 0) or len(after) != 1 or after[0].op_type != "Where"
                or node.output[0] in self.outputs):
            self.fail(node, "is supported only as x >= 0 feeding Where(.., 1, -1), the sign "
                            "PyTorch exports")
        choose = after[0]
        ones = self.const(choose, 1, "1")
        minus = self.const(choose, 2, "-1")
        if choose.input[0] != node.output[0] or not (np.all(ones == 1) and np.all(minus == -1)):
            self.fail(choose, "is supported only as Where(x >= 0, 1, -1), a sign")
        return [Step("sign", where(node))], choose.output[0]


def where(node):
    return f"node {node.name!r} ({node.op_type})"


def _attr(node, name, default):
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _float32_decimal(value):
    """An ONNX float attribute as the decimal its author wrote (1e-05, not 9.99999974738e-06).

    Attributes are stored as float32; the shortest decimal that rounds to the
    same float32 is what the exporter was given, and what a PyTorch batch norm
    uses in float64, so the two routes fold to the same thresholds.
    """
    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))
