"""Every training run behind reports/biglittle.md and reports/ddnn.md, as one queue.

    python3 examples/reproduce.py list
    python3 examples/reproduce.py train --data DIR --root ROOT [--workers 1] [--only PATTERN ...]
    python3 examples/reproduce.py check --data DIR --root EMPTY_DIR --report reports/biglittle.md \\
        [--only PATTERN ...]

``train`` runs the plan's jobs, most important first, skipping those whose
files exist with a record of the plan's command (so a stopped queue resumes,
and a changed recipe retrains just the files it changes): the models the
repository ships go to ``models/biglittle`` and ``models/ddnn``, the others
(float little nets but the paper's-way ones of digits 1 and 8 seed 0, the
big nets) to ``ROOT``. Each job logs to ``ROOT/logs/NAME.log``;
``ROOT/logs/queue.log`` says when each started and ended. Jobs run at the
lowest priority (nice 19), one PyTorch thread each; ``--workers`` runs that
many at once.

``check`` trains the chosen jobs again, everything into ``EMPTY_DIR``, and
compares each file's SHA-256 with the digest the report lists for it
(training is deterministic for a seed on a given kind of machine, so the
recorded command rebuilds the same bytes there; a difference prints the
machine each record names). ``--only`` takes shell patterns of job
names (``list`` shows them), e.g. ``--only 'big*' 'little-float-[02-79]'``.
"""
import argparse
import fnmatch
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import NamedTuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provenance  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = {"biglittle": "models/biglittle", "ddnn": "models/ddnn"}
EPOCHS = {"little-float": 12, "little-binary": 12, "small": 6, "big": 6, "ddnn": 12}
SEEDS = (0, 1, 2)
HEADLINE_DIGITS = (1, 8)
OTHER_DIGITS = (0, 2, 3, 4, 5, 6, 7, 9)
AGGREGATORS = ("max", "average", "concat")
MAIN_DROP = 0.1          # device dropout of the main DDNN (our addition; the pairings use 0)
MORE_DROP = 0.2          # the other rate validation compares it with
LONGER = 20              # epochs of the main DDNN recipe's longer candidate
WIDER = 256              # the cloud's hidden signs in its wider candidate (the main recipe: 128)
SHIFT = 2                # pixels of random shift in the recipes that go beyond the paper
UNWEIGHTED = 1.0         # the float little nets' candidate loss weight of digit K (the main: 2)


class Job(NamedTuple):
    name: str            # the file stem, unique across the plan
    report: str          # "biglittle" or "ddnn"
    script: str
    args: tuple          # without --data and the output option
    shipped: bool
    folder: str = ""     # below the report's folder

    def output(self, root, check=False):
        """The ``.h5`` this job writes: shipped models into the repository, unless checking."""
        base = os.path.join(REPO, SHIPPED[self.report]) if self.shipped and not check \
            else os.path.join(root, self.report)
        return os.path.join(base, self.folder, self.name + ".h5")

    def argv(self, data, root, check=False):
        """The command, run from the repository (so a shipped model's record says models/...)."""
        out = os.path.relpath(self.output(root, check), REPO) if self.shipped and not check \
            else self.output(root, check)
        place = ("--out-dir", os.path.dirname(out)) if self.report == "biglittle" else ("--out", out)
        return [sys.executable, os.path.join("examples", self.script), "--data", data,
                *place, *self.args]


def little(kind, digit, seed, shipped, hidden=None, tag=None, epochs=None, shift=0, pos_weight=None):
    """A little net; a smaller ``hidden`` shape carries a ``tag``, shifted training ``shiftN``,
    a plain (unweighted) cross entropy ``unweighted``."""
    tag = f"shift{shift}" if shift else "unweighted" if pos_weight == UNWEIGHTED else tag
    name = f"{kind}-{digit}" + (f"-{tag}" if tag else "") + (f"-s{seed}" if seed else "")
    args = ["--kind", kind, "--digit", str(digit), "--seed", str(seed),
            "--epochs", str(epochs or EPOCHS[kind])]
    args += ["--hidden", hidden] if hidden else []
    args += ["--shift", str(shift)] if shift else []
    args += ["--pos-weight", str(pos_weight)] if pos_weight else []
    args += ["--tag", tag] if tag else []
    return Job(name, "biglittle", "biglittle_train.py", tuple(args), shipped)


def big(seed, shift=0):
    tag = f"shift{shift}" if shift else None
    name = "big" + (f"-{tag}" if tag else "") + (f"-s{seed}" if seed else "")
    args = ["--kind", "big", "--seed", str(seed), "--epochs", str(EPOCHS["big"])]
    args += ["--shift", str(shift), "--tag", tag] if shift else []
    return Job(name, "biglittle", "biglittle_train.py", tuple(args), False)


def ddnn(local, cloud, seed, drop, edge=False, epochs=None, hidden=None):
    """A DDNN run, of the main recipe's length unless ``epochs`` (then ``...-eEPOCHS``);
    without device dropout it is ``...-paper``, with a rate other than the main one
    ``...-dropRATE``, with a wider cloud ``...-hHIDDEN``."""
    rate = {MAIN_DROP: "", 0.0: "-paper"}.get(drop, f"-drop{drop}")
    name = f"{local}-{cloud}" + ("-edge" if edge else "") + rate + (f"-e{epochs}" if epochs else "") \
        + (f"-h{hidden}" if hidden else "") + (f"-s{seed}" if seed else "")
    args = ["--local", local, "--cloud", cloud, "--seed", str(seed), "--drop", str(drop),
            "--epochs", str(epochs or EPOCHS["ddnn"])] + (["--edge"] if edge else [])
    args += ["--hidden", str(hidden)] if hidden else []
    return Job(name, "ddnn", "ddnn_train.py", tuple(args), True)


def pairing(local, cloud, seed):
    """The aggregation comparison's runs, ``pairings/LOCAL-CLOUD-nodrop-sSEED``: the paper's way,
    as long as the main model. Its max-concat is the like-for-like run, not planned twice."""
    args = ["--local", local, "--cloud", cloud, "--seed", str(seed), "--drop", "0.0",
            "--epochs", str(EPOCHS["ddnn"])]
    return Job(f"{local}-{cloud}-nodrop-s{seed}", "ddnn", "ddnn_train.py", tuple(args), True,
               "pairings")


def plan():
    """Every job, most important first: the headline models' first seed, their other seeds,
    the aggregation comparison, the remaining digits, then what goes beyond the paper."""
    first = [ddnn("max", "concat", 0, MAIN_DROP)]
    first += [little(kind, d, 0, True) for kind in ("little-float", "little-binary")
              for d in HEADLINE_DIGITS]
    first += [ddnn("max", "concat", 0, 0.0), big(0)]
    seeds = [ddnn("max", "concat", s, drop) for drop in (MAIN_DROP, 0.0) for s in SEEDS[1:]]
    seeds += [little(kind, d, s, kind == "little-binary") for s in SEEDS[1:]
              for kind in ("little-float", "little-binary") for d in HEADLINE_DIGITS]
    seeds += [big(s) for s in SEEDS[1:]]
    # the float little nets' candidate recipe, one change from the main one (the paper's
    # plain softmax loss); biglittle_report.py chooses between the recipes on validation
    seeds += [little("little-float", d, s, False, pos_weight=UNWEIGHTED)
              for s in SEEDS for d in HEADLINE_DIGITS]
    seeds += [ddnn("max", "concat", s, MORE_DROP) for s in SEEDS]
    seeds += [ddnn("max", "concat", s, MAIN_DROP, **change) for change in
              ({"hidden": WIDER}, {"epochs": LONGER}) for s in SEEDS]
    # the paper's way at the width validation chose: the main model's like-for-like row
    seeds += [ddnn("max", "concat", s, 0.0, hidden=WIDER) for s in SEEDS]
    pairings = [pairing(local, cloud, s) for s in SEEDS
                for local in AGGREGATORS for cloud in AGGREGATORS if (local, cloud) != ("max", "concat")]
    digits = [little(kind, d, 0, kind == "little-binary")
              for d in OTHER_DIGITS for kind in ("little-float", "little-binary")]
    smaller = [little("little-binary", d, 0, True, hidden, tag, EPOCHS["small"])
               for d, hidden, tag in ((1, "256,128", "small"), (8, "256,128", "small"),
                                      (8, "512,256", "medium"))]
    beyond = [little("little-float", d, s, False, shift=SHIFT) for s in SEEDS for d in HEADLINE_DIGITS]
    beyond += [ddnn("max", "concat", 0, MAIN_DROP, edge=True), big(0, shift=SHIFT)]
    return first + seeds + pairings + digits + smaller + beyond


def chosen(jobs, patterns):
    if not patterns:
        return jobs
    picked = [j for j in jobs if any(fnmatch.fnmatchcase(j.name, p) for p in patterns)]
    if not picked:
        raise SystemExit(f"no job matches {' '.join(patterns)}; see `reproduce.py list`")
    return picked


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_of(model):
    """The training record beside ``model``, or None when there is none or it does not parse."""
    try:
        with open(os.path.splitext(model)[0] + ".json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def trained_on(model):
    """What the record beside ``model`` says trained it."""
    record = record_of(model)
    return "no record here" if record is None else provenance.described(record)


def up_to_date(job, model):
    """Whether ``model`` is there with a record of this job's recipe: a file trained by an
    earlier recipe (say, fewer epochs) is trained again, a finished one is not."""
    record = record_of(model)
    return record is not None and os.path.exists(model) and \
        record.get("command", "").endswith(" ".join(job.args))


def listed_digests(report_text):
    """``{file name: SHA-256}`` from a report's table of files."""
    return {m.group(1): m.group(2) for m in
            re.finditer(r"`(?:[^`]*/)?([\w.-]+\.h5)`[^\n]*?\b([0-9a-f]{64})\b", report_text)}


class Queue:
    """Runs jobs in order on ``workers`` threads, each job a nice-19 child process whose
    output goes to its own log; ``stop`` (on SIGTERM) ends them all."""

    def __init__(self, jobs, data, root, check, logs):
        self.pending, self.data, self.root, self.check, self.logs = list(jobs), data, root, check, logs
        self.lock, self.failed = threading.Lock(), []
        self.children, self.stopped = set(), False
        os.makedirs(logs, exist_ok=True)

    def note(self, line):
        with self.lock, open(os.path.join(self.logs, "queue.log"), "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        print(line, flush=True)

    def work(self):
        while True:
            with self.lock:
                if not self.pending:
                    return
                job = self.pending.pop(0)
            if not up_to_date(job, job.output(self.root, self.check)):
                self.run(job)

    def run(self, job):
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1")
        started = time.perf_counter()
        path = os.path.join(self.logs, job.name + ".log")
        with open(path, "w") as log:
            child = subprocess.Popen(job.argv(self.data, self.root, self.check), cwd=REPO, env=env,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=lambda: os.nice(19))
            with self.lock:
                self.children.add(child)
                if self.stopped:
                    child.terminate()
            self.note(f"started {job.name} (pid {child.pid}); its epochs go to {path}")
            code = child.wait()
            with self.lock:
                self.children.discard(child)
        self.note(f"{'finished' if code == 0 else f'FAILED ({code})'} {job.name} "
                  f"in {time.perf_counter() - started:.0f} s")
        if code:
            with self.lock:
                self.failed.append(job.name)

    def stop(self, *_):
        """No job starts any more, and the running ones are terminated (a signal handler)."""
        with self.lock:
            self.stopped = True
            self.pending.clear()
            for child in self.children:
                child.terminate()

    def run_all(self, workers):
        threads = [threading.Thread(target=self.work) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["list", "train", "check"])
    parser.add_argument("--data", help="folder with the MNIST IDX .gz files")
    parser.add_argument("--root", help="folder for the models the repository does not ship")
    parser.add_argument("--only", nargs="+", help="shell patterns of job names")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--logs", help="log folder (default ROOT/logs)")
    parser.add_argument("--report", help="check: the report listing the digests")
    args = parser.parse_args(argv)
    jobs = chosen(plan(), args.only)
    if args.action == "list":
        for job in jobs:
            print(f"{job.name:32} {job.report:9} {'shipped' if job.shipped else 'rebuilt':8} "
                  f"{job.script} {' '.join(job.args)}")
        return 0
    if not args.data or not args.root:
        parser.error(f"{args.action} needs --data and --root")
    check = args.action == "check"
    if check:
        if not args.report:
            parser.error("check needs --report")
        with open(args.report) as f:
            listed = listed_digests(f.read())
        jobs = [j for j in jobs if j.report in os.path.basename(args.report)]
        missing = [j.name for j in jobs if j.name + ".h5" not in listed]
        if missing:
            parser.error(f"{args.report} lists no digest for {', '.join(missing)}")
    queue = Queue(jobs, os.path.abspath(args.data), os.path.abspath(args.root), check,
                  args.logs or os.path.join(args.root, "logs"))
    signal.signal(signal.SIGTERM, queue.stop)           # stopping the queue stops its children
    failed = queue.run_all(args.workers)
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    if check:
        wrong = 0
        for job in jobs:
            rebuilt = job.output(os.path.abspath(args.root), True)
            digest = sha256(rebuilt)
            same = digest == listed[job.name + ".h5"]
            wrong += not same
            print(f"{job.name}.h5: {digest} {'same as listed' if same else 'DIFFERS from ' + listed[job.name + '.h5']}")
            if not same:
                print(f"  trained on: {trained_on(job.output(os.path.abspath(args.root)))}\n"
                      f"  rebuilt on: {trained_on(rebuilt)}")
        if wrong:
            print("A seed gives the same bytes on the same kind of machine (CPU, PyTorch version, "
                  "threads); elsewhere PyTorch's CPU kernels round differently.")
        return 1 if wrong else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
