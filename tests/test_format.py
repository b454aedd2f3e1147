import h5py
import numpy as np
import pytest

from edgebnn import (BinaryDense, ModelFileError, ModelFormatError, ModelVersionError, Runtime,
                     load_model, save_model)
from edgebnn.packed.format import upgrade
from conftest import edit_packed as edit, random_mlp, write_version_1


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.h5"
    save_model(random_mlp([12, 20, 5], input_shape=(3, 4), input_dtype="uint8",
                          scale=1 / 255, offset=-0.5), path)
    return path


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
    with pytest.raises(ModelFileError, match="notes.h5: not a packed model file"):
        load_model(path)


def test_truncated_file_raises_file_error(model_file):
    data = model_file.read_bytes()
    model_file.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load_model(model_file)


def test_wrong_magic_raises_format_error(model_file):
    edit(model_file, lambda f: f.attrs.__setitem__("format", np.bytes_(b"keras")))
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
    edit(model_file, lambda f: f["layers/1"].attrs.__setitem__("kind", np.bytes_(b"lstm")))
    with pytest.raises(ModelFormatError, match="layers/1: unknown layer kind 'lstm'; supported: .*dense"):
        load_model(model_file)


def test_unknown_activation_is_named(model_file):
    edit(model_file, lambda f: f["layers/0"].attrs.__setitem__("activation", np.bytes_(b"gelu")))
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


# the seal: integrity before parsing -------------------------------------------

def test_the_same_model_gives_the_same_bytes(tmp_path):
    model = random_mlp([12, 20, 5])
    save_model(model, tmp_path / "a.h5")
    save_model(load_model(tmp_path / "a.h5"), tmp_path / "b.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_a_flipped_bit_is_refused_as_corrupted_before_libhdf5_parses(model_file, monkeypatch):
    data = bytearray(model_file.read_bytes())
    data[-100] ^= 0x01                      # inside the last weights
    model_file.write_bytes(bytes(data))

    def no_parsing(*args, **kwargs):
        raise AssertionError("libhdf5 was asked to parse a corrupted file")
    monkeypatch.setattr(h5py, "File", no_parsing)
    with pytest.raises(ModelFileError, match=f"{model_file.name}: corrupted: its bytes do not "
                                             "match the SHA-256"):
        load_model(model_file)


@pytest.mark.parametrize("change, message", [
    (lambda data: data[:-1], "truncated: the seal covers"),
    (lambda data: data + b"\0", "has bytes added at its end"),
    (lambda data: data[:100] + b"\1" + data[101:], "corrupted: its seal's header is damaged"),
    (lambda data: data[:20] + bytes([data[20] ^ 4]) + data[21:], "truncated|added"),
    (lambda data: b"\x89EDGEBNN" + data[8:], "not a packed model file"),
])
def test_a_damaged_seal_is_refused(model_file, change, message):
    model_file.write_bytes(change(model_file.read_bytes()))
    with pytest.raises(ModelFileError, match=message):
        load_model(model_file)


def test_a_newer_seal_raises_version_error(model_file):
    data = bytearray(model_file.read_bytes())
    data[8] = 3
    model_file.write_bytes(bytes(data))
    with pytest.raises(ModelVersionError, match="format version 3 is newer"):
        load_model(model_file)


def test_a_version_1_file_is_refused_with_the_command_that_rewrites_it(tmp_path):
    model = random_mlp([12, 20, 5])
    write_version_1(tmp_path / "old.h5", model)
    with pytest.raises(ModelFormatError, match=r"format version 1 \(rewrite it once with: "
                                               r"python -m edgebnn.converters OLD.h5 NEW.h5\)"):
        load_model(tmp_path / "old.h5")
    upgrade(tmp_path / "old.h5", tmp_path / "new.h5")
    x = np.linspace(-1, 1, 12, dtype=np.float32)
    np.testing.assert_array_equal(Runtime(tmp_path / "new.h5").classify(x).logits,
                                  Runtime(model).classify(x).logits)


# links and storage outside the file ----------------------------------------------

def test_soft_links_are_refused_not_followed(model_file):
    def soft(f):
        f["layers/1"].move("bias", "real_bias")
        f["layers/1/bias"] = h5py.SoftLink("/layers/1/real_bias")
    edit(model_file, soft)
    with pytest.raises(ModelFormatError, match="layers/1 .*unexpected|SoftLink: links are refused"):
        load_model(model_file)


def test_external_links_are_refused_not_followed(model_file, tmp_path):
    other = tmp_path / "other.h5"
    save_model(random_mlp([12, 20, 5], seed=9), other)

    def external(f):
        del f["layers"]
        f["layers"] = h5py.ExternalLink(str(other), "/layers")
    edit(model_file, external)
    with pytest.raises(ModelFormatError, match="layers: is a ExternalLink: links are refused"):
        load_model(model_file)


def test_hard_links_aliasing_another_object_are_refused(model_file):
    def alias(f):
        del f["layers/1/bias"]
        f["layers/1/bias"] = f["layers/0/bias"]
    edit(model_file, alias)
    with pytest.raises(ModelFormatError, match="is reached by 2 links"):
        load_model(model_file)


def test_a_dataset_stored_in_another_file_is_refused(model_file, tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.zeros(5, np.float32).tobytes())

    def external(f):
        del f["layers/1/bias"]
        f["layers/1"].create_dataset("bias", shape=(5,), dtype=np.float32,
                                     external=[(str(raw), 0, 20)])
    edit(model_file, external)
    with pytest.raises(ModelFormatError, match="bias: must be stored contiguous in this file"):
        load_model(model_file)


# values that cannot work ------------------------------------------------------------

def replace(name, value):
    def change(f):
        del f[name]
        f.create_dataset(name, data=value)
    return change


@pytest.mark.parametrize("change, message", [
    (replace("layers/1/bias", h5py.Empty("f4")), r"layers/1 \(dense\)/bias: is empty"),
    (replace("layers/1/weight", np.zeros((0, 20), np.float32)), r"weight: shape \(0, 20\) holds no"),
    (replace("layers/1/weight", np.full((5, 20), 3e38, np.float32)),
     r"layers/1 \(dense\): outputs can reach .* beyond float32"),
    (lambda f: f.attrs.__setitem__("input_dtype", "uint8"), "input_dtype' has the type object"),
    (lambda f: f.attrs.__setitem__("input_scale", h5py.Empty("f8")), "input_scale' is empty"),
])
def test_values_that_cannot_work_are_refused_at_load(model_file, change, message):
    edit(model_file, change)
    with pytest.raises(ModelFormatError, match=message):
        load_model(model_file)


def test_a_huge_attribute_is_refused_before_it_is_read(model_file):
    def huge(f):
        """A new layer group (attributes over 64 KiB need the newer object layout)."""
        f["layers"].move("1", "old")
        group = f["layers"].create_group("1")
        for name in ("weight", "bias"):
            group.create_dataset(name, data=f["layers/old"][name][()])
        group.attrs["kind"] = np.bytes_(b"dense")
        group.attrs["activation"] = np.zeros(1 << 21, "S1")
        del f["layers/old"]
    edit(model_file, huge, libver="latest")
    with pytest.raises(ModelFormatError, match="'activation' of shape .* over the 1048576-byte"):
        load_model(model_file)


def test_a_zero_row_binary_weight_is_refused():
    with pytest.raises(ModelFormatError, match=r"weight: shape \(0, 2\) holds no values"):
        BinaryDense(np.zeros((0, 2), np.uint8))


def test_whatever_h5py_raises_becomes_a_format_error_naming_the_place(model_file, monkeypatch):
    def broken(self, key):
        raise RuntimeError("B-tree node is damaged")
    monkeypatch.setattr(h5py.Dataset, "__getitem__", broken)
    with pytest.raises(ModelFormatError, match=r"model.h5: layers/0 \(dense\)/weight: unreadable "
                                               r"\(RuntimeError: B-tree node is damaged\)"):
        load_model(model_file)


def test_a_refusal_names_a_few_of_many_unexpected_members(model_file):
    def crowd(f):
        for i in range(500):
            f.attrs[f"extra{i:03d}"] = i
    edit(model_file, crowd)
    with pytest.raises(ModelFormatError) as refused:
        load_model(model_file)
    message = str(refused.value)
    assert "unexpected attributes ['extra000', 'extra001'," in message
    assert "... 490 more]" in message and len(message) < 500
