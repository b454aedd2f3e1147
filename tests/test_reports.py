"""The generated reports against the shipped models: every shipped file is listed with its
SHA-256, and the figures of the small ones, recomputed here from the MNIST test set, equal
the report's tables. Regenerate the reports after changing a model (docs/big-little.md,
docs/ddnn.md and docs/budget.md give the commands)."""
import functools
import glob
import hashlib
import os
import re

import numpy as np
import pytest

import biglittle_report  # noqa: E402  (examples/ is on the path: see conftest.py)
from edgebnn import Runtime
from edgebnn.kernels import c_available, get_kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(name):
    with open(os.path.join(ROOT, "reports", name), encoding="utf-8") as f:
        return f.read()


def table_after(text, heading):
    """The cells of the first table after ``heading``: one dict per row, by column name."""
    assert heading in text, f"the report has no section {heading!r}"
    lines = [line for line in text.split(heading, 1)[1].splitlines()[1:]]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row)) for row in body]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def listed_files(text, heading="## Files"):
    """``{repository path: SHA-256}`` of the report's table of files."""
    return {row["file"].strip("`"): row["SHA-256"] for row in table_after(text, heading)}


def shipped(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


@pytest.mark.parametrize("report, pattern", [("biglittle.md", "models/biglittle/*.h5"),
                                             ("ddnn.md", "models/ddnn/**/*.h5")])
def test_report_lists_every_shipped_file_with_its_digest(report, pattern):
    listed = listed_files(read(report))
    files = shipped(pattern)
    assert files, f"no {pattern} in the repository"
    for path in files:
        assert path in listed, f"{path} is shipped but {report} does not list it"
        assert sha256(os.path.join(ROOT, path)) == listed[path], \
            f"{path} differs from the file {report} was made from: regenerate the report"


def needs_c_kernel():
    # The figures do not depend on the backend (the twins agree bit for bit, see
    # test_kernels.py); the NumPy twin takes minutes for the binary nets, so the
    # answers are computed once, on the C kernel, for both parametrizations.
    if not c_available():
        pytest.skip("recomputing the binary nets on 10,000 images needs the C kernel "
                    "(the NumPy twin takes minutes)")


@functools.lru_cache(maxsize=None)
def runtime_labels(path, data):
    from edgebnn.bench import mnist
    images, _ = mnist.load(data, "test")
    runtime = Runtime(os.path.join(ROOT, path), backend="c")
    return np.array([r.label for r in runtime.classify_batch(images)])


def test_biglittle_figures_of_the_shipped_nets_match_the_report(mnist_dir):
    needs_c_kernel()
    from edgebnn.bench import mnist
    _, labels = mnist.load(mnist_dir, "test")
    rows = [r for r in table_after(read("biglittle.md"), "## Test figures of every net")
            if r["file"].strip("`").startswith("models/")]
    checked = {r["file"].strip("`") for r in rows}
    for name in ("little-float-1", "little-float-8", "little-binary-1", "little-binary-8"):
        assert f"models/biglittle/{name}.h5" in checked, f"the report has no row for {name}"
    for row in rows:
        digit = int(row["net"].rsplit(" ", 1)[1])
        predicted = runtime_labels(row["file"].strip("`"), mnist_dir)
        m = biglittle_report.class_metrics(predicted == 0, labels == digit)
        got = [biglittle_report.pct(m[key]) for key in biglittle_report.METRICS]
        assert got == [row[c] for c in ("recall", "specificity", "precision", "F1")], row["file"]


@functools.lru_cache(maxsize=None)
def spot_check(path, n, data):
    """The report's spot-check figures of a shipped DDNN, recomputed (on the C kernel)."""
    import ddnn_eval
    import ddnn_reproduce
    from edgebnn.bench import mnist
    import multiview
    from edgebnn import load_ddnn
    images, labels = mnist.load(data, "test")
    views = multiview.make_views(images, "test")[:, :n]      # the report's views of the digits
    ddnn = load_ddnn(os.path.join(ROOT, path), kernels=get_kernels("c"))
    answers = ddnn_eval.Answers(ddnn, ddnn_eval.device_outputs(ddnn, views), labels[:n],
                                [True] * len(ddnn.devices))
    share, overall, _ = answers.at(ddnn.local_threshold)
    return {"T": f"{ddnn.local_threshold:.2f}"} | dict(zip(
        ["local exit", "cloud exit", "local exits", "overall"],
        [ddnn_reproduce.pct(v) for v in (answers.local_accuracy(), answers.cloud_accuracy(), share, overall)]))


def test_ddnn_spot_check_of_the_shipped_model_matches_the_report(mnist_dir):
    needs_c_kernel()
    text = read("ddnn.md")
    row, = table_after(text, "## Spot check")
    path = re.search(r"The shipped `(models/ddnn/[\w./-]+\.h5)`", text).group(1)
    expected = spot_check(path, int(row["digits"]), mnist_dir)
    assert {key: row[key] for key in expected} == expected
