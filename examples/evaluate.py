"""Test accuracy of a packed model on the 10,000 MNIST (or Fashion-MNIST) test images.

    python examples/evaluate.py --data ../shared/data/mnist models/mnist-mlp.h5
"""
import argparse
import sys
import time

import numpy as np

from edgebnn.bench import mnist
from edgebnn import Runtime


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", required=True, help="folder with the IDX .gz files")
    parser.add_argument("--backend", choices=["c", "numpy"], default=None)
    args = parser.parse_args(argv)
    images, labels = mnist.load(args.data, "test")
    for path in args.models:
        rt = Runtime(path, backend=args.backend)
        started = time.perf_counter()
        predicted = np.array([rt.classify(x).label for x in images])
        seconds = time.perf_counter() - started
        print(f"{path}: test accuracy {np.mean(predicted == labels):.4f} "
              f"({len(labels)} images, {seconds / len(labels) * 1e6:.0f} us per classify, "
              f"backend {rt.backend})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
