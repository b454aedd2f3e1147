"""The same float network on this runtime and on onnxruntime, PyTorch and LiteRT, in one run.

The runtime is timed with the model's float weights and, for a float
Dense chain, with them rounded to int8 too (``--weights int8`` of the
converters: ``edgebnn int8/BACKEND``, which computes nearly, not exactly,
the same).

Only a chain of float Dense layers is rebuilt for the other frameworks (from
the model's own weights, input scaling included); an ONNX file (a CNN, say)
is converted for this runtime and run as it is by onnxruntime. Outputs are checked
against this runtime's logits before anything is timed, so all candidates do
the same arithmetic. Everything is single-threaded (BLAS, torch and
onnxruntime pools pinned to one thread; the caller pins BLAS before NumPy
loads) and timed in interleaved rounds; the other frameworks are optional
and reported as skipped when not installed. LiteRT runs the chain as
TensorFlow's converter writes it, float32 and with dynamic-range int8
weights (``Optimize.DEFAULT``, as LiteRT's docs make an int8 model).
"""
import numpy as np

from edgebnn import Dense, Runtime, load_model
from edgebnn.converters.common import with_int8_weights

from .binary import float_mlp
from .latency import load_samples
from .sweep import available_backends
from .timing import interleaved

ROUND_SECONDS = 0.0002         # short turns: see bench.sweep


def dense_chain(model):
    """``[(weight (out, in), bias, activation)]`` of a pure float Dense model, else None."""
    if not all(isinstance(layer, Dense) for layer in model.layers):
        return None
    return [(layer.weight, layer.bias, layer.activation) for layer in model.layers]


def random_model(sizes, seed=0):
    """A float MLP of ``sizes`` with random weights (ReLU between layers)."""
    return float_mlp(np.random.default_rng(seed), sizes)


def onnx_session(model, chain):
    """An onnxruntime session computing the chain, one thread; None when not installed."""
    try:
        import onnx
        import onnxruntime
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    n_in = int(np.prod(model.input_shape))
    source = TensorProto.UINT8 if model.input_dtype == np.uint8 else TensorProto.FLOAT
    nodes, weights, h = [], [], "x"
    if model.input_dtype != np.float32 or (model.input_scale, model.input_offset) != (1.0, 0.0):
        weights += [numpy_helper.from_array(np.array(model.input_scale, np.float32), "scale"),
                    numpy_helper.from_array(np.array(model.input_offset, np.float32), "offset")]
        nodes += [helper.make_node("Cast", ["x"], ["x_float"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", ["x_float", "scale"], ["x_scaled"]),
                  helper.make_node("Add", ["x_scaled", "offset"], ["x_pre"])]
        h = "x_pre"
    for i, (weight, bias, activation) in enumerate(chain):
        weights += [numpy_helper.from_array(np.ascontiguousarray(weight.T), f"w{i}"),
                    numpy_helper.from_array(bias, f"b{i}")]
        nodes += [helper.make_node("MatMul", [h, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        h = f"a{i}"
        if activation != "none":
            op = {"relu": "Relu", "softmax": "Softmax"}[activation]
            nodes.append(helper.make_node(op, [h], [f"r{i}"]))
            h = f"r{i}"
    nodes.append(helper.make_node("Identity", [h], ["y"]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", source, [1, n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, len(chain[-1][1])])],
                              initializer=weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    run = session.run
    return lambda x: run(None, {"x": x.reshape(1, -1)})[0][0]


def onnx_file_session(path):
    """onnxruntime running the ONNX file itself, one thread, a sample fed in the file's
    input layout (channels first when it has them); None when not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    given = session.get_inputs()[0]
    shape = [size if isinstance(size, int) else 1 for size in given.shape]
    shape[0] = 1
    run = session.run

    def infer(x):
        x = np.asarray(x, np.float32)
        if x.ndim == 3 and len(shape) == 4 and shape[1] == x.shape[2] != shape[3]:
            x = x.transpose(2, 0, 1)            # (H, W, C) as the runtime takes it
        return run(None, {given.name: x.reshape(shape)})[0][0]
    return infer


def torch_module(model, chain):
    """A PyTorch function computing the chain, one thread; None when not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    layers = []
    for weight, bias, activation in chain:
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            linear.bias.copy_(torch.from_numpy(bias))
        layers.append(linear)
        if activation == "relu":
            layers.append(torch.nn.ReLU())
        elif activation == "softmax":
            layers.append(torch.nn.Softmax(dim=-1))
    net = torch.nn.Sequential(*layers).eval()
    scale, offset = model.input_scale, model.input_offset
    identity = model.input_dtype == np.float32 and (scale, offset) == (1.0, 0.0)

    def run(x):
        with torch.inference_mode():
            h = torch.from_numpy(x.reshape(1, -1))
            if not identity:
                h = h.to(torch.float32) * scale + offset
            return net(h)[0].numpy()
    return run


def litert_interpreters(model, chain):
    """``{name: function(x)}`` of LiteRT (TensorFlow Lite) on the chain, float32 and with
    TensorFlow's dynamic-range int8 weights, one thread; None when TensorFlow, whose
    converter writes the .tflite files, is not installed (it is, in a virtual
    environment of its own, where CI tests Keras). The interpreter is ai-edge-litert's
    when installed, else TensorFlow's own."""
    try:
        import tensorflow as tf
    except ImportError:
        return None
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    n_in = int(np.prod(model.input_shape))
    raw = tf.keras.Input((n_in,), dtype="uint8" if model.input_dtype == np.uint8 else "float32")
    h = tf.keras.layers.Rescaling(model.input_scale, model.input_offset)(raw)
    for weight, bias, activation in chain:
        dense = tf.keras.layers.Dense(len(bias), activation=None if activation == "none"
                                      else activation)
        h = dense(h)
        dense.set_weights([np.ascontiguousarray(weight.T), bias])
    converter = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(raw, h))
    runs = {}
    for name, optimizations in (("LiteRT float32", []), ("LiteRT int8", [tf.lite.Optimize.DEFAULT])):
        converter.optimizations = optimizations
        interpreter = Interpreter(model_content=converter.convert(), num_threads=1)
        interpreter.allocate_tensors()
        runs[name] = _invoker(interpreter)
    return runs


def _invoker(interpreter):
    """``run(x)``: one sample through a LiteRT interpreter, its output row."""
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    set_tensor, invoke, get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor

    def run(x):
        set_tensor(source, x.reshape(1, -1))
        invoke()
        return get_tensor(target)[0]
    return run


def _check_same(name, outputs, expected):
    scale = float(np.abs(expected).max()) or 1.0
    worst = np.abs(outputs - expected).max()
    # rounded int8 weights compute the same net nearly; float ones, to rounding
    close = worst <= 0.05 * scale if "int8" in name else \
        np.allclose(outputs, expected, rtol=1e-3, atol=1e-4 * scale)
    if not close:
        raise RuntimeError(f"{name} computes something else than this runtime "
                           f"(largest difference {worst:.3g})")


def candidates(model, sample, backends, onnx_file=None):
    """``({name: function()}, {framework: reason skipped})`` for one model and sample;
    onnxruntime runs ``onnx_file`` when given (the model converted from it)."""
    runs, skipped = {}, {}
    chain = dense_chain(model)
    for backend in backends:
        rt = Runtime(model, backend=backend)
        runs[f"edgebnn/{backend}"] = (lambda rt: lambda: rt.classify(sample))(rt)
        if chain is not None:
            rounded = Runtime(with_int8_weights(model), backend=backend)
            runs[f"edgebnn int8/{backend}"] = (lambda rt: lambda: rt.classify(sample))(rounded)
    result = rt.classify(sample)
    # a "softmax" last layer gives logits here (classify applies the softmax); elsewhere, scores
    softmax = getattr(model.layers[-1], "activation", "none") == "softmax"
    expected = result.scores if softmax else result.logits
    for name, build in (("onnxruntime", onnx_session), ("torch", torch_module),
                        ("LiteRT", litert_interpreters)):
        if onnx_file and name == "onnxruntime":
            built = onnx_file_session(onnx_file)
        elif chain is None:
            skipped[name] = ("skipped (only float Dense chains are rebuilt for other "
                             "frameworks; compare an .onnx file to time onnxruntime on it)")
            continue
        else:
            built = build(model, chain)
        if built is None:
            skipped[name] = ("skipped (needs TensorFlow to write the .tflite files)"
                             if name == "LiteRT" else "skipped (not installed)")
            continue
        for label, function in (built if isinstance(built, dict) else {name: built}).items():
            _check_same(label, function(sample), expected)
            runs[label] = (lambda f: lambda: f(sample))(function)
    return runs, skipped


def run_compare(model, label, backend="both", rounds=200, seed=0, hot=False, source="random",
                onnx_file=None):
    """Median seconds per sample of every candidate on ``model``, with skips and versions;
    ``hot``: each turn after an untimed call of its own (``timing.interleaved``);
    ``source``: where the one sample comes from (``latency.load_samples``), e.g. a real
    digit, whose blank background this runtime's float kernel skips."""
    sample = load_samples(source, model, count=1, seed=seed)[0]
    runs, skipped = candidates(model, sample, available_backends(backend), onnx_file)
    base = next(iter(runs))
    once = interleaved({base: runs[base]}, calls=3, rounds=1, warmup=3)[base]
    calls = max(1, min(200, int(ROUND_SECONDS / max(once, 1e-7))))
    times = interleaved(runs, calls=calls, rounds=rounds, warmup=max(3, calls), rotate=True,
                        hot=hot)
    return {"model": label, "input": source, "weights": weight_count(model), "base": base,
            "seconds": times,
            "skipped": skipped, "versions": versions(), "rounds": rounds, "calls": calls,
            "hot": hot}


def weight_count(model):
    chain = dense_chain(model)
    return None if chain is None else sum(w.size + b.size for w, b, _ in chain)


def versions():
    found = {}
    for name in ("onnxruntime", "torch", "tensorflow"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            pass
    if "tensorflow" in found:
        found["LiteRT float32"] = found["LiteRT int8"] = f"(TensorFlow {found['tensorflow']})"
    return found


def load(path_or_sizes):
    """A model from a packed file path, an ONNX file (converted as the converters do) or a
    tuple of layer sizes (random weights)."""
    if isinstance(path_or_sizes, tuple):
        return random_model(path_or_sizes)
    if str(path_or_sizes).endswith(".onnx"):
        from edgebnn.converters.onnx import convert
        return convert(path_or_sizes)
    return load_model(path_or_sizes)


def format_result(result):
    weights = "" if result["weights"] is None else f" ({result['weights']:,} weights)"
    base = result["seconds"][result["base"]]
    out = [f"{result['model']}{weights}, {result['input']} input: per sample, single-threaded, "
           f"median of {result['rounds']} interleaved rounds of {result['calls']} "
           f"call{'s' if result['calls'] != 1 else ''}"
           + (", each after an untimed one" if result.get("hot") else "")]
    for name, seconds in result["seconds"].items():
        version = result["versions"].get(name)
        label = f"{name} {version}" if version else name
        out.append(f"  {label:<24} {seconds * 1e6:10.1f} us  {seconds / base:6.2f}x {result['base']}")
    out += [f"  {name:<24} {reason}" for name, reason in result["skipped"].items()]
    return "\n".join(out)
