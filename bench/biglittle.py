"""Big-Little on loopback: each policy's latency and local share, and the server's overhead.

    python -m edgebnn.bench.biglittle --little L.h5 --big B.h5 --data DIR [--link-ms 15]

Starts ``python -m edgebnn.net.serve`` on the big model, injects the link delay
each way in the client, streams MNIST test digits through a cascade per
policy and prints mean and p99 latency, the share answered on the device and
the accuracy, after the paper's break-even (the little net answers first
whenever the round trip exceeds the big net's time plus the little net's).
The server's own throughput and overhead: ``python -m edgebnn.bench.serving``.
"""
from .stats import percentile
from .timing import single_threaded

single_threaded()

import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from edgebnn import Policy, RemoteModel, Runtime  # noqa: E402
from edgebnn.commands import command_parser  # noqa: E402

from . import servers  # noqa: E402

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
        remote = RemoteModel(url, "big", deadline=2.0 + 2 * link, link_delay=link)
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


def main(argv=None):
    parser = command_parser("edgebnn.bench.biglittle", __doc__.splitlines()[0])
    parser.add_argument("--little", required=True)
    parser.add_argument("--big", required=True)
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--link-ms", type=float, default=15.0)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--min-confidence", type=float, default=0.9)
    args = parser.parse_args(argv)
    from . import mnist
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
    with servers.embedded(args.big) as url:
        run_policies(args.little, url, images, labels, args.link_ms / 1e3, args.min_confidence)
    return 0


if __name__ == "__main__":
    sys.exit(main())
