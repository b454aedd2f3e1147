"""edgebnn.converters.pytorch against PyTorch itself: float scores, labels and integer dot products."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from edgebnn.converters.binary_layers import BinaryConv2d, BinaryLinear, Sign  # noqa: E402
from edgebnn.converters.pytorch import convert  # noqa: E402
from edgebnn import BinaryDense, Model, Runtime, load_model, save_model  # noqa: E402

N_SAMPLES = 300


def randomize_batch_norms(net, x_real, seed):
    """Running statistics from real activations, then random gammas (some < 0) and betas.

    Statistics measured on the net's own activations put the thresholds where
    the dot products are, so the signs after them are not all alike.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = 1.0                     # running stats = this batch's stats
    net.train()
    with torch.no_grad():
        net(x_real)
    generator = torch.Generator().manual_seed(seed)
    for norm in norms:
        n = norm.num_features
        norm.running_var.mul_(torch.rand(n, generator=generator, dtype=torch.float64) + 0.5)
        norm.weight.data = torch.randn(n, generator=generator, dtype=torch.float64)
        norm.bias.data = torch.randn(n, generator=generator, dtype=torch.float64) * 0.5
    return net.eval()


def torch_outputs(net, x_real, layer=None):
    """The net's output in float64, and the output of ``layer`` (captured by a hook)."""
    captured = []
    hook = layer.register_forward_hook(lambda m, i, out: captured.append(out)) if layer else None
    with torch.no_grad():
        out = net(torch.from_numpy(x_real)).numpy()
    if hook:
        hook.remove()
    return out, (captured[0].numpy() if captured else None)


def runtime_dots(model, n_layers):
    """The model's first ``n_layers`` layers, the last a binary_dense giving its integer dots."""
    layers = [layer.copy() for layer in model.layers[:n_layers]]
    assert isinstance(layers[-1], BinaryDense) and layers[-1].threshold is None
    return Model(layers, model.input_shape, model.input_dtype.name, model.input_scale,
                 model.input_offset)


def assert_integers(values):
    np.testing.assert_allclose(values, np.round(values), atol=1e-9)
    return np.round(values).astype(np.int64)


def uint8_samples(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, (N_SAMPLES, *shape)).astype(np.uint8)


# float ----------------------------------------------------------------------

def test_float_mlp_with_softmax_gives_the_same_scores():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(63, 20), nn.ReLU(), nn.Dropout(0.3),
                        nn.Sequential(nn.Linear(20, 12), nn.ReLU()), nn.Linear(12, 5),
                        nn.Softmax(dim=1)).double().eval()
    scale, offset = 1 / 255, -0.5
    x = uint8_samples((7, 9), seed=1)
    expected, _ = torch_outputs(net, x * scale + offset)
    model = convert(net, (7, 9), "uint8", scale, offset, classes="abcde")
    assert [layer.kind for layer in model.layers] == ["dense"] * 3
    assert model.layers[-1].activation == "softmax"
    results = Runtime(model).classify_batch(x)
    np.testing.assert_allclose([r.scores for r in results], expected, rtol=1e-4, atol=1e-7)
    assert [r.name for r in results] == ["abcde"[k] for k in expected.argmax(axis=1)]


def test_float_mlp_with_batch_norm_before_the_scores(tmp_path):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4), nn.BatchNorm1d(4)).double()
    x = np.random.default_rng(2).standard_normal((N_SAMPLES, 10)).astype(np.float32)
    randomize_batch_norms(net, torch.from_numpy(x.astype(np.float64)), seed=3)
    expected, _ = torch_outputs(net, x.astype(np.float64))
    model = convert(net, (10,), "float32", 1.0, 0.0)
    assert [layer.kind for layer in model.layers] == ["dense", "dense"]     # the norm folded
    save_model(model, tmp_path / "m.h5")
    logits = np.array([r.logits for r in Runtime(tmp_path / "m.h5").classify_batch(x)])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)


# binary ---------------------------------------------------------------------

@pytest.mark.parametrize("offset", [0.0, -0.5])
def test_binary_mlp_on_uint8_input(offset, tmp_path):
    torch.manual_seed(2)
    shape, scale = (7, 9), 1 / 255
    last = BinaryLinear(33, 6)
    net = nn.Sequential(nn.Flatten(),
                        BinaryLinear(63, 40), nn.BatchNorm1d(40), Sign(),
                        nn.Sequential(BinaryLinear(40, 33), nn.BatchNorm1d(33), Sign()),
                        last, nn.BatchNorm1d(6)).double()
    x = uint8_samples(shape, seed=4)
    x_real = x * scale + offset
    randomize_batch_norms(net, torch.from_numpy(x_real), seed=5)
    expected, dots = torch_outputs(net, x_real, layer=last)

    model = convert(net, shape, "uint8", scale, offset)
    assert [layer.kind for layer in model.layers] == ["binary_dense"] * 3 + ["batch_norm"]
    save_model(model, tmp_path / "m.h5")
    model = load_model(tmp_path / "m.h5")
    labels = [r.label for r in Runtime(model).classify_batch(x)]
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    ours = runtime_dots(model, 3).forward_batch(model.check_batch(x))
    np.testing.assert_array_equal(ours, assert_integers(dots))

    # the first layer's dots: the exact integer sum over the raw pixels
    first = net[1].weight.detach().numpy()
    exact = x.reshape(len(x), -1).astype(np.float64) @ np.where(first >= 0, 1.0, -1.0).T
    alone = Model([BinaryDense(model.layers[0].weight)], shape, "uint8")
    np.testing.assert_array_equal(alone.forward_batch(alone.check_batch(x)), exact)


def test_single_binary_layer_on_uint8_folds_the_preprocessing_into_the_batch_norm():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), BinaryLinear(20, 3)).double().eval()
    x = uint8_samples((20,), seed=6)
    expected, _ = torch_outputs(net, x * 0.01 + 0.25)
    model = convert(net, (20,), "uint8", 0.01, 0.25)
    assert [layer.kind for layer in model.layers] == ["binary_dense", "batch_norm"]
    logits = np.array([r.logits for r in Runtime(model).classify_batch(x)])
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_float_layers_then_sign_then_binary_layers():
    torch.manual_seed(4)
    last = BinaryLinear(24, 5)
    net = nn.Sequential(nn.Linear(12, 24), nn.BatchNorm1d(24), Sign(), last,
                        nn.BatchNorm1d(5)).double()
    x = np.random.default_rng(7).standard_normal((N_SAMPLES, 12)).astype(np.float32)
    randomize_batch_norms(net, torch.from_numpy(x.astype(np.float64)), seed=8)
    expected, dots = torch_outputs(net, x.astype(np.float64), layer=last)
    model = convert(net, (12,), "float32", 1.0, 0.0)
    assert [layer.kind for layer in model.layers] == [
        "dense", "sign", "binary_dense", "batch_norm"]
    # float32 in the runtime vs float64 here: a value within rounding of 0 may
    # take the other sign, so compare the dots only where no such value exists
    ours = runtime_dots(model, 3).forward_batch(model.check_batch(x))
    same = (ours == assert_integers(dots)).all(axis=1)
    assert same.mean() > 0.95
    labels = np.array([r.label for r in Runtime(model).classify_batch(x)])
    np.testing.assert_array_equal(labels[same], expected.argmax(axis=1)[same])


CONV_NETS = {
    # name: (input (C, H, W), input_offset, modules after the first conv's input)
    "pad-pool-stride": ((3, 11, 9), 0.0, lambda: [
        BinaryConv2d(3, 9, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(9), Sign(),
        BinaryConv2d(9, 5, (2, 3), stride=2, padding=1), nn.BatchNorm2d(5), Sign(),
        nn.Flatten(), BinaryLinear(5 * 3 * 2, 4), nn.BatchNorm1d(4)]),
    "offset-no-pad": ((1, 12, 10), -0.5, lambda: [
        BinaryConv2d(1, 9, (3, 2), stride=(1, 2)), nn.MaxPool2d((2, 1)), nn.BatchNorm2d(9), Sign(),
        BinaryConv2d(9, 17, 3, padding=(2, 1)), nn.MaxPool2d(2), nn.BatchNorm2d(17), Sign(),
        nn.Flatten(), BinaryLinear(17 * 3 * 2, 16), nn.BatchNorm1d(16), Sign(),
        BinaryLinear(16, 3), nn.BatchNorm1d(3)]),
}


@pytest.mark.parametrize("name", sorted(CONV_NETS))
def test_binary_conv_net_on_uint8_input(name):
    torch.manual_seed(5)
    chw, offset, modules = CONV_NETS[name]
    net = nn.Sequential(*modules()).double()
    last = [m for m in net if isinstance(m, BinaryLinear)][-1]
    scale = 1 / 255
    x = uint8_samples(chw, seed=9)
    x_real = x * scale + offset
    randomize_batch_norms(net, torch.from_numpy(x_real), seed=10)
    expected, dots = torch_outputs(net, x_real, layer=last)

    model = convert(net, chw, "uint8", scale, offset)
    channels, height, width = chw
    assert model.input_shape == ((height, width) if channels == 1 else (height, width, channels))
    x_runtime = x.transpose(0, 2, 3, 1).reshape(len(x), *model.input_shape)   # channels last
    labels = [r.label for r in Runtime(model).classify_batch(x_runtime)]
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    ours = runtime_dots(model, len(model.layers) - 1).forward_batch(model.check_batch(x_runtime))
    np.testing.assert_array_equal(ours, assert_integers(dots))
    for i, sample in enumerate(x_runtime[:20]):            # one at a time: the same
        assert Runtime(model).classify(sample).label == labels[i]


# what it refuses ------------------------------------------------------------

class ScaledLinear(nn.Linear):
    """A subclass computes something else: it must not pass for nn.Linear."""

    def forward(self, x):
        return 2 * super().forward(x)


REFUSED = {
    "subclass": (nn.Sequential(ScaledLinear(4, 2)), (4,), "layer 0 (ScaledLinear)"),
    "dilated conv": (nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2)), (1, 5, 5),
                     "layer 0 (Conv2d) must use numeric zero padding, dilation 1"),
    "tanh": (nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)), (4,), "layer 1 (Tanh)"),
    "pool after norm": (nn.Sequential(BinaryConv2d(1, 2, 3), nn.BatchNorm2d(2), nn.MaxPool2d(2),
                                      Sign(), nn.Flatten(), BinaryLinear(2, 2)), (1, 6, 6),
                        "layer 2 (MaxPool2d)"),
    "conv without sign": (nn.Sequential(BinaryConv2d(1, 2, 3), nn.BatchNorm2d(2)), (1, 3, 3),
                          "must be followed by a sign"),
    "binary after float": (nn.Sequential(nn.Linear(4, 4), BinaryLinear(4, 2)), (4,),
                           "layer 1 (BinaryLinear)"),
    "linear without flatten": (nn.Sequential(nn.Linear(4, 2)), (2, 4), "flatten before it"),
    "wrong size": (nn.Sequential(nn.Flatten(), BinaryLinear(5, 2)), (2, 3), "expects 5 inputs"),
    "ends in signs": (nn.Sequential(BinaryLinear(4, 2), nn.BatchNorm1d(2), Sign()), (4,),
                      "float scores"),
    "nested name": (nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.GELU())), (4,),
                    "layer 1.1 (GELU)"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsupported_modules_are_named_in_a_value_error(case):
    net, shape, message = REFUSED[case]
    with pytest.raises(ValueError, match="supported") as error:
        convert(net.eval(), shape, "uint8")
    assert message in str(error.value)


def test_first_conv_with_padding_and_offset_is_refused():
    net = nn.Sequential(BinaryConv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), Sign(),
                        nn.Flatten(), BinaryLinear(50, 2))
    with pytest.raises(ValueError, match="input_offset"):
        convert(net.eval(), (1, 5, 5), "uint8", input_offset=-0.5)


# the training layers ----------------------------------------------------------

def test_sign_is_plus_one_at_zero_and_passes_gradients_inside_the_unit_window():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    y = Sign()(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]


def test_binary_layers_use_weight_signs_and_clip_the_latent_weights():
    layer = BinaryLinear(3, 1)
    layer.weight.data = torch.tensor([[0.2, -3.0, 0.0]])
    assert layer(torch.tensor([[1.0, 2.0, 4.0]])).item() == 1 - 2 + 4
    layer.clip_()
    assert layer.weight.tolist() == [[pytest.approx(0.2), -1.0, 0.0]]
    conv = BinaryConv2d(1, 1, 2, padding=1)
    conv.weight.data.fill_(-0.1)
    out = conv(torch.ones(1, 1, 1, 1))
    assert out.flatten().tolist() == [-1.0] * 4          # padded zeros add nothing
