"""Classify the bundled sample digits with the shipped demo models.

    python -m edgebnn.demo [MODEL.h5 ...]

Prints, per model, each digit's true label, the answer, its confidence and
the time of that one ``classify`` call, then the median latency.
"""
import os
import statistics
import sys
import time

import numpy as np

from . import models
from .commands import command_parser, quiet_on_closed_pipe
from .runtime import Runtime

DEFAULT_MODELS = ["mnist-mlp.h5", "mnist-bnn.h5"]


def demo(path, images, labels):
    started = time.perf_counter()
    rt = Runtime(path)
    load_ms = (time.perf_counter() - started) * 1e3
    print(f"{os.path.basename(path)}: {os.path.getsize(path):,} bytes, "
          f"loaded in {load_ms:.1f} ms, backend {rt.backend}")
    rt.classify(images[0])                      # first call warms caches
    times, correct = [], 0
    for x, truth in zip(images, labels):
        started = time.perf_counter()
        result = rt.classify(x)
        times.append((time.perf_counter() - started) * 1e6)
        correct += result.label == truth
        print(f"  digit {truth}: answer {result.name}  confidence {result.confidence:.3f}  "
              f"entropy {result.entropy:.3f}  {times[-1]:7.1f} us")
    print(f"  {correct}/{len(labels)} right, median {statistics.median(times):.1f} us per sample\n")


@quiet_on_closed_pipe
def main(argv=None):
    parser = command_parser("edgebnn.demo", __doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"packed model files (default: the shipped {' and '.join(DEFAULT_MODELS)})")
    args = parser.parse_args(argv)
    samples = np.load(models.path("mnist-samples.npz"))
    paths = args.models or [models.path(name) for name in DEFAULT_MODELS]
    for path in paths:
        demo(path, samples["images"], samples["labels"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
