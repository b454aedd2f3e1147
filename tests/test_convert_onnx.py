"""edgebnn.converters.onnx against onnxruntime, and against edgebnn.converters.pytorch on exported nets.

Graphs built with onnx.helper and nets exported from PyTorch run in
onnxruntime (graph optimizations off, so it computes the graph as written);
the runtime must give the same float scores (1e-4 relative), or for binary
nets the same labels and the same integer dot products of the last binary
layer. The binary references use input_scale 1/256 so that onnxruntime's
float32 sums over the scaled pixels are exact.
"""
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgebnn.converters.onnx import convert  # noqa: E402
from edgebnn import BinaryDense, Model, Runtime, load_model, save_model  # noqa: E402

N_SAMPLES = 300
OPSET = 17


@pytest.fixture
def ort():
    return pytest.importorskip("onnxruntime")


# building and running graphs --------------------------------------------------

def make_model(nodes, weights, input_shape, output="y", batch="N"):
    """A model from ``nodes`` with ``weights`` as float32 initializers; input "x"."""
    inits = [numpy_helper.from_array(np.asarray(v, np.float32 if np.asarray(v).dtype.kind == "f"
                                                else np.int64), name)
             for name, v in weights.items()]
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *input_shape])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, None])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def run(ort, model, x, outputs=None):
    """onnxruntime's values of ``outputs`` (default: the graph output) for float input ``x``."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    names = outputs or [model.graph.output[0].name]
    for name in names:
        if name not in [o.name for o in model.graph.output]:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    values = session.run(names, {session.get_inputs()[0].name: x.astype(np.float32)})
    return values if outputs else values[0]


def calibrate_batch_norms(ort, model, x_real, seed):
    """Each batch norm in turn: statistics of its real input, random gamma (some < 0) and beta."""
    rng = np.random.default_rng(seed)
    inits = {init.name: init for init in model.graph.initializer}
    for node in [n for n in model.graph.node if n.op_type == "BatchNormalization"]:
        seen = run(ort, model, x_real, [node.input[0]])[0]
        axes = (0,) + tuple(range(2, seen.ndim))
        n = seen.shape[1]
        values = [rng.normal(0, 1, n), rng.normal(0, 0.5, n), seen.mean(axis=axes),
                  seen.var(axis=axes) * rng.uniform(0.5, 1.5, n)]
        for name, value in zip(node.input[1:], values):
            inits[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))
    return model


def uint8_samples(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, (N_SAMPLES, *shape)).astype(np.uint8)


def signs(rng, *shape):
    return np.where(rng.standard_normal(shape) >= 0, 1.0, -1.0)


def batch_norm(name, n, x, y):
    weights = {f"{name}_{k}": np.ones(n) for k in ("g", "b", "m", "v")}
    return helper.make_node("BatchNormalization", [x, *weights], [y], name=name), weights


def last_binary_dots(model, x):
    """The runtime's integer outputs of the model's last binary_dense."""
    last = max(i for i, layer in enumerate(model.layers) if isinstance(layer, BinaryDense))
    head = Model([layer.copy() for layer in model.layers[:last + 1]], model.input_shape,
                 model.input_dtype.name, model.input_scale, model.input_offset)
    return head.forward_batch(head.check_batch(x))


def as_integers(values):
    np.testing.assert_array_equal(values, np.round(values))
    return np.round(values).astype(np.int64)


# graphs built with onnx.helper --------------------------------------------------

def test_float_mlp_gives_the_onnxruntime_scores(ort, tmp_path):
    rng = np.random.default_rng(0)
    weights = {"w1": rng.standard_normal((20, 63)) / 8, "b1": rng.standard_normal(20) * 0.1,
               "w2": rng.standard_normal((20, 12)) / 4, "b2": rng.standard_normal(12) * 0.1,
               "w3": rng.standard_normal((12, 5)) / 3, "b3": rng.standard_normal(5)}
    norm, norm_weights = batch_norm("bn", 12, "h4", "h5")
    nodes = [helper.make_node("Flatten", ["x"], ["h0"], name="flat"),
             helper.make_node("Gemm", ["h0", "w1", "b1"], ["h1"], name="fc1", transB=1),
             helper.make_node("Relu", ["h1"], ["h2"], name="relu1"),
             helper.make_node("MatMul", ["h2", "w2"], ["h3"], name="fc2"),
             helper.make_node("Add", ["h3", "b2"], ["h4"], name="fc2_bias"), norm,
             helper.make_node("MatMul", ["h5", "w3"], ["h6"], name="fc3"),
             helper.make_node("Add", ["b3", "h6"], ["h7"], name="fc3_bias"),
             helper.make_node("Softmax", ["h7"], ["y"], name="softmax", axis=1)]
    model = make_model(nodes, {**weights, **norm_weights}, (7, 9))
    scale, offset = 1 / 255, -0.5
    x = uint8_samples((7, 9), seed=1)
    x_real = x.astype(np.float32) * np.float32(scale) + np.float32(offset)
    model = calibrate_batch_norms(ort, model, x_real, seed=2)
    expected = run(ort, model, x_real)

    onnx.save(model, tmp_path / "net.onnx")
    converted = convert(tmp_path / "net.onnx", "uint8", scale, offset, classes="abcde")
    assert [layer.kind for layer in converted.layers] == ["dense", "dense", "dense"]  # the norm folded
    assert converted.layers[-1].activation == "softmax"
    results = Runtime(converted).classify_batch(x)
    np.testing.assert_allclose([r.scores for r in results], expected, rtol=1e-4, atol=1e-7)
    assert [r.name for r in results] == ["abcde"[k] for k in expected.argmax(axis=1)]


def binary_mlp_graph(rng):
    """uint8 input -> MatMul(+-1) -> BN -> Sign -> Gemm(+-1, bias) -> BN -> Sign -> MatMul(+-1) -> BN."""
    weights = {"w1": signs(rng, 63, 40), "w2": signs(rng, 33, 40), "b2": rng.normal(0, 2, 33),
               "w3": signs(rng, 33, 6)}
    nodes, norm_weights = [], {}
    for name, n, x, y in (("bn1", 40, "d1", "n1"), ("bn2", 33, "d2", "n2"), ("bn3", 6, "d3", "y")):
        node, more = batch_norm(name, n, x, y)
        nodes.append(node)
        norm_weights.update(more)
    nodes = [helper.make_node("Flatten", ["x"], ["h0"], name="flat"),
             helper.make_node("MatMul", ["h0", "w1"], ["d1"], name="fc1"), nodes[0],
             helper.make_node("Sign", ["n1"], ["s1"], name="sign1"),
             helper.make_node("Gemm", ["s1", "w2", "b2"], ["d2"], name="fc2", transB=1), nodes[1],
             helper.make_node("Sign", ["n2"], ["s2"], name="sign2"),
             helper.make_node("MatMul", ["s2", "w3"], ["d3"], name="fc3"), nodes[2]]
    return make_model(nodes, {**weights, **norm_weights}, (7, 9))


def binary_conv_graph(rng):
    """Conv(pad 1) -> MaxPool -> BN -> Sign -> Conv(2x3, stride 2, pad 1) -> BN -> Sign ->
    Reshape -> MatMul -> BN, on a 3-channel 11 x 9 input."""
    weights = {"k1": signs(rng, 9, 3, 3, 3), "k2": signs(rng, 5, 9, 2, 3), "w3": signs(rng, 30, 4),
               "flat": np.array([0, -1])}
    norms, norm_weights = [], {}
    for name, n, x, y in (("bn1", 9, "p1", "n1"), ("bn2", 5, "c2", "n2"), ("bn3", 4, "d3", "y")):
        node, more = batch_norm(name, n, x, y)
        norms.append(node)
        norm_weights.update(more)
    nodes = [helper.make_node("Conv", ["x", "k1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                              strides=[2, 2]), norms[0],
             helper.make_node("Sign", ["n1"], ["s1"], name="sign1"),
             helper.make_node("Conv", ["s1", "k2"], ["c2"], name="conv2", pads=[1, 1, 1, 1],
                              strides=[2, 2]), norms[1],
             helper.make_node("Sign", ["n2"], ["s2"], name="sign2"),
             helper.make_node("Reshape", ["s2", "flat"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "w3"], ["d3"], name="fc3"), norms[2]]
    return make_model(nodes, {**weights, **norm_weights}, (3, 11, 9))


@pytest.mark.parametrize("case", ["mlp", "conv"])
def test_binary_graphs_give_the_onnxruntime_labels_and_integer_dots(case, ort, tmp_path):
    rng = np.random.default_rng(3)
    model = binary_mlp_graph(rng) if case == "mlp" else binary_conv_graph(rng)
    shape = (7, 9) if case == "mlp" else (3, 11, 9)
    scale, offset = 1 / 256, (-0.5 if case == "mlp" else 0.0)
    x = uint8_samples(shape, seed=4)
    x_real = x.astype(np.float32) * np.float32(scale) + np.float32(offset)
    model = calibrate_batch_norms(ort, model, x_real, seed=5)
    expected, dots = run(ort, model, x_real, ["y", "d3"])

    converted = convert(model, "uint8", scale, offset)
    kinds = [layer.kind for layer in converted.layers]
    first = "binary_dense" if case == "mlp" else "binary_conv2d"
    assert kinds == [first, first, "binary_dense", "batch_norm"]
    x_runtime = x if case == "mlp" else x.transpose(0, 2, 3, 1)          # channels last
    save_model(converted, tmp_path / "m.h5")
    converted = load_model(tmp_path / "m.h5")
    labels = [r.label for r in Runtime(converted).classify_batch(x_runtime)]
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    np.testing.assert_array_equal(last_binary_dots(converted, x_runtime), as_integers(dots))
    assert len(np.unique(labels)) > 1 and len(np.unique(dots)) > 5     # not degenerate


# nets exported from PyTorch ---------------------------------------------------

def torch_nets():
    torch = pytest.importorskip("torch")
    from torch import nn

    from edgebnn.converters.binary_layers import BinaryConv2d, BinaryLinear, Sign
    torch.manual_seed(0)
    return {
        # name: (net, input shape, scale, offset)
        "float": (nn.Sequential(nn.Flatten(), nn.Linear(63, 20), nn.ReLU(), nn.Dropout(0.2),
                                nn.Linear(20, 12), nn.BatchNorm1d(12), nn.Linear(12, 5),
                                nn.Softmax(dim=1)), (7, 9), 1 / 255, -0.5),
        "binary mlp": (nn.Sequential(nn.Flatten(), BinaryLinear(63, 40), nn.BatchNorm1d(40), Sign(),
                                     BinaryLinear(40, 33), nn.BatchNorm1d(33), Sign(),
                                     BinaryLinear(33, 6), nn.BatchNorm1d(6)), (7, 9), 1 / 256, -0.5),
        "binary conv": (nn.Sequential(BinaryConv2d(3, 9, 3, padding=1), nn.MaxPool2d(2),
                                      nn.BatchNorm2d(9), Sign(),
                                      BinaryConv2d(9, 5, (2, 3), stride=2, padding=1),
                                      nn.BatchNorm2d(5), Sign(), nn.Flatten(),
                                      BinaryLinear(30, 4), nn.BatchNorm1d(4)), (3, 11, 9), 1 / 256, 0.0),
        "one channel": (nn.Sequential(BinaryConv2d(1, 8, 3), nn.MaxPool2d(2), nn.BatchNorm2d(8),
                                      Sign(), nn.Flatten(), BinaryLinear(8 * 4 * 4, 3),
                                      nn.BatchNorm1d(3)), (1, 10, 10), 1 / 256, -0.5),
    }


def exported(name, tmp_path, default_exporter=False):
    """The net (eval, with batch norm statistics from its own activations) and its ONNX file,
    from the TorchScript exporter or from torch's default one called with its defaults."""
    torch = pytest.importorskip("torch")
    net, shape, scale, offset = torch_nets()[name]
    x = uint8_samples(shape, seed=6)
    x_real = x.astype(np.float32) * np.float32(scale) + np.float32(offset)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(x_real))
        generator = torch.Generator().manual_seed(7)
        for norm in norms:
            n = norm.num_features
            norm.running_var.mul_(torch.rand(n, generator=generator) + 0.5)
            norm.weight.copy_(torch.randn(n, generator=generator))
            norm.bias.copy_(torch.randn(n, generator=generator) * 0.5)
    net.eval()
    path = tmp_path / "net.onnx"
    if default_exporter:
        torch.onnx.export(net, (torch.from_numpy(x_real[:1]),), path)
        return net, path, x, x_real, shape, scale, offset
    with warnings.catch_warnings():       # the TorchScript exporter is deprecated, still here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.from_numpy(x_real[:1]),), path, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    return net, path, x, x_real, shape, scale, offset


def runtime_layout(x, net_shape):
    """Channels-first conv-net samples as the runtime takes them: (H, W, C), or (H, W)."""
    if len(net_shape) != 3:
        return x
    x = x.transpose(0, 2, 3, 1)
    return x[..., 0] if net_shape[0] == 1 else x


@pytest.mark.parametrize("name", ["float", "binary mlp", "binary conv", "one channel"])
def test_pytorch_and_its_onnx_export_convert_to_the_same_packed_model(name, tmp_path):
    net, path, x, _, shape, scale, offset = exported(name, tmp_path)
    from edgebnn.converters import pytorch
    direct = pytorch.convert(net, shape, "uint8", scale, offset)
    via_onnx = convert(path, "uint8", scale, offset)
    save_model(direct, tmp_path / "direct.h5")
    save_model(via_onnx, tmp_path / "onnx.h5")
    a, b = load_model(tmp_path / "direct.h5"), load_model(tmp_path / "onnx.h5")
    assert (a.input_shape, a.input_scale, a.input_offset) == (b.input_shape, b.input_scale,
                                                              b.input_offset)
    assert [layer.kind for layer in a.layers] == [layer.kind for layer in b.layers]
    for mine, theirs in zip(a.layers, b.layers):
        (attrs_a, arrays_a), (attrs_b, arrays_b) = mine.fields(), theirs.fields()
        assert attrs_a == attrs_b
        assert arrays_a.keys() == arrays_b.keys()
        for key in arrays_a:
            np.testing.assert_array_equal(arrays_a[key], arrays_b[key], err_msg=key)
    x_runtime = runtime_layout(x, shape)
    np.testing.assert_array_equal(a.forward_batch(a.check_batch(x_runtime)),
                                  b.forward_batch(b.check_batch(x_runtime)))


@pytest.mark.parametrize("name", ["float", "binary mlp", "binary conv", "one channel"])
def test_pytorch_exports_give_the_onnxruntime_results(name, ort, tmp_path):
    net, path, x, x_real, shape, scale, offset = exported(name, tmp_path)
    model = onnx.load(path)
    last_norm = [n for n in model.graph.node if n.op_type == "BatchNormalization"][-1]
    outputs = ["y"] if name == "float" else ["y", last_norm.input[0]]
    values = run(ort, model, x_real, outputs)
    converted = convert(path, "uint8", scale, offset)
    x_runtime = runtime_layout(x, shape)
    results = Runtime(converted).classify_batch(x_runtime)
    if name == "float":
        np.testing.assert_allclose([r.scores for r in results], values[0], rtol=1e-4, atol=1e-7)
        return
    np.testing.assert_array_equal([r.label for r in results], values[0].argmax(axis=1))
    np.testing.assert_array_equal(last_binary_dots(converted, x_runtime), as_integers(values[1]))


def test_pytorch_sign_exports_as_where_and_is_read_as_a_sign(tmp_path):
    _, path, *_ = exported("binary mlp", tmp_path)
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert {"GreaterOrEqual", "Where"} <= ops and "Sign" not in ops


# what it refuses ---------------------------------------------------------------

def chain(*nodes, weights=None, shape=(4,)):
    """A model of ``nodes`` in a row from "x" to "y" (each node's data input/output wired)."""
    return make_model(list(nodes), weights or {}, shape)


def node(op, x, y, *consts, **attrs):
    return helper.make_node(op, [x, *consts], [y], name=f"my{op}", **attrs)


W44 = {"w": np.eye(4) * 0.5, "b": np.zeros(4)}
PM1 = {"w": np.where(np.eye(4) > 0, 1.0, -1.0), "k": np.ones((2, 1, 3, 3)) * 0.5}

REFUSED = {
    "sigmoid": (chain(node("Gemm", "x", "h", "w", "b"), node("Sigmoid", "h", "h2"),
                      node("Gemm", "h2", "y", "w", "b"), weights=W44),
                "node 'mySigmoid' (Sigmoid) is not supported: the runtime's only activations"),
    "tanh": (chain(node("Gemm", "x", "h", "w", "b"), node("Tanh", "h", "y"), weights=W44),
             "node 'myTanh' (Tanh) is not supported"),
    "unknown op": (chain(node("Transpose", "x", "y")), "node 'myTranspose' (Transpose) is not "
                                                       "supported"),
    "branch": (chain(node("Relu", "x", "a"), node("Gemm", "x", "y", "w", "b"), weights=W44),
               "tensor 'x' feeds 2 nodes"),
    "two computed inputs": (chain(node("Gemm", "x", "h", "w", "b"),
                                  helper.make_node("Add", ["h", "h"], ["y"], name="twice"),
                                  weights=W44), "node 'twice' (Add) takes 2 computed inputs"),
    "softmax not last": (chain(node("Gemm", "x", "h", "w", "b"), node("Softmax", "h", "h2"),
                               node("Gemm", "h2", "y", "w", "b"), weights=W44),
                         "(Softmax) is only supported as the last operation"),
    "dilated conv": (chain(node("Conv", "x", "y", "k", dilations=[2, 2]), shape=(1, 5, 5),
                           weights={"k": np.linspace(0.1, 1.8, 18).reshape(2, 1, 3, 3)}),
                     "(Conv) must have group 1 and dilations 1"),
    "asymmetric pads": (chain(node("Conv", "x", "c", "k", pads=[0, 0, 1, 1]), node("Sign", "c", "y"),
                              weights={"k": np.ones((2, 1, 3, 3))}, shape=(1, 5, 5)),
                        "has pads (0, 0, 1, 1)"),
    "pool stride": (chain(node("Conv", "x", "c", "k"), node("MaxPool", "c", "y", kernel_shape=[2, 2]),
                          weights={"k": np.ones((2, 1, 3, 3))}, shape=(1, 5, 5)),
                    "(MaxPool) has kernel (2, 2), strides (1, 1)"),
    "float after sign": (chain(node("Sign", "x", "s"), node("MatMul", "s", "y", "w"), weights=W44),
                         "(MatMul) gets +-1 signs but its weights are not +-1"),
    "ends in signs": (chain(node("MatMul", "x", "h", "w"), node("Sign", "h", "y"), weights=PM1),
                      "ends the network with signs"),
    "greater not zero": (chain(node("GreaterOrEqual", "x", "c", "t"),
                               helper.make_node("Where", ["c", "one", "minus"], ["y"], name="w"),
                               weights={"t": np.float32(0.5), "one": np.float32(1),
                                        "minus": np.float32(-1)}),
                         "(GreaterOrEqual) is supported only as x >= 0 feeding Where"),
    "training batch norm": (chain(helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"],
                                                   ["y"], name="bn", training_mode=1),
                                  weights={k: np.ones(4) for k in "gbmv"}),
                            "(BatchNormalization) is in training mode"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsupported_graphs_are_named_in_a_value_error(case):
    model, message = REFUSED[case]
    with pytest.raises(ValueError, match="supported") as error:
        convert(model, "uint8")
    assert message in str(error.value)


def test_symbolic_sizes_need_an_input_shape():
    model = make_model([node("Gemm", "x", "y", "w", "b")], W44, ("n",))
    with pytest.raises(ValueError, match=r"has shape \(batch, \?\); give input_shape"):
        convert(model)
    assert convert(model, "float32", 1.0, input_shape=(4,)).input_shape == (4,)
    with pytest.raises(ValueError, match="expects 4 inputs but gets 5"):
        convert(model, input_shape=(5,))
    stated = make_model([node("Gemm", "x", "y", "w", "b")], W44, (4,))
    with pytest.raises(ValueError, match=r"input_shape \(5,\) does not fit the graph input 'x' "
                                         r"of shape \(batch, 4\)"):
        convert(stated, input_shape=(5,))


def test_a_missing_file_and_a_file_that_is_not_onnx(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        convert(tmp_path / "nothere.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\xff not protobuf at all \x13\x37" * 10)
    with pytest.raises(ValueError, match="junk.onnx: not (a valid )?an? ONNX model"):
        convert(junk)


def test_an_empty_graph_is_refused():
    model = make_model([], {}, (4,))
    with pytest.raises(ValueError, match="not a valid ONNX model|has no nodes"):
        convert(model)


@pytest.mark.parametrize("name", ["float", "binary mlp", "binary conv", "one channel"])
def test_every_net_from_torchs_default_exporter_answers_as_pytorch(name, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    net, path, x, x_real, shape, scale, offset = exported(name, tmp_path, default_exporter=True)
    results = Runtime(convert(path, "uint8", scale, offset)).classify_batch(runtime_layout(x, shape))
    with torch.no_grad():
        expected = net(torch.from_numpy(x_real)).numpy()
    np.testing.assert_array_equal([r.label for r in results], expected.argmax(axis=1))
    np.testing.assert_allclose([r.scores if name == "float" else r.logits for r in results],
                               expected, rtol=1e-4, atol=1e-4)


def test_a_binary_net_from_torchs_default_exporter_converts(tmp_path):
    """torch 2.13 exports with dynamo=True by default, and folds each batch norm after a
    binary layer into its weights: +-1 signs become +-c, one c per output."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from torch import nn

    from edgebnn.converters.binary_layers import BinaryLinear, Sign
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), BinaryLinear(64, 32), nn.BatchNorm1d(32), Sign(),
                        BinaryLinear(32, 3), nn.BatchNorm1d(3)).eval()
    for norm in (net[2], net[5]):
        norm.running_mean.uniform_(-3, 3)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.data.uniform_(-1, 1)
    torch.onnx.export(net, (torch.zeros(1, 8, 8),), tmp_path / "net.onnx")
    model = convert(tmp_path / "net.onnx", "uint8", 1 / 255)
    assert [layer.kind for layer in model.layers] == ["binary_dense", "binary_dense", "batch_norm"]
    x = np.random.default_rng(0).integers(0, 256, (200, 8, 8)).astype(np.uint8)
    with torch.no_grad():
        expected = net(torch.from_numpy(x.astype(np.float32) / 255)).numpy()
    logits = np.array([r.logits for r in Runtime(model).classify_batch(x)])
    np.testing.assert_array_equal(logits.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(logits, expected, atol=1e-4)


# scikit-learn through skl2onnx, at its defaults -------------------------------------

def sklearn_mlp(labels):
    """An MLPClassifier fitted on 3 classes named ``labels``, and its samples."""
    neural_network = pytest.importorskip("sklearn.neural_network")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 20)).astype(np.float32)
    y = np.asarray(labels)[(x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # ConvergenceWarning: a few iterations do
        classifier = neural_network.MLPClassifier((16,), max_iter=200, random_state=0).fit(x, y)
    return classifier, x


@pytest.mark.parametrize("labels, options", [
    (["cat", "dog", "owl"], None),                    # the defaults: a ZipMap of string labels
    ([3, 5, 7], None),                                # integer labels
    (["cat", "dog", "owl"], {"zipmap": False}),       # the probabilities as a plain tensor
])
def test_a_scikit_learn_classifier_converts_with_its_probabilities(ort, labels, options):
    skl2onnx = pytest.importorskip("skl2onnx")
    classifier, x = sklearn_mlp(labels)
    proto = skl2onnx.to_onnx(classifier, x[:1], options=options and {id(classifier): options})
    assert len(proto.graph.output) == 2              # the label beside the probabilities
    model = convert(proto)
    assert [layer.kind for layer in model.layers] == ["dense", "dense"]
    assert model.classes == ([str(label) for label in labels] if options is None else
                             ["0", "1", "2"])
    scores = np.array([r.scores for r in Runtime(model).classify_batch(x)])
    np.testing.assert_allclose(scores, classifier.predict_proba(x), atol=1e-5)


def test_the_check_reads_the_probabilities_of_a_scikit_learn_graph(ort, tmp_path):
    skl2onnx = pytest.importorskip("skl2onnx")
    import subprocess
    import sys
    classifier, x = sklearn_mlp(["cat", "dog", "owl"])
    (tmp_path / "mlp.onnx").write_bytes(skl2onnx.to_onnx(classifier, x[:1]).SerializeToString())
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, "-m", "edgebnn.converters", str(tmp_path / "mlp.onnx"),
                           str(tmp_path / "mlp.h5"), "--check", "--samples", str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "labels agree on 300/300" in done.stdout
    assert load_model(tmp_path / "mlp.h5").classes == ["cat", "dog", "owl"]


def test_a_cast_to_an_integer_is_refused_by_name():
    nodes = [helper.make_node("Cast", ["x"], ["c"], name="to_int", to=TensorProto.INT64),
             helper.make_node("Gemm", ["c", "w"], ["y"], name="fc", transB=1)]
    with pytest.raises(ValueError, match="node 'to_int' \\(Cast\\) casts to INT64"):
        convert(make_model(nodes, {"w": np.ones((2, 3))}, [3]))


@pytest.mark.parametrize("location, link", [("../secret.bin", False), ("/tmp/secret.bin", False),
                                            ("link.bin", True)])
def test_external_data_outside_the_model_s_folder_is_refused(location, link, tmp_path, capsys):
    """A hostile model naming another file as its weights' storage: refused before a byte
    of it is read, whatever the onnx package's own checks."""
    from edgebnn.converters.__main__ import main
    (tmp_path / "secret.bin").write_bytes(np.arange(6, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    if link:
        (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], {"w": np.ones((3, 2))}, [3],
                       batch=1)
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    entry = weight.external_data.add()
    entry.key, entry.value = "location", location.replace("/tmp", str(tmp_path))
    (folder / "m.onnx").write_bytes(model.SerializeToString())
    assert main([str(folder / "m.onnx"), str(tmp_path / "m.h5")]) == 2
    assert "outside the model's folder or through a link" in capsys.readouterr().err
    assert not (tmp_path / "m.h5").exists()


def test_a_cnn_from_torchs_default_exporter_converts_with_its_data_file(tmp_path):
    """torch.onnx.export at its defaults writes the weights to NAME.onnx.data beside the
    model; converted with no flags, the net answers real digits as PyTorch does."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    nn = torch.nn
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 10)).eval()
    from edgebnn import models
    x = np.load(models.path("mnist-samples.npz"))["images"].astype(np.float32) / 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.from_numpy(x[:1, None]),), str(tmp_path / "lenet.onnx"))
    assert (tmp_path / "lenet.onnx.data").exists()
    from edgebnn.converters.__main__ import main
    assert main([str(tmp_path / "lenet.onnx"), str(tmp_path / "lenet.h5")]) == 0
    results = Runtime(str(tmp_path / "lenet.h5")).classify_batch(x)
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x[:, None])), dim=1).numpy()
    assert [r.label for r in results] == list(want.argmax(axis=1))
    np.testing.assert_allclose([r.scores for r in results], want, atol=1e-3)
