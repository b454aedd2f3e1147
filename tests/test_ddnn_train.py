"""A tiny end-to-end DDNN run: joint training in PyTorch, conversion, the runtime agreeing."""
import re

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
        net, _ = ddnn_train.train(images[:300], labels[:300], local, cloud, epochs=1, batch=100,
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


def test_reproduction_script_on_tiny_nets(mnist_dir, tmp_path):
    """ddnn_train.py's command line (validation choices, records) and ddnn_reproduce.py end to
    end on tiny nets: every section is written, from files the training script recorded."""
    import json
    import ddnn_reproduce
    models = tmp_path / "models"
    runs = [("max-concat.h5", []), ("max-concat-s1.h5", ["--seed", "1"]),
            ("max-concat-paper.h5", ["--drop", "0"]), ("max-concat-drop0.2.h5", ["--drop", "0.2"]),
            ("pairings/concat-average-nodrop-s0.h5", ["--drop", "0", "--local", "concat",
                                                     "--cloud", "average"]),
            ("pairings/average-max-nodrop-s0.h5", ["--drop", "0", "--local", "average",
                                                  "--cloud", "max", "--epochs", "2"]),
            ("max-concat-edge.h5", ["--edge"])]
    for name, extra in runs:
        assert ddnn_train.main(["--data", mnist_dir, "--out", str(models / name), "--train", "300",
                                "--validation", "50", "--epochs", "1"] + extra) == 0
    record = json.loads((models / "max-concat.json").read_text())
    assert record["epochs"] == 1 and record["validation_images"] == 50
    assert set(record["validation"]["thresholds"]) == {"within-1", "robust", "paper-share", "goal"}
    assert load_ddnn(models / "max-concat.h5").local_threshold == record["validation"]["threshold"]
    # choosing again by the same rules leaves the file as training wrote it, byte for byte
    import ddnn_rechoose
    trained = (models / "max-concat.h5").read_bytes()
    assert ddnn_rechoose.main(["--data", mnist_dir, str(models / "max-concat.h5")]) == 0
    assert (models / "max-concat.h5").read_bytes() == trained
    assert json.loads((models / "max-concat.json").read_text()) == record
    out = tmp_path / "ddnn.md"
    assert ddnn_reproduce.main(["--data", mnist_dir, "--models", str(models), "--out", str(out),
                                "--test", "40", "--validation", "200"]) == 0
    text = out.read_text()
    for heading in ("## Main model", "## Goals of issue 17", "## Threshold sweep",
                    "## One device missing", "## Devices added", "## Aggregation comparison",
                    "## With an edge tier", "## The paper's findings", "## Spot check", "## Files",
                    "## Training commands"):
        assert heading in text
    assert "| max | concat | 1 |" in text and "| concat | average | 1 |" in text
    # a pairing trained longer than the main model is named, not compared
    assert "| average | max |" not in text and "Left out: `average-max-nodrop-s0.h5` (2 epochs)" in text
    assert "the paper's way (no device dropout)" in text and "models/max-concat.h5" in text
    assert "ours, device dropout 0.1, 1 epoch, cloud of 128 (beyond the paper)" in text
    assert "ours, device dropout 0.2, 1 epoch, cloud of 128 (beyond the paper)" in text
    assert re.search(r"Validation chose among them: .*dropout 0.1, 1 epoch, cloud of 128: \d+\.\d\d%", text)
    # how often the epoch budget, rather than validation, ended training is counted, not hidden
    records = [json.loads(p.read_text()) for p in models.rglob("*.json")]
    last = sum(r["best_epoch"] == r["epochs"] for r in records)
    assert f"Validation kept the last epoch for {last} of the {len(records)} runs" in text
    assert "Trained on (a seed rebuilds the same bytes on the same kind of machine only):" in text
    # a file without its record cannot be listed with its command: refused, named
    (models / "stray.h5").write_bytes((models / "max-concat.h5").read_bytes())
    with pytest.raises(SystemExit) as refused:
        ddnn_reproduce.main(["--data", mnist_dir, "--models", str(models), "--out", str(out)])
    assert refused.value.code == 2
