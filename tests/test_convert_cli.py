"""``python -m edgebnn.converters``: the source kind from the file, the packed output, --check, exit 2."""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from edgebnn import Dense, Model, Runtime, save_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS = os.path.join(ROOT, "tests", "fixtures", "keras")


def cli(*args):
    """Run the command line; ``(exit status, stdout, stderr)``."""
    done = subprocess.run([sys.executable, "-m", "converters", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_keras_file_is_converted_and_written(tmp_path):
    out = tmp_path / "net.h5"
    status, stdout, _ = cli(os.path.join(KERAS, "binary_conv.h5"), out, "--classes", "a,b,c,d")
    assert status == 0
    assert "keras model -> 4 layers (binary_conv2d, binary_conv2d, binary_dense, batch_norm)" in stdout
    assert "input uint8 (12, 11, 3)" in stdout
    rt = Runtime(out)
    assert rt.classes == ["a", "b", "c", "d"]
    saved = np.load(os.path.join(KERAS, "binary_conv.npz"))
    labels = [r.label for r in rt.classify_batch(saved["x"])]
    np.testing.assert_array_equal(labels, saved["outputs"].argmax(axis=1))


def test_scale_and_offset_reach_the_model(tmp_path):
    out = tmp_path / "net.h5"
    status, _, _ = cli(os.path.join(KERAS, "float_mlp_tf_keras.h5"), out, "--scale", "0.5",
                       "--offset", "-0.25", "--input-dtype", "float32")
    assert status == 0
    model = Runtime(out).model
    assert (model.input_dtype.name, model.input_scale, model.input_offset) == ("float32", 0.5, -0.25)


def test_onnx_file_with_check(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
             for name, shape in (("w1", (12, 16)), ("b1", (16,)), ("w2", (16, 3)))]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["a"]),
         helper.make_node("Relu", ["a"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    source = tmp_path / "net.onnx"
    onnx.save(model, source)
    status, stdout, stderr = cli(source, tmp_path / "net.h5", "--check")
    assert status == 0, stderr
    assert "onnx model -> 2 layers (dense, dense), input uint8 (12,)" in stdout
    assert "labels agree on 100/100" in stdout
    difference = float(stdout.split("difference ")[1].split(";")[0])
    assert difference < 1e-5


def test_pytorch_module_file_with_check(tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    from edgebnn.converters.binary_layers import BinaryConv2d, BinaryLinear, Sign
    torch.manual_seed(0)
    net = nn.Sequential(BinaryConv2d(1, 4, 3), nn.MaxPool2d(2), nn.BatchNorm2d(4), Sign(),
                        nn.Flatten(), BinaryLinear(4 * 3 * 3, 3), nn.BatchNorm1d(3)).eval()
    source = tmp_path / "net.pt"
    torch.save(net, source)
    status, stdout, stderr = cli(source, tmp_path / "net.h5", "--input-shape", "1,8,8", "--check")
    assert status == 0, stderr
    assert "pytorch model -> 3 layers (binary_conv2d, binary_dense, batch_norm), input uint8 (8, 8)" \
        in stdout
    assert "labels agree on 100/100" in stdout

    status, _, stderr = cli(source, tmp_path / "again.h5")
    assert status == 2 and "give --input-shape" in stderr
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    status, _, stderr = cli(tmp_path / "weights.pt", tmp_path / "w.h5", "--input-shape", "1,8,8")
    assert status == 2 and "not its state_dict" in stderr


# sources it refuses: exit status 2 and a message ---------------------------------

def packed_model(path):
    save_model(Model([Dense(np.eye(2), np.zeros(2))], (2,)), path)
    return path


def unsupported_keras(path):
    shutil.copy(os.path.join(KERAS, "float_mlp_keras3.h5"), path)
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = f.attrs["model_config"].replace('"relu"', '"tanh"', 1)
    return path


def weights_only(path):
    with h5py.File(path, "w") as f:
        f.create_dataset("kernel", data=np.zeros(3))
    return path


def truncated(path):
    with open(os.path.join(KERAS, "binary_mlp.h5"), "rb") as f:
        path.write_bytes(f.read()[:30000])
    return path


def text(name, content):
    def write(folder):
        path = folder / name
        path.write_bytes(content)
        return path
    return write


REFUSED = {
    # case: (makes the source in tmp_path, words stderr must contain)
    "missing": (lambda folder: folder / "nothere.onnx", "no such file"),
    "unknown kind": (text("notes.txt", b"hello"), "cannot tell the kind of model"),
    "not hdf5": (text("net.h5", b"not an hdf5 file"), "cannot tell the kind of model"),
    "broken onnx": (text("net.onnx", b"\x00\xff garbage \x13\x37" * 8), "not an ONNX model"),
    "weights only": (lambda folder: weights_only(folder / "w.h5"), "without a Keras 'model_config'"),
    "packed": (lambda folder: packed_model(folder / "p.h5"), "already a packed runtime model"),
    "truncated": (lambda folder: truncated(folder / "cut.h5"), "not a readable HDF5 file"),
    "unsupported layer": (lambda folder: unsupported_keras(folder / "k.h5"),
                          "layer 'dense' (Dense) has activation 'tanh'"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_sources_exit_with_status_2_and_say_why(case, tmp_path):
    make, message = REFUSED[case]
    if case == "broken onnx":
        pytest.importorskip("onnx")
    status, stdout, stderr = cli(make(tmp_path), tmp_path / "out.h5")
    assert status == 2
    assert stderr.startswith("error: ") and message in stderr
    assert not (tmp_path / "out.h5").exists()


def test_a_bad_command_line_exits_with_status_2(tmp_path):
    status, _, stderr = cli(os.path.join(KERAS, "binary_mlp.h5"), tmp_path / "o.h5",
                            "--input-shape", "12,x")
    assert status == 2 and "not a comma-separated list of sizes" in stderr
    status, _, stderr = cli(os.path.join(KERAS, "binary_mlp.h5"), tmp_path / "o.h5",
                            "--input-shape", "3,4")
    assert status == 2 and "differs from the Keras model's (12, 12)" in stderr
