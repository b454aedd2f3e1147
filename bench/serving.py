"""Serving the big net to many devices: throughput and latency on three servers.

    python -m edgebnn.bench.serving [--clients 1,8,32] [--seconds 5] [--data DIR]

The big 784-2500-2000-1500-1000-500-10 net (random weights: the time does
not depend on them) behind: the embedded server unbatched; the embedded
server with dynamic batching (1 ms, up to 32 samples); MLServer with its
adaptive batching (the same limits), when installed. Each client is a
device: a thread sending one sample per request and waiting for the answer
(a closed loop). Prints requests/s and p50/p99 latency per server and
client count; the embedded server's time outside the model per request
(one client, unbatched, on a net too small to matter); and,
with ``--data``, a Big-Little cascade (the shipped little net for digit 1,
the shipped float net as the big one) over the first 1,000 MNIST test
digits against the embedded server and against MLServer: the share asked
remotely and whether the labels agree.
"""
from .timing import interleaved, single_threaded

single_threaded()      # every server inherits it: one core per model call

import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from edgebnn import Dense, Model, Policy, RemoteModel, Runtime, models, save_model  # noqa: E402
from edgebnn.commands import command_parser  # noqa: E402

from . import servers  # noqa: E402
from .stats import percentile  # noqa: E402

PAPER_BIG = (784, 2500, 2000, 1500, 1000, 500, 10)


def big_model(sizes=PAPER_BIG, seed=0):
    rng = np.random.default_rng(seed)
    layers = [Dense(rng.standard_normal((o, i)).astype(np.float32) / np.sqrt(i), np.zeros(o),
                    "relu" if k < len(sizes) - 2 else "none")
              for k, (i, o) in enumerate(zip(sizes, sizes[1:]))]
    return Model(layers, (28, 28), "uint8", 1 / 255)


def closed_loop(url, samples, clients, seconds, warmup=1.0):
    """``(requests/s, p50 ms, p99 ms, errors)`` of ``clients`` devices asking in a loop."""
    remote = RemoteModel(url, "big", deadline=60.0)
    remote.spec()
    latencies, errors = [], [0]
    start = time.monotonic() + warmup
    stop = start + seconds

    def device(k):
        i = k
        while True:
            began = time.monotonic()
            if began >= stop:
                return
            try:
                remote.infer(samples[i % len(samples)])
            except OSError:
                errors[0] += 1
            if began >= start:
                latencies.append(time.monotonic() - began)
            i += clients

    threads = [threading.Thread(target=device, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies)
    return (len(ordered) / seconds, percentile(ordered, 50) * 1e3, percentile(ordered, 99) * 1e3,
            errors[0])


def throughput_table(path, samples, client_counts, seconds, with_mlserver):
    candidates = {"embedded, unbatched": lambda: servers.embedded(path),
                  "embedded, dynamic batching": lambda: servers.embedded(
                      path, "big", "--batch-delay", "1", "--max-batch", "32")}
    if with_mlserver:
        candidates["MLServer, adaptive batching"] = lambda: servers.mlserver(
            path, max_batch_size=32, max_batch_time=0.001)
    print(f"{'server':<28} {'clients':>7} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    rows = {}
    for name, start in candidates.items():
        with start() as url:
            for clients in client_counts:
                rate, p50, p99, errors = closed_loop(url, samples, clients, seconds)
                rows[name, clients] = rate, p50, p99
                print(f"{name:<28} {clients:>7} {rate:>11.1f} {p50:>8.2f} {p99:>8.2f} {errors:>6}",
                      flush=True)
    return rows


def overhead(x, requests):
    """The embedded server's time per request outside the model: the round trip of one
    client, unbatched, to a 784-10 net whose own time (measured here too) is negligible."""
    rng = np.random.default_rng(2)
    tiny = Model([Dense(rng.standard_normal((10, 784)).astype(np.float32) / 28, np.zeros(10))],
                 (28, 28), "uint8", 1 / 255)
    local = Runtime(tiny)
    model = interleaved({"model": lambda: local.classify(x)}, calls=50, rounds=20)["model"]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tiny.h5")
        save_model(tiny, path)
        with servers.embedded(path) as url:
            for binary in (True, False):
                remote = RemoteModel(url, "big", binary=binary)
                trip = interleaved({"request": lambda: remote.infer(x)}, calls=10,
                                   rounds=max(1, requests // 10))["request"]
                print(f"one client, unbatched, {'binary tensors' if binary else 'JSON'}: "
                      f"{trip * 1e3:.3f} ms per request on a 784-10 net whose model takes "
                      f"{model * 1e3:.3f} ms: {(trip - model) * 1e3:.3f} ms outside the model "
                      "(HTTP and tensors, both ends)")


def cascades(data, count):
    """The same cascade against the embedded server and MLServer on the same digits."""
    from . import mnist
    images, _ = mnist.load(data, "test")
    images = images[:count]
    little, big = models.path("biglittle/little-binary-1-small.h5"), models.path("mnist-mlp.h5")
    answers = {}
    for name, start in (("embedded", lambda: servers.embedded(big)),
                        ("MLServer", lambda: servers.mlserver(big))):
        with start() as url:
            rt = Runtime(little, remote=RemoteModel(url, "big", deadline=10.0),
                         policy=Policy("sequential"))
            answers[name] = [(r.exit, r.label) for r in (rt.classify(x) for x in images)]
            rt.close()
    embedded, mlserver = answers["embedded"], answers["MLServer"]
    share = {name: sum(e == "remote" for e, _ in a) / len(a) for name, a in answers.items()}
    print(f"\ncascade (little {os.path.basename(little)}, big mnist-mlp.h5, sequential) on "
          f"{len(images)} test digits: asked remotely {100 * share['embedded']:.1f}% (embedded) and "
          f"{100 * share['MLServer']:.1f}% (MLServer); the same exit and label for "
          f"{sum(a == b for a, b in zip(embedded, mlserver))} of {len(images)}")


def main(argv=None):
    parser = command_parser("edgebnn.bench.serving", __doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,8,32", help="concurrent devices, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per point")
    parser.add_argument("--requests", type=int, default=2000, help="requests for the overhead")
    parser.add_argument("--data", help="folder with the MNIST IDX files (for the cascade check)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--no-mlserver", action="store_true")
    args = parser.parse_args(argv)
    client_counts = [int(c) for c in args.clients.split(",")]
    with_mlserver = not args.no_mlserver
    if with_mlserver:
        try:
            import mlserver  # noqa: F401
        except ImportError:
            print("MLServer is not installed: its rows are left out (pip install 'edgebnn[mlserver]')")
            with_mlserver = False
    model = big_model()
    samples = np.random.default_rng(1).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    print(f"big {'-'.join(map(str, PAPER_BIG))}, {sum(l.weight.size for l in model.layers):,} "
          f"weights, loopback, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "big.h5")
        save_model(model, path)
        throughput_table(path, samples, client_counts, args.seconds, with_mlserver)
    print()
    overhead(samples[0], args.requests)
    if args.data and with_mlserver:
        cascades(args.data, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
