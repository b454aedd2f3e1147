"""Budgets at load: a model whose declared shapes cost too much is refused, naming the layer."""
import glob
import os

import numpy as np
import pytest

from edgebnn import (BatchNorm, BinaryConv2d, BinaryDense, Dense, Limits, Model, ModelFormatError,
                     Runtime, load_ddnn, save_ddnn, save_model)
from conftest import ROOT, edit_packed

UNLIMITED = Limits(1 << 62, 1 << 62, 1 << 62)


def pool_bomb(limits=UNLIMITED):
    """A 1x1 binary convolution padded and pooled by 20,000: 12 KB of file, 10^10 bit operations."""
    conv = BinaryConv2d(np.zeros((8, 1, 1, 1), np.uint8), np.zeros(8, np.int32),
                        np.zeros(8, np.uint8), padding=(20000, 20000), pool=(20000, 20000))
    return Model([conv, BinaryDense(np.zeros((2, 4), np.uint8))], (28, 28), "uint8",
                 classes=["a", "b"], limits=limits)


def test_a_padding_and_pool_bomb_is_refused_at_load_naming_the_layer(tmp_path):
    save_model(pool_bomb(), tmp_path / "bomb.h5")
    with pytest.raises(ModelFormatError, match=r"bomb.h5: layers/0 \(binary_conv2d\): the model "
                                               r"reaches 102,.* binary bit operations per sample"):
        Runtime(tmp_path / "bomb.h5")


def test_limits_are_the_callers_to_raise(tmp_path):
    save_model(pool_bomb(), tmp_path / "bomb.h5")
    assert Runtime(tmp_path / "bomb.h5", limits=UNLIMITED).classes == ["a", "b"]


def test_a_model_object_is_held_to_the_limits_the_runtime_is_given():
    model = Model([Dense(np.ones((4, 4)), np.zeros(4))], (4,))
    with pytest.raises(ModelFormatError, match=r"layers/0 \(dense\): the model reaches 16 float "
                                               r"multiply-adds per sample here, over the limit of 15"):
        Runtime(model, limits=Limits(float_macs=15))
    assert Runtime(model, limits=Limits(float_macs=16)).model.limits.float_macs == 16


def test_float_work_is_summed_over_the_layers_and_the_layer_that_passes_is_named():
    layers = [Dense(np.ones((4, 4)), np.zeros(4)), Dense(np.ones((3, 4)), np.zeros(3))]
    Model(layers, (4,), limits=Limits(float_macs=28))
    with pytest.raises(ModelFormatError, match=r"layers/1 \(dense\): the model reaches 28 float "
                                               r"multiply-adds per sample here, over the limit of 27"):
        Model([layer.copy() for layer in layers], (4,), limits=Limits(float_macs=27))


def test_memory_is_counted_for_the_backend_that_runs(backend):
    layers = [Dense(np.ones((10, 1000)), np.zeros(10))]
    with pytest.raises(ModelFormatError, match=f"layers/0 \\(dense\\): the model reaches 48,080 "
                                               f"bytes of memory on the {backend} backend"):
        Model(layers, (1000,), limits=Limits(memory=40_000))


def test_the_numpy_twin_needs_more_memory_for_binary_layers():
    """The twin unpacks +-1 weights to int32 (through a byte per sign), the input too."""
    from edgebnn.layers import Signal
    layer = BinaryDense(np.zeros((100, 16), np.uint8))
    cost = layer.cost(Signal("bits", (128,)))
    assert cost.binary_ops == 100 * 128
    # weights, rows padded to words and (AVX-512) regrouped, thresholds, outputs
    assert cost.memory_c == 1600 + 2 * 1600 + 5 * 100 + 4 * 100
    assert cost.memory_numpy - cost.memory_c == 5 * 100 * 128 + 8 * 128


def test_every_shipped_model_fits_the_default_limits():
    paths = glob.glob(os.path.join(ROOT, "models", "**", "*.h5"), recursive=True)
    assert len(paths) >= 18
    for path in paths:
        (load_ddnn if os.sep + "ddnn" + os.sep in path else Runtime)(path)


def test_too_many_layers_are_refused_before_one_is_read(tmp_path):
    """Each layer costs milliseconds to check and bind: a sealed file of thousands of tiny
    layers would make loading itself slow, so their number is a limit too."""
    path = tmp_path / "many.h5"
    save_model(Model([BatchNorm(np.ones(4, np.float32), np.zeros(4, np.float32))], (4,)), path)

    def grow(f):
        for i in range(1, 300):
            f.copy(f["layers/0"], f["layers"], name=str(i))
    edit_packed(path, grow)
    with pytest.raises(ModelFormatError, match=r"many.h5: layers: 300 layers, over the limit of "
                                               r"256 \(Limits.layers"):
        Runtime(path)
    assert len(Runtime(path, limits=Limits(layers=300)).model.layers) == 300


def test_too_many_devices_are_refused_before_one_is_read(tmp_path):
    from test_ddnn import random_ddnn
    save_ddnn(random_ddnn(3), tmp_path / "ddnn.h5")
    with pytest.raises(ModelFormatError, match=r"ddnn.h5: devices: 3 devices, over the limit of 2"):
        load_ddnn(tmp_path / "ddnn.h5", limits=Limits(devices=2))
    assert len(load_ddnn(tmp_path / "ddnn.h5", limits=Limits(devices=3)).devices) == 3
