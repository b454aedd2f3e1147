"""Fuzz the model loader with mutations of the shipped models, each load in a child process.

    python -m edgebnn.bench.fuzz --mutations 10000 [--seed 0] [--timeout 10] [--crafted]

Each mutation damages one copy of a shipped model: a flipped byte, a
truncation, a zeroed range, inserted bytes, or an HDF5-level edit made
with h5py (an attribute, a dataset, a link). Half of them are then sealed
again, as someone crafting a file would: those are not corrupted files but
hostile ones, so they reach libhdf5 and the strict reader behind the seal.
A child process (restarted after a crash or a hang) loads each file and,
when it loads, classifies one sample. Every outcome must be one of

- refused: ``ModelFileError`` / ``ModelFormatError`` (the contract);
- loaded: only a resealed file may load, and then run or raise InputError.

and never a crash, a hang (past ``--timeout`` seconds), another exception,
or a damaged (not resealed) file that loads. ``--crafted`` also loads the
hand-made hostile files (links, huge shapes, padding and pool bombs), each
in a fresh process, and prints the time and peak memory each refusal took.
Needs numpy and h5py only.
"""
import argparse
import glob
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

import h5py
import numpy as np

from edgebnn.packed import seal
from edgebnn.commands import command_parser
from edgebnn.models import FOLDER

OUTCOMES_OK = ("refused", "loaded")


# the shipped models and their mutations ---------------------------------------

def shipped_models():
    """Paths of every packed model in the models folder (a checkout has them all)."""
    return sorted(glob.glob(os.path.join(FOLDER, "**", "*.h5"), recursive=True))


def kind_of(path):
    return "ddnn" if f"{os.sep}ddnn{os.sep}" in path else "model"


def mutate_bytes(rng, data):
    """``(name, bytes)``: ``data`` damaged one way, always different from it."""
    n = len(data)
    choice = rng.integers(4)
    if choice == 0:
        at = int(rng.integers(n))
        changed = bytearray(data)
        changed[at] ^= int(rng.integers(1, 256))
        return f"flip byte {at}", bytes(changed)
    if choice == 1:
        cut = int(rng.integers(n))
        return f"truncate to {cut}", data[:cut]
    if choice == 2:
        start = int(rng.integers(n))
        stop = min(n, start + int(rng.integers(1, 4096)))
        if not any(data[start:stop]):
            return mutate_bytes(rng, data)
        return f"zero {start}:{stop}", data[:start] + bytes(stop - start) + data[stop:]
    at = int(rng.integers(n + 1))
    extra = rng.integers(0, 256, int(rng.integers(1, 256)), dtype=np.uint8).tobytes()
    return f"insert {len(extra)} at {at}", data[:at] + extra + data[at:]


def _objects(f):
    found = []
    f.visititems(lambda name, obj: found.append((name, obj)))
    return found


def mutate_hdf5(rng, path):
    """An HDF5-level edit of the file at ``path``, made with h5py; returns its name."""
    with h5py.File(path, "r+") as f:
        objects = _objects(f)
        datasets = [(name, obj) for name, obj in objects if isinstance(obj, h5py.Dataset)]
        holders = [("/", f)] + objects
        name, obj = holders[int(rng.integers(len(holders)))]
        choice = rng.integers(9)
        if choice == 0 and len(obj.attrs):
            attr = sorted(obj.attrs)[int(rng.integers(len(obj.attrs)))]
            del obj.attrs[attr]
            return f"delete attribute {name}:{attr}"
        if choice == 1 and len(obj.attrs):
            attr = sorted(obj.attrs)[int(rng.integers(len(obj.attrs)))]
            value = [np.int64(-1), np.float64(3e300), np.bytes_(b"\xff\xfe"), "text",
                     np.zeros((0,)), h5py.Empty("f4"), np.arange(5)][int(rng.integers(7))]
            obj.attrs[attr] = value
            return f"set attribute {name}:{attr}"
        name, dset = datasets[int(rng.integers(len(datasets)))]
        parent, leaf = dset.parent, name.rsplit("/", 1)[-1]
        data = dset[()]
        if choice == 2:
            del parent[leaf]
            return f"delete dataset {name}"
        if choice == 3:
            del parent[leaf]
            parent[leaf] = h5py.SoftLink("/" + name + "_moved")
            parent.create_dataset(leaf + "_moved", data=data)
            return f"soft link {name}"
        if choice == 4:
            del parent[leaf]
            parent[leaf] = h5py.ExternalLink(path, "/" + datasets[0][0])
            return f"external link {name}"
        if choice == 5:
            del parent[leaf]
            parent[leaf] = datasets[int(rng.integers(len(datasets)))][1] if len(datasets) > 1 \
                else h5py.Empty("f4")
            return f"hard link {name}"
        del parent[leaf]
        if choice == 6:
            parent.create_dataset(leaf, shape=(1 << 20, 1 << 12), dtype=data.dtype)
            return f"huge declared shape {name}"
        if choice == 7:
            parent.create_dataset(leaf, data=data.reshape(-1)[:max(0, data.size - 1)])
            return f"shorter dataset {name}"
        wild = data.astype(np.float64) * 1e30 if data.dtype.kind == "f" else data.astype(np.int64)
        parent.create_dataset(leaf, data=wild)
        return f"retyped dataset {name}"


def mutations(count, seed, folder):
    """Yield ``(source, description, path, resealed)`` for ``count`` mutated files in ``folder``."""
    rng = np.random.default_rng(seed)
    sources = shipped_models()
    originals = {path: open(path, "rb").read() for path in sources}
    for i in range(count):
        source = sources[int(rng.integers(len(sources)))]
        path = os.path.join(folder, f"m{i % 64}.h5")
        resealed = bool(rng.integers(2))
        if rng.integers(4) == 0:
            shutil.copyfile(source, path)
            try:
                description = mutate_hdf5(rng, path)
            except (OSError, ValueError, TypeError, KeyError) as error:   # h5py could not make it
                description = f"hdf5 edit not made ({error})"
        else:
            description, data = mutate_bytes(rng, originals[source])
            with open(path, "wb") as f:
                f.write(data)
        if resealed:
            with open(path, "rb") as f:
                data = f.read()
            if len(data) >= seal.USER_BLOCK:
                with open(path, "wb") as f:
                    f.write(seal.seal(data))
        with open(path, "rb") as f:
            changed = f.read() != originals[source]
        yield source, description, path, resealed, changed


# the child process that loads ----------------------------------------------------

def load_and_run(kind, path):
    """What loading ``path`` gives: ``(outcome, detail)``."""
    from edgebnn import ModelFileError, ModelFormatError, Runtime, load_ddnn
    from edgebnn.errors import InputError
    try:
        loaded = load_ddnn(path) if kind == "ddnn" else Runtime(path)
    except (ModelFileError, ModelFormatError) as error:
        return "refused", f"{type(error).__name__}: {error}"[:300]
    except Exception as error:          # the contract is broken: report it
        return "escaped", f"{type(error).__name__}: {error}"[:300]
    try:
        if kind == "ddnn":
            loaded.classify([np.zeros(d.model.sample_shape, d.model.input_dtype)
                             for d in loaded.devices], 0.0)
        else:
            loaded.classify(np.zeros(loaded.model.sample_shape, loaded.model.input_dtype))
    except InputError:
        pass
    except Exception as error:
        return "escaped", f"classify: {type(error).__name__}: {error}"[:300]
    return "loaded", ""


def worker():
    """Read ``kind<TAB>path`` lines, answer one JSON line each, with the peak memory
    growth of the load where Linux can reset the peak (/proc/self/clear_refs)."""
    for line in sys.stdin:
        kind, path = line.rstrip("\n").split("\t")
        before = _reset_peak()
        outcome, detail = load_and_run(kind, path)
        peak = memory_status("VmHWM") - before if before is not None else None
        print(json.dumps({"outcome": outcome, "detail": detail, "peak": peak}), flush=True)


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return memory_status("VmRSS")
    except OSError:
        return None


class Child:
    """A worker process; a load that crashes it or outlasts the timeout is reported as such."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.process = None
        self.peak = None            # the last load's peak memory growth, bytes

    def load(self, kind, path):
        if self.process is None:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edgebnn.bench.fuzz", "--worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
            first = 30.0             # imports
        else:
            first = 0.0
        self.process.stdin.write(f"{kind}\t{path}\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], self.timeout + first)
        if not ready:
            self.stop()
            return "hang", f"no answer within {self.timeout} s"
        line = self.process.stdout.readline()
        if not line:
            status = self.process.wait()
            self.process = None
            return "crash", f"exit status {status}"
        answer = json.loads(line)
        self.peak = answer.get("peak")
        return answer["outcome"], answer["detail"]

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def fuzz(count, seed=0, timeout=10.0, log=None, peaks=None):
    """Counts of outcomes over ``count`` mutations, and the failures (with what made them).

    ``peaks``, a list, gets ``(peak memory growth, file size)`` of each load."""
    counts, failures = Counter(), []
    child = Child(timeout)
    with tempfile.TemporaryDirectory() as folder:
        try:
            for i, (source, description, path, resealed, changed) in enumerate(
                    mutations(count, seed, folder)):
                outcome, detail = child.load(kind_of(source), path)
                if peaks is not None and child.peak is not None:
                    peaks.append((child.peak, os.path.getsize(path)))
                if outcome == "loaded" and changed and not resealed:
                    outcome = "changed file loaded silently"
                # an HDF5 edit that h5py could not make leaves the file as it was
                key = ("resealed" if resealed else "damaged" if changed else "unchanged", outcome)
                counts[key] += 1
                if outcome not in OUTCOMES_OK or (outcome == "loaded" and not resealed and changed):
                    failures.append((os.path.relpath(source, FOLDER), description, resealed,
                                     outcome, detail))
                if log and (i + 1) % 1000 == 0:
                    print(f"{i + 1} of {count} mutations: {progress_words(counts)}", file=log,
                          flush=True)
        finally:
            child.stop()
    return counts, failures


def progress_words(counts):
    """``counts`` of ``(file state, outcome)`` in words: "412 damaged refused (checksum), ..."."""
    return ", ".join(f"{n} {state} {outcome}" for (state, outcome), n in
                     sorted(counts.items(), key=lambda item: -item[1])) or "none yet"


# hand-made hostile files ------------------------------------------------------------

def crafted_files(folder):
    """``{name: path}``: files a hostile sender could make, each with a valid seal."""
    from edgebnn import BinaryConv2d, BinaryDense, Limits, Model, models, save_model
    unlimited = Limits(1 << 62, 1 << 62, 1 << 62)
    base = models.path("mnist-bnn.h5")
    files = {}

    def edited(name, change):
        path = os.path.join(folder, name + ".h5")
        shutil.copyfile(base, path)
        with h5py.File(path, "r+") as f:
            change(f)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(seal.seal(data))
        files[name] = path

    def replaced(dataset, **create):
        def change(f):
            del f[dataset]
            f.create_dataset(dataset, **create)
        return change

    other = os.path.join(folder, "other.h5")
    shutil.copyfile(models.path("mnist-mlp.h5"), other)
    edited("external link to another file's layers",
           lambda f: (f.__delitem__("layers"), f.__setitem__("layers", h5py.ExternalLink(other, "/layers"))))
    edited("soft link", lambda f: (f["layers/1"].__delitem__("flip"),
                                   f["layers/1"].__setitem__("flip", h5py.SoftLink("/layers/0/flip"))))
    edited("hard link alias", lambda f: (f["layers/1"].__delitem__("flip"),
                                         f["layers/1"].__setitem__("flip", f["layers/0/flip"])))
    edited("huge declared weight shape", replaced("layers/0/weight", shape=(1 << 30, 1 << 20), dtype="u1"))
    edited("huge input_shape", lambda f: f.attrs.__setitem__("input_shape", np.array([1 << 31, 1 << 31])))
    edited("weight declared but not stored", replaced("layers/1/weight", shape=(500, 125), dtype="u1"))
    for name, padding, pool in (("padding bomb", (3000, 3000), (300, 300)),
                                ("pool bomb", (20000, 20000), (20000, 20000))):
        conv = BinaryConv2d(np.zeros((8, 1, 1, 1), np.uint8), np.zeros(8, np.int32),
                            np.zeros(8, np.uint8), padding=padding, pool=pool)
        out = (28 + 2 * padding[0]) // pool[0]
        model = Model([conv, BinaryDense(np.zeros((2, out * out), np.uint8))], (28, 28), "uint8",
                      classes=["a", "b"], limits=unlimited)
        files[name] = os.path.join(folder, name.replace(" ", "-") + ".h5")
        save_model(model, files[name])
    return files


def measure_refusal(path):
    """In a fresh process, after one load of a shipped model (imports, kernel library):
    ``(outcome, seconds, peak RSS growth in bytes, detail)`` of loading ``path``.
    Linux only: the peak (VmHWM) is reset through /proc/self/clear_refs."""
    code = ("import json, sys, time\n"
            "from edgebnn import Runtime, models\n"
            "from edgebnn.bench.fuzz import load_and_run, memory_status\n"
            "Runtime(models.path('mnist-bnn.h5'))\n"
            "open('/proc/self/clear_refs', 'w').write('5')\n"
            "before = memory_status('VmRSS')\n"
            "start = time.perf_counter()\n"
            "outcome, detail = load_and_run('model', sys.argv[1])\n"
            "seconds = time.perf_counter() - start\n"
            "print(json.dumps([outcome, seconds, memory_status('VmHWM') - before, detail]))\n")
    done = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                          timeout=120)
    if done.returncode:
        return "crash", 0.0, 0, done.stderr[-300:]
    return tuple(json.loads(done.stdout))


def memory_status(field):
    """A memory figure of this process from /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def digest_share(path, repeats=20):
    """``(load seconds, digest seconds)``: medians of loading ``path`` and of checking its seal."""
    from edgebnn import Runtime
    with open(path, "rb") as f:
        data = f.read()
    loads, digests = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        Runtime(path)
        loads.append(time.perf_counter() - start)
        start = time.perf_counter()
        seal.check(path, data)
        digests.append(time.perf_counter() - start)
    return float(np.median(loads)), float(np.median(digests))


# the command ---------------------------------------------------------------------

def main(argv=None):
    parser = command_parser("edgebnn.bench.fuzz", __doc__.split("\n")[0])
    parser.add_argument("--mutations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a load is a hang")
    parser.add_argument("--crafted", action="store_true", help="also time the hand-made hostile files")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return 0
    start = time.perf_counter()
    peaks = []
    counts, failures = fuzz(args.mutations, args.seed, args.timeout, log=sys.stderr, peaks=peaks)
    print(f"{args.mutations} mutations of {len(shipped_models())} shipped models (seed {args.seed}) "
          f"in {time.perf_counter() - start:.0f} s:")
    for (kind, outcome), n in sorted(counts.items()):
        print(f"  {kind:9} {outcome:30} {n}")
    if peaks:
        growth, size = max(peaks)
        ratio, at = max((g / s, s) for g, s in peaks if s >= 1 << 16)
        print(f"  peak memory growth of a load: at most {growth / 2**20:.1f} MiB (a {size:,}-byte "
              f"file); of files from 64 KiB, at most {ratio:.1f}x the file's size (a {at:,}-byte "
              "file)")
    for failure in failures[:50]:
        print("  FAILURE", failure)
    if args.crafted:
        with tempfile.TemporaryDirectory() as folder:
            for name, path in crafted_files(folder).items():
                outcome, seconds, peak, detail = measure_refusal(path)
                print(f"  crafted {name:40} {outcome:8} {seconds * 1e3:6.1f} ms, peak memory "
                      f"+{peak / 2**20:4.1f} MiB: {detail.split('.h5: ', 1)[-1][:80]}")
        largest = max(shipped_models(), key=os.path.getsize)
        load, digest = digest_share(largest)
        print(f"  seal: {os.path.relpath(largest, FOLDER)} ({os.path.getsize(largest):,} bytes) loads "
              f"in {load * 1e3:.1f} ms, of which the SHA-256 check {digest * 1e3:.1f} ms "
              f"({digest / load:.0%}); medians of 20")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
