"""Float convolution and pooling (``conv2d``, ``pool2d``): against a plain loop, in files, from PyTorch."""
import numpy as np
import pytest

from conftest import assert_same_sums
from edgebnn import Conv2d, Dense, Limits, Model, ModelFormatError, Pool2d, Runtime, load_model, \
    save_model


def reference_conv(x, weight, bias, stride, padding, relu):
    """The convolution of one (H, W, C) map written out, in float64."""
    (sh, sw), (ph, pw) = stride, padding
    x = np.pad(np.asarray(x, np.float64), ((ph, ph), (pw, pw), (0, 0)))
    n_out, kh, kw, _ = weight.shape
    out_h, out_w = (x.shape[0] - kh) // sh + 1, (x.shape[1] - kw) // sw + 1
    y = np.zeros((out_h, out_w, n_out))
    for i in range(out_h):
        for j in range(out_w):
            window = x[i * sh:i * sh + kh, j * sw:j * sw + kw]
            for o in range(n_out):
                y[i, j, o] = np.sum(window * weight[o]) + bias[o]
    return np.maximum(y, 0) if relu else y


def reference_pool(x, mode, size, stride):
    (kh, kw), (sh, sw) = size, stride
    out_h, out_w = (x.shape[0] - kh) // sh + 1, (x.shape[1] - kw) // sw + 1
    reduce = np.max if mode == "max" else np.mean
    return np.array([[reduce(x[i * sh:i * sh + kh, j * sw:j * sw + kw], axis=(0, 1))
                      for j in range(out_w)] for i in range(out_h)])


SHAPES = [  # (height, width, channels), out, kernel, stride, padding
    ((9, 7, 1), 3, (3, 3), (1, 1), (0, 0)),
    ((10, 11, 4), 5, (3, 2), (2, 1), (1, 0)),
    ((6, 6, 3), 2, (5, 5), (1, 1), (2, 2)),
    ((13, 8, 2), 4, (1, 1), (3, 2), (0, 1)),
]


@pytest.mark.parametrize("shape, n_out, kernel, stride, padding", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_computes_the_written_out_convolution(shape, n_out, kernel, stride, padding, relu,
                                                     backend):
    rng = np.random.default_rng(sum(shape) + n_out)
    weight = rng.standard_normal((n_out, *kernel, shape[2])).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    conv = Conv2d(weight, bias, stride, padding, "relu" if relu else "none")
    model = Model([conv, Dense(np.eye(conv_outputs(conv, shape)), np.zeros(conv_outputs(conv, shape)))],
                  shape)
    runtime = Runtime(model)
    x = rng.standard_normal((4, *shape)).astype(np.float32)
    want = np.stack([reference_conv(sample, weight, bias, stride, padding, relu).reshape(-1)
                     for sample in x])
    one = np.stack([runtime.classify(sample).logits for sample in x])
    batch = np.stack([r.logits for r in runtime.classify_batch(x)])
    np.testing.assert_allclose(one, want, rtol=1e-5, atol=1e-5)
    assert_same_sums(batch, one)


def conv_outputs(conv, shape):
    """How many values ``conv`` gives on a ``shape`` map."""
    from edgebnn.layers import Signal
    _, (out_h, out_w) = conv.geometry(Signal("float", shape))
    return out_h * out_w * len(conv.bias)


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("size, stride", [((2, 2), None), ((3, 2), (1, 2)), ((2, 3), (3, 3))])
def test_pool2d_takes_the_max_or_mean_of_each_window(mode, size, stride, backend):
    rng = np.random.default_rng(5)
    shape = (8, 9, 3)
    pool = Pool2d(mode, size, stride)
    model = Model([pool], shape)            # the pooled map is the scores: a test of its values
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    want = np.stack([reference_pool(s, mode, size, stride or size).reshape(-1) for s in x])
    runtime = Runtime(model)
    np.testing.assert_allclose([runtime.classify(s).logits for s in x], want, rtol=1e-6)
    np.testing.assert_allclose([r.logits for r in runtime.classify_batch(x)], want, rtol=1e-6)


def lenet(rng):
    """uint8 28x28 -> conv 5x5x6 (same) + ReLU -> max pool 2 -> conv 5x5x16 -> average pool 2
    -> dense 10."""
    return Model([Conv2d(rng.standard_normal((6, 5, 5, 1)) * 0.3, rng.standard_normal(6) * 0.1,
                         padding=(2, 2), activation="relu"),
                  Pool2d("max", (2, 2)),
                  Conv2d(rng.standard_normal((16, 5, 5, 6)) * 0.1, np.zeros(16), activation="relu"),
                  Pool2d("average", (2, 2)),
                  Dense(rng.standard_normal((10, 5 * 5 * 16)) * 0.05, np.zeros(10))],
                 (28, 28), "uint8", 1 / 255, -0.5, [str(i) for i in range(10)])


def test_a_float_cnn_is_saved_and_loaded_with_the_same_answers(tmp_path):
    rng = np.random.default_rng(0)
    model = lenet(rng)
    save_model(model, tmp_path / "lenet.h5")
    loaded = load_model(tmp_path / "lenet.h5")
    assert [layer.kind for layer in loaded.layers] == ["conv2d", "pool2d", "conv2d", "pool2d", "dense"]
    assert (loaded.layers[0].padding, loaded.layers[1].mode, loaded.layers[3].stride) == \
        ((2, 2), "max", (2, 2))
    x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    for sample in x:
        np.testing.assert_array_equal(Runtime(loaded).classify(sample).logits,
                                      Runtime(model).classify(sample).logits)


@pytest.mark.parametrize("layers, shape, message", [
    ([Conv2d(np.ones((2, 3, 3, 2)), np.zeros(2))], (8, 8, 3), "2 input channels, its input float 8x8x3 has 3"),
    ([Conv2d(np.ones((2, 5, 5, 1)), np.zeros(2))], (4, 6), "kernel 5x5 larger than the padded input 4x6"),
    ([Dense(np.ones((4, 6)), np.zeros(4)), Pool2d()], (6,), "pool2d takes a float feature map"),
    ([Pool2d("max", (5, 5))], (4, 9, 2), "pool window 5x5 larger than its input 4x9"),
])
def test_shapes_that_do_not_fit_are_refused_by_name(layers, shape, message):
    with pytest.raises(ModelFormatError, match=message):
        Model(layers, shape)


@pytest.mark.parametrize("make, message", [
    (lambda: Conv2d(np.ones((2, 3, 3, 1)), np.zeros(2), activation="tanh"), "activation 'tanh'"),
    (lambda: Pool2d("min"), "pool mode 'min' unknown"),
    (lambda: Conv2d(np.ones((2, 3, 3)), np.zeros(2)), "expected 4-D"),
    (lambda: Conv2d(np.ones((2, 3, 3, 1)), np.zeros(2), stride=(0, 1)), "stride"),
])
def test_bad_layer_arguments_are_refused(make, message):
    with pytest.raises(ModelFormatError, match=message):
        make()


def test_the_limits_count_a_convolution_s_multiply_adds():
    conv = Conv2d(np.ones((64, 3, 3, 32), np.float32), np.zeros(64), padding=(1, 1))
    macs = 64 * 64 * 64 * 3 * 3 * 32                     # positions x outputs x taps
    with pytest.raises(ModelFormatError, match="float multiply-adds"):
        Model([conv], (64, 64, 32), limits=Limits(float_macs=macs - 1))
    Model([conv.copy()], (64, 64, 32), limits=Limits(float_macs=macs))


# from PyTorch ------------------------------------------------------------------------

def test_a_pytorch_lenet_converts_directly_and_through_onnx():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from edgebnn.converters.pytorch import convert
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.BatchNorm2d(16), nn.MaxPool2d(2), nn.ReLU(),
                        nn.Conv2d(16, 8, 3, stride=2), nn.ReLU(), nn.AvgPool2d(1),
                        nn.Flatten(), nn.Linear(8 * 2 * 2, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    with torch.no_grad():
        norm = net[4]
        norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 1.5)
    x = np.random.default_rng(0).integers(0, 256, (20, 28, 28)).astype(np.uint8)
    real = torch.from_numpy(x.astype(np.float32)[:, None] / 255)
    with torch.no_grad():
        want = net(real).numpy()
    model = convert(net, (1, 28, 28), "uint8", 1 / 255, 0.0)
    assert [layer.kind for layer in model.layers] == [
        "conv2d", "pool2d", "conv2d", "pool2d", "conv2d", "pool2d", "dense", "dense"]
    assert model.input_shape == (28, 28)          # channels last, as every image input here
    assert model.layers[2].activation == "relu"   # max pool then ReLU: the ReLU moves before
    got = np.array([r.logits for r in Runtime(model).classify_batch(x)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    onnx = pytest.importorskip("onnx")
    import io
    import warnings
    from edgebnn.converters.onnx import convert as convert_onnx
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, real[:1], buffer, input_names=["x"], dynamo=False)
    exported = convert_onnx(onnx.load_from_string(buffer.getvalue()), "uint8", 1 / 255, 0.0)
    got = np.array([r.logits for r in Runtime(exported).classify_batch(x)])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_a_relu_after_an_average_pool_is_refused():
    torch = pytest.importorskip("torch")
    from edgebnn.converters.pytorch import convert
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AvgPool2d(2), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 3, 4))
    with pytest.raises(ValueError, match=r"\(ReLU\) follows no float dense layer"):
        convert(net, (1, 8, 8))


def test_the_c_kernel_and_the_twin_agree_on_random_shapes():
    """Windows past a padding wider than the kernel, strides longer than the kernel, one
    channel or several: the C scatter and the twin's im2col agree to rounding; max pools
    exactly, average pools to rounding."""
    from edgebnn.kernels import c_available, c_library, numpy_twin
    from edgebnn.kernels.contract import Link
    from edgebnn.kernels.geometry import ConvShape
    if not c_available():
        pytest.skip("the C kernel is not built")
    rng = np.random.default_rng(11)
    tried = 0
    while tried < 60:
        (height, width, channels), (kh, kw), (sh, sw), (ph, pw) = (
            rng.integers(1, 9, 3), rng.integers(1, 5, 2), rng.integers(1, 4, 2),
            rng.integers(0, 4, 2))
        n_out = int(rng.integers(1, 20))
        conv = ConvShape(*map(int, (height, width, channels, 0, n_out, kh, kw, sh, sw, ph, pw)),
                         1, 1)
        if min(conv.conv_h, conv.conv_w) < 1 or height < kh or width < kw:
            continue
        tried += 1
        pool = conv._replace(out_channels=int(channels), pad_h=0, pad_w=0)
        columns = rng.standard_normal((kh * kw * channels, n_out)).astype(np.float32)
        bias = rng.standard_normal(n_out).astype(np.float32)
        x = rng.standard_normal((3, height * width * channels)).astype(np.float32)
        x[rng.random(x.shape) < 0.5] = 0

        def run(kernels, plan, size):
            out = np.zeros((3, size), np.float32)
            return kernels.chain([Link(plan, None, out)])(x)
        convs = [run(k, k.ConvFloat(conv, columns, bias, tried % 2 == 0),
                     conv.conv_h * conv.conv_w * n_out) for k in (c_library, numpy_twin)]
        np.testing.assert_allclose(*convs, rtol=1e-4, atol=1e-4, err_msg=str(conv))
        for average in (False, True):
            pools = [run(k, k.PoolFloat(pool, average), pool.conv_h * pool.conv_w * channels)
                     for k in (c_library, numpy_twin)]
            np.testing.assert_allclose(*pools, rtol=0 if not average else 1e-6,
                                       atol=0 if not average else 1e-6, err_msg=str(pool))
