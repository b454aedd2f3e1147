"""Tiny runs of the Big-Little recipes (300 images, one epoch, small shapes) and the report's measures."""
import json
import types

import numpy as np
import pytest

import biglittle_report  # noqa: E402  (examples/ is on the path: see conftest.py)
from edgebnn import Runtime


def test_metrics_on_a_hand_made_confusion():
    m = biglittle_report.binary_metrics(tp=8, fp=2, fn=1, tn=89)
    assert m["f1"] == pytest.approx(16 / 19)
    assert m["recall"] == pytest.approx(8 / 9)
    assert m["specificity"] == pytest.approx(89 / 91)
    assert m["precision"] == pytest.approx(8 / 10)
    assert biglittle_report.binary_metrics(0, 0, 0, 5)["f1"] == 0.0
    m = biglittle_report.class_metrics([True, True, False, False, True], [True, False, True, False, True])
    assert m == biglittle_report.binary_metrics(tp=2, fp=1, fn=1, tn=1)


def test_true_weight_count_of_the_little_net():
    assert biglittle_report.dense_weight_count([784, 1000, 500, 2]) == 1_286_502


@pytest.fixture(scope="module")
def recipes(mnist_dir, tmp_path_factory):
    """Each recipe kind trained once, tiny; the files are then checked on both backends."""
    pytest.importorskip("torch")
    import biglittle_train
    out = tmp_path_factory.mktemp("biglittle")
    for kind, hidden, extra in (("little-float", "16,8", ["--digit", "1"]),
                                ("little-float", "16,8", ["--digit", "8"]),
                                ("little-float", "16,8", ["--digit", "1", "--shift", "2",
                                                          "--tag", "shift2"]),
                                ("little-float", "16,8", ["--digit", "1", "--pos-weight", "1",
                                                          "--tag", "unweighted"]),
                                ("little-binary", "32,16", ["--digit", "1"]),
                                ("little-binary", "32,16", ["--digit", "8"]),
                                ("little-binary", "16,8", ["--digit", "8", "--tag", "small"]),
                                ("big", "16,8", ["--shift", "2"])):
        assert biglittle_train.main(["--data", mnist_dir, "--kind", kind, "--out-dir", str(out),
                                     "--hidden", hidden, "--epochs", "1", "--limit", "300"]
                                    + extra) == 0
    return out


@pytest.mark.parametrize("name, classes", [
    ("little-float-1", ["1", "other"]), ("little-float-8", ["8", "other"]),
    ("little-binary-1", ["1", "other"]), ("little-binary-8", ["8", "other"]),
    ("little-binary-8-small", ["8", "other"]),
    ("big", [str(d) for d in range(10)])])
def test_recipe_files_load_in_the_runtime(recipes, name, classes):
    runtime = Runtime(str(recipes / f"{name}.h5"))
    assert runtime.classes == classes
    result = runtime.classify(np.zeros((28, 28), np.uint8))
    assert result.name in classes
    record = json.loads((recipes / f"{name}.json").read_text())
    assert record["epochs"] == 1 and record["train_images"] == 300
    assert record["shape"][-1] == len(classes)


def test_report_from_the_tiny_recipes(recipes, mnist_dir, tmp_path):
    out = tmp_path / "report.md"
    assert biglittle_report.main(["--data", mnist_dir, "--models", str(recipes), "--out", str(out),
                                  "--latency-samples", "5"]) == 0
    text = out.read_text()
    assert "## Table 3, digits 1 and 8" in text and "## Goals of issue 17" in text
    assert "99.16" in text and "1,286,502" in text
    assert "little-binary-8.h5" in text and "big.h5" in text
    assert "| 8 | ours: little-binary 784-32-16-2 | 1 |" in text
    assert "digit 8, binary 784-16-8-2:" in text
    assert "ours: big, shifts of up to 2 pixels (beyond the paper)" in text
    # every float recipe is a row of its own, with its own goal line; one of them is chosen
    for how in ("the paper's way, digit K weighted 2 in the loss", "the paper's way, unweighted loss",
                "shifts of up to 2 pixels (beyond the paper)"):
        assert f"| 1 | ours: little-float 784-16-8-2, {how}" in text
        assert f"- little float, digit 1, {how}: F1" in text
    assert "The float rows with shifts were added" in text and "The unweighted float rows" in text
    goal_lines = [line for line in text.splitlines() if line.startswith("- little float, digit 1,")]
    assert sum("fewer than 3 seeds, not judged" in line for line in goal_lines) == 1
    assert sum("not the recipe validation chose" in line for line in goal_lines) == 2
    assert text.count("**(chosen on validation)**") == 2          # digits 1 and 8


def fake_net(tag, seed, validation, weights=100, shift=0, pos_weight=2.0):
    record = {"validation": validation, "weights": weights, "shift": shift, "pos_weight": pos_weight}
    return types.SimpleNamespace(kind="little-float", digit=1, tag=tag, seed=seed, record=record)


def test_validation_chooses_the_float_recipe_by_its_mean_over_seeds():
    nets = [fake_net(None, s, v) for s, v in enumerate((0.5, 0.75, 1.0))]            # mean 0.75
    nets += [fake_net("unweighted", s, v, pos_weight=1.0) for s, v in enumerate((1.0, 0.5, 0.875))]
    nets += [fake_net("shift2", s, 0.8125, shift=2) for s in range(3)]
    nets += [fake_net("small", 0, 1.0, weights=10)]          # a smaller shape is never a candidate
    groups = biglittle_report.Groups(nets)
    assert [how for how, _ in groups.variants("little-float", 1)] == [
        "the paper's way, digit K weighted 2 in the loss", "the paper's way, unweighted loss",
        "shifts of up to 2 pixels (beyond the paper)"]
    assert groups.chosen_float(1)[1][0].tag == "shift2"      # the highest mean, 0.8125
    unshifted = biglittle_report.Groups([n for n in nets if n.tag != "shift2"])
    assert unshifted.chosen_float(1)[1][0].tag == "unweighted"   # 0.79 over 0.75
    nets[3].record["validation"] = 0.875                      # unweighted mean now 0.75: a tie
    assert unshifted.chosen_float(1)[1][0].tag is None        # the first listed wins a tie
    assert biglittle_report.Groups([]).chosen_float(1) is None


def test_shifted_images_keep_their_pixels_inside_the_frame():
    torch = pytest.importorskip("torch")
    import train_binary
    images = torch.zeros(50, 784)
    images.view(50, 28, 28)[:, 10:14, 12:15] = 1.0          # a 4x3 blob away from the border
    moved = train_binary.shifted(images, 2, torch.Generator().manual_seed(0)).view(50, 28, 28)
    assert torch.equal(moved.sum(dim=(1, 2)), torch.full((50,), 12.0))
    offsets = {tuple(torch.nonzero(m)[0].tolist()) for m in moved}
    assert len(offsets) > 10 and all(8 <= r <= 12 and 10 <= c <= 14 for r, c in offsets)
