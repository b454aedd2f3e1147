import os
import sys
import threading

import numpy as np
import pytest

from edgebnn import Dense, Model
from edgebnn.kernels import ENVIRONMENT_VARIABLE, c_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")
sys.path.insert(0, os.path.join(ROOT, "examples"))


@pytest.fixture(autouse=True, params=["c", "numpy"])
def backend(request, monkeypatch):
    """Every test runs once per kernel backend, chosen as a user would: by environment."""
    if request.param == "c" and not c_available():
        pytest.skip("the C kernel is not built")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, request.param)
    return request.param


@pytest.fixture(scope="session")
def mnist_dir():
    """The real MNIST files prepared beside the checkout; skip when absent."""
    folder = os.path.join(SHARED_DATA, "mnist")
    if not os.path.exists(os.path.join(folder, "t10k-images-idx3-ubyte.gz")):
        pytest.skip(f"MNIST files not found in {folder}")
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


def run_threads(work, count):
    """``work(k)`` for k in 0..count-1, each in its own thread, all at once."""
    threads = [threading.Thread(target=work, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
