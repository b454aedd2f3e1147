import h5py
import numpy as np
import pytest

from edgebnn import (ModelFileError, ModelFormatError, ModelVersionError, Runtime,
                     load_model, save_model)
from conftest import random_mlp


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.h5"
    save_model(random_mlp([12, 20, 5], input_shape=(3, 4), input_dtype="uint8",
                          scale=1 / 255, offset=-0.5), path)
    return path


def edit(path, change):
    with h5py.File(path, "r+") as f:
        change(f)


def test_round_trip_keeps_every_array_and_attribute(model_file):
    original = random_mlp([12, 20, 5], input_shape=(3, 4), input_dtype="uint8",
                          scale=1 / 255, offset=-0.5)
    loaded = load_model(model_file)
    assert loaded.input_shape == (3, 4)
    assert loaded.input_dtype == np.uint8
    assert loaded.input_scale == pytest.approx(1 / 255)
    assert loaded.input_offset == -0.5
    assert loaded.classes == ["0", "1", "2", "3", "4"]
    for a, b in zip(original.layers, loaded.layers):
        assert a.kind == b.kind and a.activation == b.activation
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_missing_file_raises_file_error_naming_it(tmp_path):
    with pytest.raises(ModelFileError, match="nowhere.h5: no such file"):
        Runtime(tmp_path / "nowhere.h5")


def test_not_hdf5_raises_file_error(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("this is not a model\n" * 100)
    with pytest.raises(ModelFileError, match="notes.h5: not a readable HDF5 file"):
        load_model(path)


def test_truncated_file_raises_file_error(model_file):
    data = model_file.read_bytes()
    model_file.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(model_file)


def test_wrong_magic_raises_format_error(model_file):
    edit(model_file, lambda f: f.attrs.__setitem__("format", "keras"))
    with pytest.raises(ModelFormatError, match="format attribute is 'keras'"):
        load_model(model_file)


def test_newer_format_version_raises_version_error(model_file):
    edit(model_file, lambda f: f.attrs.__setitem__("format_version", 99))
    with pytest.raises(ModelVersionError, match="format_version 99 is newer"):
        load_model(model_file)


def test_missing_dataset_is_named(model_file):
    edit(model_file, lambda f: f["layers/1"].__delitem__("bias"))
    with pytest.raises(ModelFormatError, match=r"layers/1 \(dense\): datasets missing \['bias'\]"):
        load_model(model_file)


def test_extra_dataset_is_named(model_file):
    edit(model_file, lambda f: f["layers/0"].create_dataset("scale", data=np.ones(3)))
    with pytest.raises(ModelFormatError, match=r"layers/0 \(dense\): .*unexpected \['scale'\]"):
        load_model(model_file)


def test_wrong_dtype_is_named(model_file):
    def to_float64(f):
        weight = f["layers/0/weight"][()]
        del f["layers/0/weight"]
        f["layers/0"].create_dataset("weight", data=weight.astype(np.float64))
    edit(model_file, to_float64)
    with pytest.raises(ModelFormatError, match="layers/0 .*weight: dtype float64, expected float32"):
        load_model(model_file)


def test_bias_not_matching_weight_rows_is_named(model_file):
    def short_bias(f):
        del f["layers/0/bias"]
        f["layers/0"].create_dataset("bias", data=np.zeros(19, np.float32))
    edit(model_file, short_bias)
    with pytest.raises(ModelFormatError, match=r"layers/0 \(dense\): bias: shape \(19,\), expected \(20,\)"):
        load_model(model_file)


def test_layer_not_matching_previous_layer_is_named(model_file):
    def wider(f):
        del f["layers/1/weight"]
        f["layers/1"].create_dataset("weight", data=np.zeros((5, 21), np.float32))
    edit(model_file, wider)
    with pytest.raises(ModelFormatError, match="layers/1 .*expects float of 21 values but gets float 20"):
        load_model(model_file)


def test_input_shape_not_matching_first_layer_is_named(model_file):
    edit(model_file, lambda f: f.attrs.__setitem__("input_shape", np.array([3, 5])))
    with pytest.raises(ModelFormatError, match="layers/0 .*expects float of 12 values but gets float 3x5"):
        load_model(model_file)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_are_named(model_file, bad):
    def poison(f):
        f["layers/1/weight"][2, 3] = bad
    edit(model_file, poison)
    with pytest.raises(ModelFormatError, match="layers/1 .*weight: contains NaN or infinite"):
        load_model(model_file)


def test_absurd_dataset_size_is_refused_before_reading(model_file):
    def huge(f):
        del f["layers/0/weight"]
        f["layers/0"].create_dataset("weight", shape=(1 << 20, 1 << 20), dtype=np.float32)
    edit(model_file, huge)
    with pytest.raises(ModelFormatError, match="weight: declares 4398046511104 bytes, over"):
        load_model(model_file)


def test_dataset_without_stored_data_is_refused(model_file):
    def hollow(f):
        del f["layers/1/bias"]
        f["layers/1"].create_dataset("bias", shape=(5,), dtype=np.float32)
    edit(model_file, hollow)
    with pytest.raises(ModelFormatError, match="bias: declares 20 bytes that are not stored"):
        load_model(model_file)


def test_absurd_input_shape_is_refused(model_file):
    edit(model_file, lambda f: f.attrs.__setitem__("input_shape", np.array([1 << 40])))
    with pytest.raises(ModelFormatError, match="exceeds"):
        load_model(model_file)


def test_class_names_must_match_outputs(model_file):
    edit(model_file, lambda f: f.attrs.__setitem__("classes", np.array(["a", "b"], dtype="S")))
    with pytest.raises(ModelFormatError, match="2 class names for 5 outputs"):
        load_model(model_file)


def test_unknown_layer_kind_lists_the_known_ones(model_file):
    edit(model_file, lambda f: f["layers/1"].attrs.__setitem__("kind", "lstm"))
    with pytest.raises(ModelFormatError, match="layers/1: unknown layer kind 'lstm'; supported: .*dense"):
        load_model(model_file)


def test_unknown_activation_is_named(model_file):
    edit(model_file, lambda f: f["layers/0"].attrs.__setitem__("activation", "gelu"))
    with pytest.raises(ModelFormatError, match="activation 'gelu' unknown"):
        load_model(model_file)


def test_missing_header_attribute_is_named(model_file):
    edit(model_file, lambda f: f.attrs.__delitem__("input_dtype"))
    with pytest.raises(ModelFormatError, match="missing attribute 'input_dtype'"):
        load_model(model_file)


def test_layer_groups_must_be_numbered_in_order(model_file):
    edit(model_file, lambda f: f["layers"].move("1", "7"))
    with pytest.raises(ModelFormatError, match="members must be named 0..n-1"):
        load_model(model_file)


def test_errors_are_the_builtins_users_catch(tmp_path):
    assert issubclass(ModelFileError, OSError)
    assert issubclass(ModelFormatError, ValueError)
    with pytest.raises(OSError):
        load_model(tmp_path / "missing.h5")
