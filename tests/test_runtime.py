import numpy as np
import pytest

from edgebnn import Dense, InputError, InputTypeError, Model, Runtime, models, save_model
from conftest import assert_same_sums, random_mlp, reference_logits, run_threads

pytestmark = pytest.mark.usefixtures("backend")     # every test runs the kernels


@pytest.fixture
def uint8_runtime(tmp_path):
    path = tmp_path / "mlp.h5"
    save_model(random_mlp([784, 64, 32, 10], input_shape=(28, 28), input_dtype="uint8",
                          scale=1 / 255, offset=-0.1), path)
    return Runtime(path)


def random_images(n, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_classify_equals_plain_numpy_computation(uint8_runtime):
    for x in random_images(20):
        result = uint8_runtime.classify(x)
        expected = reference_logits(uint8_runtime.model, x)
        np.testing.assert_allclose(result.logits, expected, rtol=1e-4, atol=1e-5)
        p = np.exp(expected - expected.max())
        p /= p.sum()
        np.testing.assert_allclose(result.scores, p, rtol=1e-4, atol=1e-6)
        assert result.label == int(np.argmax(expected))
        assert result.name == str(result.label)
        assert result.confidence == result.scores[result.label]
        assert 0.0 <= result.entropy <= 1.0
        assert result.exit == "local"


def test_results_do_not_share_buffers(uint8_runtime):
    a, b = random_images(2)
    first = uint8_runtime.classify(a)
    kept = first.logits.copy()
    uint8_runtime.classify(b)
    np.testing.assert_array_equal(first.logits, kept)


@pytest.mark.parametrize("bad, error, message", [
    ([[0] * 28] * 28, InputTypeError, "must be a numpy.ndarray, got list"),
    (np.zeros((28, 27), np.uint8), InputError, r"input shape \(28, 27\), expected \(28, 28\)"),
    (np.zeros(784, np.uint8), InputError, r"input shape \(784,\)"),
    (np.zeros((28, 28), np.float32), InputError, "input dtype float32, expected uint8"),
    (np.zeros((28, 28), np.int64), InputError, "input dtype int64, expected uint8"),
])
def test_bad_input_raises_clear_error(uint8_runtime, bad, error, message):
    with pytest.raises(error, match=message):
        uint8_runtime.classify(bad)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_input_is_refused(bad):
    rt = Runtime(random_mlp([6, 4, 3]))
    x = np.ones(6, np.float32)
    x[2] = bad
    with pytest.raises(InputError, match="NaN or infinite"):
        rt.classify(x)


def test_huge_but_finite_input_is_accepted():
    rt = Runtime(random_mlp([6, 4, 3]))
    x = np.full(6, 1e30, np.float32)
    assert np.isfinite(rt.classify(x).entropy)


def test_input_that_overflows_the_scores_is_refused():
    rt = Runtime(Model([Dense(np.ones((3, 6)), np.zeros(3))], (6,)))
    x = np.full(6, 3e38, np.float32)
    with np.errstate(over="ignore"), pytest.raises(InputError, match="outputs are not finite"):
        rt.classify(x)
    with np.errstate(over="ignore"), pytest.raises(InputError, match="outputs are not finite"):
        rt.classify_batch(np.stack([np.zeros(6, np.float32), x]))


def test_float64_input_is_accepted_for_a_float_model():
    rt = Runtime(random_mlp([6, 4, 3]))
    x = np.linspace(-1, 1, 6)
    np.testing.assert_allclose(rt.classify(x).logits, rt.classify(x.astype(np.float32)).logits)


def test_batch_gives_the_same_answers_as_a_loop(uint8_runtime):
    images = random_images(50)
    batch = uint8_runtime.classify_batch(images)
    for x, b in zip(images, batch):
        one = uint8_runtime.classify(x)
        assert b.label == one.label and b.name == one.name
        assert_same_sums(b.logits, one.logits)
        assert b.entropy == pytest.approx(one.entropy, abs=1e-5)


def test_bad_batch_is_refused(uint8_runtime):
    with pytest.raises(InputError, match=r"batch shape \(28, 28\)"):
        uint8_runtime.classify_batch(random_images(1)[0])


def test_threads_give_the_same_answers_as_serial_calls(uint8_runtime):
    images = random_images(64)
    serial = [uint8_runtime.classify(x).logits for x in images]
    answers = {}

    def work(worker):
        for _ in range(5):
            for i in range(worker, len(images), 4):
                answers.setdefault(i, []).append(uint8_runtime.classify(images[i]).logits)

    run_threads(work, 4)
    for i, logits in answers.items():
        for got in logits:
            np.testing.assert_array_equal(got, serial[i])
    assert len(answers) == len(images)


def test_class_names_come_from_the_model(tmp_path):
    model = random_mlp([4, 3])
    model.classes = ["cat", "dog", "owl"]
    path = tmp_path / "named.h5"
    save_model(model, path)
    rt = Runtime(path)
    assert rt.classes == ["cat", "dog", "owl"]
    assert rt.classify(np.ones(4, np.float32)).name in rt.classes


# every array NumPy can give --------------------------------------------------------

def views(x):
    """Arrays equal to ``x`` laid out every way NumPy allows."""
    wide = np.repeat(x, 2, axis=-1)
    yield "reversed", np.flip(np.flip(x).copy())
    yield "strided", wide[..., ::2]
    yield "fortran", np.asfortranarray(x)
    yield "swapped bytes", x.astype(x.dtype.newbyteorder()).view(x.dtype.newbyteorder())
    yield "offset view", np.concatenate([x.reshape(-1), x.reshape(-1)])[x.size:].reshape(x.shape)
    yield "read-only", np.frombuffer(x.tobytes(), x.dtype).reshape(x.shape)


@pytest.mark.parametrize("name", ["mnist-bnn.h5", "mnist-mlp.h5", "biglittle/little-binary-1-small.h5"])
def test_every_layout_of_a_sample_gets_the_same_answer(name):
    rt = Runtime(models.path(name))
    x = random_images(1)[0]
    expected = rt.classify(x).logits
    for layout, view in views(x):
        np.testing.assert_array_equal(rt.classify(view).logits, expected, err_msg=layout)
        np.testing.assert_array_equal(rt.classify_batch(view[None])[0].logits, expected,
                                      err_msg=layout)
    np.testing.assert_array_equal(rt.classify(x[::-1, ::-1][::-1, ::-1]).logits, expected)
    reversed_batch = np.stack([x, x[::-1, ::-1]])[::-1]
    assert rt.classify_batch(reversed_batch)[1].label == rt.classify(x).label


def test_float_samples_in_any_layout_and_byte_order():
    rt = Runtime(random_mlp([12, 20, 5]))
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32).reshape(12)
    expected = rt.classify(x).logits
    for layout, view in views(x):
        np.testing.assert_allclose(rt.classify(view).logits, expected, rtol=1e-6, err_msg=layout)


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((0, 28, 28), np.uint8), InputError, r"empty batch: shape \(0, 28, 28\)"),
    (np.ma.masked_array(np.zeros((2, 28, 28), np.uint8)), InputTypeError, "masked array"),
    (np.zeros((2, 28, 28), object), InputError, "input dtype object, expected uint8"),
])
def test_bad_batches_raise_clear_errors(uint8_runtime, bad, error, message):
    with pytest.raises(error, match=message):
        uint8_runtime.classify_batch(bad)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("make, message", [
    (lambda: np.matrix(np.zeros((28, 28), np.uint8)), "numpy.matrix"),
    (lambda: np.ma.masked_array(np.zeros((28, 28), np.uint8), mask=True), "masked array"),
])
def test_matrix_and_masked_samples_are_refused(uint8_runtime, make, message):
    with pytest.raises(InputTypeError, match=message):
        uint8_runtime.classify(make())


def test_exits_are_an_enum_equal_to_their_text():
    import json
    from edgebnn import Exit
    result = Runtime(random_mlp([4, 3])).classify(np.ones(4, np.float32))
    assert result.exit is Exit.LOCAL and result.exit == "local"
    assert (str(result.exit), f"{result.exit}", json.dumps(result.to_dict()["exit"])) == \
        ("local", "local", '"local"')
    assert Exit.EDGE.fallback() is Exit.EDGE_FALLBACK and Exit("local-fallback") is Exit.LOCAL_FALLBACK
