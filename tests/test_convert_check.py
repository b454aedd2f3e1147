"""``--check``: own samples, what it reports, and exit statuses that say whether it checked."""
import os
import subprocess
import sys

import numpy as np
import pytest

from edgebnn import Dense, Model, Runtime
from edgebnn.converters import check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS = os.path.join(ROOT, "tests", "fixtures", "keras")


def cli(*args, env=None):
    """``python -m edgebnn.converters ARGS``: ``(exit status, stdout, stderr)``."""
    done = subprocess.run([sys.executable, "-m", "edgebnn.converters", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))
    return done.returncode, done.stdout, done.stderr


def sign_net(path):
    """ONNX: Sign(x) then a MatMul with +-1 weights. ONNX's Sign(0) is 0 where the
    runtime's is +1, a difference only inputs with exact zeros meet."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    signs = np.where(np.random.default_rng(0).standard_normal((12, 4)) >= 0, 1.0, -1.0)
    graph = helper.make_graph(
        [helper.make_node("Sign", ["x"], ["s"]), helper.make_node("MatMul", ["s", "w"], ["y"])],
        "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(signs.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


FLOAT_INPUT = ("--input-dtype", "float32", "--scale", "1")


def test_own_samples_catch_what_random_ones_miss(tmp_path):
    source = sign_net(tmp_path / "net.onnx")
    status, stdout, _ = cli(source, tmp_path / "a.h5", "--check", *FLOAT_INPUT)
    assert status == 0 and "labels agree on 100/100" in stdout      # noise has no exact zeros
    assert "random inputs prove little" in stdout
    sparse = (np.random.default_rng(1).random((50, 12)) < 0.2).astype(np.float32)
    np.save(tmp_path / "mine.npy", sparse)
    status, stdout, _ = cli(source, tmp_path / "b.h5", "--check", *FLOAT_INPUT,
                            "--samples", tmp_path / "mine.npy")
    assert status == check.DISAGREES, stdout
    assert f"check on 50 samples from {tmp_path / 'mine.npy'}" in stdout
    assert "check FAILED: the converted model disagrees with the source on" in stdout
    assert "worst sample: " + str(tmp_path / "mine.npy") + "[" in stdout
    assert "random inputs prove little" not in stdout
    status, stdout, _ = cli(source, tmp_path / "c.h5", "--check", *FLOAT_INPUT,
                            "--samples", tmp_path / "mine.npy", "--min-agreement", "0")
    assert status == 0 and "check passed" in stdout


def test_a_missing_framework_exits_3_not_0(tmp_path):
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        'raise ImportError("No module named \'tensorflow\' (hidden by a test)", name="tensorflow")\n')
    status, stdout, _ = cli(os.path.join(KERAS, "binary_mlp.h5"), tmp_path / "out.h5", "--check",
                            "--input-dtype", "uint8",
                            env={"PYTHONPATH": str(tmp_path / "fake")})
    assert status == check.NOT_CHECKED
    assert "check NOT RUN: tensorflow is not installed" in stdout
    assert (tmp_path / "out.h5").exists()          # converted, only not checked


def test_a_folder_of_images_is_checked(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 3)).eval()
    torch.save(net, tmp_path / "net.pt")
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = np.random.default_rng(2).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    for i, image in enumerate(pixels):
        (folder / f"{i}.pgm").write_bytes(b"P5 3 4 255\n" + image.tobytes())
    np.save(folder / "more.npy", pixels[:2])
    (folder / "README.txt").write_text("not an image")
    status, stdout, stderr = cli(tmp_path / "net.pt", tmp_path / "out.h5", "--input-shape", "4,3",
                                 "--trust-pickle", "--input-dtype", "uint8",
                                 "--check", "--samples", folder)
    assert status == 0, stderr
    assert f"check on 5 samples from the folder {folder}, 1 other files left out" in stdout
    assert "labels agree on 5/5" in stdout


@pytest.mark.parametrize("samples, problem", [
    ("missing.npy", "no such file or folder"),
    ("wrong.npy", "an array of shape (3, 5); the model takes one sample of shape (12,)"),
    ("empty", "no .npy, .npz, .png, .pgm files in it")])
def test_bad_samples_exit_2_naming_the_file(tmp_path, samples, problem):
    source = sign_net(tmp_path / "net.onnx")
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), np.float32))
    (tmp_path / "empty").mkdir()
    status, _, stderr = cli(source, tmp_path / "o.h5", "--check", *FLOAT_INPUT,
                            "--samples", tmp_path / samples)
    assert status == 2 and problem in stderr and samples in stderr
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "o.h5.partial").exists()


def test_samples_without_check_is_a_usage_error(tmp_path):
    status, _, stderr = cli(os.path.join(KERAS, "binary_mlp.h5"), tmp_path / "o.h5",
                            "--samples", "x.npy")
    assert status == 2 and "--samples is for --check" in stderr
    status, _, stderr = cli(os.path.join(KERAS, "binary_mlp.h5"), tmp_path / "o.h5", "--check",
                            "--min-agreement", "101")
    assert status == 2 and "101 must be at most 100" in stderr


# check.run in-process, with stand-ins for the source framework -------------------------------

@pytest.fixture
def runtime():
    rng = np.random.default_rng(0)
    return Runtime(Model([Dense(rng.standard_normal((3, 6)), rng.standard_normal(3))], (6,)))


def logits_of(runtime):
    return lambda x: np.array([r.logits for r in runtime.classify_batch(x)])


def test_a_source_that_agrees_passes(runtime):
    lines = []
    status = check.run(logits_of(runtime), runtime, (6,), random=40, out=lines.append)
    assert status == check.PASSED
    assert lines[0].startswith("check on 40 random samples: largest class-probability difference")
    assert "labels agree on 40/40 (100.0%, at least 99% needed)" in lines[0]


def test_a_source_that_disagrees_fails(runtime):
    def shuffled(x):                       # a converter that mixed up the classes
        return logits_of(runtime)(x)[:, [1, 2, 0]]
    lines = []
    assert check.run(shuffled, runtime, (6,), out=lines.append) == check.DISAGREES
    assert any(line.startswith("check FAILED") for line in lines)
    assert any("labels differ on: random sample" in line for line in lines)


def test_a_source_that_cannot_run_is_not_a_pass(runtime):
    def broken(x):
        raise RuntimeError("shape mismatch in layer 3")
    lines = []
    assert check.run(broken, runtime, (6,), out=lines.append) == check.NOT_CHECKED
    assert lines == ["check NOT RUN: the source model did not run "
                     "(RuntimeError: shape mismatch in layer 3)"]
    assert check.run(lambda x: np.zeros((len(x), 5)), runtime, (6,),
                     out=lines.append) == check.NOT_CHECKED
    assert "the source gives outputs of shape" in lines[-1]


def test_the_worst_sample_is_named(runtime):
    report = check.compare(np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]),
                           np.array([[0.9, 0.1], [0.3, 0.7], [0.25, 0.75]]), ["a", "b", "c"])
    assert report["agree"] == 2 and report["disagreeing"] == ["b"]
    assert report["worst"] == {"name": "b", "runtime_label": 0, "runtime_p": 0.6,
                               "source_label": 1, "source_p": 0.7}
    assert report["largest_difference"] == pytest.approx(0.3)
