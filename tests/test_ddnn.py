"""DDNN: bits input, aggregators, local/cloud exits, missing devices, the file."""
import math

import h5py
import numpy as np
import pytest

from edgebnn import (BatchNorm, BinaryConv2d, BinaryDense, Dense, InputError, Model,
                     ModelFormatError, Runtime, Sign, load_model, save_model)
from edgebnn.tiers import aggregate
from edgebnn.bitpack import pack_signs, packed_bytes, unpack_signs
from edgebnn import DDNN, Device, load_ddnn, save_ddnn
from edgebnn.tiers.ddnn import NoDevicesError
from edgebnn.exits import normalized_entropy, softmax
from edgebnn.fold import fold_sign
from edgebnn.kernels import get_kernels
from edgebnn.layers import Signal
from conftest import assert_same_sums, edit_packed as edit

pytestmark = pytest.mark.usefixtures("backend")     # every test runs the kernels

CLASSES = ["a", "b", "c"]
VIEW = (8, 8)
CHANNELS = 5                       # not a multiple of 8: the maps carry padding bits
FEATURES = (3, 3, CHANNELS)


# builders -----------------------------------------------------------------

def _scores_head(rng, shape, flat=False):
    """binary dense on a packed map -> float batch norm: class scores (all 0 when ``flat``)."""
    weight = pack_signs(rng.standard_normal((len(CLASSES),) + shape)).reshape(len(CLASSES), -1)
    scale = rng.uniform(0.05, 0.3, len(CLASSES)) * (not flat)
    return [BinaryDense(weight), BatchNorm(scale, rng.standard_normal(len(CLASSES)) * 0.3 * (not flat))]


def random_device(seed, flat_scores=False):
    """uint8 8x8 view -> conv 3x3 (5 channels) + pool 2 -> [split] -> exit classifier."""
    rng = np.random.default_rng(seed)
    threshold, flip = fold_sign(rng.standard_normal(CHANNELS), rng.uniform(-200, 200, CHANNELS))
    conv = BinaryConv2d(pack_signs(rng.standard_normal((CHANNELS, 3, 3, 1))), threshold, flip,
                        pool=(2, 2))
    head = _scores_head(rng, FEATURES, flat_scores)
    return Device(Model([conv] + head, VIEW, "uint8", classes=CLASSES), split=1)


def random_cloud(kind, devices, seed=50, shape=None):
    """The cloud on the devices' merged maps (or on packed signs of ``shape``)."""
    rng = np.random.default_rng(seed)
    if kind == "average":
        size = math.prod(FEATURES)
        return Model([Dense(rng.standard_normal((len(CLASSES), size)), np.zeros(len(CLASSES)))],
                     FEATURES, "float32", classes=CLASSES)
    shape = shape or (FEATURES if kind == "max" else aggregate.concat_shape(FEATURES, devices))
    return Model(_scores_head(rng, shape), shape, "bits", classes=CLASSES)


def random_local(devices, seed=60):
    rng = np.random.default_rng(seed)
    size = devices * len(CLASSES)
    return Model([Dense(rng.standard_normal((len(CLASSES), size)), rng.standard_normal(3))],
                 (size,), "float32", classes=CLASSES)


EDGE_BITS = 12                     # the edge's map to the cloud: 12 signs, 2 bytes


def random_edge(kind, devices, seed=70):
    """The devices' merged maps -> [sign for average] -> binary dense 12 -> [split] -> scores."""
    rng = np.random.default_rng(seed)
    shape = aggregate.concat_shape(FEATURES, devices) if kind == "concat" else FEATURES
    first = [Sign()] if kind == "average" else []
    layout = (math.prod(shape),) if first else shape        # sign gives a flat vector
    weight = pack_signs(rng.standard_normal((EDGE_BITS,) + layout)).reshape(EDGE_BITS, -1)
    threshold, flip = fold_sign(rng.standard_normal(EDGE_BITS), rng.uniform(-3, 3, EDGE_BITS))
    model = Model(first + [BinaryDense(weight, threshold, flip)] + _scores_head(rng, (EDGE_BITS,)),
                  shape, "float32" if kind == "average" else "bits", classes=CLASSES)
    return Device(model, split=len(first) + 1)


def random_ddnn(devices=4, local="max", cloud="concat", threshold=0.5, seed=0, edge=False,
                edge_threshold=0.5):
    top = random_cloud("max", 1, shape=(EDGE_BITS,)) if edge else random_cloud(cloud, devices)
    return DDNN([random_device(seed + i) for i in range(devices)], top,
                random_local(devices) if local == "concat" else None, local, cloud, threshold,
                CLASSES, random_edge(cloud, devices) if edge else None, edge_threshold)


def views(n_devices, seed=7):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, VIEW, dtype=np.uint8) for _ in range(n_devices)]


def assert_same(a, b):
    assert (a.exit, a.label, a.name, a.bytes_sent) == (b.exit, b.label, b.name, b.bytes_sent)
    np.testing.assert_array_equal(a.logits, b.logits)


def answers_as_in_process(remote, ddnn, samples=6, thresholds=(0.0, 0.5, 1.0)):
    """Asserts that ``remote`` (a coordinator over served sections) answers every sample as
    ``ddnn`` does in process, every other sample with a device missing; returns the exits."""
    exits, devices = set(), len(ddnn.devices)
    for seed in range(samples):
        sample = views(devices, seed)
        if seed % 2:
            sample[seed % devices] = None
        for threshold in thresholds:
            expected = ddnn.classify(sample, threshold)
            assert_same(remote.classify(sample, threshold), expected)
            exits.add(expected.exit)
    return exits


# bits input ------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(13,), (16,), (3, 3, 5), (2, 4, 8)])
def test_bits_input_gives_the_plain_dot_products(shape):
    rng = np.random.default_rng(1)
    weight = pack_signs(rng.standard_normal((4,) + shape)).reshape(4, -1)
    model = Model([BinaryDense(weight)], shape, "bits", classes=list("wxyz"))
    assert model.sample_shape == (packed_bytes(shape),)
    signs = np.where(rng.standard_normal(shape) >= 0, 1, -1)
    sample = pack_signs(signs).reshape(-1)
    plain = unpack_signs(weight.reshape((4,) + shape[:-1] + (-1,)), shape[-1]).reshape(4, -1)
    result = Runtime(model).classify(sample)
    np.testing.assert_array_equal(result.logits, plain @ signs.reshape(-1))
    batch = Runtime(model).classify_batch(np.stack([sample, sample]))
    np.testing.assert_array_equal(batch[1].logits, result.logits)


def test_bits_input_steps_only_when_needed():
    """A float model has no extra step; packed input is copied only to reach whole words."""
    assert len(Model([Dense(np.zeros((2, 4)), np.zeros(2))], (4,))._steps) == 1
    whole = Model([BinaryDense(np.zeros((2, 8), np.uint8))], (64,), "bits")
    partial = Model([BinaryDense(np.zeros((2, 2), np.uint8))], (13,), "bits")
    assert len(whole._steps) == 1 and len(partial._steps) == 2


def test_bits_input_round_trips_through_a_file(tmp_path):
    model = random_cloud("max", 1)
    save_model(model, tmp_path / "bits.h5")
    loaded = load_model(tmp_path / "bits.h5")
    assert (loaded.input_kind, loaded.input_shape, loaded.input_dtype) == ("bits", FEATURES, np.uint8)
    with h5py.File(tmp_path / "bits.h5") as f:
        assert f.attrs["input_dtype"] == b"bits"
    sample = pack_signs(np.random.default_rng(2).standard_normal(FEATURES)).reshape(-1)
    np.testing.assert_array_equal(Runtime(loaded).classify(sample).logits,
                                  Runtime(model).classify(sample).logits)


def test_bits_input_refuses_bad_samples():
    model = Model([BinaryDense(np.zeros((2, 2), np.uint8))], (13,), "bits")
    runtime = Runtime(model)
    with pytest.raises(InputError, match="shape"):
        runtime.classify(np.zeros(3, np.uint8))
    with pytest.raises(InputError, match="dtype"):
        runtime.classify(np.zeros(2, np.float32))
    with pytest.raises(InputError, match="padding bits"):
        runtime.classify(np.array([0, 0x04], np.uint8))      # bit 14 of 13
    runtime.classify(np.array([0xFF, 0xF8], np.uint8))       # all 13 real bits set: fine


def test_bits_input_model_checks():
    with pytest.raises(ModelFormatError, match="binary first layer"):
        Model([Dense(np.zeros((2, 16)), np.zeros(2))], (16,), "bits")
    with pytest.raises(ModelFormatError, match="no preprocessing"):
        Model([BinaryDense(np.zeros((2, 2), np.uint8))], (16,), "bits", input_scale=0.5)
    conv = BinaryConv2d(np.zeros((2, 1, 1, 1), np.uint8), np.zeros(2, np.int32), np.zeros(2, np.uint8))
    with pytest.raises(ModelFormatError, match=r"\(H, W, C\)"):
        Model([conv, BinaryDense(np.zeros((2, 16), np.uint8))], (4, 4), "bits")
    with pytest.raises(ModelFormatError, match="unsupported"):
        Model([BinaryDense(np.zeros((2, 2), np.uint8))], (16,), "int7")


def test_bits_model_metadata_on_the_server():
    from edgebnn.net.endpoints import ModelEndpoint
    model = random_cloud("max", 1)
    endpoint = ModelEndpoint(Runtime(model), "cloud")
    metadata = endpoint.metadata
    assert metadata["inputs"][0]["shape"] == [-1, packed_bytes(FEATURES)]
    assert metadata["inputs"][0]["datatype"] == "UINT8"
    assert metadata["parameters"]["input_dtype"] == "bits"
    assert metadata["parameters"]["input_shape"] == list(FEATURES)
    sample = pack_signs(np.ones(FEATURES)).reshape(-1)
    outputs = endpoint.compute(endpoint.prepare({"input": sample[None]}))
    assert_same_sums(outputs["logits"][0], Runtime(model).classify(sample).logits)


# aggregators: hand-computed vectors ------------------------------------------

A = np.array([1.0, -2.0, 3.0], np.float32)
B = np.array([0.0, 5.0, -1.0], np.float32)
# 10 signs each: + - + - + - + - + +  and  - - - - + + + + - +
BITS_A = np.array([0xAA, 0xC0], np.uint8)
BITS_B = np.array([0x0F, 0x40], np.uint8)


def test_score_aggregators_by_hand():
    np.testing.assert_array_equal(aggregate.max_scores([A, None, B]), [1, 5, 3])
    np.testing.assert_array_equal(aggregate.average_scores([A, None, B]), [0.5, 1.5, 1])
    np.testing.assert_array_equal(aggregate.concat_scores([A, None, B]),
                                  [1, -2, 3, 0, 0, 0, 0, 5, -1])
    np.testing.assert_array_equal(aggregate.max_scores([None, B]), B)


def test_bit_aggregators_by_hand():
    np.testing.assert_array_equal(aggregate.max_bits([BITS_A, None, BITS_B]), [0xAF, 0xC0])
    np.testing.assert_array_equal(aggregate.average_bits([BITS_A, None, BITS_B], (10,)),
                                  [0, -1, 0, -1, 1, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(aggregate.concat_bits([BITS_A, None, BITS_B], (10,)),
                                  [0xAA, 0xC0, 0, 0, 0x0F, 0x40])
    assert aggregate.concat_shape((10,), 3) == (3, 10)
    assert aggregate.concat_shape((3, 3, 5), 4) == (12, 3, 5)


def test_max_of_signs_is_or_of_bytes():
    rng = np.random.default_rng(3)
    maps = [rng.standard_normal((3, 3, 5)) for _ in range(4)]
    packed = [pack_signs(m).reshape(-1) for m in maps]
    expected = pack_signs(np.max([np.where(m >= 0, 1, -1) for m in maps], axis=0)).reshape(-1)
    np.testing.assert_array_equal(aggregate.max_bits(packed), expected)


@pytest.mark.parametrize("kind", aggregate.KINDS)
def test_aggregating_nothing_is_an_error(kind):
    with pytest.raises(ValueError, match="no device"):
        aggregate.scores(kind, [None, None])
    with pytest.raises(ValueError, match="no device"):
        aggregate.feature_maps(kind, [None], (10,))


def test_entropy_check_values():
    assert round(normalized_entropy(softmax([2.0, 1.0, 0.0])), 6) == 0.757679
    assert normalized_entropy(np.full(7, 1 / 7)) == pytest.approx(1.0)


# the DDNN in one process -------------------------------------------------------

def expected_answer(ddnn, views_, threshold, edge_threshold=None):
    """The DDNN computed from its sections by hand: the oracle for classify."""
    outputs = [None if v is None else d.run(v) for d, v in zip(ddnn.devices, views_)]
    scores = [None if o is None else o.scores for o in outputs]
    merged = aggregate.scores(ddnn.local_aggregate, scores)
    if ddnn.local is not None:
        merged = Runtime(ddnn.local).classify(merged).logits
    if normalized_entropy(softmax(merged)) < threshold:
        return "local", merged
    maps = [None if o is None else o.features for o in outputs]
    merged = aggregate.feature_maps(ddnn.cloud_aggregate, maps, ddnn.feature_shape)
    if ddnn.edge is not None:
        edge = ddnn.edge.model
        logits, cut = edge.forward_split(edge.check_input(merged), ddnn.edge.split)
        if normalized_entropy(softmax(logits)) < edge_threshold:
            return "edge", logits.copy()
        merged = cut[:ddnn.edge.feature_bytes].copy()
    return "cloud", Runtime(ddnn.cloud).classify(merged).logits


def test_device_feature_map_is_the_first_layers_output():
    device = random_device(4)
    view = views(1)[0]
    conv = device.model.layers[0].copy()
    conv.bind(Signal("uint8", VIEW), get_kernels())
    expected = conv.runner()(view.reshape(-1))[:device.feature_bytes]
    output = device.run(view)
    np.testing.assert_array_equal(output.features, expected)
    np.testing.assert_array_equal(output.scores, Runtime(device.model).classify(view).logits)


@pytest.mark.parametrize("local", aggregate.KINDS)
@pytest.mark.parametrize("cloud", aggregate.KINDS)
def test_classify_matches_the_sections_by_hand(local, cloud):
    ddnn = random_ddnn(3, local, cloud)
    for seed in range(6):
        sample = views(3, seed)
        for threshold in (0.0, 0.6, 1.0):
            result = ddnn.classify(sample, threshold)
            tier, logits = expected_answer(ddnn, sample, threshold)
            assert result.exit == tier
            assert_same_sums(result.logits, logits)
            assert result.name == CLASSES[result.label]


def test_threshold_zero_never_exits_and_one_always_does():
    ddnn = random_ddnn(4)
    for seed in range(10):
        assert ddnn.classify(views(4, seed), threshold=0.0).exit == "cloud"
        assert ddnn.classify(views(4, seed), threshold=1.0).exit == "local"


def test_uniform_scores_go_up_even_at_threshold_one():
    devices = [random_device(i, flat_scores=True) for i in range(2)]
    ddnn = DDNN(devices, random_cloud("max", 2), None, "max", "max", 1.0, CLASSES)
    result = ddnn.classify(views(2))
    assert result.exit == "cloud"


def test_default_threshold_is_the_ddnns():
    ddnn = random_ddnn(3, threshold=0.0)
    assert ddnn.classify(views(3)).exit == "cloud"
    with pytest.raises(ValueError, match="within"):
        ddnn.classify(views(3), threshold=1.5)


def test_bytes_sent_per_device():
    ddnn = random_ddnn(4)
    sample = views(4)
    sample[2] = None
    local = ddnn.classify(sample, threshold=1.0)
    assert local.bytes_sent == [12, 12, 0, 12]          # 3 float32 scores
    cloud = ddnn.classify(sample, threshold=0.0)
    assert cloud.bytes_sent == [12 + 9, 12 + 9, 0, 12 + 9]    # + a 3x3x5 packed map
    assert Runtime(random_device(0).model).classify(views(1)[0]).bytes_sent is None


@pytest.mark.parametrize("local", aggregate.KINDS)
@pytest.mark.parametrize("cloud", aggregate.KINDS)
def test_any_subset_of_missing_devices_still_answers(local, cloud):
    ddnn = random_ddnn(4, local, cloud)
    full = views(4, seed=11)
    cases = [[i] for i in range(4)] + [[j for j in range(4) if j != i] for i in range(4)]
    for missing in cases:
        sample = [None if i in missing else v for i, v in enumerate(full)]
        for threshold in (0.0, 1.0):
            result = ddnn.classify(sample, threshold)
            tier, logits = expected_answer(ddnn, sample, threshold)
            assert result.exit == tier
            assert_same_sums(result.logits, logits)
            assert [n == 0 for n in result.bytes_sent] == [i in missing for i in range(4)]


def test_all_devices_missing_is_a_clear_error():
    ddnn = random_ddnn(3)
    with pytest.raises(NoDevicesError, match="all 3 devices are missing"):
        ddnn.classify([None, None, None])
    assert issubclass(NoDevicesError, InputError)


def test_views_must_match_the_devices():
    ddnn = random_ddnn(3)
    with pytest.raises(InputError, match="2 views for 3 devices"):
        ddnn.classify(views(2))
    sample = views(3)
    sample[1] = np.zeros((9, 9), np.uint8)
    with pytest.raises(InputError, match="device 1: input shape"):
        ddnn.classify(sample)


def test_backends_agree():
    ddnn = random_ddnn(4, "concat", "concat")
    c_or_numpy = ddnn.with_kernels(get_kernels("numpy"))
    for seed in range(5):
        sample = views(4, seed)
        np.testing.assert_array_equal(ddnn.classify(sample, 0.0).logits,
                                      c_or_numpy.classify(sample, 0.0).logits)


# construction checks --------------------------------------------------------------

def test_split_must_cut_at_packed_signs():
    model = random_device(0).model
    with pytest.raises(ModelFormatError, match="split 3"):
        Device(model, 3)
    with pytest.raises(ModelFormatError, match="packed signs"):
        Device(model, 2)


def test_sections_must_fit_each_other():
    devices = [random_device(i) for i in range(3)]
    with pytest.raises(ModelFormatError, match="cloud: takes bits"):
        DDNN(devices, random_cloud("max", 3), None, "max", "concat", 0.5, CLASSES)
    with pytest.raises(ModelFormatError, match="local: the local model exists"):
        DDNN(devices, random_cloud("max", 3), None, "concat", "max", 0.5, CLASSES)
    with pytest.raises(ModelFormatError, match="local_aggregate 'min' unknown"):
        DDNN(devices, random_cloud("max", 3), None, "min", "max", 0.5, CLASSES)
    with pytest.raises(ModelFormatError, match="devices/0: classes"):
        DDNN(devices, random_cloud("max", 3), None, "max", "max", 0.5, np.array([b"x", b"y", b"z"]))
    rng = np.random.default_rng(9)
    conv = devices[0].model.layers[0].copy()
    wider = Device(Model([conv] + _scores_head(rng, (4, 4, CHANNELS)), (10, 10), "uint8",
                         classes=CLASSES), 1)
    with pytest.raises(ModelFormatError, match=r"devices/2: feature map \(4, 4, 5\)"):
        DDNN(devices[:2] + [wider], random_cloud("max", 3), None, "max", "max", 0.5, CLASSES)
    with pytest.raises(ModelFormatError, match="local_threshold"):
        DDNN(devices, random_cloud("max", 3), None, "max", "max", 1.5, CLASSES)


# the file --------------------------------------------------------------------------

@pytest.fixture
def ddnn_file(tmp_path):
    path = tmp_path / "ddnn.h5"
    save_ddnn(random_ddnn(3, "concat", "concat", threshold=0.4), path)
    return path


@pytest.mark.parametrize("local", aggregate.KINDS)
@pytest.mark.parametrize("cloud", aggregate.KINDS)
def test_round_trip_gives_the_same_answers(tmp_path, local, cloud):
    ddnn = random_ddnn(3, local, cloud, threshold=0.3)
    save_ddnn(ddnn, tmp_path / "d.h5")
    loaded = load_ddnn(tmp_path / "d.h5")
    assert (loaded.local_aggregate, loaded.cloud_aggregate, loaded.local_threshold,
            loaded.classes) == (local, cloud, 0.3, CLASSES)
    assert [d.split for d in loaded.devices] == [1, 1, 1]
    for seed in range(4):
        for threshold in (0.0, 1.0):
            a, b = ddnn.classify(views(3, seed), threshold), loaded.classify(views(3, seed), threshold)
            assert (a.exit, a.label) == (b.exit, b.label)
            np.testing.assert_array_equal(a.logits, b.logits)


def test_the_file_has_the_documented_layout(ddnn_file):
    with h5py.File(ddnn_file) as f:
        assert f.attrs["format"] == b"edgebnn-packed" and f.attrs["system"] == b"ddnn"
        assert sorted(f) == ["cloud", "devices", "local"]
        assert sorted(f["devices"]) == ["0", "1", "2"]
        assert f["devices/1"].attrs["split"] == 1
        assert f["cloud"].attrs["input_dtype"] == b"bits"


BAD_FILES = [
    (lambda f: f["devices/1"].attrs.__delitem__("split"), r"devices/1: missing attribute 'split'"),
    (lambda f: f["devices/2"].attrs.__setitem__("split", 2), r"devices/2: .*packed signs"),
    (lambda f: f["devices/0"].attrs.__setitem__("split", 7), r"devices/0: split 7"),
    (lambda f: f["devices/0"].attrs.__setitem__("extra", 1), r"devices/0: unexpected attributes"),
    (lambda f: f["cloud"].attrs.__setitem__("input_shape", [3, 3, 5]), r"cloud: "),
    (lambda f: f["local"].attrs.__setitem__("classes", np.array([b"x", b"y", b"z"])), r"local: classes"),
    (lambda f: f.__delitem__("cloud"), r"/: expected the groups"),
    (lambda f: f.attrs.__setitem__("cloud_aggregate", np.bytes_(b"sum")), r"cloud_aggregate 'sum' unknown"),
    (lambda f: f.attrs.__setitem__("local_aggregate", np.bytes_(b"max")), r"/: expected the groups"),
    (lambda f: f.attrs.__setitem__("local_threshold", np.bytes_(b"high")), r"local_threshold"),
    (lambda f: f.attrs.__setitem__("system", np.bytes_(b"other")), r"system 'other'"),
    (lambda f: f["devices/1/layers/0"].attrs.__setitem__("kind", np.bytes_(b"magic")),
     r"devices/1/layers/0: unknown layer kind"),
    (lambda f: f["devices"].move("2", "5"), r"devices: members must be named"),
    (lambda f: f["devices/1"].attrs.__setitem__("input_shape", [4, 4]),
     r"devices/1: layers/1 \(binary_dense\)"),
    (lambda f: f["devices/0"].attrs.__setitem__("input_shape", [2, 2]), r"devices/0: .*kernel"),
]


@pytest.mark.parametrize("change, message", BAD_FILES)
def test_bad_files_name_the_group(ddnn_file, change, message):
    edit(ddnn_file, change)
    with pytest.raises(ModelFormatError, match=message) as error:
        load_ddnn(ddnn_file)
    assert str(ddnn_file) in str(error.value)


def test_a_single_model_file_is_not_a_ddnn(tmp_path):
    save_model(random_cloud("max", 1), tmp_path / "one.h5")
    with pytest.raises(ModelFormatError, match="not a DDNN"):
        load_ddnn(tmp_path / "one.h5")


def test_maps_are_fetched_only_when_the_sample_goes_up():
    ddnn = random_ddnn(3)
    outputs = ddnn.run_devices(views(3))
    scores = [o.scores for o in outputs]
    asked = []

    def fetch():
        asked.append(1)
        return [None, None, None]
    assert ddnn.decide(scores, 1.0, fetch).exit == "local" and not asked
    fallback = ddnn.decide(scores, 0.0, fetch)
    assert asked and fallback.exit == "local-fallback"
    assert fallback.bytes_sent == [12, 12, 12]
    np.testing.assert_array_equal(fallback.logits, ddnn.classify(views(3), 1.0).logits)


# the edge tier ---------------------------------------------------------------------

@pytest.mark.parametrize("cloud", aggregate.KINDS)
def test_edge_tier_exits_between_local_and_cloud(cloud):
    ddnn = random_ddnn(3, "max", cloud, edge=True)
    seen = set()
    for seed in range(6):
        sample = views(3, seed)
        sample[seed % 3] = None if seed % 2 else sample[seed % 3]
        for threshold, edge_threshold in ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (0.0, 0.9)):
            result = ddnn.classify(sample, threshold, edge_threshold)
            tier, logits = expected_answer(ddnn, sample, threshold, edge_threshold)
            assert result.exit == tier
            assert_same_sums(result.logits, logits)
            seen.add(tier)
            up = tier != "local"
            assert result.bytes_sent == [0 if v is None else 12 + up * ddnn.devices[0].feature_bytes
                                         for v in sample]
    assert seen == {"local", "edge", "cloud"}


def test_edge_must_fit_the_devices_and_the_cloud():
    good = random_ddnn(3, "max", "max", edge=True)
    with pytest.raises(ModelFormatError, match="edge: takes bits"):
        DDNN(good.devices, good.cloud, None, "max", "concat", 0.5, CLASSES, good.edge)
    with pytest.raises(ModelFormatError, match=r"cloud: takes bits \(3, 3, 5\)"):
        DDNN(good.devices, random_cloud("max", 3), None, "max", "max", 0.5, CLASSES, good.edge)
    with pytest.raises(ModelFormatError, match="edge_threshold 1.5"):
        DDNN(good.devices, good.cloud, None, "max", "max", 0.5, CLASSES, good.edge, 1.5)


def test_edge_round_trips_through_the_file(tmp_path):
    ddnn = random_ddnn(3, "concat", "concat", edge=True, edge_threshold=0.7)
    save_ddnn(ddnn, tmp_path / "edge.h5")
    loaded = load_ddnn(tmp_path / "edge.h5")
    assert (loaded.edge.split, loaded.edge_threshold) == (1, 0.7)
    for seed in range(4):
        for thresholds in ((0.0, 0.0), (0.0, 1.0)):
            a, b = ddnn.classify(views(3, seed), *thresholds), loaded.classify(views(3, seed), *thresholds)
            assert (a.exit, a.label) == (b.exit, b.label)
            np.testing.assert_array_equal(a.logits, b.logits)
    assert loaded.classify(views(3), 0.0).exit == ddnn.classify(views(3), 0.0, 0.7).exit
    edit(tmp_path / "edge.h5", lambda f: f.attrs.__delitem__("edge_threshold"))
    with pytest.raises(ModelFormatError, match="edge_threshold"):
        load_ddnn(tmp_path / "edge.h5")


def test_edge_backends_agree():
    ddnn = random_ddnn(3, "max", "concat", edge=True)
    twin = ddnn.with_kernels(get_kernels("numpy"))
    for seed in range(4):
        a, b = ddnn.classify(views(3, seed), 0.0, 0.0), twin.classify(views(3, seed), 0.0, 0.0)
        assert a.exit == b.exit == "cloud"
        np.testing.assert_array_equal(a.logits, b.logits)
