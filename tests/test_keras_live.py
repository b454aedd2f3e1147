"""The Keras converter against TensorFlow, Keras 3 and Larq themselves, not only their files.

The test models are built afresh by the real frameworks at their defaults
(examples/make_keras_fixtures.py and examples/make_keras3_archive.py, each
``model.save``), then each goes through ``python -m edgebnn.converters
SOURCE OUT --check --samples x.npy``, in the environment a user has: the
converter's check loads the source with Keras (Keras 2 for Larq's layers, by
itself) and runs it on the samples the builder saved, so Keras and the
runtime must agree on every label. Skips without the frameworks; .ci/run
makes a virtual environment with them (``pip install tensorflow==2.21.0
tf-keras==2.21.0 larq==0.14.0``) and fails if this module skips there.
"""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

# found, not imported: which Keras TensorFlow loads is fixed at its first import,
# and each model below needs its own, in its own process
MISSING = [name for name in ("tensorflow", "tf_keras", "larq")
           if not importlib.util.find_spec(name)]
if MISSING:
    pytest.skip(f"{', '.join(MISSING)} not installed: pip install tensorflow==2.21.0 "
                "tf-keras==2.21.0 larq==0.14.0", allow_module_level=True)

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

MODELS = ("float_mlp_tf_keras.h5", "binary_mlp.h5", "binary_conv.h5", "float_mlp_keras3.h5",
          "float_mlp.keras", "functional_chain.keras", "float_cnn.keras")


def quiet(**variables):
    """The environment as a user has it (no TF_USE_LEGACY_KERAS), TensorFlow's log quiet."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **variables)
    environment.pop("TF_USE_LEGACY_KERAS", None)
    return environment


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The models and their samples, written by the frameworks in this run."""
    folder = tmp_path_factory.mktemp("keras")
    subprocess.run([sys.executable, os.path.join(EXAMPLES, "make_keras_fixtures.py"),
                    "--out", str(folder)], check=True, env=quiet())
    subprocess.run([sys.executable, os.path.join(EXAMPLES, "make_keras3_archive.py"),
                    "--out", str(folder)], check=True, env=quiet(KERAS_BACKEND="tensorflow"))
    return folder


@pytest.mark.parametrize("name", MODELS)
def test_keras_and_the_runtime_agree_on_every_label(name, built, tmp_path):
    stem = name.split(".")[0]
    saved = np.load(built / (stem + ("_keras_archive" if name.endswith(".keras") else "") + ".npz"))
    np.save(tmp_path / "x.npy", saved["x"])
    command = [sys.executable, "-m", "edgebnn.converters", str(built / name),
               str(tmp_path / "out.h5"), "--input-dtype", "uint8",
               "--scale", repr(float(saved["scale"])), "--offset", repr(float(saved["offset"])),
               "--check", "--samples", str(tmp_path / "x.npy")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=quiet())
    assert run.returncode == 0, run.stdout + run.stderr
    n = len(saved["x"])
    assert re.search(rf"labels agree on {n}/{n} ", run.stdout), run.stdout
    largest = float(re.search(r"largest class-probability difference (\S+);", run.stdout)[1])
    assert largest < 1e-4, run.stdout
