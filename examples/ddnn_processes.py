"""Run a DDNN's devices, edge and cloud as separate processes over loopback; kill a device halfway.

    python3 examples/ddnn_processes.py --data ../shared/data/mnist [--model models/ddnn/max-concat-h256.h5]
        [--samples 200] [--deadline 0.5] [--threshold T] [--edge-threshold T]

Starts one ``python -m edgebnn.net.serve MODEL --section devices/I`` process per
device, one ``--section cloud`` process and, when the model has an edge, one
``--section edge`` process, classifies multi-view test
digits through a ``Coordinator`` (the gateway: it aggregates and takes the
local exit), kills
device 0 halfway through, and checks every answer against the in-process
DDNN given the same devices (the killed one missing).
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from edgebnn import Coordinator, load_ddnn  # noqa: E402
from edgebnn.bench import mnist  # noqa: E402
from edgebnn.commands import POSITIVE_INT  # noqa: E402
import multiview  # noqa: E402


def start(model, section, name):
    return subprocess.Popen([sys.executable, "-m", "edgebnn.net.serve", model, "--port", "0",
                             "--section", section, "--name", name],
                            stdout=subprocess.PIPE, text=True)


def url(process):
    """The address a started server prints on its first line."""
    port = re.search(r":(\d+) ", process.stdout.readline()).group(1)
    return f"http://127.0.0.1:{port}"


def main(argv=None):
    """Prints and returns ``{"samples", "correct", "identical", "exits", "device0_missed"}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="models/ddnn/max-concat-h256.h5")
    parser.add_argument("--samples", type=POSITIVE_INT, default=200)
    parser.add_argument("--deadline", type=float, default=0.5)
    parser.add_argument("--threshold", type=float, help="local exit threshold T (default: the file's)")
    parser.add_argument("--edge-threshold", type=float, help="edge exit threshold (default: the file's)")
    args = parser.parse_args(argv)
    ddnn = load_ddnn(args.model)
    images, labels = mnist.load(args.data, "test")
    views = multiview.make_views(images[:args.samples], "test")
    processes, coordinator = [], None
    correct = same = sent = 0
    exits = {}
    sections = [(f"devices/{i}", f"device{i}") for i in range(len(ddnn.devices))] + \
        [("cloud", "cloud")] + ([("edge", "edge")] if ddnn.edge else [])
    try:
        for section, name in sections:      # all start at once; each is killed below whatever fails
            processes.append(start(args.model, section, name))
        urls = [url(p) for p in processes]
        devices, cloud = urls[:len(ddnn.devices)], urls[len(ddnn.devices)]
        edge = urls[-1] if ddnn.edge else None
        coordinator = Coordinator(ddnn, devices, deadline=args.deadline, cloud=cloud, edge=edge)
        for i in range(args.samples):
            if i == args.samples // 2:
                processes[0].kill()
                print(f"killed device 0 before sample {i}")
            sample = list(views[:, i])
            result = coordinator.classify(sample, args.threshold, args.edge_threshold)
            if i >= args.samples // 2:
                sample[0] = None
            expected = ddnn.classify(sample, args.threshold, args.edge_threshold)
            same += (result.label, result.exit, result.bytes_sent) == \
                (expected.label, expected.exit, expected.bytes_sent)
            correct += result.label == labels[i]
            exits[result.exit] = exits.get(result.exit, 0) + 1
            sent += sum(result.bytes_sent)
    finally:
        if coordinator is not None:
            coordinator.close()
        for process in processes:
            process.kill()
            process.wait()
    print(f"{args.samples} samples: accuracy {correct / args.samples:.2%}, "
          f"{sent / args.samples:.0f} bytes sent per sample, answers per tier {exits}, "
          f"{same} answers identical to the in-process DDNN, device 0 missed "
          f"{coordinator.missing[0]} phases")
    return {"samples": args.samples, "correct": correct, "identical": same, "exits": exits,
            "device0_missed": coordinator.missing[0]}


if __name__ == "__main__":
    main()
