"""A board's timing profile: the sweep's lines and points, with the machine they came from.

A user runs ``python -m edgebnn.bench sweep --json board.json`` once on each board
and keeps the file; ``budget --profile board.json`` (or ``--remote-profile``
for the server) then plans without measuring again. The file is plain JSON
so it can be read without this package. The measured points are the
profile: loading fits the lines again from them (the lines written beside
them are for people reading the file), so a plan always knows the range
and the scatter of what was measured. Loading checks everything it uses
and raises ValueError naming the file and the problem.
"""
import json
import math
import os
import platform
import sys
import time

from .fit import fit_lines
from .memory import caches, meminfo
from .timing import blas_threads

FORMAT = "edgebnn-bench-profile"
VERSION = 1


def processor():
    """The CPU's name: platform.processor() is often empty on Linux, so ask /proc too."""
    name = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for row in f:
                key, _, value = row.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return name or "unknown"


def load_average():
    """The 1, 5 and 15 minute load averages: how busy the machine was when it was measured."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info():
    """What the timings depend on (CPU, caches, Python, NumPy, the kernel's popcount
    path) and what the memory budget does (the machine's memory, in bytes)."""
    import numpy
    from edgebnn.kernels import c_available
    info = {"machine": platform.machine(), "processor": processor(),
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": numpy.__version__,
            "blas_threads": blas_threads(),
            "caches": caches(), "memory": meminfo(), "c_kernel": c_available(),
            "popcount_path": None, "load_average": load_average()}
    if c_available():
        from edgebnn.kernels import c_library
        info["popcount_path"] = c_library.popcount_path
    return info


def make_profile(lines, points, command=None, machine=None):
    """The JSON-ready profile of a sweep."""
    return {"format": FORMAT, "version": VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command or " ".join(sys.argv),
            "machine": machine_info() if machine is None else machine,
            "lines": {name: line.as_dict() for name, line in lines.items()},
            "points": points}


def save_profile(profile, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(profile, f, indent=2)
        f.write("\n")


def load_profile(path):
    """``(profile dict, {name: Line})`` from a saved file, or ValueError naming the problem."""
    try:
        with open(path, encoding="utf-8") as f:
            profile = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"profile {path}: no such file (save one with "
                         f"'python -m edgebnn.bench sweep --profile {path}')") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"profile {path}: cannot read it ({error})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"profile {path}: not valid JSON ({error})") from None
    if not isinstance(profile, dict) or profile.get("format") != FORMAT:
        raise ValueError(f"profile {path}: not an edgebnn bench profile "
                         f"(no \"format\": \"{FORMAT}\")")
    if profile.get("version") != VERSION:
        raise ValueError(f"profile {path}: version {profile.get('version')!r}, "
                         f"this tool reads version {VERSION}")
    try:
        return profile, fit_lines(_points(profile.get("points")))
    except ValueError as error:
        raise ValueError(f"profile {path}: {error}") from None


def _points(raw):
    """The measured points, each checked: a line name, a weight count, a time."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("\"points\" must be a non-empty list of measurements")
    for i, point in enumerate(raw):
        try:
            passes = point.get("pass_seconds", [])
            good = (isinstance(point["line"], str) and point["weights"] > 0
                    and math.isfinite(point["weights"]) and math.isfinite(point["seconds"])
                    and all(math.isfinite(t) for t in passes))
        except (TypeError, KeyError, AttributeError):
            good = False
        if not good:
            raise ValueError(f"point {i} needs a line name, a positive weight count and a "
                             f"finite time in seconds (and of each pass), got {point!r}")
    return raw


def load_profiles(paths):
    """One machine's profiles read as one: the first file's machine, and every file's
    lines and points, a later file's line replacing an earlier one of the same name
    (a sweep of one kind where its answers land, after the board's general sweep)."""
    merged, lines = None, {}
    for path in paths:
        profile, found = load_profile(path)
        if merged is None:
            merged = dict(profile, points=[])
        merged["points"] = [p for p in merged["points"] if p["line"] not in found] + profile["points"]
        lines.update(found)
    return merged, lines
