"""The largest net of a family that fits a budget, found by timing candidates.

A line fitted over a quick sweep bends where the weights outgrow a cache
and moves with the load of a shared board, so ``budget`` without a profile
does not trust one: it times the nets themselves. Per line ("float",
"binary/c", ...) it brackets the width h of ``n_in-h-...-h-n_out``:

- one measured candidate seeds the next guess (time taken as proportional to
  the weights, the step clamped so the bracket always moves);
- each candidate is timed in passes of rounds (at least three) until the 95 %
  interval of its median (order statistics, no assumption on the shape of
  the times) lies wholly under or over the budget; one still straddling it
  when its share of the time is spent counts as "does not fit" and says so;
- the bracket is halved (geometric middle) until the widths that fit and do
  not fit are within ``RESOLUTION`` of each other, or the widest net that
  loads (memory, the loader's file limit, the default Limits) fits, or the
  time allowed is spent.

Each answer carries the candidate's own median and interval and what bound
it; nothing that was not measured is given as an answer.
"""
import math
import statistics
import time

from .memory import needs, refusal
from .shapes import mlp_weights
from .sizing import widest_width, family_shape

RESOLUTION = 0.05       # stop when the widths that fit and do not fit are 5 % apart
ROUNDS = 11             # rounds per pass of a candidate
MIN_PASSES = 3          # a candidate's passes at least: one burst of load is not a verdict
MAX_PASSES = 9          # and at most (99 rounds)
STEP = (1.25, 8.0)      # how far one guess may move the width, down or up
Z95 = 1.96


def median_interval(samples, z=Z95):
    """A ~95 % interval for the median of ``samples``: the order statistics
    ``n/2 -+ z sqrt(n)/2`` (the binomial count of samples below the median)."""
    ordered = sorted(samples)
    n = len(ordered)
    half = z * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half) - 1)
    return ordered[low], ordered[high]


def judge(measure, budget, deadline):
    """``(fits, samples)``: True or False once the median's interval is on one side of
    ``budget`` (seconds) after at least ``MIN_PASSES`` passes of ``measure(rounds)``
    (seconds per sample, one per round); None when it still straddles it at
    ``deadline`` or after ``MAX_PASSES``."""
    samples = []
    for passes in range(1, MAX_PASSES + 1):
        samples += measure(ROUNDS)
        if passes < MIN_PASSES:
            continue
        low, high = median_interval(samples)
        if high <= budget:
            return True, samples
        if low > budget:
            return False, samples
        if time.monotonic() > deadline:
            break
    return None, samples


def next_width(width, seconds, budget, family, low, high, widest):
    """The next width to try after ``width`` took ``seconds``, or None when the bracket
    is closed: ``low`` fits (0: none known), ``high`` does not (None: none known).

    With both ends known, the geometric middle; else the width whose weights
    scale by ``budget / seconds``, at least ``STEP[0]`` and at most ``STEP[1]``
    times away, and within ``1..widest``."""
    if high is not None and (high - low <= 1 or (low and high <= (1 + RESOLUTION) * low)):
        return None
    if low and high is not None:
        return min(max(round(math.sqrt(low * high)), low + 1), high - 1)
    target = mlp_weights(family_shape(family, width)) * budget / seconds
    guess = widest_width(lambda w: mlp_weights(family_shape(family, w)) <= target)
    short, far = STEP
    if seconds <= budget:
        guess = min(max(guess, math.ceil(width * short)), math.floor(width * far), widest)
    else:
        guess = max(min(guess, math.floor(width / short)), math.ceil(width / far), 1)
    return min(max(guess, low + 1), widest if high is None else high - 1)


def search(measure, budget, family, widest, start, deadline):
    """The widest width of ``family`` whose time fits ``budget`` (seconds).

    ``measure(width, rounds)`` gives seconds per sample, one per round;
    ``widest`` is the widest that loads (``widest_loadable``), ``start`` the
    first width tried. Once the bracket is closed, the answer is timed again
    (and the bracket reopened below it if it no longer fits). Returns ``(best,
    bound, tried)``: the widest candidate that fits (None: none did), what
    stopped the search ("resolution", "loads": the widest that loads fits,
    "narrowest": width 1 does not fit, "time"), and every candidate as tried."""
    low, high, tried, width = 0, None, [], max(1, min(start, widest))
    confirmed = False
    while True:
        fits, samples = judge(lambda rounds: measure(width, rounds), budget, deadline)
        low_s, high_s = median_interval(samples)
        median = statistics.median(samples)
        tried.append({"width": width, "seconds": median, "interval": [low_s, high_s],
                      "rounds": len(samples), "fits": fits})
        if fits:
            low = width
        else:
            high = width
        best = max((row for row in tried if row["fits"]), key=lambda row: row["width"],
                   default=None)
        if fits and width == widest:
            return best, "loads", tried
        if not fits and width == 1:
            return best, "narrowest", tried
        width = next_width(width, median, budget, family, low, high, widest)
        if width is None and (confirmed or best is None):
            return best, "resolution", tried
        if time.monotonic() > deadline:
            return best, "time", tried
        if width is None:
            # the answer timed once more, later: a drift of the machine since shows here
            confirmed, width = True, best["width"]
            tried.remove(best)
            low = max((row["width"] for row in tried if row["fits"]), default=0)


def widest_loadable(family, name, memory):
    """``(width, bound)``: the widest net of the family that loads on line ``name``
    (within ``memory`` bytes, None: any) and what stops the next wider one."""
    def stop(width):
        sizes = family_shape(family, width)
        refused = refusal(sizes, name)
        if refused:
            return refused[0]
        if memory is not None and needs(sizes, name)["peak"] > memory:
            return "memory"
        return None
    if stop(1):
        return 0, stop(1)
    width = widest_width(lambda w: stop(w) is None)
    return width, stop(width + 1)


def net_measure(name, sizes_of, seed=0):
    """``measure(key, rounds)``: seconds per sample of a random net of ``sizes_of(key)``
    on line ``name``, one per round; the last key's net is kept for its next pass,
    and only one is in memory at a time."""
    from .sweep import round_samples, shape_runtimes
    kept = {}                               # empty, or the last key's net: key, runtimes, x

    def measure(key, rounds):
        if not kept or kept["key"] != key:
            kept.clear()                    # the previous net goes before the next is built
            runtimes, x = shape_runtimes(sizes_of(key), [name], seed)
            kept.update(key=key, runtimes=runtimes, x=x)
        return round_samples(kept["runtimes"], kept["x"], rounds)[name]
    return measure


def _row(family, candidate):
    sizes = family_shape(family, candidate["width"])
    return {"sizes": list(sizes), "weights": mlp_weights(sizes),
            "measured_ms": candidate["seconds"] * 1e3,
            "interval_ms": [t * 1e3 for t in candidate["interval"]],
            "rounds": candidate["rounds"], "fits": candidate["fits"]}


def largest(name, family, ms, memory, seconds, start, measure=None):
    """The answer for one line and side: the largest net of ``family`` that fits ``ms``
    and ``memory`` (bytes, None: not checked), searched for at most ``seconds``.

    ``sizes`` None when nothing fits; ``bound`` says what stopped the search:
    "resolution", "memory", "file", "limits" (the widest net that loads fits),
    "narrowest" (nothing fits) or "time"; ``next`` is the narrowest candidate
    that did not fit (None: none was timed)."""
    widest, load_bound = widest_loadable(family, name, memory)
    if widest == 0:
        return {"sizes": None, "bound": load_bound, "next": None, "candidates": []}
    measure = measure or net_measure(name, lambda width: family_shape(family, width))
    best, bound, tried = search(measure, ms * 1e-3, family, widest, start,
                                time.monotonic() + seconds)
    rows = [_row(family, candidate) for candidate in tried]
    over = [row for row in rows if not row["fits"]]
    answer = ({"sizes": None} if best is None else
              {key: value for key, value in _row(family, best).items() if key != "fits"})
    return dict(answer, bound=load_bound if bound == "loads" else bound,
                next=min(over, key=lambda row: row["weights"], default=None), candidates=rows)
