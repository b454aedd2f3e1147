"""Train the shipped float MNIST demo model with NumPy alone, then pack it.

    python examples/train_mlp.py --data ../shared/data/mnist --out models/mnist-mlp.h5

A 784-256-128-10 ReLU network, minibatch SGD with momentum on 50,000 training
images; the epoch with the best accuracy on the 10,000 validation images is
kept and evaluated once on the test set through the runtime itself.
``--priority K`` trains a Big-Little "little" net instead: one-vs-all, with
the classes "K" and "other".
"""
import argparse
import os
import sys
import time

import numpy as np

from edgebnn.bench import mnist
from edgebnn import Dense, Model, Runtime, save_model


def train(x, y, x_val, y_val, sizes, epochs, batch, rate, seed):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((n_out, n_in)).astype(np.float32) * np.sqrt(2.0 / n_in)
               for n_in, n_out in zip(sizes, sizes[1:])]
    biases = [np.zeros(n, np.float32) for n in sizes[1:]]
    velocity = [np.zeros_like(p) for p in weights + biases]
    best = (-1.0, None)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        loss_sum = 0.0
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            activations = [x[idx]]
            for w, b in zip(weights[:-1], biases[:-1]):
                activations.append(np.maximum(activations[-1] @ w.T + b, 0))
            logits = activations[-1] @ weights[-1].T + biases[-1]
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            loss_sum += -np.log(p[np.arange(len(idx)), y[idx]] + 1e-12).sum()
            grad = p
            grad[np.arange(len(idx)), y[idx]] -= 1
            grad /= len(idx)
            grads_w, grads_b = [], []
            for layer in range(len(weights) - 1, -1, -1):
                grads_w.insert(0, grad.T @ activations[layer])
                grads_b.insert(0, grad.sum(axis=0))
                if layer:
                    grad = (grad @ weights[layer]) * (activations[layer] > 0)
            for i, g in enumerate(grads_w + grads_b):
                param = (weights + biases)[i]
                velocity[i] = 0.9 * velocity[i] - rate * g
                param += velocity[i]
        accuracy = (predict(x_val, weights, biases) == y_val).mean()
        print(f"epoch {epoch:2d}  loss {loss_sum / len(x):.4f}  validation accuracy {accuracy:.4f}",
              flush=True)
        if accuracy > best[0]:
            best = (accuracy, ([w.copy() for w in weights], [b.copy() for b in biases]))
        rate *= 0.8
    return best


def predict(x, weights, biases):
    h = x
    for w, b in zip(weights[:-1], biases[:-1]):
        h = np.maximum(h @ w.T + b, 0)
    return (h @ weights[-1].T + biases[-1]).argmax(axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX .gz files")
    parser.add_argument("--out", default="models/mnist-mlp.h5")
    parser.add_argument("--hidden", default="256,128", help="hidden layer sizes")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--priority", type=int, help="train one-vs-all for this digit")
    args = parser.parse_args(argv)

    (x, y), (x_val, y_val) = mnist.train_validation(args.data)
    x, y = x[:args.limit], y[:args.limit]
    x_test, y_test = mnist.load(args.data, "test")
    classes = [str(d) for d in range(10)]
    if args.priority is not None:       # label 0: the priority digit, 1: any other
        y, y_val, y_test = ((labels != args.priority).astype(np.int64) for labels in (y, y_val, y_test))
        classes = [str(args.priority), "other"]
    scale = np.float32(1 / 255)
    sizes = [784] + [int(n) for n in args.hidden.split(",")] + [len(classes)]
    started = time.perf_counter()
    accuracy, (weights, biases) = train(
        x.reshape(len(x), -1) * scale, y, x_val.reshape(len(x_val), -1) * scale, y_val,
        sizes, args.epochs, batch=64, rate=0.05, seed=args.seed)
    print(f"best validation accuracy {accuracy:.4f} in {time.perf_counter() - started:.0f} s")

    layers = [Dense(w, b, "relu") for w, b in zip(weights[:-1], biases[:-1])]
    layers.append(Dense(weights[-1], biases[-1], "softmax"))
    model = Model(layers, input_shape=(28, 28), input_dtype="uint8", input_scale=scale,
                  classes=classes)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    save_model(model, args.out)
    results = Runtime(args.out).classify_batch(x_test)
    test_accuracy = np.mean([r.label for r in results] == y_test)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes); "
          f"test accuracy through the runtime {test_accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
