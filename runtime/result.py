"""The answer ``classify`` gives, whichever tier gave it."""


class Result:
    """One answer: the class, how sure, and where it came from.

    ``label`` is the class index and ``name`` its name; ``scores`` are the
    softmax probabilities of ``logits`` (the answering model's raw outputs);
    ``entropy`` is their normalized entropy in [0, 1]; ``exit`` names the
    tier that answered: "local", "remote" or "local-fallback" (the remote
    tier failed); a DDNN answers "local", "cloud", or "local-fallback" when
    no device's feature map reached the cloud. ``timings`` (seconds per tier
    and in total) is filled in by cascades and is None for a local-only
    runtime. ``bytes_sent`` is filled in by a DDNN: the bytes each device sent
    for this sample (0 for a missing device), None elsewhere.
    """
    __slots__ = ("label", "name", "confidence", "scores", "logits", "entropy", "exit", "timings",
                 "bytes_sent")

    def __init__(self, label, name, confidence, scores, logits, entropy, exit, timings=None,
                 bytes_sent=None):
        self.label = label
        self.name = name
        self.confidence = confidence
        self.scores = scores
        self.logits = logits
        self.entropy = entropy
        self.exit = exit
        self.timings = timings
        self.bytes_sent = bytes_sent

    def __repr__(self):
        return (f"Result(label={self.label}, name={self.name!r}, "
                f"confidence={self.confidence:.4f}, entropy={self.entropy:.4f}, "
                f"exit={self.exit!r})")
