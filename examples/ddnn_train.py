"""Train a DDNN on multi-view MNIST jointly in PyTorch, choose its thresholds on validation
data, and write it as one DDNN file.

    python3 examples/ddnn_train.py --data DIR --out models/ddnn/max-concat.h5 \
        [--local max] [--cloud concat] [--edge] [--epochs 3] [--drop 0.1] [--hidden 128] [--seed 0]

Six devices (examples/multiview.py), each: binary conv 3x3 (8 filters, zero
padding 1) + max pool 2 + batch norm + sign, giving a 14x14x8 map of signs
(196 packed bytes), then its exit classifier, a binary dense layer to the 10
class scores + batch norm. The local exit merges the devices' scores; the
cloud merges their maps and runs binary dense 128 (``--hidden``) + batch norm + sign ->
binary dense 10 + batch norm (for average pooling, whose merged map is
real-valued, the first cloud layer is a float dense layer).

With ``--edge`` an edge section sits between them: it takes the merged maps
(first layer as the cloud's above) to 256 signs (32 packed bytes), which go
to the cloud (binary dense 128 + batch norm + sign -> binary dense 10 +
batch norm), and has its own exit, binary dense 10 + batch norm.

The loss is the sum of the exits' cross entropies (local, edge, cloud), equal
weights, as in the paper. With ``--drop`` > 0 each device is dropped from a
training sample with that probability (never all of them), so the
aggregators learn to answer with devices missing: our addition, not the
paper's.

Every choice is made on the validation split (the last 10,000 training
digits, seen through the same six devices with their own noise), never on
the test set, which this script does not read: the epoch (the best mean of
the exits' validation accuracies, all devices present) and, through the
runtime on the converted file, the thresholds of examples/ddnn_eval.py's
rules. The file keeps the T of the first rule of ``ddnn_eval.DEPLOYED``
that finds one (the goal rule's, else the robust, else the within-1); a
``.json`` beside it records every epoch's validation figures, the chosen
thresholds and each device's accuracy alone. One PyTorch thread,
deterministic algorithms and seeded shuffles and device drops make the same
command write the same file on a given machine.
"""
import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from edgebnn.converters import binary_layers as bl  # noqa: E402
from edgebnn.converters.pytorch import convert  # noqa: E402
from edgebnn import Model  # noqa: E402
from edgebnn.tiers.aggregate import concat_shape  # noqa: E402
from edgebnn import DDNN, Device, save_ddnn  # noqa: E402
from edgebnn.bench import mnist  # noqa: E402
import ddnn_eval  # noqa: E402
import provenance  # noqa: E402
import multiview  # noqa: E402

CLASSES = [str(d) for d in range(10)]
CHANNELS = 8              # a multiple of 8: a pixel's signs fill one byte exactly
MAP = (14, 14, CHANNELS)
MAP_SIZE = 14 * 14 * CHANNELS
HIDDEN = 128              # the cloud's hidden signs, unless --hidden says otherwise
EDGE_BITS = 256           # the edge's map to the cloud
FEATURE_MODULES = 4       # conv, pool, batch norm, sign: the part that gives the map


def device_net():
    return nn.Sequential(
        bl.BinaryConv2d(1, CHANNELS, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(CHANNELS),
        bl.Sign(), nn.Flatten(), bl.BinaryLinear(MAP_SIZE, 10), nn.BatchNorm1d(10))


def merged_input(kind, devices, width):
    """The first layers of the tier above the devices: the merged maps (flattened in the
    runtime's (H, W, C) order) -> ``width`` signs."""
    size = MAP_SIZE * (devices if kind == "concat" else 1)
    if kind == "average":
        return [nn.Flatten(), nn.Linear(size, width), nn.BatchNorm1d(width), bl.Sign()]
    return [nn.Flatten(), bl.Sign(), bl.BinaryLinear(size, width), nn.BatchNorm1d(width), bl.Sign()]


def cloud_net(kind, devices, edge=False, hidden=HIDDEN):
    """The cloud on the merged maps, or (``edge``) on the edge's signs."""
    if edge:
        first = [bl.Sign(), bl.BinaryLinear(EDGE_BITS, hidden), nn.BatchNorm1d(hidden), bl.Sign()]
    else:
        first = merged_input(kind, devices, hidden)
    return nn.Sequential(*first, bl.BinaryLinear(hidden, 10), nn.BatchNorm1d(10))


def edge_net(kind, devices):
    """The edge on the merged maps: its feature part, then its exit."""
    return nn.Sequential(*merged_input(kind, devices, EDGE_BITS), bl.BinaryLinear(EDGE_BITS, 10),
                         nn.BatchNorm1d(10))


class TorchDDNN(nn.Module):
    """The DDNN as one PyTorch module: devices, local aggregation, optional edge, cloud."""

    def __init__(self, local="max", cloud="concat", devices=6, edge=False, hidden=HIDDEN):
        super().__init__()
        self.local_kind, self.cloud_kind = local, cloud
        self.devices = nn.ModuleList(device_net() for _ in range(devices))
        self.local = nn.Linear(devices * 10, 10) if local == "concat" else None
        self.edge = edge_net(cloud, devices) if edge else None
        self.cloud = cloud_net(cloud, devices, edge, hidden)

    def forward(self, views, present):
        """The scores of each exit (local, [edge,] cloud) for views ``(D, B, 1, 28, 28)`` in [0, 1]."""
        maps, scores = [], []
        for net, view in zip(self.devices, views):
            feature = net[:FEATURE_MODULES](view)
            scores.append(net[FEATURE_MODULES:](feature))
            maps.append(feature.permute(0, 2, 3, 1).flatten(1))     # (H, W, C) like the runtime
        mask = present.unsqueeze(-1)
        local = merge(self.local_kind, torch.stack(scores, 1), mask, fill=0.0)
        if self.local is not None:
            local = self.local(local)
        up = merge(self.cloud_kind, torch.stack(maps, 1), mask, fill=-1.0)
        if self.edge is None:
            return local, self.cloud(up)
        signs = self.edge[:-2](up)
        return local, self.edge[-2:](signs), self.cloud(signs)


def merge(kind, stacked, mask, fill):
    """edgebnn.tiers.aggregate in PyTorch: ``stacked`` (B, D, n), ``mask`` (B, D, 1) of present
    devices.

    ``fill`` is what a missing device contributes to a concatenation: 0 for
    scores, -1 (zero bytes) for maps of signs.
    """
    if kind == "max":
        return stacked.masked_fill(~mask, float("-inf")).amax(1)
    if kind == "average":
        return (stacked * mask).sum(1) / mask.sum(1)
    return stacked.masked_fill(~mask, fill).flatten(1)


def tensor_views(images, split):
    """Multi-view tensors ``(D, n, 1, 28, 28)`` in [0, 1] and the raw uint8 views."""
    raw = multiview.make_views(images, split)
    return torch.from_numpy(raw[:, :, None].astype(np.float32) / 255.0), raw


def random_presence(batch, devices, drop, generator):
    present = torch.rand(batch, devices, generator=generator) >= drop
    empty = ~present.any(1)
    present[empty, torch.randint(devices, (int(empty.sum()),), generator=generator)] = True
    return present


def train(images, labels, local="max", cloud="concat", epochs=4, batch=128, lr=3e-3, drop=0.1,
          seed=0, log=print, edge=False, validation=None, hidden=HIDDEN):
    """A jointly trained ``TorchDDNN`` (loss: the sum of the exits' losses, equal weights) and
    each epoch's record.

    With ``validation`` ``(images, labels)``, each epoch is scored by the mean
    of its exits' accuracies on them (all devices present) and the net comes
    back with the best epoch's weights.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    views, _ = tensor_views(images, "train")
    targets = torch.from_numpy(labels.astype(np.int64))
    if validation is not None:
        val_views, _ = tensor_views(validation[0], "validation")
        val_targets = torch.from_numpy(validation[1].astype(np.int64))
    net = TorchDDNN(local, cloud, len(views), edge, hidden)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs))
    history, best = [], (-1.0, None)
    for epoch in range(epochs):
        net.train()
        started, total = time.perf_counter(), 0.0
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(order), batch):
            index = order[start:start + batch]
            present = random_presence(len(index), len(views), drop, generator)
            loss = sum(F.cross_entropy(scores, targets[index])
                       for scores in net(views[:, index], present))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bl.clip_weights(net)
            total += float(loss.detach()) * len(index)
        schedule.step()
        record = {"epoch": epoch + 1, "loss": total / len(targets),
                  "seconds": round(time.perf_counter() - started, 1)}
        if validation is not None:
            record["validation"] = exit_accuracies(net, val_views, val_targets)
            score = float(np.mean(record["validation"]))
            if score > best[0]:
                best = (score, copy.deepcopy(net.state_dict()))
        history.append(record)
        log(f"epoch {epoch + 1}/{epochs}: loss {record['loss']:.4f}"
            + (f", validation exits {', '.join(f'{a:.4f}' for a in record['validation'])}"
               if validation is not None else "") + f" ({record['seconds']:.0f} s)")
    if best[1] is not None:
        net.load_state_dict(best[1])
    return net.eval(), history


def exit_accuracies(net, views, targets, batch=1000):
    """Each exit's accuracy (local, [edge,] cloud) with every device present."""
    net.eval()
    right = None
    with torch.no_grad():
        for start in range(0, len(targets), batch):
            chunk = views[:, start:start + batch]
            present = torch.ones(chunk.shape[1], len(views), dtype=torch.bool)
            hits = [int((scores.argmax(1) == targets[start:start + batch]).sum())
                    for scores in net(chunk, present)]
            right = hits if right is None else [a + b for a, b in zip(right, hits)]
    return [r / len(targets) for r in right]


def to_runtime(net, threshold=0.8, edge_threshold=0.5):
    """The runtime ``DDNN`` computing ``net`` in eval mode."""
    net = net.eval()
    devices = [Device(convert(d, input_shape=(1, 28, 28), input_dtype="uint8",
                              input_scale=1 / 255, classes=CLASSES), split=1)
               for d in net.devices]
    local = None
    if net.local is not None:
        size = net.local.in_features
        local = convert(nn.Sequential(net.local), input_shape=(size,), input_dtype="float32",
                        input_scale=1.0, classes=CLASSES)
    edge = None
    if net.edge is not None:
        model = _above_devices(net.edge, net.cloud_kind, len(net.devices))
        edge = Device(model, split=1 + [s.kind for s in model.signals].index("bits"))
        cloud = _on_signs(net.cloud, (EDGE_BITS,))
    else:
        cloud = _above_devices(net.cloud, net.cloud_kind, len(net.devices))
    return DDNN(devices, cloud, local, net.local_kind, net.cloud_kind, threshold, CLASSES, edge,
                edge_threshold)


def _above_devices(section, kind, devices):
    """The runtime model of the tier that reads the devices' merged maps."""
    if kind == "average":
        return convert(section, input_shape=MAP, input_dtype="float32", input_scale=1.0,
                       classes=CLASSES)
    # With 8 channels, packing the flat (H, W, C) vector and packing the (H, W, C)
    # map give the same bytes.
    return _on_signs(section, MAP if kind == "max" else concat_shape(MAP, devices))


def _on_signs(section, shape):
    """``section``, which starts with Sign on +-1 values, as a model reading packed signs
    of ``shape`` directly (the runtime needs no sign there)."""
    flat = convert(section, input_shape=(int(np.prod(shape)),), input_dtype="float32",
                   input_scale=1.0, classes=CLASSES)
    assert flat.layers[0].kind == "sign"
    return Model(flat.layers[1:], shape, "bits", classes=CLASSES)


def select(ddnn, images, labels):
    """Thresholds and figures chosen on ``images`` (validation digits), through the runtime;
    ``ddnn`` keeps the chosen thresholds."""
    views = multiview.make_views(images, "validation")
    outputs = ddnn_eval.device_outputs(ddnn, views)
    devices = len(ddnn.devices)
    if ddnn.edge is not None:
        answers = ddnn_eval.EdgeAnswers(ddnn, outputs, labels)
        threshold, edge_threshold = answers.choose()
        ddnn.local_threshold, ddnn.edge_threshold = threshold, edge_threshold
        share, edge_share, _, accuracy, _ = answers.at(threshold, edge_threshold)
        return {"threshold": threshold, "edge_threshold": edge_threshold,
                "local_exits": share, "edge_exits": edge_share, "overall": accuracy,
                "exits": {"local": float(np.mean(answers.local == labels)),
                          "edge": float(np.mean(answers.edge == labels)),
                          "cloud": float(np.mean(answers.cloud == labels))}}
    everyone, missing = ddnn_eval.everyone_and_missing(ddnn, outputs, labels)
    alone = [ddnn_eval.Answers(ddnn, outputs, labels, [d == i for d in range(devices)])
             for i in range(devices)]
    thresholds = ddnn_eval.choose_thresholds(everyone, missing)
    at = {}
    for rule, t in list(thresholds.items()) + [("paper-T", ddnn_eval.PAPER_T)]:
        if t is not None:
            share, accuracy, _ = everyone.at(t)
            at[rule] = {"T": t, "local_exits": share, "overall": accuracy,
                        "missing": [m.at(t)[1] for m in missing]}
    ddnn.local_threshold = ddnn_eval.deployed_threshold(thresholds)
    return {"threshold": ddnn.local_threshold, "thresholds": thresholds,
            "at": at, "exits": {"local": everyone.local_accuracy(), "cloud": everyone.cloud_accuracy()},
            "alone": [a.local_accuracy() for a in alone]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST *-ubyte.gz files")
    parser.add_argument("--out", required=True, help="DDNN file to write (a .json goes beside it)")
    parser.add_argument("--local", default="max", choices=["max", "average", "concat"])
    parser.add_argument("--cloud", default="concat", choices=["max", "average", "concat"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs run; the best on "
                        "validation is kept")
    parser.add_argument("--drop", type=float, default=0.1, help="probability of dropping a "
                        "device from a training sample (0: the paper's way)")
    parser.add_argument("--train", type=int, default=50_000, help="training images used")
    parser.add_argument("--validation", type=int, default=10_000, help="validation images used")
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="the cloud's hidden signs")
    parser.add_argument("--edge", action="store_true", help="add an edge section between devices "
                        "and cloud")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    command = "python3 examples/ddnn_train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    (images, labels), (val_images, val_labels) = mnist.train_validation(args.data)
    val_images, val_labels = val_images[:args.validation], val_labels[:args.validation]
    started = time.perf_counter()
    net, history = train(images[:args.train], labels[:args.train], args.local, args.cloud,
                         args.epochs, drop=args.drop, seed=args.seed, edge=args.edge,
                         validation=(val_images, val_labels), hidden=args.hidden)
    seconds = time.perf_counter() - started
    ddnn = to_runtime(net)
    chosen = select(ddnn, val_images, val_labels)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    save_ddnn(ddnn, args.out)
    best = max(history, key=lambda r: np.mean(r["validation"]))
    record = {"local": args.local, "cloud": args.cloud, "edge": args.edge, "drop": args.drop,
              "hidden": args.hidden,
              "seed": args.seed, "epochs": args.epochs, "best_epoch": best["epoch"],
              "history": history, "validation": chosen, "train_images": len(images[:args.train]),
              "validation_images": len(val_labels), "train_seconds": round(seconds, 1),
              **provenance.environment(), "command": command}
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {args.out}: epoch {best['epoch']}, T = {chosen['threshold']} "
          f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
