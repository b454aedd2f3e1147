"""Reproduce the DDNN paper's experiments on multi-view MNIST; write reports/ddnn.md.

    python3 examples/ddnn_reproduce.py --data ../shared/data/mnist [--models models/ddnn]
        [--out reports/ddnn.md] [--threshold 0.8]

Reads the DDNN files ``LOCAL-CLOUD.h5`` in ``--models`` (written by
examples/ddnn_train.py; ``max-concat.h5``, the paper's best pairing, is the
main model) and evaluates them through the runtime on the 10,000 MNIST test
digits seen by the six devices of examples/multiview.py:

- the local exit's threshold sweep, T from 0 to 1: share of samples exiting
  locally, overall accuracy, bytes the devices send per sample;
- each aggregation pairing's local and cloud accuracy;
- devices added one at a time (weakest first) and each device removed.

Each sample's devices run once; its local and cloud answers for a set of
present devices come from ``DDNN.local_logits`` / ``cloud_logits``, and a
threshold only picks between them, which is what ``DDNN.decide`` does (the
script checks that on the first samples).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from runtime.ddnn import SCORE_BYTES, load_ddnn  # noqa: E402
from runtime.exits import summarize  # noqa: E402
import mnist  # noqa: E402
import multiview  # noqa: E402

THRESHOLDS = [round(t, 2) for t in np.linspace(0.0, 1.0, 21)]
MAIN = "max-concat"


class Answers:
    """Per sample, for one set of present devices: local label and entropy, cloud label."""

    def __init__(self, ddnn, outputs, labels, present):
        self.ddnn, self.labels, self.present = ddnn, labels, list(present)
        local, entropy, cloud = [], [], []
        for sample in outputs:
            scores = [o.scores if p else None for o, p in zip(sample, self.present)]
            maps = [o.features if p else None for o, p in zip(sample, self.present)]
            label, _, eta = summarize(ddnn.local_logits(scores))
            local.append(label)
            entropy.append(eta)
            cloud.append(int(np.argmax(ddnn.cloud_logits(maps))))
        self.local, self.entropy, self.cloud = map(np.array, (local, entropy, cloud))

    def at(self, threshold):
        """``(local exit share, overall accuracy, bytes per sample)`` at threshold T."""
        exits = self.entropy < threshold
        predicted = np.where(exits, self.local, self.cloud)
        devices = sum(self.present)
        up = devices * SCORE_BYTES * len(self.ddnn.classes)
        maps = devices * self.ddnn.devices[0].feature_bytes
        return exits.mean(), (predicted == self.labels).mean(), up + maps * (1 - exits.mean())

    def local_accuracy(self):
        return (self.local == self.labels).mean()

    def cloud_accuracy(self):
        return (self.cloud == self.labels).mean()


def device_outputs(ddnn, views):
    """Every device's ``DeviceOutput`` for every sample: ``[sample][device]``."""
    return [ddnn.run_devices(list(views[:, i])) for i in range(views.shape[1])]


def check_against_decide(ddnn, outputs, answers, count=200):
    """The table's shortcut must give ``DDNN.decide``'s answers."""
    for i, sample in enumerate(outputs[:count]):
        for threshold in (0.0, 0.5, 0.8, 1.0):
            result = ddnn.decide([o.scores for o in sample], threshold, [o.features for o in sample])
            expected = answers.local[i] if answers.entropy[i] < threshold else answers.cloud[i]
            assert result.label == expected, (i, threshold)


def pct(value):
    return f"{100 * value:.2f}%"


def sweep_table(answers, cloud_bytes):
    rows = ["| T | local exits | overall accuracy | bytes sent per sample | vs. all maps up |",
            "| ---: | ---: | ---: | ---: | ---: |"]
    for t in THRESHOLDS:
        share, accuracy, sent = answers.at(t)
        rows.append(f"| {t:.2f} | {pct(share)} | {pct(accuracy)} | {sent:.0f} | "
                    f"{sent / cloud_bytes:.2f}x |")
    return rows


def best_threshold(answers):
    """The threshold with the most local exits whose accuracy is within 1 point of cloud-only."""
    cloud_only = answers.at(0.0)[1]
    good = [(answers.at(t)[0], t) for t in THRESHOLDS if answers.at(t)[1] >= cloud_only - 0.01]
    return max(good)[1] if good else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", default="models/ddnn")
    parser.add_argument("--out", default="reports/ddnn.md")
    parser.add_argument("--threshold", type=float, help="T for the device tables (default: the "
                        "sweep's best, see best_threshold)")
    parser.add_argument("--test", type=int, default=10_000, help="test digits used")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    images, labels = mnist.load(args.data, "test")
    images, labels = images[:args.test], labels[:args.test]
    views = multiview.make_views(images, "test")
    configs = sorted(f[:-3] for f in os.listdir(args.models) if f.endswith(".h5"))
    if MAIN not in configs:
        parser.exit(2, f"error: {args.models}/{MAIN}.h5 missing; train it with examples/ddnn_train.py\n")
    report = ["# DDNN on multi-view MNIST", "",
              "Generated by", "", "```sh",
              f"python3 examples/ddnn_reproduce.py --data DIR --models {args.models}"
              + ("" if args.threshold is None else f" --threshold {args.threshold}")
              + ("" if args.test == 10_000 else f" --test {args.test}"), "```", ""]
    report += data_section(images, labels, views)
    ddnn = load_ddnn(os.path.join(args.models, f"{MAIN}.h5"))
    outputs = device_outputs(ddnn, views)
    everyone = Answers(ddnn, outputs, labels, [True] * len(ddnn.devices))
    check_against_decide(ddnn, outputs, everyone)
    threshold = args.threshold if args.threshold is not None else best_threshold(everyone) or 0.8
    report += main_sections(ddnn, outputs, labels, everyone, threshold)
    report += comparison_section(args.models, configs, views, labels, threshold, outputs, ddnn)
    report += [f"Evaluated in {time.perf_counter() - started:.0f} s (backend {ddnn.cloud.backend}).", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(report))
    print("\n".join(report))


def data_section(images, labels, views):
    rows = ["## Data", "",
            f"The first {len(labels)} MNIST test digits, each seen by six devices "
            "(examples/multiview.py): " + "; ".join(f"{i}: {name}" for i, name in
                                                    enumerate(multiview.VIEWS)) + ".", ""]
    return rows


def main_sections(ddnn, outputs, labels, everyone, threshold):
    n_devices = len(ddnn.devices)
    cloud_bytes = everyone.at(0.0)[2]
    raw_bytes = n_devices * 28 * 28
    best = best_threshold(everyone)
    rows = ["## Main model: max pooling locally, concatenation in the cloud", "",
            f"Devices send {SCORE_BYTES * len(ddnn.classes)} bytes of class scores each, plus "
            f"{ddnn.devices[0].feature_bytes} bytes of packed feature map "
            f"({'x'.join(map(str, ddnn.feature_shape))} signs) when a sample goes up. "
            f"Sending every sample up costs {cloud_bytes:.0f} bytes; sending the raw views, "
            f"{raw_bytes}.", "",
            f"Local exit alone (T = 1): {pct(everyone.local_accuracy())}; cloud alone (T = 0): "
            f"{pct(everyone.cloud_accuracy())}.", "",
            "### Threshold sweep (local exit)", ""]
    rows += sweep_table(everyone, cloud_bytes)
    if best is None:
        rows += ["", "No threshold keeps the accuracy within 1 point of cloud-only.", ""]
    else:
        share, accuracy, sent = everyone.at(best)
        rows += ["", f"Most local exits within 1 point of cloud-only: T = {best:.2f}, "
                     f"{pct(share)} local exits, {pct(accuracy)} overall, {sent:.0f} bytes per sample "
                     f"({cloud_bytes / sent:.1f}x less than sending every map up).", ""]
    share, accuracy, _ = everyone.at(0.8)
    rows += [f"The paper's anchor, T = 0.8: 60.82% local exits at 97% overall. Here T = 0.8 lets "
             f"{pct(share)} exit locally at {pct(accuracy)} overall: the normalized entropy of "
             f"this model's local scores runs {'lower' if share > 0.6082 else 'higher'} than the "
             f"paper's, so the same share of local exits comes at a "
             f"{'lower' if share > 0.6082 else 'higher'} T; the accuracy gap to the paper is that "
             f"of the cloud "
             f"({pct(everyone.cloud_accuracy())} here, a small binary network trained for 6 "
             f"epochs on a harder, synthetic multi-view set).", ""]
    removed = device_sections(ddnn, outputs, labels, threshold, rows)
    full = everyone.at(threshold)[1]
    rows += ["### Against the issue's goals", "",
             "- >= 60% local exits within 1 point of cloud-only: "
             + ("no threshold stays within 1 point" if best is None else
                f"T = {best:.2f} gives {pct(everyone.at(best)[0])} local exits "
                + ("(met)" if everyone.at(best)[0] >= 0.6 else "(not met)")),
             f"- one device missing (T = {threshold:.2f}): overall accuracy drops by at most "
             f"{100 * (full - min(a.at(threshold)[1] for a in removed)):.2f} points; cloud-only "
             f"by at most {100 * (everyone.cloud_accuracy() - min(a.cloud_accuracy() for a in removed)):.2f}",
             ""]
    return rows


def device_sections(ddnn, outputs, labels, threshold, rows):
    """Append the per-device tables to ``rows``; return the answers with each device removed."""
    n = len(ddnn.devices)
    alone = [Answers(ddnn, outputs, labels, [d == i for d in range(n)]) for i in range(n)]
    order = sorted(range(n), key=lambda i: alone[i].local_accuracy())
    rows += ["### Each device alone", "",
            "| device | view | its exit | cloud on its map only |", "| ---: | --- | ---: | ---: |"]
    rows += [f"| {i} | {multiview.VIEWS[i]} | {pct(a.local_accuracy())} | {pct(a.cloud_accuracy())} |"
             for i, a in enumerate(alone)]
    rows += ["", f"### Devices added one at a time, weakest first (T = {threshold:.2f})", "",
             "| devices present | local exit acc. | cloud acc. | local exits | overall |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for k in range(1, n + 1):
        chosen = order[:k]
        answers = Answers(ddnn, outputs, labels, [d in chosen for d in range(n)])
        share, accuracy, _ = answers.at(threshold)
        rows.append(f"| {', '.join(map(str, chosen))} | {pct(answers.local_accuracy())} | "
                    f"{pct(answers.cloud_accuracy())} | {pct(share)} | {pct(accuracy)} |")
    rows += ["", f"### Each device removed (T = {threshold:.2f})", "",
             "| missing | local exit acc. | cloud acc. | local exits | overall |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    removed = [Answers(ddnn, outputs, labels, [d != i for d in range(n)]) for i in range(n)]
    for i, answers in enumerate(removed):
        share, accuracy, _ = answers.at(threshold)
        rows.append(f"| {i} ({multiview.VIEWS[i]}) | {pct(answers.local_accuracy())} | "
                    f"{pct(answers.cloud_accuracy())} | {pct(share)} | {pct(accuracy)} |")
    rows.append("")
    return removed


def comparison_section(folder, configs, views, labels, threshold, main_outputs, main_ddnn):
    rows = ["## Aggregation comparison", "",
            "Each pairing trained separately, jointly over both exits (loss = local + cloud "
            "cross entropy): the main model for 6 epochs on the first 50,000 training digits, "
            "the others for 3 epochs on the first 10,000 (the CPU was shared); `max-concat-10k` is "
            "the main "
            "pairing trained like the others, for a fair comparison:", "", "```sh",
            "python3 examples/ddnn_train.py --data DIR --out models/ddnn/max-concat.h5 "
            "--local max --cloud concat --epochs 6 --train 50000",
            "python3 examples/ddnn_train.py --data DIR --out models/ddnn/LOCAL-CLOUD.h5 "
            "--local LOCAL --cloud CLOUD --epochs 3 --train 10000", "```", "",
            f"| file | local | cloud | local exit acc. | cloud acc. | local exits (T = {threshold:.2f}) "
            "| overall |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for config in configs:
        ddnn = load_ddnn(os.path.join(folder, f"{config}.h5"))
        outputs = main_outputs if config == MAIN else device_outputs(ddnn, views)
        answers = Answers(ddnn, outputs, labels, [True] * len(ddnn.devices))
        share, accuracy, _ = answers.at(threshold)
        rows.append(f"| {config} | {ddnn.local_aggregate} | {ddnn.cloud_aggregate} | "
                    f"{pct(answers.local_accuracy())} | {pct(answers.cloud_accuracy())} | "
                    f"{pct(share)} | {pct(accuracy)} |")
    return rows + [""]


if __name__ == "__main__":
    main()
