"""Softmax, normalized entropy and the exit rule shared by every tier.

The normalized entropy of a probability vector p over C classes is
``eta(p) = -sum(p_i * log p_i) / log C``: 0 when one class takes all the
mass, 1 for the uniform vector. An exit fires when ``eta < threshold``.
"""
import math
from math import exp
from operator import mul

import numpy as np


def summarize(logits):
    """``(label, confidence, normalized_entropy)`` of one score vector.

    Computed in float64 from the shifted logits ``z = x - max(x)``:
    ``log p = z - log S`` with ``S = sum(exp z)``, so
    ``eta = (log S - sum(p * z)) / log C`` needs no ``log`` of a zero
    probability, and the top class has ``p = 1 / S``. The probabilities
    themselves are left to :func:`softmax` (a ``Result`` computes them when
    asked). The entropy is NaN when a logit is not finite.
    """
    label, _, total, weighted = _exponentials(logits)
    if not math.isfinite(total) or not math.isfinite(weighted):
        return label, math.nan, math.nan
    eta = (math.log(total) - weighted) / math.log(len(logits))
    return label, 1.0 / total, min(max(eta, 0.0), 1.0)


def softmax(logits):
    """Probabilities of one score vector, exactly as :func:`summarize` sees them."""
    _, e, total, _ = _exponentials(np.asarray(logits))
    p = np.array(e, np.float64)
    p /= total
    return p


def _exponentials(logits):
    """``(label, e, S, sum(p * z))`` with ``e = exp(z)``, ``S = sum(e)``, ``p = e / S``.

    Few classes (the usual case on a device) go through plain floats, which
    avoids most of NumPy's fixed cost per call.
    """
    if len(logits) <= _FEW_CLASSES:
        x = logits.tolist()
        top = max(x)
        z = [v - top for v in x]
        e = list(map(exp, z))
        total = sum(e)
        return x.index(top), e, total, sum(map(mul, e, z)) / total
    label = int(logits.argmax())
    with np.errstate(invalid="ignore"):         # inf - inf: reported as a NaN entropy
        z = np.subtract(logits, logits[label], dtype=np.float64)
        e = np.exp(z)
        total = float(e.sum())
        return label, e, total, float(e @ z) / total


_FEW_CLASSES = 64


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
