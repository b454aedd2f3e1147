import os
import pathlib
import re
import signal
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest

from edgebnn import Dense, Model
from edgebnn.packed import seal
from edgebnn.kernels import ENVIRONMENT_VARIABLE, c_available

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")
sys.path.insert(0, os.path.join(ROOT, "examples"))


@pytest.fixture(params=["c", "numpy"])
def backend(request, monkeypatch):
    """The test runs once per kernel backend, chosen as a user would: by environment.

    Modules whose tests run kernels ask for it for all their tests
    (``pytestmark = pytest.mark.usefixtures("backend")``), other tests by name;
    the rest (files, servers, command lines, reports) run once, on the default
    backend: the twins are held bit-exact where the kernels are tested."""
    if request.param == "c" and not c_available():
        pytest.skip("the C kernel is not built")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, request.param)
    return request.param


@pytest.fixture(scope="session")
def mnist_dir():
    """The real MNIST files prepared beside the checkout; skip when absent, except in CI
    (CI=true), where the data is laid beside the clone and a skip would hide its loss."""
    folder = os.path.join(SHARED_DATA, "mnist")
    if not os.path.exists(os.path.join(folder, "t10k-images-idx3-ubyte.gz")):
        missing = f"MNIST files not found in {folder}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}: CI runs the tests that need them")
        pytest.skip(missing)
    return folder


def random_mlp(sizes, seed=0, input_shape=None, input_dtype="float32", scale=1.0, offset=0.0):
    """A float MLP with random weights: ReLU hidden layers, raw last layer."""
    rng = np.random.default_rng(seed)
    layers = [Dense(rng.standard_normal((n_out, n_in)) / np.sqrt(n_in),
                    rng.standard_normal(n_out) * 0.1,
                    "relu" if i < len(sizes) - 2 else "none")
              for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]))]
    return Model(layers, input_shape or (sizes[0],), input_dtype, scale, offset)


def reference_logits(model, x):
    """The model computed by hand in float64: the oracle for the float path."""
    h = (x.reshape(-1).astype(np.float64) * np.float32(model.input_scale)
         + np.float32(model.input_offset))
    for layer in model.layers:
        h = layer.weight.astype(np.float64) @ h + layer.bias
        if layer.activation == "relu":
            h = np.maximum(h, 0)
    return h


# Float32 sums taken in another order (another batch size, BLAS build, thread count or
# process) differ by rounding, and rounding grows with the magnitude of what is summed, not
# with each result: a logit near 0 among logits near 10 carries the error of the 10s.
# 2**-14 of a row's largest value is ~1000 float32 ulps at that magnitude, and orders of
# magnitude below what a wrong weight, sample or layer changes.
SUMMATION_ROUNDING = 2.0 ** -14


def assert_same_sums(got, want, err_msg=""):
    """``got`` and ``want`` are the same float arithmetic, possibly summed in another order."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{err_msg} shapes {got.shape} != {want.shape}"
    scale = np.abs(want).max(axis=-1, keepdims=True) if want.ndim else np.abs(want)
    tolerance = SUMMATION_ROUNDING * scale
    off = np.abs(got - want) > tolerance
    assert not off.any(), (f"{err_msg} {off.sum()} of {off.size} values differ beyond rounding: "
                           f"largest gap {np.abs(got - want).max():.3g}, "
                           f"tolerance {tolerance.min():.3g}\ngot  {got}\nwant {want}")


class Process:
    """A server subprocess that printed its port (``python ARGS``); stopped with SIGTERM."""

    def __init__(self, args, env=None):
        self.process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
        line = self.process.stdout.readline()
        match = re.search(r"(?:127\.0\.0\.1:|listening on )(\d+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.process.stderr.read()}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise
        return self.process.returncode

    def kill(self):
        self.process.kill()
        self.process.wait()


def fault_server(mode, *args):
    """One of tests/servers.py's misbehaving v2 servers."""
    return Process([os.path.join(HERE, "servers.py"), mode, *map(str, args)])
def edit_packed(path, change, **options):
    """``change(root)`` a packed file through h5py, then seal it again: a crafted file, which
    the reader must refuse by its content (a file changed and not resealed fails its digest)."""
    with h5py.File(path, "r+", **options) as f:
        change(f)
    reseal(path)


def reseal(path):
    path = pathlib.Path(path)
    path.write_bytes(seal.seal(path.read_bytes()))


def write_version_1(path, model):
    """A file as format version 1 wrote it: no user block, variable-length strings."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "edgebnn-packed"
        f.attrs["format_version"] = 1
        f.attrs["input_shape"] = np.array(model.input_shape)
        f.attrs["input_dtype"] = model.input_kind
        f.attrs["input_scale"] = model.input_scale
        f.attrs["input_offset"] = model.input_offset
        f.attrs["classes"] = np.array(model.classes, dtype=h5py.string_dtype())
        for i, layer in enumerate(model.layers):
            group = f.create_group(f"layers/{i}")
            group.attrs["kind"] = layer.kind
            attrs, arrays = layer.fields()
            group.attrs.update(attrs)
            for name, value in arrays.items():
                group.create_dataset(name, data=value)


def run_threads(work, count):
    """``work(k)`` for k in 0..count-1, each in its own thread, all at once."""
    threads = [threading.Thread(target=work, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def bench_cli(args, capsys):
    """(exit code, stdout, stderr) of ``python -m edgebnn.bench ARGS``, run in this process."""
    from edgebnn.bench.__main__ import main
    try:
        code = main(args)
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err
