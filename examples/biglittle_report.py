"""Evaluate the Big-Little nets through the runtime and write reports/biglittle.md.

    python3 examples/biglittle_report.py --data ../shared/data/mnist \\
        --models models/biglittle /tmp/biglittle --out reports/biglittle.md

Loads every packed file examples/biglittle_train.py wrote (``little-float-K.h5``,
``little-binary-K.h5``, ``big.h5``; the first folder holding a file wins;
and binary nets of other shapes, ``little-binary-K-TAG.h5``) with
``runtime.Runtime`` -- not with the training framework -- and classifies the
10,000 MNIST test images. Per priority class K it computes, for the little
nets (K against the rest) and for the big net (its answer "K" against any
other answer), the paper's recall TP/(TP+FN), specificity TN/(TN+FP),
precision TP/(TP+FP) and F1 = 2TP/(2TP+FP+FN); for the big net also the test
error. It prints the paper's Table 3 beside ours, file sizes, per-sample
latency (median of ``classify`` calls) and the training commands and times
from the ``.json`` records beside the models. Needs no PyTorch.
"""
import argparse
import glob
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

HERE = os.path.dirname(os.path.abspath(__file__))

# De Coninck et al. (2015), Table 3, in percent.
PAPER_LITTLE = {1: (98.94, 99.92, 99.38, 99.16), 8: (96.41, 99.76, 97.71, 97.05)}
PAPER_BIG_F1 = {1: 99.16, 8: 97.02}
PAPER_BIG_ERROR = 2.11
METRICS = ("recall", "specificity", "precision", "f1")


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


def find(folders, name):
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return None


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


def evaluate(path, images, labels, count):
    """Labels of the test set through the runtime, plus size, latency and the training record."""
    from edgebnn import Runtime
    runtime = Runtime(path)
    predicted = np.array([r.label for r in runtime.classify_batch(images)])
    record = {}
    sidecar = os.path.splitext(path)[0] + ".json"
    if os.path.exists(sidecar):
        with open(sidecar) as f:
            record = json.load(f)
    return {"path": path, "bytes": os.path.getsize(path), "classes": runtime.classes,
            "predicted": predicted, "latency": latency_ms(runtime, images, count),
            "backend": runtime.backend, "record": record}


def pct(value):
    return f"{100 * value:.2f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(folders, images, labels, count, argv):
    found = {}
    for k in range(10):
        for kind in ("little-float", "little-binary"):
            path = find(folders, f"{kind}-{k}.h5")
            if path:
                found[kind, k] = evaluate(path, images, labels, count)
    smaller = {}              # (k, tag): other binary shapes, little-binary-K-TAG.h5
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "little-binary-[0-9]-*.h5"))):
            k, tag = os.path.basename(path)[len("little-binary-"):-len(".h5")].split("-", 1)
            smaller.setdefault((int(k), tag), evaluate(path, images, labels, count))
    big_path = find(folders, "big.h5")
    big = evaluate(big_path, images, labels, count) if big_path else None
    classes = sorted({k for _, k in found})

    def little(kind, k):
        e = found.get((kind, k))
        if e is None:
            return None
        assert e["classes"] == [str(k), "other"], e["classes"]
        return class_metrics(e["predicted"] == 0, labels == k)

    def big_class(k):
        return class_metrics(big["predicted"] == k, labels == k) if big else None

    out = ["# Big-Little on MNIST: the paper's Table 3 and ours", "",
           f"Generated by `python3 examples/biglittle_report.py {' '.join(argv)}` on "
           f"{platform.machine()} ({platform.python_implementation()} {platform.python_version()}, "
           f"{os.cpu_count()} cores), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
           f"All numbers come from the packed files run by `runtime.Runtime` on the "
           f"{len(labels):,} MNIST test images (not from PyTorch).", "",
           "Little nets are one-vs-all 784-1000-500-2 with classes `[K, other]`: "
           f"{dense_weight_count([784, 1000, 500, 2]):,} weights and biases "
           "(the paper prints 1,250,502, which fits 748 inputs). The big net is "
           f"784-2500-2000-1500-1000-500-10, {dense_weight_count([784, 2500, 2000, 1500, 1000, 500, 10]):,}"
           " weights and biases. Percentages; F1 = 2TP / (2TP + FP + FN).", ""]

    out += ["## Table 3, classes 1 and 8", ""]
    rows = []
    for k in (1, 8):
        rows.append([k, "paper little 784-1000-500-2"] + [f"{v:.2f}" for v in PAPER_LITTLE[k]])
        for kind in ("little-float", "little-binary"):
            m = little(kind, k)
            rows.append([k, f"ours {kind}"] + ([pct(m[x]) for x in METRICS] if m else ["not trained"] * 4))
        rows.append([k, f"paper big (test error {PAPER_BIG_ERROR}%)", "", "", "", f"{PAPER_BIG_F1[k]:.2f}"])
        m = big_class(k)
        rows.append([k, "ours big" + (f" (test error {pct(np.mean(big['predicted'] != labels))}%)"
                                      if big else "")]
                    + ([pct(m[x]) for x in METRICS] if m else ["not trained"] * 4))
    out += [table(["class", "net", "recall", "specificity", "precision", "F1"], rows), ""]

    goals = []
    for k, goal in ((1, 99.16), (8, 97.05)):
        f, b = little("little-float", k), little("little-binary", k)
        if f:
            goals.append(f"- little float, class {k}: F1 {pct(f['f1'])} vs goal >= {goal}: "
                         f"{'met' if 100 * f['f1'] >= goal else 'NOT met'}")
        if f and b:
            gap = 100 * (f["f1"] - b["f1"])
            ratio = found["little-float", k]["bytes"] / found["little-binary", k]["bytes"]
            goals.append(f"- little binary, class {k}: F1 {pct(b['f1'])}, {gap:.2f} points below float "
                         f"(goal: within 1): {'met' if gap <= 1 else 'NOT met'}; its file is "
                         f"1/{ratio:.1f} of the float one's")
    for (k, tag), e in sorted(smaller.items()):
        m, full = class_metrics(e["predicted"] == 0, labels == k), little("little-binary", k)
        if full:
            shape = "-".join(str(n) for n in e["record"].get("shape", [])) or tag
            ratio = found["little-binary", k]["bytes"] / e["bytes"]
            goals.append(f"- smaller binary {shape}, class {k}: F1 {pct(m['f1'])} vs "
                         f"{pct(full['f1'])} for 784-1000-500-2 in a file 1/{ratio:.1f} the size: "
                         f"{'the same F1 or better' if m['f1'] >= full['f1'] else 'lower'}")
    if big:
        error = 100 * np.mean(big["predicted"] != labels)
        goals.append(f"- big: test error {error:.2f}% vs goal <= 1.5%: "
                     f"{'met' if error <= 1.5 else 'NOT met'}")
    out += ["## Goals of issue 8", ""] + (goals or ["- no models found"]) + [""]

    out += ["## All trained priority classes", ""]
    rows = []
    for k in classes:
        for kind in ("little-float", "little-binary"):
            m = little(kind, k)
            if m:
                rows.append([k, kind] + [pct(m[x]) for x in METRICS])
        m = big_class(k)
        if m:
            rows.append([k, "big"] + [pct(m[x]) for x in METRICS])
    for (k, tag), e in sorted(smaller.items()):
        m = class_metrics(e["predicted"] == 0, labels == k)
        shape = "-".join(str(n) for n in e["record"].get("shape", [])) or tag
        rows.append([k, f"little-binary {shape}"] + [pct(m[x]) for x in METRICS])
    out += [table(["class", "net", "recall", "specificity", "precision", "F1"], rows), ""]
    if big:
        out += ["Big net, per-class F1 over all ten digits: "
                + ", ".join(f"{k}: {pct(big_class(k)['f1'])}" for k in range(10)), ""]

    out += ["## Files, sizes and latency", "",
            f"Latency: median wall time of {count} single `Runtime.classify` calls on test images "
            "(this machine is shared; other jobs ran at the same time).", ""]
    rows = []
    listed = [found[key] for key in sorted(found)] + [smaller[key] for key in sorted(smaller)] \
        + ([big] if big else [])
    for e in listed:
        r = e["record"]
        rows.append([f"`{e['path']}`", f"{e['bytes']:,}",
                     "-".join(str(n) for n in r.get("shape", [])) or "?",
                     f"{r['weights']:,}" if "weights" in r else "?",
                     e["backend"], f"{e['latency']:.3f}"])
    out += [table(["file", "bytes", "shape", "weights + biases", "backend", "latency (ms)"], rows), ""]

    out += ["## Training", "",
            "Commands (PyTorch CPU on this shared machine; `--threads`, default 2, is the number of "
            "PyTorch threads; other jobs shared the cores, so the times are upper bounds), epochs, "
            "the best epoch on the 10,000 validation images, and the time of the training loop:", ""]
    rows = []
    for e in listed:
        r = e["record"]
        if r:
            run = r.get("epochs_run", r["epochs"])
            rows.append([r["name"], f"`{r['command']}`",
                         f"{r['best_epoch']} of {run} run ({r['epochs']} planned)",
                         f"{r['score']} {r['validation']:.4f}", f"{r['train_images']:,}",
                         f"{r['train_seconds']:.0f} s"])
    out += [table(["net", "command", "best epoch", "validation", "train images", "time"], rows), ""]
    missing = [f"{kind}-{k}" for k in range(10) for kind in ("little-float", "little-binary")
               if (kind, k) not in found]
    if missing or not big:
        out += ["## Not trained yet", "", ", ".join(missing + ([] if big else ["big"])), ""]
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX .gz files")
    parser.add_argument("--models", nargs="+", default=["models/biglittle"],
                        help="folders with the packed files (the first holding a file wins)")
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
