"""edgebnn.converters.keras against Keras itself, through outputs Keras saved beside the fixtures.

The fixtures in tests/fixtures/keras were built by examples/make_keras_fixtures.py
with tf-keras 2.21 + larq 0.14 (and Keras 3.15 for float_mlp_keras3); these
tests need only h5py, as the converter does.
"""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from edgebnn.converters.keras import convert
from edgebnn import BinaryDense, Model, Runtime, load_model, save_model

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "keras")

KINDS = {
    "float_mlp_tf_keras": ["dense", "dense", "dense"],      # its batch norm folded
    "float_mlp_keras3": ["dense", "dense", "dense"],
    "binary_mlp": ["binary_dense", "binary_dense", "binary_dense", "batch_norm"],
    "binary_conv": ["binary_conv2d", "binary_conv2d", "binary_dense", "batch_norm"],
}


def fixture(name):
    """The converted model and what Keras saved: x, scale, offset, outputs (and dots)."""
    saved = dict(np.load(os.path.join(FIXTURES, name + ".npz")))
    model = convert(os.path.join(FIXTURES, name + ".h5"), "uint8", float(saved["scale"]),
                    float(saved["offset"]))
    return model, saved


def dots_up_to_last_binary(model, x):
    """The integer outputs of the model's last binary_dense, run through the runtime."""
    last = max(i for i, layer in enumerate(model.layers) if isinstance(layer, BinaryDense))
    head = Model([layer.copy() for layer in model.layers[:last + 1]], model.input_shape,
                 model.input_dtype.name, model.input_scale, model.input_offset)
    return head.forward_batch(head.check_batch(x))


@pytest.mark.parametrize("name", ["float_mlp_tf_keras", "float_mlp_keras3"])
def test_float_mlps_give_the_keras_scores(name, tmp_path):
    model, saved = fixture(name)
    assert [layer.kind for layer in model.layers] == KINDS[name]
    assert model.layers[-1].activation == "softmax"
    save_model(model, tmp_path / "m.h5")
    results = Runtime(tmp_path / "m.h5").classify_batch(saved["x"])
    scores = np.array([r.scores for r in results])
    np.testing.assert_allclose(scores, saved["outputs"], rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal([r.label for r in results], saved["outputs"].argmax(axis=1))


@pytest.mark.parametrize("name", ["binary_mlp", "binary_conv"])
def test_binary_nets_give_the_keras_labels_and_integer_dots(name, tmp_path):
    model, saved = fixture(name)
    assert [layer.kind for layer in model.layers] == KINDS[name]
    save_model(model, tmp_path / "m.h5")
    model = load_model(tmp_path / "m.h5")
    x = saved["x"]
    results = Runtime(model).classify_batch(x)
    np.testing.assert_array_equal([r.label for r in results], saved["outputs"].argmax(axis=1))
    np.testing.assert_allclose([r.scores for r in results], saved["outputs"], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(dots_up_to_last_binary(model, x), saved["dots"])
    for sample, result in zip(x[:10], results):           # one at a time: the same
        assert Runtime(model).classify(sample).label == result.label


def test_the_conv_net_keeps_the_keras_input_shape_and_fuses_pool_and_padding():
    model, _ = fixture("binary_conv")
    assert model.input_shape == (12, 11, 3)
    first, second = model.layers[:2]
    assert (first.pool, first.padding) == ((2, 2), (0, 0))
    assert (second.pool, second.padding) == ((2, 2), (1, 1))


def test_a_first_layer_may_binarize_the_preprocessed_input(tmp_path):
    path = edited(tmp_path, "binary_mlp", set_in("QuantDense", "input_quantizer", "ste_sign"))
    model = convert(path, "uint8", 1 / 255, -0.5)
    assert [layer.kind for layer in model.layers] == ["sign"] + KINDS["binary_mlp"]
    x = np.load(os.path.join(FIXTURES, "binary_mlp.npz"))["x"][:50]
    with h5py.File(path, "r") as f:
        kernel = f["model_weights/quant_dense/quant_dense/kernel:0"][()]
    x_real = x.reshape(len(x), -1).astype(np.float32) * np.float32(1 / 255) + np.float32(-0.5)
    expected = np.where(x_real >= 0, 1, -1) @ np.where(kernel >= 0, 1, -1)
    sign, first = model.layers[:2]                        # first's dots, not its signs
    head = Model([sign.copy(), BinaryDense(first.weight)], model.input_shape, "uint8", 1 / 255, -0.5)
    np.testing.assert_array_equal(head.forward_batch(head.check_batch(x)), expected)


def test_a_plain_conv2d_with_plus_minus_one_kernel_is_a_binary_convolution(tmp_path):
    def plain(layers):
        layers[1]["class_name"] = "Conv2D"
        for key in ("kernel_quantizer", "input_quantizer", "pad_values"):
            layers[1]["config"].pop(key)

    def signs_only(f):
        kernel = f["model_weights/quant_conv2d/quant_conv2d/kernel:0"]
        kernel[...] = np.where(kernel[()] >= 0, 1.0, -1.0)
    path = edited(tmp_path, "binary_conv", plain, signs_only)
    original, saved = fixture("binary_conv")
    model = convert(path, "uint8", float(saved["scale"]), float(saved["offset"]))
    for mine, theirs in zip(model.layers, original.layers):
        for a, b in zip(mine.fields()[1].values(), theirs.fields()[1].values()):
            np.testing.assert_array_equal(a, b)


def test_classes_are_named():
    model = convert(os.path.join(FIXTURES, "float_mlp_keras3.h5"), classes="abcd")
    assert model.classes == list("abcd")


def test_conversion_imports_neither_tensorflow_nor_torch():
    code = ("import sys; from edgebnn.converters.keras import convert; "
            f"convert({os.path.join(FIXTURES, 'binary_conv.h5')!r}, 'uint8'); "
            "assert not {'tensorflow', 'torch', 'keras', 'onnx'} & set(sys.modules), sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=os.path.dirname(os.path.dirname(__file__)))


# what it refuses ------------------------------------------------------------

def edited(tmp_path, name, edit_layers=None, edit_file=None):
    """A copy of a fixture with its layer configs (list of dicts) and/or file edited."""
    path = tmp_path / (name + ".h5")
    shutil.copy(os.path.join(FIXTURES, name + ".h5"), path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        if edit_layers:
            edit_layers(config["config"]["layers"])
            f.attrs["model_config"] = json.dumps(config)
        if edit_file:
            edit_file(f)
    return path


def layer(layers, class_name, index=0):
    return [entry for entry in layers if entry["class_name"] == class_name][index]["config"]


def set_in(class_name, key, value, index=0):
    return lambda layers: layer(layers, class_name, index).__setitem__(key, value)


REFUSED = {
    # case: (fixture, edit of the layer configs, words the message must contain)
    "unknown layer": ("float_mlp_keras3", lambda layers: layers[2].__setitem__("class_name", "LSTM"),
                      "layer 'dense' (LSTM) is not supported"),
    "tanh": ("float_mlp_keras3", set_in("Dense", "activation", "tanh"),
             "layer 'dense' (Dense) has activation 'tanh'"),
    "channels first": ("binary_conv", set_in("QuantConv2D", "data_format", "channels_first"),
                       "(QuantConv2D) uses data_format 'channels_first'"),
    "strided same": ("binary_conv", lambda layers: layer(layers, "QuantConv2D", 1).update(
        strides=[2, 2]), "(QuantConv2D) has padding 'same' with kernel (3, 3) and strides (2, 2)"),
    "pad values": ("binary_conv", set_in("QuantConv2D", "pad_values", 1.0, index=1),
                   "pads with 1.0"),
    "kernel quantizer": ("binary_mlp", set_in("QuantDense", "kernel_quantizer",
                                              {"class_name": "MagnitudeAwareSign"}),
                         "(QuantDense) has kernel_quantizer MagnitudeAwareSign"),
    "input quantizer": ("binary_mlp", set_in("QuantDense", "input_quantizer", "ste_tern", index=1),
                        "(QuantDense) has input_quantizer ste_tern"),
    "binary activation": ("binary_mlp", set_in("QuantDense", "activation", "relu"),
                          "binary layers support only 'linear'"),
    "pool stride": ("binary_conv", set_in("MaxPooling2D", "strides", [1, 1]),
                    "(MaxPooling2D) has pool_size (2, 2), strides (1, 1)"),
    "pool after norm": ("binary_conv", lambda layers: layers.insert(3, layers.pop(2)),
                        "(MaxPooling2D) after the batch norm or sign cannot be fused"),
    "float conv then binary conv": ("binary_conv", lambda layers: layers[1].__setitem__(
        "class_name", "Conv2D") or layers[1]["config"].pop("kernel_quantizer"),
        "(BatchNormalization) gets a (5, 4, 8) tensor"),     # a norm after the pool stays float
    "relu after flatten": ("float_mlp_tf_keras", lambda layers: layers.insert(
        [entry["class_name"] for entry in layers].index("Flatten") + 1,
        {"class_name": "Activation", "config": {"name": "act", "activation": "relu"}}),
        "layer 'act' (Activation) follows no float dense layer"),
    "sign before conv": ("binary_conv", set_in("QuantConv2D", "input_quantizer", "ste_sign"),
                         "binarizes a float feature map"),
    "binary after float": ("binary_mlp", lambda layers: layer(layers, "QuantDense", 1).__setitem__(
        "input_quantizer", None), "gets float values; binary layers take signs"),
    "functional": ("float_mlp_keras3", None, "only a single chain converts"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsupported_layers_are_named_in_a_value_error(case, tmp_path):
    name, edit, message = REFUSED[case]
    if case == "functional":
        def edit_file(f):
            config = json.loads(f.attrs["model_config"])
            config["class_name"] = "Functional"
            f.attrs["model_config"] = json.dumps(config)
        path = edited(tmp_path, name, edit_file=edit_file)
    else:
        path = edited(tmp_path, name, edit)
    with pytest.raises(ValueError, match="supported") as error:
        convert(path, "uint8")
    assert message in str(error.value)


def test_first_padded_conv_with_an_offset_is_refused(tmp_path):
    path = edited(tmp_path, "binary_conv", set_in("QuantConv2D", "padding", "same"))
    with pytest.raises(ValueError, match="input_offset"):
        convert(path, "uint8", input_offset=-0.5)


def test_binary_first_layer_needs_uint8_input():
    with pytest.raises(ValueError, match="input_dtype='uint8'"):
        convert(os.path.join(FIXTURES, "binary_mlp.h5"), input_dtype="float32")


# broken files -----------------------------------------------------------------

def test_a_missing_file_is_named():
    with pytest.raises(FileNotFoundError, match="nothere.h5: no such file"):
        convert("nothere.h5")


def test_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_text("this is not HDF5")
    with pytest.raises(ValueError, match="junk.h5: not a readable HDF5 file"):
        convert(path)


def test_a_truncated_file(tmp_path):
    path = tmp_path / "cut.h5"
    with open(os.path.join(FIXTURES, "binary_mlp.h5"), "rb") as f:
        path.write_bytes(f.read()[:30000])
    with pytest.raises(ValueError, match="cut.h5: not a readable HDF5 file .*truncated"):
        convert(path)


def test_an_hdf5_file_without_model_config(tmp_path):
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kernel", data=np.zeros(3))
    with pytest.raises(ValueError, match="no 'model_config' attribute: not a whole Keras model"):
        convert(path)


def test_a_model_config_that_is_not_json(tmp_path):
    path = edited(tmp_path, "float_mlp_keras3",
                  edit_file=lambda f: f.attrs.__setitem__("model_config", "{not json"))
    with pytest.raises(ValueError, match="model_config is not valid JSON"):
        convert(path)


def test_missing_weights_are_named(tmp_path):
    path = edited(tmp_path, "binary_mlp",
                  edit_file=lambda f: f["model_weights/batch_normalization_1"].attrs.__setitem__(
                      "weight_names", [b"batch_normalization_1/gamma:0"]))
    with pytest.raises(ValueError, match="weight 'moving_mean' missing from "
                                         "model_weights/batch_normalization_1"):
        convert(path)


def test_a_listed_weight_that_is_absent(tmp_path):
    def drop(f):
        del f["model_weights/quant_dense/quant_dense/kernel:0"]
    path = edited(tmp_path, "binary_mlp", edit_file=drop)
    with pytest.raises(ValueError, match="weight model_weights/quant_dense/quant_dense/kernel:0 "
                                         "is listed but missing"):
        convert(path)


def test_no_weights_group(tmp_path):
    path = edited(tmp_path, "float_mlp_keras3", edit_file=lambda f: f.__delitem__("model_weights"))
    with pytest.raises(ValueError, match="no 'model_weights' group"):
        convert(path)


def test_a_kernel_of_the_wrong_shape(tmp_path):
    path = edited(tmp_path, "float_mlp_keras3", set_in("Dense", "units", 17))
    with pytest.raises(ValueError, match=r"has a kernel of shape \(63, 16\) for 17 units"):
        convert(path)


def test_a_keras_3_archive_is_read_as_keras():
    """``model.save("net.keras")``: a zip of config.json and model.weights.h5 (Keras 3.15.1)."""
    saved = np.load(os.path.join(FIXTURES, "float_mlp_keras_archive.npz"))
    model = convert(os.path.join(FIXTURES, "float_mlp.keras"), "uint8", float(saved["scale"]),
                    float(saved["offset"]))
    assert [layer.kind for layer in model.layers] == ["dense", "batch_norm", "dense"]
    scores = np.array([r.scores for r in Runtime(model).classify_batch(saved["x"])])
    np.testing.assert_allclose(scores, saved["outputs"], atol=1e-5)


def test_the_input_dtype_follows_the_keras_model():
    model = convert(os.path.join(FIXTURES, "float_mlp.keras"))
    assert (model.input_dtype, model.input_scale, model.input_offset) == (np.float32, 1.0, 0.0)


def _point_outside(f, place, how, tmp_path):
    """Replace the dataset at ``place`` by one whose data (or link) lies in another file."""
    shape, dtype = f[place].shape, f[place].dtype
    secret = np.full(shape, 1234.5, dtype)
    del f[place]
    if how == "external storage":
        raw = tmp_path / "secret.bin"
        raw.write_bytes(secret.tobytes())
        f.create_dataset(place, shape, dtype, external=[(str(raw), 0, secret.nbytes)])
    elif how in ("external link", "virtual dataset"):
        other = tmp_path / "secret.h5"
        with h5py.File(other, "w") as g:
            g["data"] = secret
        if how == "external link":
            f[place] = h5py.ExternalLink(str(other), "/data")
        else:
            layout = h5py.VirtualLayout(shape, dtype)
            layout[...] = h5py.VirtualSource(str(other), "data", shape)
            f.create_virtual_dataset(place, layout)
    else:                                            # a soft link to a dataset of the file
        f["elsewhere"] = secret
        f[place] = h5py.SoftLink("/elsewhere")


OUTSIDE = ["external storage", "external link", "virtual dataset", "soft link"]
KEPT_OUT = r"(keeps its data outside the file|links are refused, not followed)"


@pytest.mark.parametrize("how", OUTSIDE)
def test_a_legacy_file_whose_weights_lie_elsewhere_is_refused(tmp_path, how):
    def point(f):
        member = f["model_weights/dense"]
        name = member.attrs["weight_names"][0]
        _point_outside(f, f"model_weights/dense/{name.decode() if isinstance(name, bytes) else name}",
                       how, tmp_path)
    path = edited(tmp_path, "float_mlp_keras3", edit_file=point)
    with pytest.raises(ValueError, match=KEPT_OUT):
        convert(path)


@pytest.mark.parametrize("how", OUTSIDE)
def test_a_keras_archive_whose_weights_lie_elsewhere_is_refused(tmp_path, how):
    import io
    import zipfile
    with zipfile.ZipFile(os.path.join(FIXTURES, "float_mlp.keras")) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = io.BytesIO(members["model.weights.h5"])
    with h5py.File(weights, "r+") as f:
        _point_outside(f, "layers/dense/vars/0", how, tmp_path)
    members["model.weights.h5"] = weights.getvalue()
    path = tmp_path / "net.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match=KEPT_OUT):
        convert(path)
    # and from the command line: status 2, the place named, nothing written
    out = tmp_path / "out.h5"
    done = subprocess.run([sys.executable, "-m", "edgebnn.converters", str(path), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "layers/dense/vars/0" in done.stderr, done.stderr
    assert not out.exists()


def rewritten_archive(path, fixture, edit_layers):
    """A copy at ``path`` of the ``.keras`` fixture with its config's layer list edited."""
    import zipfile
    with zipfile.ZipFile(os.path.join(FIXTURES, fixture)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit_layers(config["config"]["layers"])
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def assert_keras_scores(model, stem):
    """The runtime's probabilities on the samples saved with a fixture are Keras's."""
    saved = np.load(os.path.join(FIXTURES, f"{stem}_keras_archive.npz"))
    scores = np.array([r.scores for r in Runtime(model).classify_batch(saved["x"])])
    np.testing.assert_allclose(scores, saved["outputs"], atol=1e-5)


def saved_preprocessing(stem):
    saved = np.load(os.path.join(FIXTURES, f"{stem}_keras_archive.npz"))
    return "uint8", float(saved["scale"]), float(saved["offset"])


@pytest.mark.parametrize("names", [("hidden", "scores"), ("dense_1", "dense"), ("dense_7", "dense_1")])
def test_a_keras_archive_is_read_by_position_whatever_the_layers_are_named(tmp_path, names):
    """Keras keys a .keras archive's weights by class and position (layers/dense,
    layers/dense_1), not by layer name: a model whose names differ (set by the user, or
    numbered by an earlier model of the same process) converts to the same answers."""
    def rename(layers):
        for layer, name in zip([entry for entry in layers if entry["class_name"] == "Dense"],
                               names):
            layer["config"]["name"] = name
    path = rewritten_archive(tmp_path / "renamed.keras", "float_mlp.keras", rename)
    assert_keras_scores(convert(path, *saved_preprocessing("float_mlp")), "float_mlp")


def test_a_functional_chain_with_batch_norm_before_its_relu_gives_the_keras_scores():
    """Input -> Flatten -> Dense -> BatchNormalization -> ReLU -> Dense -> Softmax as a
    Functional model (Keras 3.15.1): the batch norm folds into the Dense before it."""
    model = convert(os.path.join(FIXTURES, "functional_chain.keras"),
                    *saved_preprocessing("functional_chain"))
    assert [(layer.kind, layer.activation) for layer in model.layers] == \
        [("dense", "relu"), ("dense", "softmax")]
    assert_keras_scores(model, "functional_chain")


def test_a_keras_2_functional_chain_converts_as_its_sequential_twin(tmp_path):
    """tf-keras writes a Functional model's links as nested [name, node, tensor, kwargs]
    lists: the same layers as a chain give the same model as the Sequential fixture."""
    def functional(f):
        config = json.loads(f.attrs["model_config"])
        layers = config["config"]["layers"]
        for before, entry in zip([None] + layers, layers):
            entry["name"] = entry["config"]["name"]
            entry["inbound_nodes"] = [] if before is None else [[[before["name"], 0, 0, {}]]]
        config["class_name"] = "Functional"
        config["config"].update(input_layers=[[layers[0]["name"], 0, 0]],
                                output_layers=[[layers[-1]["name"], 0, 0]])
        f.attrs["model_config"] = json.dumps(config)
    chain = convert(edited(tmp_path, "float_mlp_tf_keras", edit_file=functional), "uint8")
    twin = convert(os.path.join(FIXTURES, "float_mlp_tf_keras.h5"), "uint8")
    assert [layer.kind for layer in chain.layers] == [layer.kind for layer in twin.layers]
    for ours, theirs in zip(chain.layers, twin.layers):
        np.testing.assert_array_equal(ours.weight, theirs.weight)


def test_a_keras_float_cnn_gives_the_keras_scores():
    """Conv2D + ReLU -> MaxPooling2D -> Conv2D -> BatchNormalization -> ReLU ->
    AveragePooling2D -> Flatten -> Dense + softmax, as Keras 3.15.1 saved it."""
    model = convert(os.path.join(FIXTURES, "float_cnn.keras"), *saved_preprocessing("float_cnn"))
    assert [layer.kind for layer in model.layers] == ["conv2d", "pool2d", "conv2d", "pool2d",
                                                      "dense"]
    assert [model.layers[1].mode, model.layers[3].mode] == ["max", "average"]
    assert model.layers[2].activation == "relu"       # the batch norm folded, then the ReLU
    assert_keras_scores(model, "float_cnn")


def branch(layers):
    """The last Dense also takes the Flatten's output: a merge, no longer one chain."""
    scores = next(layer for layer in layers if layer["name"] == "scores")
    flat = next(layer for layer in layers if layer["class_name"] == "Flatten")
    tensor = json.loads(json.dumps(scores["inbound_nodes"][0]["args"][0]))
    tensor["config"]["keras_history"][0] = flat["name"]
    scores["inbound_nodes"][0]["args"].append(tensor)


def capped_relu(layers):
    next(layer for layer in layers if layer["class_name"] == "ReLU")["config"]["max_value"] = 6.0


@pytest.mark.parametrize("edit, message", [
    (branch, "layer 'scores' takes 2 inputs"),
    (capped_relu, "has max_value=6.0; only a plain ReLU"),
    (lambda layers: layers.append(dict(layers[-1], name="extra")), "do not form one chain"),
])
def test_a_functional_model_that_is_not_a_plain_chain_is_refused(tmp_path, edit, message):
    path = rewritten_archive(tmp_path / "edited.keras", "functional_chain.keras", edit)
    with pytest.raises(ValueError, match="supported") as error:
        convert(path)
    assert message in str(error.value)


def test_an_archive_weight_of_the_wrong_shape_is_refused_never_converted(tmp_path):
    import io
    import zipfile
    with zipfile.ZipFile(os.path.join(FIXTURES, "float_mlp.keras")) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = io.BytesIO(members["model.weights.h5"])
    with h5py.File(weights, "r+") as f:          # the two Dense layers' weights swapped
        for i in ("0", "1"):
            first, second = f[f"layers/dense/vars/{i}"][()], f[f"layers/dense_1/vars/{i}"][()]
            del f[f"layers/dense/vars/{i}"], f[f"layers/dense_1/vars/{i}"]
            f[f"layers/dense/vars/{i}"], f[f"layers/dense_1/vars/{i}"] = second, first
    members["model.weights.h5"] = weights.getvalue()
    path = tmp_path / "swapped.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="shape"):
        convert(path)
