"""Interleaved timing: candidates measured in turns, in one run, as ratios.

Machines are noisy, so every candidate runs a short round in turn, many
rounds over; the per-call time of a candidate is the median of its rounds,
and only ratios between candidates measured this way are reported.
"""
import os
import statistics
import sys
import time

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded():
    """Pin BLAS and OpenMP pools to one thread (they read this when NumPy loads)."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def run_single_threaded(module):
    """For a benchmark program's start: make sure NumPy's pools run one thread.

    The pools read ``THREAD_VARIABLES`` once, when NumPy loads, and ``python
    -m edgebnn.bench`` loads the edgebnn package, NumPy with it, before any
    benchmark code runs. So when one was not set, the program starts again
    (``python -m module`` with the same arguments) with them set. Two BLAS
    threads on a busy two-core machine stalled a 0.25 ms float call for a
    whole time slice, 12 ms.
    """
    unset = [name for name in THREAD_VARIABLES if name not in os.environ]
    single_threaded()
    if unset and "numpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]])


def interleaved_samples(candidates, calls=50, rounds=30, warmup=20, rotate=False):
    """Seconds per call of each ``name -> function()`` in every round, taking turns.

    With ``rotate`` each round starts one candidate later, so none always
    runs right after the same neighbour (whose data has just filled the caches).
    """
    for function in candidates.values():
        for _ in range(warmup):
            function()
    samples = {name: [] for name in candidates}
    order = list(candidates.items())
    for turn in range(rounds):
        shift = turn % len(order) if rotate else 0
        for name, function in order[shift:] + order[:shift]:
            started = time.perf_counter()
            for _ in range(calls):
                function()
            samples[name].append((time.perf_counter() - started) / calls)
    return samples


def interleaved(candidates, calls=50, rounds=30, warmup=20, rotate=False):
    """Median seconds per call of each ``name -> function()`` taking turns."""
    samples = interleaved_samples(candidates, calls, rounds, warmup, rotate)
    return {name: statistics.median(times) for name, times in samples.items()}
