"""Train one Big-Little net on MNIST with PyTorch, choosing on validation data only.

    python3 examples/biglittle_train.py --data DIR --kind little-float --digit 1 --seed 0 \
        --out-dir models/biglittle [--epochs 10] [--dropout 0,0.2]
    python3 examples/biglittle_train.py --data DIR --kind little-binary --digit 8 --seed 1
    python3 examples/biglittle_train.py --data DIR --kind big --seed 0 --out-dir /tmp/biglittle

Kinds (De Coninck et al., 2015, and binary twins of the little nets):

- ``little-float``: one-vs-all 784-1000-500-2 (Linear + ReLU hidden layers)
  for the priority digit K, classes ``[K, "other"]``;
- ``little-binary``: the same shape binarized (BinaryLinear + BatchNorm + Sign
  hidden layers, BinaryLinear + BatchNorm scores);
- ``big``: the float 784-2500-2000-1500-1000-500-10 over all ten digits.

The file is ``KIND-K.h5`` (``big.h5``), with ``-TAG`` when ``--tag`` is given
and ``-sSEED`` for seeds other than 0, and beside it a ``.json`` record.

Every choice is made on the paper's split of the training set
(examples/mnist.py: the first 50,000 images train, the last 10,000
validate); this script never reads the test set, which
examples/biglittle_report.py reads once per final model. Choices: the epoch
(the best validation score of the ``--epochs`` run: F1 of digit K for a
little net, accuracy for the big one) and, when ``--dropout`` lists several
rates, the rate (each trained in full from the same seed; the best
validation score wins, the first listed on a tie). The record keeps every
candidate's per-epoch validation scores, so the choice can be checked.

One PyTorch thread, deterministic algorithms and a seeded data order make a
run repeatable bit for bit on a given machine: the same command writes the
same file. One-vs-all classes are imbalanced (about 1 in 10 is K), so the
cross entropy weighs class K by ``--pos-weight``.
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
import provenance  # noqa: E402
import train_binary  # noqa: E402
from biglittle_report import binary_metrics  # noqa: E402
from edgebnn.converters.binary_layers import BinaryLinear, Sign  # noqa: E402
from edgebnn.converters.pytorch import convert  # noqa: E402
from edgebnn import save_model  # noqa: E402

KINDS = ("little-float", "little-binary", "big")
DEFAULT_HIDDEN = {"little-float": "1000,500", "little-binary": "1000,500",
                  "big": "2500,2000,1500,1000,500"}
DEFAULT_RATE = {"little-float": 0.001, "little-binary": 0.003, "big": 0.0005}
DEFAULT_DROPOUT = {"little-float": "0,0.2", "little-binary": "0", "big": "0.2"}


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


def model_name(kind, digit, tag=None, seed=0):
    """The file stem of a net: ``little-float-1``, ``little-binary-8-small-s2``, ``big-s1``."""
    name = "big" if kind == "big" else f"{kind}-{digit}"
    return name + (f"-{tag}" if tag else "") + (f"-s{seed}" if seed else "")


def train_one(args, x, y, x_val, y_val):
    """Train every dropout candidate; return ``(record, net)`` of the one validation chose."""
    hidden = [int(n) for n in args.hidden.split(",")]
    if args.kind == "big":
        classes = [str(d) for d in range(10)]
        loss_fn, score, score_name = None, train_binary.accuracy, "validation accuracy"
    else:
        classes = [str(args.digit), "other"]
        y, y_val = one_vs_all(y, args.digit), one_vs_all(y_val, args.digit)
        loss_fn = nn.CrossEntropyLoss(weight=torch.tensor([args.pos_weight, 1.0]))
        score, score_name = f1_score, f"validation F1({args.digit})"
    tx, ty = train_binary.as_tensors(x, y)
    vx, vy = train_binary.as_tensors(x_val, y_val)
    candidates, best = [], None
    started = time.perf_counter()
    for dropout in args.dropout:
        torch.manual_seed(args.seed)
        net = build(args.kind, hidden, len(classes), dropout)
        print(f"{'-'.join(map(str, [784] + hidden + [len(classes)]))}, dropout {dropout}: "
              f"{weight_count(net):,} weights and biases, {len(x):,} training images", flush=True)
        value, state, epoch, history = train_binary.train(
            net, tx, ty, vx, vy, args.epochs, args.batch, args.rate, args.seed,
            loss_fn=loss_fn, score=score, score_name=score_name, shift=args.shift)
        candidates.append({"dropout": dropout, "best_epoch": epoch, "validation": value,
                           "history": history})
        if best is None or value > best[0]:
            best = (value, dropout, epoch, state, net)
    value, dropout, epoch, state, net = best
    net.load_state_dict(state)
    record = {"name": model_name(args.kind, args.digit, args.tag, args.seed), "kind": args.kind, "digit": args.digit, "tag": args.tag, "seed": args.seed,
              "classes": classes, "shape": [784] + hidden + [len(classes)],
              "weights": weight_count(net), "epochs": args.epochs, "batch": args.batch,
              "rate": args.rate, "pos_weight": None if args.kind == "big" else args.pos_weight,
              "shift": args.shift, "dropout": dropout, "best_epoch": epoch, "validation": value,
              "score": score_name, "candidates": candidates,
              "train_images": len(x), "validation_images": len(x_val),
              "train_seconds": round(time.perf_counter() - started, 1),
              **provenance.environment()}
    return record, net.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX .gz files")
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--digit", type=int, choices=range(10), help="priority digit (little nets)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="models/biglittle")
    parser.add_argument("--hidden", help="hidden layer sizes (default: the paper's)")
    parser.add_argument("--tag", help="in the file name, e.g. 'small' for little-binary-K-small.h5")
    parser.add_argument("--epochs", type=int, default=10, help="epochs run; the best on "
                        "validation is kept")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rate", type=float, help="initial Adam learning rate")
    parser.add_argument("--pos-weight", type=float, default=2.0,
                        help="loss weight of the priority digit in a one-vs-all net")
    parser.add_argument("--dropout", help="dropout rates after hidden ReLUs to choose from on "
                        "validation, e.g. 0,0.2 (float nets; default: 0,0.2 little, 0.2 big)")
    parser.add_argument("--shift", type=int, default=0,
                        help="move each training image by a random offset of up to N pixels "
                        "(an augmentation the paper did not use)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    args = parser.parse_args(argv)
    if (args.kind == "big") != (args.digit is None):
        parser.error("--digit is required for a little net and refused for the big one")
    args.hidden = args.hidden or DEFAULT_HIDDEN[args.kind]
    args.rate = args.rate or DEFAULT_RATE[args.kind]
    args.dropout = [float(r) for r in (args.dropout or DEFAULT_DROPOUT[args.kind]).split(",")]
    if args.kind == "little-binary" and args.dropout != [0.0]:
        parser.error("--dropout applies to float nets only")
    command = "python3 examples/biglittle_train.py " + " ".join(argv if argv is not None else sys.argv[1:])

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    (x, y), (x_val, y_val) = mnist.train_validation(args.data)
    record, net = train_one(args, x[:args.limit], y[:args.limit], x_val, y_val)
    record["command"] = command
    model = convert(net, input_shape=(28, 28), input_dtype="uint8", input_scale=1 / 255,
                    classes=record["classes"])
    os.makedirs(args.out_dir, exist_ok=True)
    stem = os.path.join(args.out_dir, model_name(args.kind, args.digit, args.tag, args.seed))
    save_model(model, stem + ".h5")
    with open(stem + ".json", "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {stem}.h5: dropout {record['dropout']}, epoch {record['best_epoch']}, "
          f"{record['score']} {record['validation']:.4f} ({record['train_seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
