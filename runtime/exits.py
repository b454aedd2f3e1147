"""Softmax, normalized entropy and the exit rule shared by every tier.

The normalized entropy of a probability vector p over C classes is
``eta(p) = -sum(p_i * log p_i) / log C``: 0 when one class takes all the
mass, 1 for the uniform vector. An exit fires when ``eta < threshold``.
"""
import math
from math import exp
from operator import mul

import numpy as np


def softmax_entropy(logits):
    """Return ``(probabilities, normalized_entropy)`` of one score vector."""
    return summarize(logits)[2:]


def summarize(logits):
    """``(label, confidence, probabilities, normalized_entropy)`` of one score vector.

    Computed in float64 from the shifted logits ``z = x - max(x)``:
    ``log p = z - log S`` with ``S = sum(exp z)``, so
    ``eta = (log S - sum(p * z)) / log C`` needs no ``log`` of a zero
    probability, and the top class has ``p = 1 / S``. Few classes (the usual
    case on a device) go through plain floats, which avoids most of NumPy's
    fixed cost per call. The entropy is NaN when a logit is not finite.
    """
    if len(logits) <= _FEW_CLASSES:
        z = logits.tolist()
        top = max(z)
        label = z.index(top)
        e = [exp(v - top) for v in z]
        total = sum(e)
        weighted = sum(map(mul, e, z)) / total - top    # sum p * (z - top)
        p = np.array(e)
        p /= total
    else:
        label = int(logits.argmax())
        z = np.subtract(logits, logits[label], dtype=np.float64)
        p = np.exp(z)
        total = float(p.sum())
        p /= total
        weighted = float(p @ z)
    if not math.isfinite(total) or not math.isfinite(weighted):
        return label, math.nan, p, math.nan
    eta = (math.log(total) - weighted) / math.log(len(p))
    return label, 1.0 / total, p, min(max(eta, 0.0), 1.0)


_FEW_CLASSES = 64


def softmax(logits):
    """Probabilities of one score vector (see :func:`softmax_entropy`)."""
    return softmax_entropy(np.asarray(logits, dtype=np.float64))[0]


def normalized_entropy(probabilities):
    """eta(p) of a probability vector; zero entries contribute nothing."""
    p = np.asarray(probabilities, dtype=np.float64)
    nonzero = p[p > 0]
    return float(-(nonzero * np.log(nonzero)).sum() / math.log(len(p)))


def should_exit(entropy, threshold):
    """Leave at this tier when eta < T.

    T = 0 never exits; T = 1 exits every sample but an exactly uniform one.
    """
    return entropy < threshold
