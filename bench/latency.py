"""Per-sample latency of one model on this board, in the manner of TFLite's benchmark_model.

Load time, the first call (buffers and caches cold), a warm-up, then N
timed single-sample ``classify`` calls over the chosen inputs. Memory is
reported twice: the peak Python allocation of those calls (tracemalloc, in a
separate pass after the timed one, because tracing every allocation would
slow the calls being timed) and the process's maximum resident set size.
Beside the plain mean it prints a trimmed mean and how many calls were
outliers, slowed by other work on the machine (bench.stats says how both
are defined), with the load average at the end of the run.
"""
import os
import sys
import time
import tracemalloc

import numpy as np

from edgebnn import Runtime
from edgebnn.samples import read_samples

from .profile import load_average
from .stats import OUTLIER_FACTOR, TRIM, scaled, summarize


def load_samples(source, model, count=64, seed=0):
    """Samples for ``model``: random ones, or a file's, read as ``edgebnn-classify`` reads
    it (a .npy / .npz array of one sample or a batch, a PNG or PGM image)."""
    shape, dtype = model.input_shape, model.input_dtype
    if source == "random":
        rng = np.random.default_rng(seed)
        if dtype.kind == "u":
            return rng.integers(0, 256, (count,) + shape, dtype=np.uint8)
        return rng.standard_normal((count,) + shape).astype(dtype)
    return np.stack([x for _, x in read_samples(source, model)])


def _timed_calls(classify, samples, runs):
    times = []
    for i in range(runs):
        x = samples[i % len(samples)]
        started = time.perf_counter()
        classify(x)
        times.append(time.perf_counter() - started)
    return times


def _peak_allocation(classify, samples, runs):
    """Peak bytes Python allocates over ``runs`` calls (after the timed calls)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for i in range(runs):
            classify(samples[i % len(samples)])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def max_rss_bytes():
    """The process's peak resident set size, or None where the OS does not say."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024      # Linux reports KiB


def measure(model, runs=1000, warmup=50, backend=None, source="random", name=None):
    """Everything ``latency`` reports, times in microseconds.

    ``model`` is a packed file's path or a ``Model`` (then "init" is the
    binding to the backend only); ``name`` says which in the report (the
    path by default).
    """
    if name is None:
        name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else "a model in memory"
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    started = time.perf_counter()
    rt = Runtime(model, backend=backend)
    init = time.perf_counter() - started
    samples = load_samples(source, rt.model)
    started = time.perf_counter()
    rt.classify(samples[0])
    first = time.perf_counter() - started
    warm = _timed_calls(rt.classify, samples, warmup)
    timed = _timed_calls(rt.classify, samples, runs)
    peak = _peak_allocation(rt.classify, samples, min(runs, 100))
    return {"model": name, "backend": rt.backend, "input": source,
            "input_shape": list(rt.model.input_shape), "input_dtype": rt.model.input_dtype.name,
            "samples": len(samples), "init_us": init * 1e6, "first_us": first * 1e6,
            "warmup_us": scaled(summarize(warm), 1e6) if warm else None,
            "inference_us": scaled(summarize(timed), 1e6),
            "tracemalloc_peak_bytes": peak, "max_rss_bytes": max_rss_bytes(),
            "load_average": load_average()}


def _stat_line(stats):
    return (f"count={stats['count']} first={stats['first']:.1f} curr={stats['curr']:.1f} "
            f"min={stats['min']:.1f} max={stats['max']:.1f} avg={stats['mean']:.1f} "
            f"std={stats['std']:.1f} median={stats['median']:.1f} p90={stats['p90']:.1f} "
            f"p99={stats['p99']:.1f} trimmed_avg={stats['trimmed_mean']:.1f}")


def outlier_note(stats, load=None):
    """What the mean hides: the trimmed mean, and the outliers that pull the mean up."""
    limit = OUTLIER_FACTOR * stats["median"]
    trimmed = (f"Trimmed mean {stats['trimmed_mean']:.1f} us (the fastest and slowest "
               f"{TRIM:.0%} of calls left out), median {stats['median']:.1f} us, "
               f"plain mean {stats['mean']:.1f} us.")
    if not stats["outliers"]:
        return f"{trimmed}\nOutliers: none (no call took over {OUTLIER_FACTOR:g}x the median, {limit:.1f} us)."
    load_text = "" if load is None else f", load average {load[0]:g}"
    return (f"{trimmed}\nOutliers: {stats['outliers']} of {stats['count']} calls "
            f"({stats['outliers'] / stats['count']:.1%}) took over {OUTLIER_FACTOR:g}x the median "
            f"({limit:.1f} us) and add {stats['mean'] - stats['mean_without_outliers']:.1f} us to "
            f"the mean (without them {stats['mean_without_outliers']:.1f} us). Calls that slow "
            f"waited for the core (other work on this machine{load_text}): quote the median or "
            f"the trimmed mean, or measure again on an idle machine.")


def format_report(result):
    """The text report, laid out like benchmark_model's (times in microseconds)."""
    warm, timed = result["warmup_us"], result["inference_us"]
    out = [f"Graph: [{result['model']}]", f"Backend: [{result['backend']}]",
           f"Input: [{result['input']}] {result['samples']} sample(s) of "
           f"{'x'.join(map(str, result['input_shape']))} {result['input_dtype']}",
           f"Loaded model in {result['init_us'] / 1e3:.3f}ms.",
           f"First inference: {result['first_us']:.1f}us"]
    if warm:
        out += [f"Running warm-up for {warm['count']} iterations.", _stat_line(warm)]
    out += [f"Running benchmark for {timed['count']} iterations.", _stat_line(timed), "",
            f"Inference timings in us: Init: {result['init_us']:.0f}, "
            f"First inference: {result['first_us']:.0f}, "
            f"Warmup (avg): {warm['mean'] if warm else float('nan'):.1f}, "
            f"Inference (avg): {timed['mean']:.1f}, "
            f"Inference (trimmed avg): {timed['trimmed_mean']:.1f}",
            outlier_note(timed, result["load_average"])]
    rss = result["max_rss_bytes"]
    out.append(f"Peak memory: tracemalloc peak={result['tracemalloc_peak_bytes']} bytes over "
               f"classify calls, max RSS={'n/a' if rss is None else f'{rss / 2**20:.1f}'} MB")
    return "\n".join(out)
