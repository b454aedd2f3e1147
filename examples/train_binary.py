"""Train the binary MNIST demo model with PyTorch, then convert and pack it.

    python examples/train_binary.py --data ../shared/data/mnist --out models/mnist-bnn.h5

A binarized 784-1000-500-10 network (+-1 weights, +-1 hidden activations,
batch norms folded into integer thresholds by the converter), trained with
Adam on the first 50,000 training images from x / 255. The epoch with the
best accuracy on the last 10,000 is kept, converted with
edgebnn.converters.pytorch.convert and evaluated once on the test set through the
runtime itself, one image at a time as a sensor script would.

Needs PyTorch (an optional extra; the runtime never imports it).
"""
import argparse
import copy
import os
import sys
import time

import numpy as np
import torch
from torch import nn

from edgebnn.bench import mnist
from edgebnn.converters.binary_layers import BinaryLinear, Sign, clip_weights
from edgebnn.converters.pytorch import convert
from edgebnn import Runtime, save_model


def build(hidden):
    """Binary dense blocks (BinaryLinear, BatchNorm1d, Sign), then scores from a batch norm."""
    sizes = [784] + hidden
    layers = [nn.Flatten()]
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [BinaryLinear(n_in, n_out), nn.BatchNorm1d(n_out), Sign()]
    layers += [BinaryLinear(sizes[-1], 10), nn.BatchNorm1d(10)]
    return nn.Sequential(*layers)


def accuracy(net, x, y, batch=1000):
    net.eval()
    with torch.no_grad():
        labels = torch.cat([net(x[i:i + batch]).argmax(dim=1) for i in range(0, len(x), batch)])
    return (labels == y).float().mean().item()


def shifted(images, shift, generator):
    """Each flattened 28x28 image moved by its own random offset of up to ``shift`` pixels.

    Vacated pixels are 0 (the MNIST background). A cheap augmentation that
    lets a plain MLP generalize past ~98.3% test accuracy.
    """
    n, side = len(images), 28
    padded = nn.functional.pad(images.view(n, side, side), (shift,) * 4)
    dy, dx = (torch.randint(0, 2 * shift + 1, (2, n, 1), generator=generator))
    rows = (dy + torch.arange(side))[:, :, None]
    cols = (dx + torch.arange(side))[:, None, :]
    return padded[torch.arange(n)[:, None, None], rows, cols].reshape(n, -1)


def train(net, x, y, x_val, y_val, epochs, batch, rate, seed, loss_fn=None, score=accuracy,
          score_name="validation accuracy", log=None, shift=0):
    """Adam with a decaying rate; returns ``(best score, its weights, its epoch, every
    epoch's score)`` on the validation data.

    ``score(net, x_val, y_val)`` rates an epoch (higher is better; accuracy by
    default); ``loss_fn`` defaults to plain cross entropy. Binary layers get
    their latent weights clipped after each step (a no-op for float nets).
    ``shift`` > 0 moves each training image by a random offset (``shifted``).
    Every epoch runs: a stop by wall time would make the result depend on the
    machine's speed.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=rate)
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.01 ** (1 / max(epochs, 1)))
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    log = log or (lambda line: print(line, flush=True))
    best, history = (-1.0, None, 0), []
    for epoch in range(1, epochs + 1):
        net.train()
        started, loss_sum = time.perf_counter(), 0.0
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            inputs = shifted(x[idx], shift, generator) if shift else x[idx]
            loss = loss_fn(net(inputs), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            clip_weights(net)      # latent weights stay where the STE passes gradients
            loss_sum += loss.item() * len(idx)
        decay.step()
        val = score(net, x_val, y_val)
        history.append(val)
        log(f"epoch {epoch:2d}  loss {loss_sum / len(x):.4f}  {score_name} {val:.4f}  "
            f"({time.perf_counter() - started:.0f} s)")
        if val > best[0]:
            best = (val, copy.deepcopy(net.state_dict()), epoch)
    return best + (history,)


def as_tensors(images, labels):
    return torch.from_numpy(images.reshape(len(images), -1) / np.float32(255)), \
        torch.from_numpy(labels.astype(np.int64))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX .gz files")
    parser.add_argument("--out", default="models/mnist-bnn.h5")
    parser.add_argument("--hidden", default="1000,500", help="hidden layer sizes")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.003, help="initial Adam learning rate")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    (x, y), (x_val, y_val) = mnist.train_validation(args.data)
    x, y = as_tensors(x[:args.limit], y[:args.limit])
    x_val, y_val = as_tensors(x_val, y_val)
    net = build([int(n) for n in args.hidden.split(",")])
    started = time.perf_counter()
    val, state, epoch, _ = train(net, x, y, x_val, y_val, args.epochs, args.batch, args.rate, args.seed)
    print(f"best validation accuracy {val:.4f} (epoch {epoch}) in "
          f"{time.perf_counter() - started:.0f} s")

    net.load_state_dict(state)
    model = convert(net.eval(), input_shape=(28, 28), input_dtype="uint8", input_scale=1 / 255,
                    classes=[str(d) for d in range(10)])
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    save_model(model, args.out)
    x_test, y_test = mnist.load(args.data, "test")
    runtime = Runtime(args.out)
    labels = np.array([runtime.classify(image).label for image in x_test])
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes); "
          f"test accuracy through the runtime {np.mean(labels == y_test):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
