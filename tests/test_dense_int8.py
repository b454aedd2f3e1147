"""int8 dense layers: float weights rounded per output row, inputs quantized per sample."""
import numpy as np
import pytest

from edgebnn import Dense, DenseInt8, Limits, Model, ModelFormatError, Runtime, load_model, save_model
from edgebnn.kernels import c_available
from conftest import random_mlp

pytestmark = pytest.mark.usefixtures("backend")     # the layer runs in the kernel


def int8_copy(model):
    return Model([DenseInt8.quantized(layer) for layer in model.layers], model.input_shape,
                 model.input_kind, model.input_scale, model.input_offset, model.classes)


def samples(n, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_an_int8_copy_answers_as_the_float_model_within_its_rounding():
    floats = random_mlp([784, 64, 32, 10], seed=1, input_shape=(28, 28), input_dtype="uint8",
                        scale=1 / 255)
    ints = Runtime(int8_copy(floats))
    reference = Runtime(floats)
    x = samples(40)
    got, want = ints.classify_batch(x), reference.classify_batch(x)
    gaps = np.abs(np.array([r.logits for r in got]) - np.array([r.logits for r in want]))
    spread = np.abs(np.array([r.logits for r in want])).max()
    assert gaps.max() < 0.05 * spread                # rounding to 8 bits, twice per layer
    assert np.mean([a.label == b.label for a, b in zip(got, want)]) >= 0.9


def test_a_batch_gives_the_bits_of_its_samples_one_by_one_and_the_backends_agree():
    model = int8_copy(random_mlp([784, 100, 33, 10], seed=2, input_shape=(28, 28),
                                 input_dtype="uint8", scale=1 / 255))
    rt = Runtime(model)
    x = samples(9)
    batch = np.array([r.logits for r in rt.classify_batch(x)])
    np.testing.assert_array_equal(batch, [rt.classify(sample).logits for sample in x])
    if c_available():
        twin = Runtime(model, backend="numpy")
        np.testing.assert_array_equal(batch, [r.logits for r in twin.classify_batch(x)])


def test_the_file_keeps_int8_weights_a_quarter_of_the_float_size(tmp_path):
    floats = random_mlp([784, 256, 10], seed=4)
    save_model(floats, tmp_path / "float.h5")
    save_model(int8_copy(floats), tmp_path / "int8.h5")
    loaded = load_model(tmp_path / "int8.h5")
    assert [layer.kind for layer in loaded.layers] == ["dense_int8", "dense_int8"]
    assert loaded.layers[0].weight.dtype == np.int8
    size = (tmp_path / "int8.h5").stat().st_size / (tmp_path / "float.h5").stat().st_size
    assert 0.24 < size < 0.3


def test_a_weight_of_minus_128_is_refused():
    with pytest.raises(ModelFormatError, match=r"-128 is outside the symmetric range"):
        DenseInt8(np.full((2, 3), -128, np.int8), np.ones(2), np.zeros(2))


def test_int8_layers_mix_with_float_ones_and_count_against_the_limits():
    floats = random_mlp([20, 16, 5], seed=5)
    mixed = Model([DenseInt8.quantized(floats.layers[0]), floats.layers[1].copy()], (20,))
    x = np.random.default_rng(0).standard_normal(20).astype(np.float32)
    assert Runtime(mixed).classify(x).logits.shape == (5,)
    with pytest.raises(ModelFormatError, match=r"layers/0 \(dense_int8\): the model reaches 320 "
                                               r"float multiply-adds"):
        Model([DenseInt8.quantized(floats.layers[0])], (20,), limits=Limits(float_macs=319))


def test_quantized_rounds_each_row_by_its_own_largest_weight():
    dense = Dense(np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]]), np.zeros(2))
    layer = DenseInt8.quantized(dense)
    np.testing.assert_array_equal(layer.weight, [[64, -127, 32], [0, 0, 0]])
    np.testing.assert_allclose(layer.scale, [1.0 / 127, 1.0])
