"""Summary statistics of per-call timings: the numbers benchmark_model prints.

Pure Python on purpose: the statistics must not depend on how NumPy is
configured, and the tests check them against arrays worked out by hand.
Percentiles interpolate linearly between the two nearest ranks (NumPy's
default method), and ``std`` is the population standard deviation, as
TFLite's benchmark tool reports it.
"""
import math

FIELDS = ("count", "first", "curr", "min", "max", "mean", "median", "p90", "p99", "std")


def percentile(ordered, q):
    """The ``q``-th percentile (0..100) of an already sorted, non-empty list."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(times):
    """``{field: value}`` of a sequence of timings, in their own unit, in call order."""
    values = [float(t) for t in times]
    if not values:
        raise ValueError("no timings to summarize")
    ordered = sorted(values)
    mean = math.fsum(values) / len(values)
    variance = math.fsum((v - mean) ** 2 for v in values) / len(values)
    return {"count": len(values), "first": values[0], "curr": values[-1],
            "min": ordered[0], "max": ordered[-1], "mean": mean,
            "median": percentile(ordered, 50), "p90": percentile(ordered, 90),
            "p99": percentile(ordered, 99), "std": math.sqrt(variance)}


def scaled(summary, factor):
    """The same summary with every timing multiplied by ``factor`` (count kept)."""
    return {key: value if key == "count" else value * factor for key, value in summary.items()}
