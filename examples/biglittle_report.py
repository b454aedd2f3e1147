"""Evaluate the Big-Little nets on the MNIST test set through the runtime; write reports/biglittle.md.

    python3 examples/biglittle_report.py --data DIR --models models/biglittle ROOT/biglittle \\
        --out reports/biglittle.md [--latency-samples 300]

Finds every net examples/biglittle_train.py wrote (a ``.h5`` with its
``.json`` record; the first folder holding a name wins), loads it with
``edgebnn.Runtime`` -- not with the training framework -- and classifies
the 10,000 test images once; every test figure of the report comes from
those answers. Per priority digit K it computes, for the little nets (K
against the rest) and for the big net (its answer "K" against any other
answer), the paper's recall TP/(TP+FN), specificity TN/(TN+FP), precision
TP/(TP+FP) and F1 = 2TP/(2TP+FP+FN); for the big net also the test error.
Nets trained with several seeds are summarized by the mean and the standard
deviation over the seeds, beside the seed-0 net (the one the repository
ships, or rebuilds by its recorded command). Where a digit's float net has
several recipes, the one with the highest mean validation F1 over its seeds
(from the training records, not the test set) is the one the goals judge.
Each file's SHA-256 is computed here, from the file. Needs no PyTorch.
"""
import argparse
import glob
import hashlib
import json
import os
import platform
import statistics
import sys
import time

# Latency is per sample on one core: a BLAS pool of threads on a shared
# machine turns a 0.1 ms call into tens of ms. Set before NumPy loads.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

import provenance  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# De Coninck et al. (2015), Table 3, in percent.
PAPER_LITTLE = {1: (98.94, 99.92, 99.38, 99.16), 8: (96.41, 99.76, 97.71, 97.05)}
PAPER_BIG_F1 = {1: 99.16, 8: 97.02}
PAPER_BIG_ERROR = 2.11
HEADLINE = (1, 8)
GOAL_SEEDS = 3           # issue 17 judges the float F1 goal on a mean over this many seeds
METRICS = ("recall", "specificity", "precision", "f1")
FIGURES_HEADER = ["net", "file", "seed", "recall", "specificity", "precision", "F1", "test error"]


def binary_metrics(tp, fp, fn, tn):
    """The paper's measures of one class from its confusion counts (fractions; 0 when undefined)."""
    def ratio(a, b):
        return a / b if b else 0.0
    return {"recall": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
            "precision": ratio(tp, tp + fp), "f1": ratio(2 * tp, 2 * tp + fp + fn)}


def class_metrics(positive_predicted, positive_true):
    """``binary_metrics`` from boolean arrays: predicted K, truly K."""
    p, t = np.asarray(positive_predicted, bool), np.asarray(positive_true, bool)
    return binary_metrics(int(np.sum(p & t)), int(np.sum(p & ~t)), int(np.sum(~p & t)),
                          int(np.sum(~p & ~t)))


def dense_weight_count(sizes):
    """Weights and biases of a fully connected net with layer ``sizes``."""
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def display_path(path):
    """``path`` relative to the repository when inside it (how the tests find shipped files)."""
    path = os.path.abspath(path)
    inside = os.path.commonpath([path, REPO]) == REPO
    return os.path.relpath(path, REPO) if inside else path


def find_nets(folders):
    """``{name: (path, record)}`` of every net with a ``.json`` record."""
    nets = {}
    for folder in folders:
        for sidecar in sorted(glob.glob(os.path.join(folder, "*.json"))):
            path = sidecar[:-len(".json")] + ".h5"
            with open(sidecar) as f:
                record = json.load(f)
            if os.path.exists(path) and "kind" in record:
                nets.setdefault(record["name"], (path, record))
    return nets


def test_labels(path, images):
    """The runtime's label for every test image (the one pass over the test set)."""
    from edgebnn import Runtime
    runtime = Runtime(path)
    return runtime, np.array([r.label for r in runtime.classify_batch(images)])


def latency_ms(runtime, images, count):
    """Median wall time of ``count`` single ``classify`` calls, in milliseconds."""
    for image in images[:10]:        # warm up (first calls touch fresh pages)
        runtime.classify(image)
    times = []
    for image in images[:count]:
        started = time.perf_counter()
        runtime.classify(image)
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times)


class Net:
    """One trained net: its record, its file and its answers on the test set."""

    def __init__(self, path, record, images, labels, latency_samples):
        self.path, self.record = path, record
        self.name, self.kind, self.seed = record["name"], record["kind"], record["seed"]
        self.digit, self.tag = record["digit"], record["tag"]
        runtime, self.predicted = test_labels(path, images)
        self.labels = labels
        self.bytes, self.sha256 = os.path.getsize(path), sha256(path)
        self.weight_bytes = sum(layer.weight.nbytes for layer in runtime.model.layers
                                if hasattr(layer, "weight"))
        self.backend = runtime.backend
        self.latency = latency_ms(runtime, images, latency_samples) if latency_samples else None

    @property
    def shape(self):
        return "-".join(map(str, self.record["shape"]))

    def metrics(self, digit=None):
        """The paper's measures for ``digit`` (a little net: its own)."""
        if self.kind == "big":
            return class_metrics(self.predicted == digit, self.labels == digit)
        return class_metrics(self.predicted == 0, self.labels == self.digit)

    def error(self):
        return float(np.mean(self.predicted != self.labels)) if self.kind == "big" else None


def pct(value):
    return f"{100 * value:.2f}"


def listing(values, unit=""):
    """``12.34 (mean of 3 seeds: 12.30, 12.35, 12.37)``, or the one value."""
    if len(values) == 1:
        return f"{values[0]:.2f}{unit} (one seed)"
    return (f"{np.mean(values):.2f}{unit} (mean of {len(values)} seeds: "
            f"{', '.join(f'{v:.2f}' for v in values)}{unit})")


def spread(values):
    """``mean ± std`` in percent over seeds (sample standard deviation), or the one value."""
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class Groups:
    """The nets sorted into the report's rows: seeds of one recipe together."""

    def __init__(self, nets):
        self.all = sorted(nets, key=lambda n: (n.kind == "big", n.digit or 0, n.tag or "",
                                               n.kind, n.seed))
        self.recipes = {}
        for net in self.all:
            key = (net.kind, net.digit, net.tag)
            self.recipes.setdefault(key, []).append(net)

    def seeds(self, kind, digit=None, tag=None):
        return self.recipes.get((kind, digit, tag), [])

    def variants(self, kind, digit=None):
        """``[(recipe, nets)]`` of the full-size nets of ``kind`` (the largest shape trained for
        ``digit``; the smaller ones have a section of their own): the main recipe first, then
        the paper's plain loss, then each recipe with shifted images (beyond the paper)."""
        found = [nets for (k, d, _), nets in self.recipes.items() if k == kind and d == digit]
        largest = max((nets[0].record["weights"] for nets in found), default=None)
        found = [nets for nets in found if nets[0].record["weights"] == largest]
        found.sort(key=lambda nets: (nets[0].record["shift"], nets[0].tag is not None))
        return [(recipe(nets[0].record), nets) for nets in found]

    def chosen_float(self, digit):
        """The float recipe validation chose for ``digit``: the highest mean validation F1 over
        its seeds, the first of ``variants`` on a tie (the rule fixed before the candidates
        trained, in commit 0e16424). ``(recipe, nets)``, or None without float nets."""
        found = self.variants("little-float", digit)
        return max(found, key=lambda v: mean_validation(v[1]), default=None)


def mean_validation(nets):
    return float(np.mean([n.record["validation"] for n in nets]))


def recipe(record):
    """How a full-size net was trained, in words."""
    if record["shift"]:
        return f"shifts of up to {record['shift']} pixels (beyond the paper)"
    if record["pos_weight"] in (None, 1.0):
        return "the paper's way" + (", unweighted loss" if record["pos_weight"] else "")
    return f"the paper's way, digit K weighted {record['pos_weight']:g} in the loss"


def seed_zero(nets):
    return next((n for n in nets if n.seed == 0), None)


def table3(groups):
    rows = []
    header = ["digit", "net", "seeds", "recall", "specificity", "precision", "F1",
              "F1 of seed 0"]
    for k in HEADLINE:
        rows.append([k, "paper: little 784-1000-500-2", "", *[f"{v:.2f}" for v in PAPER_LITTLE[k]], ""])
        chosen = groups.chosen_float(k)
        for kind in ("little-float", "little-binary"):
            for how, nets in groups.variants(kind, k):
                label = f"ours: {kind} {nets[0].shape}" + (f", {how}" if kind != "little-binary" else "")
                label += " **(chosen on validation)**" if chosen and nets is chosen[1] else ""
                rows.append([k, label, len(nets)]
                            + [spread([n.metrics()[m] for n in nets]) for m in METRICS]
                            + [pct(seed_zero(nets).metrics()["f1"]) if seed_zero(nets) else ""])
        rows.append([k, f"paper: big (test error {PAPER_BIG_ERROR}%)", "", "", "", "",
                     f"{PAPER_BIG_F1[k]:.2f}", ""])
        for how, nets in groups.variants("big"):
            rows.append([k, f"ours: big, {how}", len(nets)]
                            + [spread([n.metrics(k)[m] for n in nets]) for m in METRICS]
                            + [pct(seed_zero(nets).metrics(k)["f1"]) if seed_zero(nets) else ""])
    return table(header, rows)


def budgets(groups):
    """How many epochs each headline recipe ran, how often validation kept the last one (the
    budget, not validation, ending the choice), and why the little nets' budget changed."""
    nets = {kind: [n for k in HEADLINE for _, found in groups.variants(kind, k) for n in found]
            for kind in ("little-float", "little-binary")}
    nets["big"] = groups.seeds("big")
    shifted = "" if not any(n.record["shift"] for n in nets["little-float"]) else (
        " The float rows with shifts were added once the paper's-way digit-1 float mean at 12 "
        "epochs (99.10) was seen under the paper's 99.16: their recipe (the big net's "
        "random shifts, every other setting as in the paper's-way row, dropout and epoch chosen "
        "on validation the same way) was fixed before they trained, and only this report "
        "generator read their test figures.")
    unweighted = "" if not any(n.tag == "unweighted" for n in nets["little-float"]) else (
        " The unweighted float rows were planned once both of those digit-1 means (99.10 and "
        "99.14) were seen under 99.16: one change from the main recipe (the paper's plain "
        "softmax loss instead of weighing digit K by 2), and, in the same commit (0e16424) "
        "before they trained, the rule that chooses each digit's float recipe: the highest mean "
        "validation F1 over its seeds. The goal is judged on the recipe that rule chose.")
    said = "; ".join(f"{kind} {' or '.join(map(str, sorted({n.record['epochs'] for n in found})))} "
                     f"(the last one kept for {provenance.kept_last_epoch(n.record for n in found)} "
                     f"of {len(found)} nets)" for kind, found in nets.items() if found)
    return (f"Epochs run, validation keeping the best of them: {said}. In this report's previous "
            "version the little nets of digits 1 and 8 ran 6 (float) and 5 (binary) epochs, and "
            "validation kept the last one for 4 of the 6 float nets and 5 of the 6 binary ones: "
            "the budget, not validation, ended those choices, so both now run 12. The change was "
            "made knowing the previous version's test figures (digit 1's float F1 99.09 ± 0.11 "
            "against the paper's 99.16; and once the float nets ran 12 epochs, digit 8's binary "
            "nets were 1.13 points under them), which is why it is said here." + shifted
            + unweighted)


def float_choice(groups):
    """The table behind ``Groups.chosen_float``: every float recipe's validation F1."""
    rows = []
    for k in HEADLINE:
        chosen = groups.chosen_float(k)
        for how, nets in groups.variants("little-float", k):
            scores = [n.record["validation"] for n in nets]
            rows.append([k, how, len(nets), spread(scores),
                         ", ".join(f"{100 * v:.2f}" for v in scores),
                         "chosen" if nets is chosen[1] else ""])
    return table(["digit", "float recipe", "seeds", "validation F1", "per seed", ""], rows)


def goals(groups):
    """Issue 17's numbers, each with its figures and whether it is reached: the float goal on
    the recipe validation chose, the others beside it."""
    lines = []
    for k in HEADLINE:
        chosen, binaries = groups.chosen_float(k), groups.seeds("little-binary", k)
        for how, nets in groups.variants("little-float", k):
            f1 = [100 * n.metrics()["f1"] for n in nets]
            verdict = "not the recipe validation chose" if nets is not chosen[1] else \
                f"fewer than {GOAL_SEEDS} seeds, not judged" if len(nets) < GOAL_SEEDS else \
                "reached" if np.mean(f1) >= PAPER_LITTLE[k][3] else "NOT reached"
            lines.append(f"- little float, digit {k}, {how}: F1 {listing(f1)} against the "
                         f"paper's {PAPER_LITTLE[k][3]:.2f}: {verdict}")
        if chosen and binaries:
            floats = chosen[1]
            f1f = np.mean([100 * n.metrics()["f1"] for n in floats])
            f1b = [100 * n.metrics()["f1"] for n in binaries]
            gap = f1f - np.mean(f1b)
            ratio = floats[0].weight_bytes / binaries[0].weight_bytes
            lines.append(f"- little binary, digit {k}: F1 {listing(f1b)}, {abs(gap):.2f} points "
                         f"{'under' if gap > 0 else 'over'} the chosen float recipe's mean (goal: "
                         f"within 1 point: {'reached' if gap <= 1 else 'NOT reached'}), with "
                         f"1/{ratio:.1f} of its weight bytes ({binaries[0].weight_bytes:,} against "
                         f"{floats[0].weight_bytes:,}; whole files {binaries[0].bytes:,} and "
                         f"{floats[0].bytes:,} bytes)")
    bigs = groups.seeds("big")
    if bigs:
        errors = [100 * n.error() for n in bigs]
        lines.append(f"- big net trained the paper's way: test error {listing(errors, '%')} "
                     f"against the paper's {PAPER_BIG_ERROR}%: "
                     f"{'reached' if np.mean(errors) <= PAPER_BIG_ERROR else 'NOT reached'}")
    return lines or ["- no models found"]


def figures_table(groups):
    """Every net's own test figures: the rows tests/test_reports.py recomputes."""
    rows = []
    for net in groups.all:
        digits = HEADLINE if net.kind == "big" else [net.digit]
        for k in digits:
            m = net.metrics(k)
            label = f"{net.kind} {net.shape}" + (f" {net.tag}" if net.tag else "") + \
                (f", digit {k}" if net.kind == "big" else f" for {k}")
            rows.append([label, f"`{display_path(net.path)}`", net.seed]
                        + [pct(m[x]) for x in METRICS]
                        + [pct(net.error()) if net.kind == "big" else ""])
    return table(FIGURES_HEADER, rows)


def all_digits(groups):
    rows = []
    for k in range(10):
        for kind in ("little-float", "little-binary"):
            net = seed_zero(groups.seeds(kind, k))
            if net:
                rows.append([k, kind] + [pct(net.metrics()[m]) for m in METRICS])
        big = seed_zero(groups.seeds("big"))
        if big:
            rows.append([k, "big, the paper's way"] + [pct(big.metrics(k)[m]) for m in METRICS])
    return table(["digit", "net (seed 0)", "recall", "specificity", "precision", "F1"], rows)


def smaller_shapes(groups):
    lines = []
    for (kind, k, tag), nets in sorted(groups.recipes.items(), key=lambda i: str(i[0])):
        full = seed_zero(groups.seeds("little-binary", k))
        if kind != "little-binary" or not tag or not full:
            continue
        net = nets[0]
        better = net.metrics()["f1"] >= full.metrics()["f1"]
        lines.append(f"- digit {k}, binary {net.shape}: F1 {pct(net.metrics()['f1'])} against "
                     f"{pct(full.metrics()['f1'])} for {full.shape} (seed 0) with "
                     f"1/{full.weight_bytes / net.weight_bytes:.1f} of the weight bytes: "
                     f"{'the same F1 or better' if better else 'lower'}")
    return lines


def choices_table(groups):
    """What validation chose for each net, and from what."""
    rows = []
    for net in groups.all:
        r = net.record
        options = "; ".join(f"dropout {c['dropout']}: {c['validation']:.4f} (epoch {c['best_epoch']})"
                            for c in r["candidates"])
        rows.append([net.name, r["score"], options, f"dropout {r['dropout']}, "
                     f"epoch {r['best_epoch']} of {r['epochs']}", f"{r['validation']:.4f}"])
    return table(["net", "validation score", "candidates: best validation score (epoch)",
                  "chosen", "validation"], rows)


def files_table(groups):
    rows = []
    for net in groups.all:
        shipped = display_path(net.path).startswith("models" + os.sep)
        rows.append([f"`{display_path(net.path)}`", "shipped" if shipped else "rebuilt",
                     net.shape, f"{net.bytes:,}", f"{net.weight_bytes:,}", net.sha256,
                     net.backend, "" if net.latency is None else f"{net.latency:.3f}"])
    return table(["file", "in the repository", "shape", "bytes", "weight bytes", "SHA-256",
                  "backend", "latency (ms)"], rows)


def commands_table(groups):
    rows = [[net.name, f"`{net.record['command']}`", f"{net.record['train_seconds']:.0f} s"]
            for net in groups.all]
    return table(["net", "command", "training time"], rows)


def report(folders, images, labels, latency_samples, argv):
    nets = find_nets(folders)
    groups = Groups(Net(path, record, images, labels, latency_samples)
                    for path, record in nets.values())
    out = ["# Big-Little on MNIST: the paper's Table 3 and ours", "",
           f"Generated by `python3 examples/biglittle_report.py {' '.join(argv)}` on "
           f"{platform.machine()} ({platform.python_implementation()} {platform.python_version()}, "
           f"{os.cpu_count()} cores), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
           "**How the figures were made.** Every choice -- the epoch, the dropout rate of the "
           "float nets -- was made on the paper's split of the training set: the first 50,000 "
           "images train, the last 10,000 validate (`examples/biglittle_train.py`, which never "
           "reads the test set). The 10,000 test images are read by this report generator only, "
           "once per final net: each packed file is run by `edgebnn.Runtime` (not by PyTorch) "
           "and every test figure below comes from those answers. Training is deterministic for "
           "a seed on a given machine (one PyTorch thread, deterministic algorithms, seeded data "
           "order): each net's recorded command rebuilds its file byte for byte, which its "
           "SHA-256 below checks. Where several seeds were trained, figures are the mean ± "
           "standard deviation over the seeds (n - 1 in the denominator), beside the seed-0 net.",
           "",
           "Little nets are one-vs-all 784-1000-500-2 with classes `[K, other]`: "
           f"{dense_weight_count([784, 1000, 500, 2]):,} weights and biases "
           "(the paper prints 1,250,502, which fits 748 inputs). The big net is "
           f"784-2500-2000-1500-1000-500-10, {dense_weight_count([784, 2500, 2000, 1500, 1000, 500, 10]):,}"
           " weights and biases. Percentages; F1 = 2TP / (2TP + FP + FN).", ""]
    out += ["## Table 3, digits 1 and 8", "",
            "\"The paper's way\" for the big net: its shape, no augmentation (dropout 0.2 after each "
            "hidden layer, our choice, fixed before training). Rows marked \"beyond the paper\" "
            "use training the paper did not (random shifts of the training images). "
            + budgets(groups), "", table3(groups), ""]
    out += ["## Which float recipe validation chose", "",
            "Per digit, the float recipe with the highest mean validation F1 over its seeds "
            "(the last 10,000 training images; each net's own choice of dropout and epoch, below). "
            "Only its test figures count for the goal; the others stay in Table 3 beside it.", "",
            float_choice(groups), ""]
    out += ["## Goals of issue 17", ""] + goals(groups) + [""]
    bigs = [(how, n) for how, nets in groups.variants("big") for n in nets]
    if bigs:
        out += ["## Big net", "", table(
            ["net", "seed", "recipe", "validation accuracy (epoch)", "test error"],
            [[n.name, n.seed, how,
              f"{n.record['validation']:.4f} ({n.record['best_epoch']} of {n.record['epochs']})",
              f"{pct(n.error())}%"] for how, n in bigs]), ""]
    out += ["## Every digit (seed 0)", "", all_digits(groups), ""]
    smaller = smaller_shapes(groups)
    if smaller:
        out += ["## Smaller binary shapes", ""] + smaller + [""]
    out += ["## Test figures of every net", "",
            "Each net's own figures on the 10,000 test images (the tables above summarize "
            "these); `tests/test_reports.py` recomputes the rows of the shipped files.", "",
            figures_table(groups), ""]
    out += ["## What validation chose", "",
            "Each float little net trains once per dropout rate from the same seed; the best "
            "validation score (over the epochs of each) picks the rate and the epoch.", "",
            choices_table(groups), ""]
    out += ["## Files", "",
            "\"Shipped\" files are in the repository; \"rebuilt\" ones are made by their command "
            "(`python3 examples/reproduce.py check --data DIR --root EMPTY_DIR --report "
            "reports/biglittle.md --only NAME...` retrains them and compares the SHA-256). "
            f"Latency: median wall time of {latency_samples} single `Runtime.classify` calls on "
            "test images (a shared machine; other jobs ran at the same time).", "",
            files_table(groups), ""]
    out += ["## Training commands", "",
            "One PyTorch thread each, at the lowest priority, two at a time on a 2-core machine "
            "shared with other jobs (so the times are upper bounds). `examples/reproduce.py` runs "
            "them all as one queue.", "", commands_table(groups), ""]
    out += provenance.trained_on({net.name: net.record for net in groups.all}) + [""]
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX .gz files")
    parser.add_argument("--models", nargs="+", default=["models/biglittle"],
                        help="folders with the packed files (the first holding a name wins)")
    parser.add_argument("--out", default="reports/biglittle.md")
    parser.add_argument("--latency-samples", type=int, default=300)
    args = parser.parse_args(argv)
    sys.path.insert(0, HERE)
    from edgebnn.bench import mnist
    images, labels = mnist.load(args.data, "test")
    text = report(args.models, images, labels, args.latency_samples,
                  argv if argv is not None else sys.argv[1:])
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
