"""A tiny end-to-end DDNN run: joint training in PyTorch, conversion, the runtime agreeing."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ddnn_train  # noqa: E402  (examples/ is on the path: see conftest.py)
import mnist  # noqa: E402
from runtime.ddnn import load_ddnn, save_ddnn  # noqa: E402


CONFIGS = [("max", "concat"), ("concat", "average")]


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory):
    """Each configuration trained once (300 images, one epoch), then checked on both backends."""
    torch.set_num_threads(1)
    (images, labels), (held_out, _) = mnist.train_validation(mnist_dir)
    nets = {}
    for local, cloud in CONFIGS:
        net = ddnn_train.train(images[:300], labels[:300], local, cloud, epochs=1, batch=100,
                               log=lambda line: None)
        path = tmp_path_factory.mktemp("ddnn") / f"{local}-{cloud}.h5"
        save_ddnn(ddnn_train.to_runtime(net, threshold=0.5), path)
        nets[local, cloud] = net, path
    return nets, held_out[:40]


@pytest.mark.parametrize("config", CONFIGS)
def test_trained_ddnn_runs_the_same_in_the_runtime(trained, config):
    (net, path), held_out = trained[0][config], trained[1]
    ddnn = load_ddnn(path)
    x, raw = ddnn_train.tensor_views(held_out, "validation")
    with torch.no_grad():
        local_scores, cloud_scores = net(x, torch.ones(40, 6, dtype=torch.bool))
    for i in range(40):
        views = list(raw[:, i])
        np.testing.assert_allclose(ddnn.classify(views, 1.0).logits, local_scores[i].numpy(),
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ddnn.classify(views, 0.0).logits, cloud_scores[i].numpy(),
                                   rtol=1e-4, atol=1e-4)
    missing = [None if d == 2 else v for d, v in enumerate(raw[:, 0])]
    present = torch.ones(1, 6, dtype=torch.bool)
    present[0, 2] = False
    with torch.no_grad():
        _, cloud_one = net(x[:, :1], present)
    np.testing.assert_allclose(ddnn.classify(missing, 0.0).logits, cloud_one[0].numpy(),
                               rtol=1e-4, atol=1e-4)
