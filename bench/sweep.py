"""Time versus size: float and binary MLPs of growing size, one line per kind and backend.

Each size is built with random weights (float: Dense + ReLU; binary: sign ->
binary dense with thresholds -> binary dense dots -> batch norm), and its
per-sample ``classify`` time is the median of interleaved rounds, so every
kind sees the same machine load. A least-squares line per kind/backend
(bench.fit) gives the cost per weight and per call; saved with the machine's
description it is the board's profile that ``budget`` reads.
"""
import csv
import statistics
import time

import numpy as np

from edgebnn import Runtime
from edgebnn.kernels import c_available

from .binary import binary_mlp, float_mlp
from .fit import distrust, fit_lines
from .progress import Progress
from .shapes import mlp_weights, shape_name, sweep_shapes
from .timing import interleaved_samples

DEFAULT = {"min_weights": 100_000, "max_weights": 12_000_000, "points": 8, "rounds": 41,
           "passes": 5}
QUICK = {"min_weights": 100_000, "max_weights": 2_000_000, "points": 5, "rounds": 21, "passes": 2}
# A candidate's turn in a round lasts about this long: one call for all but the
# smallest nets. Short turns are rarely cut by the scheduler on a busy machine,
# so the median of many of them is the undisturbed time.
ROUND_SECONDS = 0.0002


def available_backends(choice="both"):
    """The binary backends to time: "c", "numpy", or both (C only when built)."""
    if choice == "both":
        return ["c", "numpy"] if c_available() else ["numpy"]
    if choice == "c" and not c_available():
        raise ValueError("the C backend is not built here; use --backend numpy")
    return [choice]


def line_names(kind="both", backend="both"):
    """The lines to time: "float" and "binary/BACKEND" ones, as ``kind`` and ``backend`` say.

    Timing one kind alone lets a sweep reach the sizes a budget lands on for
    that kind (binary nets answer with 20-50x more weights than float ones).
    """
    names = ["float"] if kind in ("float", "both") else []
    if kind in ("binary", "both"):
        names += [f"binary/{name}" for name in available_backends(backend)]
    return names


def _repeated(rt, x, calls):
    def run():
        for _ in range(calls):
            rt.classify(x)
    return run


def round_samples(runtimes, x, rounds):
    """Seconds per ``classify`` of each runtime in every one of ``rounds`` interleaved rounds."""
    candidates, calls = {}, {}
    for name, rt in runtimes.items():
        for _ in range(3):
            rt.classify(x)
        started = time.perf_counter()
        rt.classify(x)
        once = max(time.perf_counter() - started, 1e-7)
        calls[name] = max(1, int(ROUND_SECONDS / once))
        candidates[name] = _repeated(rt, x, calls[name])
    samples = interleaved_samples(candidates, calls=1, rounds=rounds, warmup=1, rotate=True)
    return {name: [t / calls[name] for t in times] for name, times in samples.items()}


def shape_runtimes(sizes, names, seed=0):
    """``({line name: Runtime}, x)``: random nets of a shape on the lines ``names``
    ("float", "int8", "binary/c", "binary/numpy"), and a sample for them."""
    rng = np.random.default_rng(seed)
    runtimes = {"float": Runtime(float_mlp(rng, sizes))} if "float" in names else {}
    if "int8" in names:             # the float net's weights rounded, on the C kernel
        from edgebnn.converters.common import with_int8_weights
        runtimes["int8"] = Runtime(with_int8_weights(float_mlp(rng, sizes)), backend="c")
    binary = [name.partition("/")[2] for name in names if name.startswith("binary/")]
    if binary:
        model = binary_mlp(rng, sizes)
        runtimes.update({f"binary/{backend}": Runtime(model, backend=backend) for backend in binary})
    return runtimes, rng.standard_normal(sizes[0]).astype(np.float32)


def measure_shape(sizes, names, rounds, seed=0):
    """``{line name: [seconds per sample, one per round]}`` for the nets of a shape on the
    lines ``names``."""
    return round_samples(*shape_runtimes(sizes, names, seed), rounds)


def run_sweep(shapes, names, rounds, passes=3, progress=True):
    """Time every shape; ``{"points": [...], "lines": {name: Line}}``.

    The shapes are visited in ``passes`` passes, in alternating order, and a
    point's time is the median over the rounds of all passes: a change of
    machine load during the run then touches every size alike instead of
    bending the line. Each pass's median is kept too ("pass_seconds"), to
    show such a change (bench.fit.MAX_DRIFT). Only one size's networks are
    in memory at a time.
    """
    bar = Progress(len(shapes) * passes, "sweep", enabled=progress)
    samples = {}
    for turn in range(passes):
        for sizes in (shapes if turn % 2 == 0 else shapes[::-1]):
            for name, times in measure_shape(sizes, names, rounds).items():
                samples.setdefault((name, sizes), []).append(times)
            bar.step(f"pass {turn + 1}: {shape_name(sizes)}")
    points = []
    for (name, sizes), per_pass in sorted(samples.items(), key=lambda item: mlp_weights(item[0][1])):
        kind, _, backend = name.partition("/")
        times = [t for times in per_pass for t in times]
        points.append({"line": name, "kind": kind, "backend": backend or None,
                       "shape": shape_name(sizes), "weights": mlp_weights(sizes),
                       "seconds": statistics.median(times), "rounds": len(times),
                       "pass_seconds": [statistics.median(times) for times in per_pass]})
    return {"points": points, "lines": fit_lines(points)}


def default_shapes(settings, hidden_layers=2):
    return sweep_shapes(settings["min_weights"], settings["max_weights"], settings["points"],
                        hidden_layers)


def format_points(points):
    out = [f"{'line':<14} {'shape':<22} {'weights':>12} {'us/sample':>11}"]
    out += [f"{p['line']:<14} {p['shape']:<22} {p['weights']:>12,} {p['seconds'] * 1e6:>11.1f}"
            for p in points]
    return "\n".join(out)


def format_lines(lines):
    """The lines, the sizes they were measured on, and whether a plan may rest on them."""
    out = ["Fit: time = intercept + slope * weights",
           f"{'line':<14} {'slope ns/weight':>16} {'intercept us':>13} {'R^2':>8} "
           f"{'measured weights':>28} {'drift':>6}  usable"]
    out += [f"{name:<14} {line.slope * 1e9:>16.4f} {line.intercept * 1e6:>13.1f} {line.r2:>8.4f} "
            f"{f'{line.low:,.0f} .. {line.high:,.0f}':>28} {line.drift:>6.1%}  "
            f"{'no' if distrust(line) else 'yes'}"
            for name, line in lines.items()]
    return "\n".join(out)


def write_csv(points, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["line", "kind", "backend", "shape", "weights", "us_per_sample"])
        for p in points:
            writer.writerow([p["line"], p["kind"], p["backend"] or "", p["shape"], p["weights"],
                             f"{p['seconds'] * 1e6:.3f}"])


def plot(points, lines, path):
    """Time vs weights, one colour per line, as PNG; False when matplotlib is missing.

    Two panels of the same data: linear axes, where the fitted lines are
    straight, and log-log axes, where the fast binary line is not squashed
    against zero by the slow ones.
    """
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, panels = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, line in lines.items():
        mine = [p for p in points if p["line"] == name]
        xs = np.array([p["weights"] for p in mine], dtype=float)
        ms = np.array([p["seconds"] for p in mine]) * 1e3
        span = np.geomspace(xs.min(), xs.max(), 50)
        for axes in panels:
            dots = axes.plot(xs / 1e6, ms, "o")[0]
            axes.plot(span / 1e6, line.seconds(span) * 1e3, "-", color=dots.get_color(),
                      label=f"{name}: {line.slope * 1e9:.3g} ns/weight "
                            f"{'-' if line.intercept < 0 else '+'} {abs(line.intercept) * 1e6:.0f} us, "
                            f"R$^2$={line.r2:.3f}")
    lowest = min(p["seconds"] for p in points) * 1e3
    panels[1].set_ylim(bottom=lowest / 2)       # a negative intercept would dive to 0 here
    for axes, scale in zip(panels, ("linear", "log")):
        axes.set_xscale(scale)
        axes.set_yscale(scale)
        axes.set_xlabel("weights (millions)")
        axes.set_ylabel("classify time per sample (ms)")
        axes.grid(True, which="both", alpha=0.3)
    panels[0].set_title("per-sample time vs network size")
    panels[1].set_title("the same, log-log")
    panels[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
