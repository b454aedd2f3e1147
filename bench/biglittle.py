"""Big-Little on loopback: each policy's latency and local share, and the server's overhead.

    python -m edgebnn.bench.biglittle --little L.h5 --big B.h5 --data DIR [--link-ms 15]

Starts ``python -m edgebnn.serve`` on the big model, injects the link delay
each way in the client, streams MNIST test digits through a cascade per
policy and prints mean and p99 latency, the share answered on the device and
the accuracy. Then the paper's break-even (the little net answers first
whenever the round trip exceeds the big net's time plus the little net's),
and the server's requests per second and time outside the model for the big
784-2500-2000-1500-1000-500-10 net.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from edgebnn import Dense, Model, Policy, RemoteModel, Runtime, save_model

from .stats import percentile
from .timing import interleaved, run_single_threaded

HERE = os.path.dirname(os.path.abspath(__file__))
PAPER_BIG = (784, 2500, 2000, 1500, 1000, 500, 10)


def start_server(path):
    process = subprocess.Popen([sys.executable, "-m", "edgebnn.serve", path, "--port", "0",
                                "--name", "big"], stdout=subprocess.PIPE, text=True)
    port = re.search(r":(\d+) ", process.stdout.readline()).group(1)
    return process, f"http://127.0.0.1:{port}"


def median_time(function, calls=50):
    function()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_policies(little, url, images, labels, link, min_confidence):
    print(f"{'policy':<11} {'mean ms':>8} {'p99 ms':>8} {'local %':>8} {'accuracy %':>11}")
    for policy in ("local", "sequential", "parallel", "remote"):
        remote = RemoteModel(url, "big", read_timeout=2.0, link_delay=link)
        rt = Runtime(little, remote=remote, policy=Policy(policy, min_confidence=min_confidence))
        priority = rt.cascade.priority
        latencies, local, correct = [], 0, 0
        for x, truth in zip(images, labels):
            result = rt.classify(x)
            latencies.append(result.timings["total"] * 1e3)
            local += result.exit == "local"
            truth = str(truth)
            correct += result.name == truth or (result.name not in priority and
                                                result.exit != "remote" and truth not in priority)
        rt.close()
        n = len(labels)
        print(f"{policy:<11} {statistics.mean(latencies):8.2f} {percentile(sorted(latencies), 99):8.2f} "
              f"{100 * local / n:8.1f} {100 * correct / n:11.2f}")


def server_overhead(requests):
    """Requests/s and time outside the model for the paper's big net (random weights)."""
    rng = np.random.default_rng(0)
    sizes = PAPER_BIG
    layers = [Dense(rng.standard_normal((o, i)).astype(np.float32) / np.sqrt(i), np.zeros(o),
                    "relu" if k < len(sizes) - 2 else "none")
              for k, (i, o) in enumerate(zip(sizes, sizes[1:]))]
    model = Model(layers, (28, 28), "uint8", 1 / 255)
    x = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "big.h5")
        save_model(model, path)
        process, url = start_server(path)
        try:
            remote, local = RemoteModel(url, "big"), Runtime(model)
            times = interleaved({"model": lambda: local.classify(x),
                                 "request": lambda: remote.infer(x)},
                                calls=5, rounds=max(1, requests // 5), warmup=3)
            model_time, request_time = times["model"], times["request"]
        finally:
            process.terminate()
            process.wait()
    print(f"\nserver, big {'-'.join(map(str, sizes))} on loopback, one client, keep-alive: "
          f"{1 / request_time:.0f} requests/s; per request {request_time * 1e3:.2f} ms, "
          f"of which the model (timed in turns with the requests) {model_time * 1e3:.2f} ms and the rest "
          f"(JSON, HTTP, both ends) {(request_time - model_time) * 1e3:.2f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--little", required=True)
    parser.add_argument("--big", required=True)
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--link-ms", type=float, default=15.0)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.join(HERE, "..", "examples"))
    import mnist
    images, labels = mnist.load(args.data, "test")
    images, labels = images[:args.count], labels[:args.count]

    little, big = Runtime(args.little), Runtime(args.big)
    little_ms = median_time(lambda: little.classify(images[0])) * 1e3
    big_ms = median_time(lambda: big.classify(images[0])) * 1e3
    print(f"little {os.path.basename(args.little)}: {little_ms:.3f} ms per sample; "
          f"big {os.path.basename(args.big)}: {big_ms:.3f} ms; link {args.link_ms:g} ms each way")
    print(f"break-even: the little net answers first whenever the round trip exceeds "
          f"{big_ms + little_ms:.3f} ms (big + little); here it is "
          f"{2 * args.link_ms + big_ms:.1f} ms\n")
    process, url = start_server(args.big)
    try:
        run_policies(args.little, url, images, labels, args.link_ms / 1e3, args.min_confidence)
    finally:
        process.terminate()
        process.wait()
    server_overhead(args.requests)
    return 0


if __name__ == "__main__":
    run_single_threaded(__spec__.name)
    sys.exit(main())
