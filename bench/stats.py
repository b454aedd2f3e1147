"""Summary statistics of per-call timings: the numbers benchmark_model prints.

Pure Python on purpose: the statistics must not depend on how NumPy is
configured, and the tests check them against arrays worked out by hand.
Percentiles interpolate linearly between the two nearest ranks (NumPy's
default method), and ``std`` is the population standard deviation, as
TFLite's benchmark tool reports it.

A plain mean is pulled up by the few calls during which the core ran
something else (the scheduler, an interrupt, a page fault): one preempted
call of 4 ms among a thousand of 25 us adds 4 us to the mean. So a summary
also gives a trimmed mean and counts the outliers:

- ``trimmed_mean`` leaves out the fastest and the slowest ``TRIM`` (5%) of
  the calls, as a robust "typical call" that still moves with all but the
  extreme calls (the median moves with none);
- an outlier is a call slower than ``OUTLIER_FACTOR`` (3) times the
  median. A call's own variation (caches, branch predictors, the
  allocator) stays well under 2x the median on an idle machine; 3x and
  more is time the call spent waiting for the core.
"""
import math

TRIM = 0.05
OUTLIER_FACTOR = 3.0
FIELDS = ("count", "first", "curr", "min", "max", "mean", "median", "p90", "p99", "std",
          "trimmed_mean", "outliers", "mean_without_outliers")


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
    median = percentile(ordered, 50)
    cut = int(len(ordered) * TRIM)
    kept = ordered[cut:len(ordered) - cut]
    usual = [v for v in ordered if v <= OUTLIER_FACTOR * median]
    return {"count": len(values), "first": values[0], "curr": values[-1],
            "min": ordered[0], "max": ordered[-1], "mean": mean,
            "median": median, "p90": percentile(ordered, 90),
            "p99": percentile(ordered, 99), "std": math.sqrt(variance),
            "trimmed_mean": math.fsum(kept) / len(kept), "outliers": len(values) - len(usual),
            "mean_without_outliers": math.fsum(usual) / len(usual)}


def scaled(summary, factor):
    """The same summary with every timing multiplied by ``factor`` (the counts kept)."""
    return {key: value if key in ("count", "outliers") else value * factor
            for key, value in summary.items()}
