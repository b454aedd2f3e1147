"""A sensor script with a Big-Little cascade: little net here, big net on a v2 server.

    python -m edgebnn.net.serve models/mnist-mlp.h5 --name big &       # the "cloud"
    python examples/biglittle_sensor.py --little models/mnist-mlp.h5 \\
        --remote http://127.0.0.1:8000 --policy sequential --link-ms 15

Classifies a stream of MNIST digits (the bundled samples, or the test set
with --data DIR), then prints how many each tier answered and their
latencies. The little net's "other" class (if any) sends a sample up.
"""
import argparse
import os
import statistics
import sys

import numpy as np

from edgebnn import Policy, RemoteModel, Runtime, models

HERE = os.path.dirname(os.path.abspath(__file__))


def stream(data, count):
    if data:
        sys.path.insert(0, HERE)
        from edgebnn.bench import mnist
        images, labels = mnist.load(data, "test")
    else:
        samples = np.load(models.path("mnist-samples.npz"))
        images, labels = samples["images"], samples["labels"]
    for i in range(count):
        yield images[i % len(images)], int(labels[i % len(labels)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--little", required=True, help="packed little model on this device")
    parser.add_argument("--remote", default="http://127.0.0.1:8000", help="v2 server URL")
    parser.add_argument("--name", default="big", help="model name on the server")
    parser.add_argument("--policy", default="sequential",
                        choices=["local", "sequential", "parallel", "remote"])
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--timeout-ms", type=float, default=200, help="deadline of each remote request")
    parser.add_argument("--link-ms", type=float, default=0.0, help="added delay each way")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--data", help="folder with the MNIST IDX files (default: bundled samples)")
    args = parser.parse_args(argv)

    remote = RemoteModel(args.remote, args.name, deadline=args.timeout_ms / 1000,
                         link_delay=args.link_ms / 1000)
    rt = Runtime(args.little, remote=remote,
                 policy=Policy(args.policy, min_confidence=args.min_confidence))
    latency = {}
    correct = 0
    for x, truth in stream(args.data, args.count):
        result = rt.classify(x)
        latency.setdefault(result.exit, []).append(result.timings["total"] * 1e3)
        correct += result.name == str(truth)
    rt.close()
    print(f"policy {args.policy}, link {args.link_ms:g} ms each way, {args.count} samples, "
          f"{correct} answered with the true digit's name")
    for tier, times in sorted(latency.items()):
        print(f"  {tier:<15} {len(times):5d} answers  mean {statistics.mean(times):7.2f} ms  "
              f"max {max(times):7.2f} ms")
    print(f"  counters: {rt.counters}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
