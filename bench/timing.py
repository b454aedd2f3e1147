"""Interleaved timing: candidates measured in turns, in one run, as ratios.

Machines are noisy, so every candidate runs a short round in turn, many
rounds over; the per-call time of a candidate is the median of its rounds,
and only ratios between candidates measured this way are reported.
"""
import ctypes
import os
import statistics
import time

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_threaded():
    """Pin BLAS and OpenMP pools to one thread (unless the environment says otherwise).

    The environment variables reach the processes a benchmark starts. This
    process has usually loaded NumPy already (``import edgebnn`` does, before
    any ``edgebnn.bench`` module runs), so an OpenBLAS it loaded is also told
    directly, through the entry point OpenBLAS builds export under one of a
    few names (NumPy's wheels prefix theirs with ``scipy_``).
    """
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    threads = int(os.environ["OPENBLAS_NUM_THREADS"])
    for setter in _openblas_entries("set_num_threads"):
        setter(threads)


def blas_threads():
    """The threads the loaded OpenBLAS computes on, as it says itself (None: none loaded).

    Its pool may hold more threads than that, idle: counting the process's
    threads cannot tell.
    """
    for getter in _openblas_entries("get_num_threads"):
        return getter()
    return None


def _openblas_entries(name):
    """``openblas_<name>`` of each OpenBLAS loaded, under the names builds export it by
    (NumPy's wheels prefix theirs with ``scipy_``, 64-bit integer builds add ``64_``)."""
    names = [prefix + name + suffix for prefix in ("openblas_", "scipy_openblas_")
             for suffix in ("", "64_")]
    for library in _loaded_openblas():
        found = [getattr(library, n) for n in names if hasattr(library, n)]
        yield from found[:1]


def _loaded_openblas():
    """The OpenBLAS libraries mapped into this process (Linux; none found elsewhere)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return []
    return [ctypes.CDLL(path) for path in sorted(paths)]


def interleaved_samples(candidates, calls=50, rounds=30, warmup=20, rotate=False, hot=False):
    """Seconds per call of each ``name -> function()`` in every round, taking turns.

    With ``rotate`` each round starts one candidate later, so none always
    runs right after the same neighbour (whose data has just filled the caches).
    With ``hot`` each turn starts with one untimed call, so every candidate is
    timed with its own data in the caches, as a program doing only that work
    (or one timing its own repeated rounds) would be.
    """
    for function in candidates.values():
        for _ in range(warmup):
            function()
    samples = {name: [] for name in candidates}
    order = list(candidates.items())
    for turn in range(rounds):
        shift = turn % len(order) if rotate else 0
        for name, function in order[shift:] + order[:shift]:
            if hot:
                function()
            started = time.perf_counter()
            for _ in range(calls):
                function()
            samples[name].append((time.perf_counter() - started) / calls)
    return samples


def interleaved(candidates, calls=50, rounds=30, warmup=20, rotate=False, hot=False):
    """Median seconds per call of each ``name -> function()`` taking turns."""
    samples = interleaved_samples(candidates, calls, rounds, warmup, rotate, hot)
    return {name: statistics.median(times) for name, times in samples.items()}
