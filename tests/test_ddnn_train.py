"""A tiny end-to-end DDNN run: joint training in PyTorch, conversion, the runtime agreeing."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ddnn_train  # noqa: E402  (examples/ is on the path: see conftest.py)
from edgebnn.bench import mnist  # noqa: E402
from edgebnn import load_ddnn, save_ddnn  # noqa: E402


CONFIGS = [("max", "concat", False), ("concat", "average", False), ("max", "concat", True),
           ("average", "average", True)]


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory):
    """Each configuration trained once (300 images, one epoch), then checked on both backends."""
    torch.set_num_threads(1)
    (images, labels), (held_out, _) = mnist.train_validation(mnist_dir)
    nets = {}
    for local, cloud, edge in CONFIGS:
        net = ddnn_train.train(images[:300], labels[:300], local, cloud, epochs=1, batch=100,
                               log=lambda line: None, edge=edge)
        path = tmp_path_factory.mktemp("ddnn") / f"{local}-{cloud}-{edge}.h5"
        save_ddnn(ddnn_train.to_runtime(net, threshold=0.5), path)
        nets[local, cloud, edge] = net, path
    return nets, held_out[:40]


@pytest.mark.parametrize("config", CONFIGS)
def test_trained_ddnn_runs_the_same_in_the_runtime(trained, config):
    (net, path), held_out = trained[0][config], trained[1]
    ddnn = load_ddnn(path)
    x, raw = ddnn_train.tensor_views(held_out, "validation")
    with torch.no_grad():
        exits = net(x, torch.ones(40, 6, dtype=torch.bool))
    local_scores, cloud_scores = exits[0], exits[-1]
    assert (ddnn.edge is not None) == (len(exits) == 3)
    for i in range(40):
        views = list(raw[:, i])
        np.testing.assert_allclose(ddnn.classify(views, 1.0).logits, local_scores[i].numpy(),
                                   rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ddnn.classify(views, 0.0, 0.0).logits, cloud_scores[i].numpy(),
                                   rtol=1e-4, atol=1e-4)
        if ddnn.edge is not None:
            np.testing.assert_allclose(ddnn.classify(views, 0.0, 1.0).logits, exits[1][i].numpy(),
                                       rtol=1e-4, atol=1e-4)
    missing = [None if d == 2 else v for d, v in enumerate(raw[:, 0])]
    present = torch.ones(1, 6, dtype=torch.bool)
    present[0, 2] = False
    with torch.no_grad():
        cloud_one = net(x[:, :1], present)[-1]
    np.testing.assert_allclose(ddnn.classify(missing, 0.0, 0.0).logits, cloud_one[0].numpy(),
                               rtol=1e-4, atol=1e-4)


def test_reproduction_script_on_tiny_nets(trained, mnist_dir, tmp_path):
    """examples/ddnn_reproduce.py end to end on the tiny nets: every section is written."""
    import shutil
    import ddnn_reproduce
    nets = trained[0]
    models, seeds = tmp_path / "models", tmp_path / "seeds"
    models.mkdir()
    seeds.mkdir()
    shutil.copy(nets["max", "concat", False][1], models / "max-concat.h5")
    shutil.copy(nets["max", "concat", True][1], models / "max-concat-edge.h5")
    for (local, cloud, edge), (_, path) in nets.items():
        if not edge:
            for seed in (0, 1):
                shutil.copy(path, seeds / f"{local}-{cloud}-s{seed}.h5")
    out = tmp_path / "ddnn.md"
    ddnn_reproduce.main(["--data", mnist_dir, "--models", str(models), "--seeds", str(seeds),
                         "--out", str(out), "--test", "60", "--threshold", "0.5"])
    text = out.read_text()
    for heading in ("### Threshold sweep (local exit)", "### Each device removed (T = 0.50)",
                    "## With an edge tier", "### Edge threshold sweep", "| 0.50 | 0.40 |",
                    "## Aggregation comparison"):
        assert heading in text
    assert "| max | concat |" in text and "| concat | average |" in text and "+- 0.00" in text
    assert "Per aggregator" in text and "local exit accuracy" in text
