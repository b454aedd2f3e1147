"""``budget`` with no profile: every answer timed on this machine, and its text.

Per line and side, ``search.largest`` times candidates of the family until
the largest that fits is bracketed; the little net, the big net (here, or
on a live V2 server) and any ``--shape`` are timed too, so the Big-Little
split rests on measured numbers at both ends. ``--max-seconds`` is shared
out among the searches, each getting its share of what is left.
"""
import math
import statistics
import time

import numpy as np

from .budget import (BIG_SIZES, LITTLE_SIZES, break_even_link_ms, little_answers_first,
                     remote_budget_ms, round_trip_ms)
from .memory import megabytes
from .progress import Progress
from .search import ROUNDS, judge, largest, median_interval, net_measure
from .shapes import mlp_weights, shape_name

START = {"float": 256, "int8": 256, "binary": 1024}      # the first width tried, per kind
PASSES = 3                                  # passes of ROUNDS for a net timed once


def _timed(samples):
    return {"ms": statistics.median(samples) * 1e3,
            "interval_ms": [t * 1e3 for t in median_interval(samples)], "rounds": len(samples)}


def net_ms(name, sizes):
    """The median time of a random net of ``sizes`` on line ``name``, and its interval."""
    measure = net_measure(name, lambda _: sizes)
    return _timed([t for _ in range(PASSES) for t in measure(None, ROUNDS)])


def server_ms(url, model, deadline=10.0):
    """The time of one sample's request to ``model`` on a V2 server at ``url``, as
    measured from here: the link between is in it."""
    from edgebnn import RemoteModel
    remote = RemoteModel(url, model, deadline=deadline)
    try:
        spec = remote.spec()
        rng = np.random.default_rng(0)
        shape = [1 if n == -1 else n for n in spec["shape"][1:]]
        x = (rng.integers(0, 256, shape) if spec["dtype"].kind in "iu"
             else rng.standard_normal(shape))
        x = x.astype(spec["dtype"])
        for _ in range(3):
            remote.infer(x)
        samples = []
        for _ in range(PASSES * ROUNDS):
            started = time.perf_counter()
            remote.infer(x)
            samples.append(time.perf_counter() - started)
    finally:
        remote.close()
    return _timed(samples)


def plan(ms, link_ms, names, family, memory, max_seconds, big=None, shapes=(), progress=True):
    """Everything ``budget`` prints without a profile, as numbers.

    ``big`` is the big net's time when known (``{"ms": ..., "source": ...}``,
    given or from a server); else it is timed here, the "float" line standing
    in for the server."""
    remote_ms = remote_budget_ms(ms, link_ms)
    sides = {"local": ms, "remote": remote_ms}
    searches = [(side, name) for side in sides for name in names]
    bar = Progress(len(searches) + len(names) + (big is None) + len(shapes) * len(names),
                   "budget", enabled=progress)
    started = time.monotonic()
    stop_at = started + max_seconds
    result = {"method": "measured", "ms": ms, "link_ms": link_ms, "remote_ms": remote_ms,
              "memory": memory, "family": list(family), "max_seconds": max_seconds,
              "local": {}, "remote": {}}
    for k, (side, name) in enumerate(searches):
        share = max(stop_at - time.monotonic(), 0.0) / (len(searches) - k)
        before = result["local"].get(name, {}).get("sizes")
        start = before[1] if before else START[name.partition("/")[0]]
        result[side][name] = largest(name, family, sides[side], memory, share, start)
        bar.step(f"{side} {name}")
    result["shapes"] = [_shape_verdicts(sizes, names, sides, bar) for sizes in shapes]
    if big is None:
        big = dict(net_ms("float", BIG_SIZES), source="this machine (float), standing in")
        bar.step("big net")
    result["big"] = big
    result["round_trip_ms"] = round_trip_ms(link_ms, big["ms"])
    result["little"] = {}
    for name in names:
        row = net_ms(name, LITTLE_SIZES)
        result["little"][name] = dict(row, little_first=little_answers_first(row["ms"], link_ms,
                                                                             big["ms"]),
                                      break_even_link_ms=break_even_link_ms(row["ms"], big["ms"]))
        bar.step(f"little {name}")
    result["seconds"] = time.monotonic() - started
    return result


def _shape_verdicts(sizes, names, sides, bar):
    """Whether ``sizes`` fits each side's budget, per line, by timing it."""
    row = {"sizes": list(sizes), "local": {}, "remote": {}}
    for name in names:
        measure = net_measure(name, lambda _: sizes)
        for side, ms in sides.items():
            fits, samples = judge(lambda rounds: measure(None, rounds), ms * 1e-3, math.inf)
            row[side][name] = dict(_timed(samples), fits=fits)
        bar.step(f"{shape_name(sizes)} {name}")
    return row


def answered(result):
    """True when every line has an answer: a net that fits, or a measured "nothing fits"."""
    return all(row["sizes"] is not None or row["bound"] in ("narrowest", "memory", "file",
                                                             "limits")
               for side in ("local", "remote") for row in result[side].values())


def _ms(row):
    low, high = row["interval_ms"]
    return f"{row.get('measured_ms', row.get('ms')):.3f} ms ({low:.3f}-{high:.3f})"


BOUNDS = {"memory": "the widest net that loads in the memory given; wider ones do not load",
          "file": "the widest whose file the loader takes (edgebnn.packed.format.MAX_MODEL_BYTES)",
          "limits": "the widest within the default edgebnn.Limits"}


def answer_line(name, row):
    """One line's answer in words: the net, its own measured time, what bounded it."""
    if row["sizes"] is None:
        if row["bound"] == "narrowest":
            narrowest = row["next"]
            return f"  {name:<14} nothing fits: {shape_name(narrowest['sizes'])} takes {_ms(narrowest)}"
        if row["bound"] == "time":
            return f"  {name:<14} no answer: --max-seconds ran out before a candidate fitted"
        return f"  {name:<14} nothing loads: {BOUNDS[row['bound']]}"
    text = f"  {name:<14} {shape_name(row['sizes'])} ({row['weights']:,} weights): {_ms(row)}"
    if row["bound"] in BOUNDS:
        return text + f"; {BOUNDS[row['bound']]}"
    if row["next"] is not None:
        text += f"; {shape_name(row['next']['sizes'])} took {_ms(row['next'])}"
        if row["next"]["fits"] is None:
            text += ", too close to the budget to call"
    if row["bound"] == "time":
        text += " (--max-seconds ran out before the bracket closed to 5 %)"
    return text


def format_plan(result, machine, command):
    """``plan``'s numbers as text, the answers first."""
    ms, link, remote = result["ms"], result["link_ms"], result["remote_ms"]
    memory = "not checked" if result["memory"] is None else megabytes(result["memory"])
    out = [f"Within {ms:g} ms on this machine ({machine}; medians with their 95 % intervals, "
           f"each net timed until its interval was clear of the budget):"]
    out += [answer_line(name, row) for name, row in result["local"].items()]
    out.append(f"Remote side: {ms:g} ms - 2 x {link:g} ms link = {remote:g} ms "
               f"(this machine standing in for the server):")
    out += [answer_line(name, row) for name, row in result["remote"].items()]
    for shape in result["shapes"]:
        out.append(f"{shape_name(shape['sizes'])} ({mlp_weights(shape['sizes']):,} weights):")
        for name, here in shape["local"].items():
            remote = shape["remote"][name]
            out.append(f"  {name:<14} here {_verdict(here)}; remote {_verdict(remote)}")
    big = result["big"]
    out += ["", f"Big-Little: big net {shape_name(BIG_SIZES)} {big['ms']:.3f} ms "
                f"({big['source']}), round trip {result['round_trip_ms']:.3f} ms with the "
                f"{link:g} ms link; little net {shape_name(LITTLE_SIZES)} here:",
            f"  {'line':<14} {'little ms':>10} {'first now':>10} "
            f"{'first above link (ms each way)':>31}"]
    for name, row in result["little"].items():
        first = "yes" if row["little_first"] else "no"
        out.append(f"  {name:<14} {row['ms']:>10.3f} {first:>10} "
                   f"{row['break_even_link_ms']:>31.3f}")
    out += ["", f"Measured in {result['seconds']:.0f} s (--max-seconds {result['max_seconds']:g}); "
                f"memory for the model: {memory}. Redo: {command}"]
    return "\n".join(out)


def _verdict(row):
    word = {True: "fits", False: "does not fit", None: "too close to call"}[row["fits"]]
    return f"{word} ({row['ms']:.3f} ms)"
