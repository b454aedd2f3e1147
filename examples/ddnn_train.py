"""Train a DDNN on multi-view MNIST jointly in PyTorch and convert it to a DDNN file.

    python3 examples/ddnn_train.py --data ../shared/data/mnist --out models/ddnn-mnist.h5 \
        [--local max] [--cloud concat] [--edge] [--epochs 4] [--train 50000] [--seed 0]

Six devices (examples/multiview.py), each: binary conv 3x3 (8 filters, zero
padding 1) + max pool 2 + batch norm + sign, giving a 14x14x8 map of signs
(196 packed bytes), then its exit classifier, a binary dense layer to the 10
class scores + batch norm. The local exit merges the devices' scores; the
cloud merges their maps and runs binary dense 128 + batch norm + sign ->
binary dense 10 + batch norm (for average pooling, whose merged map is
real-valued, the first cloud layer is a float dense layer).

With ``--edge`` an edge section sits between them: it takes the merged maps
(first layer as the cloud's above) to 256 signs (32 packed bytes), which go
to the cloud (binary dense 128 + batch norm + sign -> binary dense 10 +
batch norm), and has its own exit, binary dense 10 + batch norm.

The loss is the sum of the exits' cross entropies (local, edge, cloud), equal
weights, as in the paper. During training each device is dropped from a
sample with probability ``--drop`` (never all of them), so the aggregators
learn to answer with devices missing.
"""
import argparse
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
from edgebnn.aggregate import concat_shape  # noqa: E402
from edgebnn import DDNN, Device, save_ddnn  # noqa: E402
from edgebnn.bench import mnist  # noqa: E402
import multiview  # noqa: E402

CLASSES = [str(d) for d in range(10)]
CHANNELS = 8              # a multiple of 8: a pixel's signs fill one byte exactly
MAP = (14, 14, CHANNELS)
MAP_SIZE = 14 * 14 * CHANNELS
HIDDEN = 128
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


def cloud_net(kind, devices, edge=False):
    """The cloud on the merged maps, or (``edge``) on the edge's signs."""
    if edge:
        first = [bl.Sign(), bl.BinaryLinear(EDGE_BITS, HIDDEN), nn.BatchNorm1d(HIDDEN), bl.Sign()]
    else:
        first = merged_input(kind, devices, HIDDEN)
    return nn.Sequential(*first, bl.BinaryLinear(HIDDEN, 10), nn.BatchNorm1d(10))


def edge_net(kind, devices):
    """The edge on the merged maps: its feature part, then its exit."""
    return nn.Sequential(*merged_input(kind, devices, EDGE_BITS), bl.BinaryLinear(EDGE_BITS, 10),
                         nn.BatchNorm1d(10))


class TorchDDNN(nn.Module):
    """The DDNN as one PyTorch module: devices, local aggregation, optional edge, cloud."""

    def __init__(self, local="max", cloud="concat", devices=6, edge=False):
        super().__init__()
        self.local_kind, self.cloud_kind = local, cloud
        self.devices = nn.ModuleList(device_net() for _ in range(devices))
        self.local = nn.Linear(devices * 10, 10) if local == "concat" else None
        self.edge = edge_net(cloud, devices) if edge else None
        self.cloud = cloud_net(cloud, devices, edge)

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
    """edgebnn.aggregate in PyTorch: ``stacked`` (B, D, n), ``mask`` (B, D, 1) of present devices.

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
          seed=0, log=print, edge=False):
    """A jointly trained ``TorchDDNN`` (loss: the sum of the exits' losses, equal weights)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    views, _ = tensor_views(images, "train")
    targets = torch.from_numpy(labels.astype(np.int64))
    net = TorchDDNN(local, cloud, len(views), edge)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, epochs))
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
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(targets):.4f} "
            f"({time.perf_counter() - started:.0f} s)")
    return net.eval()


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST *-ubyte.gz files")
    parser.add_argument("--out", required=True, help="DDNN file to write")
    parser.add_argument("--local", default="max", choices=["max", "average", "concat"])
    parser.add_argument("--cloud", default="concat", choices=["max", "average", "concat"])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train", type=int, default=50_000, help="training images used")
    parser.add_argument("--edge", action="store_true", help="add an edge section between devices "
                        "and cloud")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--edge-threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    (images, labels), _ = mnist.train_validation(args.data)
    net = train(images[:args.train], labels[:args.train], args.local, args.cloud, args.epochs,
                seed=args.seed, edge=args.edge)
    save_ddnn(to_runtime(net, args.threshold, args.edge_threshold), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
