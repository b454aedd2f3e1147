"""Train the Big-Little nets on MNIST with PyTorch, then convert and pack them.

    python3 examples/biglittle_train.py --data ../shared/data/mnist --kind little-float \\
        --classes 1,8 --out-dir models/biglittle [--epochs 10] [--limit N] [--seed 0]
    python3 examples/biglittle_train.py --data ../shared/data/mnist --kind little-binary --classes 1,8
    python3 examples/biglittle_train.py --data ../shared/data/mnist --kind big --out-dir /tmp/biglittle

Kinds (De Coninck et al., 2015, and binary twins of the little nets):

- ``little-float``: one-vs-all 784-1000-500-2 (Linear + ReLU hidden layers)
  per priority class K, classes ``[K, "other"]``; writes ``little-float-K.h5``;
- ``little-binary``: the same shape binarized (BinaryLinear + BatchNorm + Sign
  hidden layers, BinaryLinear + BatchNorm scores); writes ``little-binary-K.h5``;
- ``big``: the float 784-2500-2000-1500-1000-500-10 over all ten digits;
  writes ``big.h5``.

Training uses the paper's split (examples/mnist.py: the first 50,000 training
images train, the last 10,000 validate) and examples/train_binary.py's loop
(Adam, decaying rate, seeded shuffles); the epoch with the best validation
score (F1 of class K for a little net, accuracy for the big one) is kept,
converted with edgebnn.converters.pytorch.convert and evaluated once on the test set
through the runtime. One-vs-all classes are imbalanced (about 1 in 10 is K),
so the cross entropy weighs class K by ``--pos-weight``. Beside each model a
``.json`` records the command, the epochs and the training time, which
examples/biglittle_report.py puts in the report.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from edgebnn.bench import mnist  # noqa: E402
import train_binary  # noqa: E402
from biglittle_report import binary_metrics  # noqa: E402
from edgebnn.converters.binary_layers import BinaryLinear, Sign  # noqa: E402
from edgebnn.converters.pytorch import convert  # noqa: E402
from edgebnn import Runtime, save_model  # noqa: E402

KINDS = ("little-float", "little-binary", "big")
DEFAULT_HIDDEN = {"little-float": "1000,500", "little-binary": "1000,500",
                  "big": "2500,2000,1500,1000,500"}
DEFAULT_RATE = {"little-float": 0.001, "little-binary": 0.003, "big": 0.0005}


def build(kind, hidden, outputs, dropout=0.0):
    """The ``nn.Sequential`` of ``kind`` with ``hidden`` layer sizes and ``outputs`` scores.

    ``dropout`` (float nets only) follows each hidden ReLU while training; the
    converter drops it (a no-op at inference).
    """
    sizes = [784] + list(hidden)
    layers = [nn.Flatten()]
    if kind == "little-binary":
        for n_in, n_out in zip(sizes, sizes[1:]):
            layers += [BinaryLinear(n_in, n_out), nn.BatchNorm1d(n_out), Sign()]
        layers += [BinaryLinear(sizes[-1], outputs), nn.BatchNorm1d(outputs)]
    else:
        for n_in, n_out in zip(sizes, sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        layers += [nn.Linear(sizes[-1], outputs)]
    return nn.Sequential(*layers)


def weight_count(net):
    return sum(p.numel() for p in net.parameters())


def one_vs_all(labels, k):
    """Targets of a little net for class ``k``: 0 = ``k``, 1 = "other"."""
    return (labels != k).astype(np.int64)


def predict(net, x, batch=1000):
    net.eval()
    with torch.no_grad():
        return torch.cat([net(x[i:i + batch]).argmax(dim=1) for i in range(0, len(x), batch)]).numpy()


def confusion(predicted, truth):
    """``(TP, FP, FN, TN)`` for the positive label 0 (the priority class)."""
    p, t = predicted == 0, truth == 0
    return (int(np.sum(p & t)), int(np.sum(p & ~t)), int(np.sum(~p & t)), int(np.sum(~p & ~t)))


def f1_score(net, x, y):
    """The validation score of a little net: F1 of its priority class (label 0)."""
    return binary_metrics(*confusion(predict(net, x), y.numpy()))["f1"]


def train_one(args, kind, k, data, out_dir, command):
    """Train, convert, save and test one net; returns the path of its packed file."""
    (x, y), (x_val, y_val), (x_test, y_test) = data
    hidden = [int(n) for n in args.hidden.split(",")]
    if kind == "big":
        classes, name = [str(d) for d in range(10)], "big"
        loss_fn, score, score_name = None, train_binary.accuracy, "validation accuracy"
    else:
        classes, name = [str(k), "other"], f"{kind}-{k}"
        y, y_val, y_test = (one_vs_all(v, k) for v in (y, y_val, y_test))
        loss_fn = nn.CrossEntropyLoss(weight=torch.tensor([args.pos_weight, 1.0]))
        score, score_name = f1_score, f"validation F1({k})"
    name += f"-{args.tag}" if args.tag else ""
    torch.manual_seed(args.seed)
    net = build(kind, hidden, len(classes), args.dropout)
    print(f"{name}: {'-'.join(str(n) for n in [784] + hidden + [len(classes)])}, "
          f"{weight_count(net):,} weights and biases, {len(x)} training images", flush=True)
    tx, ty = train_binary.as_tensors(x, y)
    vx, vy = train_binary.as_tensors(x_val, y_val)
    log_lines = []

    def log(line):
        log_lines.append(line)
        print(line, flush=True)

    started = time.perf_counter()
    best, state, epoch = train_binary.train(
        net, tx, ty, vx, vy, args.epochs, args.batch, args.rate or DEFAULT_RATE[kind], args.seed,
        loss_fn=loss_fn, score=score, score_name=score_name,
        log=log, time_limit=60 * args.max_minutes if args.max_minutes else None, shift=args.shift)
    seconds = time.perf_counter() - started
    epochs_run = len([line for line in log_lines if line.startswith("epoch ")])
    print(f"{name}: best {score_name} {best:.4f} (epoch {epoch}) in {seconds:.0f} s", flush=True)

    net.load_state_dict(state)
    model = convert(net.eval(), input_shape=(28, 28), input_dtype="uint8", input_scale=1 / 255,
                    classes=classes)
    path = os.path.join(out_dir, f"{name}.h5")
    save_model(model, path)
    labels = np.array([r.label for r in Runtime(path).classify_batch(x_test)])
    if kind == "big":
        test = f"test error {100 * np.mean(labels != y_test):.2f}%"
    else:
        m = binary_metrics(*confusion(labels, y_test))
        test = "test " + ", ".join(f"{key} {100 * m[key]:.2f}"
                                   for key in ("recall", "specificity", "precision", "f1"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes); through the runtime: {test}", flush=True)
    record = {"name": name, "kind": kind, "class": k, "shape": [784] + hidden + [len(classes)],
              "weights": weight_count(net), "epochs": args.epochs, "epochs_run": epochs_run,
              "best_epoch": epoch,
              "validation": best, "score": score_name, "train_seconds": round(seconds, 1),
              "train_images": len(x), "seed": args.seed, "pos_weight": args.pos_weight,
              "dropout": args.dropout, "shift": args.shift, "command": command}
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=1)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX .gz files")
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--classes", default="1,8", help="priority classes (little nets)")
    parser.add_argument("--out-dir", default="models/biglittle")
    parser.add_argument("--hidden", help="hidden layer sizes (default: the paper's)")
    parser.add_argument("--tag", help="appended to the file names, e.g. 'small' for little-binary-K-small.h5")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rate", type=float, help="initial Adam learning rate")
    parser.add_argument("--pos-weight", type=float, default=2.0,
                        help="loss weight of the priority class in a one-vs-all net")
    parser.add_argument("--dropout", type=float, help="dropout after hidden ReLUs, float nets "
                        "(default: 0.2 for big, 0 for little)")
    parser.add_argument("--shift", type=int, default=0,
                        help="move each training image by a random offset of up to N pixels")
    parser.add_argument("--max-minutes", type=float,
                        help="start no new epoch after this long (keeps the best epoch so far)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    args.hidden = args.hidden or DEFAULT_HIDDEN[args.kind]
    if args.dropout is None:
        args.dropout = 0.2 if args.kind == "big" else 0.0
    command = "python3 examples/biglittle_train.py " + " ".join(argv if argv is not None else sys.argv[1:])

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    (x, y), validation = mnist.train_validation(args.data)
    data = ((x[:args.limit], y[:args.limit]), validation, mnist.load(args.data, "test"))
    os.makedirs(args.out_dir, exist_ok=True)
    targets = [None] if args.kind == "big" else [int(k) for k in args.classes.split(",")]
    for k in targets:
        train_one(args, args.kind, k, data, args.out_dir, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
