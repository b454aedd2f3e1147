"""Choose the thresholds of trained DDNN files again on validation after a change of
examples/ddnn_eval.py's rules, without retraining.

    python3 examples/ddnn_rechoose.py --data DIR models/ddnn/*.h5 models/ddnn/pairings/*.h5

Each file gets the thresholds examples/ddnn_train.py now chooses (its
weights are untouched, and loading and saving a DDNN file gives the same
bytes), and its record's ``validation`` entry is replaced: the recorded
training command still rebuilds the file byte for byte.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ddnn_train import select  # noqa: E402
from edgebnn import load_ddnn, save_ddnn  # noqa: E402
from edgebnn.bench import mnist  # noqa: E402


def rechoose(path, images, labels):
    """Write the thresholds chosen on ``images`` into ``path`` and its record; return the file's
    local T before and after."""
    record_path = os.path.splitext(path)[0] + ".json"
    with open(record_path) as f:
        record = json.load(f)
    ddnn = load_ddnn(path)
    before = ddnn.local_threshold
    record["validation"] = select(ddnn, images[:record["validation_images"]],
                                  labels[:record["validation_images"]])
    save_ddnn(ddnn, path)
    with open(record_path, "w") as f:
        json.dump(record, f, indent=1)
    return before, ddnn.local_threshold


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST *-ubyte.gz files")
    parser.add_argument("files", nargs="+", help="DDNN files with a .json record beside each")
    args = parser.parse_args(argv)
    _, (images, labels) = mnist.train_validation(args.data)
    for path in args.files:
        before, after = rechoose(path, images, labels)
        print(f"{path}: T {before:.2f} -> {after:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
