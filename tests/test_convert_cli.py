"""``python -m edgebnn.converters``: the source kind from the file, the packed output, --check, exit 2."""
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from edgebnn import Dense, Model, Runtime, save_model
from conftest import write_version_1

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS = os.path.join(ROOT, "tests", "fixtures", "keras")


def cli(*args):
    """Run the command line; ``(exit status, stdout, stderr)``."""
    done = subprocess.run([sys.executable, "-m", "converters", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_keras_file_is_converted_and_written(tmp_path):
    out = tmp_path / "net.h5"
    saved = np.load(os.path.join(KERAS, "binary_conv.npz"))
    status, stdout, _ = cli(os.path.join(KERAS, "binary_conv.h5"), out, "--classes", "a,b,c,d",
                            "--input-dtype", "uint8", "--scale", float(saved["scale"]),
                            "--offset", float(saved["offset"]))
    assert status == 0
    assert "keras model -> 4 layers (binary_conv2d, binary_conv2d, binary_dense, batch_norm)" in stdout
    assert "input uint8 (12, 11, 3)" in stdout
    rt = Runtime(out)
    assert rt.classes == ["a", "b", "c", "d"]
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
    assert "onnx model -> 2 layers (dense, dense), input float32 (12,)" in stdout
    assert "labels agree on 100/100" in stdout
    difference = float(stdout.split("difference ")[1].split(";")[0])
    assert difference < 1e-5
    # int8 weights: a quarter of the weights' bytes, the check says what rounding changed
    status, stdout, stderr = cli(source, tmp_path / "int8.h5", "--check", "--weights", "int8",
                                 "--min-agreement", "90")
    assert status == 0, stderr
    assert "onnx model -> 2 layers (dense_int8, dense_int8), input float32 (12,)" in stdout
    difference = float(stdout.split("difference ")[1].split(";")[0])
    assert 0 < difference < 0.2          # 8 bits on random inputs of a random net
    layers = Runtime(tmp_path / "int8.h5").model.layers
    assert [layer.weight.dtype for layer in layers] == [np.int8, np.int8]


def binary_net():
    torch = pytest.importorskip("torch")
    from torch import nn

    from edgebnn.converters.binary_layers import BinaryConv2d, BinaryLinear, Sign
    torch.manual_seed(0)
    net = nn.Sequential(BinaryConv2d(1, 4, 3), nn.MaxPool2d(2), nn.BatchNorm2d(4), Sign(),
                        nn.Flatten(), BinaryLinear(4 * 3 * 3, 3), nn.BatchNorm1d(3)).eval()
    for norm in (net[2], net[6]):
        norm.running_mean.uniform_(-3, 3)
        norm.weight.data.uniform_(-1, 1)
    return torch, net


def test_a_torch_export_program_converts_without_running_code_from_the_file(tmp_path):
    pytest.importorskip("onnxscript")
    torch, net = binary_net()
    source = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 1, 8, 8),)), source)
    status, stdout, stderr = cli(source, tmp_path / "net.h5", "--input-dtype", "uint8", "--check")
    assert status == 0, stderr
    assert "pytorch model -> 3 layers (binary_conv2d, binary_dense, batch_norm), input uint8 (8, 8)" \
        in stdout
    assert "labels agree on 100/100" in stdout


def test_a_torchscript_module_converts(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from torch import nn
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    source = tmp_path / "net.bin"                      # the name says nothing: the content does
    torch.jit.save(torch.jit.script(net), source)
    status, stdout, stderr = cli(source, tmp_path / "net.h5", "--input-shape", "3,4", "--check")
    assert status == 0, stderr
    assert "pytorch model -> 2 layers (dense, dense), input float32 (3, 4)" in stdout
    assert "labels agree on 100/100" in stdout


def test_a_pickled_module_converts_only_when_trusted(tmp_path):
    torch, net = binary_net()
    source = tmp_path / "net.pt"
    torch.save(net, source)
    status, _, stderr = cli(source, tmp_path / "net.h5", "--input-shape", "1,8,8")
    assert status == 2 and "--trust-pickle" in stderr and "torch.export.save" in stderr
    assert not (tmp_path / "net.h5").exists()
    status, stdout, stderr = cli(source, tmp_path / "net.h5", "--input-shape", "1,8,8",
                                 "--input-dtype", "uint8", "--trust-pickle", "--check")
    assert status == 0, stderr
    assert "labels agree on 100/100" in stdout
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    status, _, stderr = cli(tmp_path / "weights.pt", tmp_path / "w.h5", "--input-shape", "1,8,8")
    assert status == 2 and "not a network (a state_dict?)" in stderr


class Evil:
    """Unpickling this runs code: it writes the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


@pytest.mark.parametrize("name", ["evil.pt", "evil.keras", "model.bin", "evil.onnx"])
def test_a_malicious_pickle_never_runs_whatever_its_name(tmp_path, name):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran"
    torch.save({"model": Evil(marker)}, tmp_path / name)
    status, _, stderr = cli(tmp_path / name, tmp_path / "out.h5", "--input-shape", "4")
    assert status == 2 and "--trust-pickle" in stderr
    assert not marker.exists()


@pytest.mark.parametrize("member, what", [("net/archive_format", "a torch.export program"),
                                          ("net/code/__torch__.py", "TorchScript")])
def test_a_zip_only_named_like_a_torch_archive_is_refused_with_exit_2(tmp_path, member, what):
    pytest.importorskip("torch")
    import zipfile
    with zipfile.ZipFile(tmp_path / "net.pt2", "w") as archive:
        archive.writestr(member, "not what torch wrote")
    status, _, stderr = cli(tmp_path / "net.pt2", tmp_path / "out.h5", "--input-shape", "4")
    last = stderr.strip().splitlines()[-1]         # torch may log its own warning before
    assert status == 2 and f"named like {what} inside, but torch cannot load it" in last
    assert not (tmp_path / "out.h5").exists()


def test_a_keras_archive_is_told_by_its_content(tmp_path):
    source = tmp_path / "model.bin"
    shutil.copy(os.path.join(KERAS, "float_mlp.keras"), source)
    status, stdout, stderr = cli(source, tmp_path / "net.h5")
    assert status == 0, stderr
    assert "keras model -> 3 layers (dense, batch_norm, dense), input float32 (7, 9)" in stdout


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


def zipped(path):
    import zipfile
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "no model here")
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
    "broken onnx": (text("net.bin", b"\x08\xff garbage \x13\x37" * 8), "not an ONNX model"),
    "named onnx": (text("net.onnx", b"\x00\xff garbage" * 8), "cannot tell the kind of model"),
    "other zip": (lambda folder: zipped(folder / "net.keras"), "a zip archive that is neither"),
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
                            "--input-shape", "3,4", "--input-dtype", "uint8")
    assert status == 2 and "differs from the Keras model's (12, 12)" in stderr


def test_a_version_1_packed_file_is_rewritten_sealed_with_the_same_answers(tmp_path):
    model = Model([Dense(np.arange(6.0).reshape(2, 3), np.ones(2))], (3,))
    write_version_1(tmp_path / "old.h5", model)
    status, stdout, stderr = cli(tmp_path / "old.h5", tmp_path / "new.h5")
    assert status == 0, stderr
    assert "(packed format version 1) rewritten as version 2, sealed" in stdout
    x = np.array([1, -2, 0.5], np.float32)
    np.testing.assert_array_equal(Runtime(tmp_path / "new.h5").classify(x).logits,
                                  Runtime(model).classify(x).logits)
