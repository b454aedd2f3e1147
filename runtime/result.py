"""The answer ``classify`` gives, whichever tier gave it."""
from enum import Enum

from .exits import softmax, summarize


class Exit(str, Enum):
    """The tier that answered, equal to its name as text (``Exit.LOCAL == "local"``)."""
    LOCAL = "local"
    REMOTE = "remote"
    EDGE = "edge"
    CLOUD = "cloud"
    LOCAL_FALLBACK = "local-fallback"     # the tier above failed or was missing
    EDGE_FALLBACK = "edge-fallback"

    def fallback(self):
        """This tier's answer standing in for the one above it, which failed."""
        return Exit(f"{self.value}-fallback")

    def __str__(self):
        return self.value

    def __format__(self, spec):
        return format(self.value, spec)


class Result:
    """One answer from a tier's logits: the class, how sure, and where it came from.

    ``label`` is the class index and ``name`` its name in ``names`` (the
    index as text past the end of ``names``); ``summary``, when given, is
    ``exits.summarize(logits)`` already computed (e.g. by the C kernel); ``scores`` are the
    softmax probabilities of ``logits`` (the answering model's raw outputs);
    ``entropy`` is their normalized entropy in [0, 1]; ``exit`` (an ``Exit``,
    equal to its text) names the tier that answered: "local", "remote" or
    "local-fallback" (the remote tier failed); a DDNN answers "local",
    "edge", "cloud", or "local-fallback" / "edge-fallback" when the tier
    above that one could not answer (no feature map arrived, or its process
    failed). ``timings`` (seconds per tier
    and in total) is filled in by cascades and is None for a local-only
    runtime. ``bytes_sent`` is filled in by a DDNN: the bytes each device sent
    for this sample (0 for a missing device), None elsewhere.
    """
    __slots__ = ("label", "name", "confidence", "logits", "entropy", "exit", "timings",
                 "bytes_sent", "_scores")

    def __init__(self, logits, names, exit, timings=None, bytes_sent=None, summary=None):
        self.label, self.confidence, self.entropy = summary or summarize(logits)
        self.name = names[self.label] if self.label < len(names) else str(self.label)
        self.logits = logits
        self.exit = exit
        self.timings = timings
        self.bytes_sent = bytes_sent
        self._scores = None

    @property
    def finite(self):
        """False when the logits were not all finite (entropy and confidence are then NaN)."""
        return self.entropy == self.entropy

    @property
    def scores(self):
        """Softmax probabilities (float64), computed on first use: most callers need only
        the label, confidence and entropy."""
        if self._scores is None:
            self._scores = softmax(self.logits)
        return self._scores

    def to_dict(self) -> dict:
        """The answer as JSON-ready built-in types (for logs, MQTT, HTTP)."""
        return {"label": int(self.label), "name": self.name,
                "confidence": float(self.confidence), "entropy": float(self.entropy),
                "exit": self.exit, "scores": [float(p) for p in self.scores],
                "timings": self.timings, "bytes_sent": self.bytes_sent}

    def __repr__(self):
        return (f"Result(label={self.label}, name={self.name!r}, "
                f"confidence={self.confidence:.4f}, entropy={self.entropy:.4f}, "
                f"exit={self.exit!r})")
