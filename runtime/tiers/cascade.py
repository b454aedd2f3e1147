"""Big-Little cascades: a little model on the device, a big one remote.

The little net knows a few priority classes (one-vs-all, or a few plus
"other"); the big net knows all. A ``Policy`` says when the remote model is
asked: never (``local``), only when the little net does not claim a
priority class confidently (``sequential``), at the same moment as the
little net starts (``parallel``), or always (``remote``). When the remote
tier fails (down, past its deadline, garbage), the little net's answer
is returned marked ``local-fallback`` and the error is counted; only a
``strict`` policy raises. What the remote model sends is checked before a
result is built from it: class scores as floats, one row of two or more
per sample. The first fallback because the remote tier ran out of time is
logged as a warning (logger ``edgebnn.tiers.cascade``): a deadline too
tight for the link or the batch otherwise shows only in ``counters``.
``classify_batch`` follows the same policy for a batch, with one remote
request for the samples that need it.
"""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from ..errors import RemoteError, RemoteTimeout
from ..result import Exit, Result

KINDS = ("local", "sequential", "parallel", "remote")
log = logging.getLogger(__name__)


class Policy:
    """When to ask the remote model, and when the little net's answer stands.

    The little net *claims* a sample when its label is a priority class (by
    default every class but ``other``), its confidence is at least
    ``min_confidence`` and its normalized entropy is below ``max_entropy``.
    ``parallel_late`` says what happens to a remote call the little net made
    unnecessary: ``"cancel"`` (not waited for) or ``"keep"`` (let it finish
    and count it, e.g. so the server sees every sample).
    """

    def __init__(self, kind="sequential", priority=None, other="other", min_confidence=0.9,
                 max_entropy=1.0, parallel_late="cancel", strict=False):
        if kind not in KINDS:
            raise ValueError(f"policy {kind!r} unknown; choose one of {', '.join(KINDS)}")
        if not 0.0 <= min_confidence <= 1.0 or not 0.0 <= max_entropy <= 1.0:
            raise ValueError("min_confidence and max_entropy must be within [0, 1]")
        if parallel_late not in ("cancel", "keep"):
            raise ValueError("parallel_late must be 'cancel' or 'keep'")
        self.kind, self.priority, self.other = kind, priority, other
        self.min_confidence, self.max_entropy = min_confidence, max_entropy
        self.parallel_late, self.strict = parallel_late, strict

    def claims(self, result, priority):
        return (result.name in priority and result.confidence >= self.min_confidence
                and result.entropy < self.max_entropy)


class Cascade:
    """Runs one sample through the little model (``local``, a ``runtime.Local``) and, per the
    policy, the remote one."""

    def __init__(self, local, remote, policy):
        self.local, self.remote, self.policy = local, remote, policy
        classes = local.classes
        self.priority = set(policy.priority if policy.priority is not None
                            else [c for c in classes if c != policy.other])
        unknown = self.priority - set(classes)
        if unknown:
            raise ValueError(f"priority classes {sorted(unknown)} are not classes of the "
                             f"little model ({', '.join(classes)})")
        self.counters = {Exit.LOCAL.value: 0, Exit.REMOTE.value: 0, Exit.LOCAL_FALLBACK.value: 0,
                         "remote_calls": 0, "remote_errors": 0, "remote_late": 0}
        self._lock = threading.Lock()
        self._pool = None
        self._warned = False

    def classify(self, x):
        started = time.perf_counter()
        kind = self.policy.kind
        pending = self._submit(x) if kind == "parallel" else None
        if kind == "remote":
            local = None
        else:
            local = self._local(x)
            if kind == "local" or self.policy.claims(local, self.priority):
                if pending is not None:
                    self._leave(pending)
                return self._answer(local, Exit.LOCAL, started)
        try:
            if pending is not None:
                remote = pending.result(timeout=self._wait(1))
            else:
                remote = self._ask(x)
        except (RemoteError, FutureTimeout) as error:
            self._failed(error)
            return self._answer(local or self._local(x), Exit.LOCAL_FALLBACK, started)
        remote.timings["local"] = local.timings["local"] if local else None
        return self._answer(remote, Exit.REMOTE, started)

    def _local(self, x):
        started = time.perf_counter()
        result = self.local.classify(x)
        result.timings = {"local": time.perf_counter() - started}
        return result

    def classify_batch(self, x):
        """The answers ``classify`` would give each sample of ``x``, the remote ones from
        one request; each result's timings are its batch's."""
        started = time.perf_counter()
        self.local.check_batch(x)       # the same refusals whatever the policy
        kind = self.policy.kind
        pending = self._submit(x, self._ask_batch) if kind == "parallel" else None
        local = None if kind == "remote" else self._local_batch(x)
        if kind == "local":
            return [self._answer(result, Exit.LOCAL, started) for result in local]
        asked = list(range(len(x))) if local is None else \
            [i for i, result in enumerate(local) if not self.policy.claims(result, self.priority)]
        answers = list(local) if local is not None else [None] * len(x)
        if asked:
            try:
                if pending is not None:
                    remote = [pending.result(timeout=self._wait(len(x)))[i] for i in asked]
                else:
                    remote = self._ask_batch(x[asked])
            except (RemoteError, FutureTimeout) as error:
                self._failed(error)
                local = local or self._local_batch(x)
                return [self._answer(result, Exit.LOCAL_FALLBACK if i in asked else Exit.LOCAL,
                                     started) for i, result in enumerate(local)]
            for i, result in zip(asked, remote):
                result.timings["local"] = local[i].timings["local"] if local else None
                answers[i] = result
        elif pending is not None:
            self._leave(pending)
        return [self._answer(result, Exit.REMOTE if i in asked else Exit.LOCAL, started)
                for i, result in enumerate(answers)]

    def _local_batch(self, x):
        started = time.perf_counter()
        results = self.local.classify_batch(x)
        seconds = time.perf_counter() - started
        for result in results:
            result.timings = {"local": seconds}
        return results

    def _ask(self, x):
        """The remote model's answer as a Result (raises RemoteError)."""
        return self._ask_batch(x[None])[0]

    def _ask_batch(self, x):
        """The remote model's answers for the samples ``x``, one request (raises RemoteError)."""
        self._count("remote_calls")
        started = time.perf_counter()
        logits = self._class_scores(self.remote.infer_batch(x), len(x))
        seconds = time.perf_counter() - started
        return [Result(row, self.remote.classes, Exit.REMOTE, {"remote": seconds})
                for row in logits]

    def _class_scores(self, logits, n):
        """``logits`` if they are n rows of two or more float scores, else RemoteError: a
        reply that cannot be summarized is the peer's failure, never an exception here."""
        shape = getattr(logits, "shape", None)
        if not (isinstance(logits, np.ndarray) and logits.dtype.kind == "f" and logits.ndim == 2
                and shape[0] == n and shape[1] >= 2):
            raise RemoteError(f"{self.remote.url}: the remote model answered "
                              f"{getattr(logits, 'dtype', type(logits))} of shape {shape}, not "
                              f"{n} rows of class scores (two or more floats each)")
        return logits

    def _wait(self, samples):
        """How long to wait for a parallel call of ``samples`` samples: its own deadline."""
        return self.remote.deadline_for(samples) + 0.05

    def _failed(self, error):
        """Count the remote tier's failure; raise it under a strict policy, else warn of
        the first one that was a deadline running out."""
        self._count("remote_errors")
        if self.policy.strict:
            raise RemoteError(f"remote tier failed: {error}") from None
        late = isinstance(error, (RemoteTimeout, FutureTimeout))
        if late and not self._warned:
            self._warned = True
            log.warning("the remote tier missed its deadline (%s); answering with the local "
                        "net. A batch may need RemoteModel(..., per_sample=SECONDS); "
                        "counters show how often this happens", error or "no answer in time")

    def _submit(self, x, ask=None):
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="remote")
        return self._pool.submit(ask or self._ask, x)

    def _leave(self, pending):
        """The little net answered first: drop or keep the remote call."""
        if self.policy.parallel_late == "cancel":
            pending.cancel()
        else:
            pending.add_done_callback(lambda f: f.exception() is None and self._count("remote_late"))

    def _answer(self, result, tier, started):
        result.exit = tier
        result.timings.setdefault("remote", None)
        result.timings["total"] = time.perf_counter() - started
        self._count(tier.value)
        return result

    def _count(self, key):
        with self._lock:
            self.counters[key] += 1

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.remote.close()
