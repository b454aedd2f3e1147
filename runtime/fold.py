"""Fold "affine map then sign" into an integer threshold on a binary dot product.

A binary layer computes an integer ``dot``; a batch norm (and any bias, or
the input's scale and offset) after it is an affine map ``y = scale * dot +
shift`` per output; the next sign keeps ``y >= 0``. Over integers that is
``dot >= threshold`` when ``scale > 0``, ``dot <= u`` (stored as
``not dot >= u + 1``) when ``scale < 0``, and a constant when ``scale == 0``.
The stored rule is ``bit = (dot >= threshold) XOR flip``.

The threshold is found in float64 and then checked against the affine map
itself, evaluated in float64 on the neighbouring integers, so the folded
rule equals ``sign(scale * dot + shift)`` computed in float64 for every
integer ``dot``: the unfused reference the tests compare against.
"""
import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def batchnorm_affine(gamma, beta, mean, var, eps, bias=0.0):
    """``(scale, shift)`` of ``gamma * (x + bias - mean) / sqrt(var + eps) + beta``."""
    gamma, beta, mean, var, bias = (np.asarray(v, np.float64) for v in (gamma, beta, mean, var, bias))
    scale = gamma / np.sqrt(var + eps)
    return scale, (bias - mean) * scale + beta


def fold_sign(scale, shift):
    """``(threshold int32, flip uint8)`` with ``(dot >= t) ^ flip == (scale*dot + shift >= 0)``."""
    scale = np.asarray(scale, np.float64)
    shift = np.broadcast_to(np.asarray(shift, np.float64), scale.shape)
    threshold = np.empty(scale.shape, np.int64)
    flip = (scale < 0).astype(np.uint8)
    for i, (a, b) in enumerate(zip(scale.tolist(), shift.tolist())):
        if a == 0.0:
            # constant: always +1 (t = min, no flip) or always -1 (t = min, flip)
            threshold[i] = INT32_MIN
            flip[i] = b < 0
            continue
        t = int(np.clip(np.ceil(-b / a), INT32_MIN, INT32_MAX))
        if a > 0:      # bit = dot >= t: t is the least integer with a*t + b >= 0
            while t > INT32_MIN and a * (t - 1) + b >= 0:
                t -= 1
            while t < INT32_MAX and a * t + b < 0:
                t += 1
        else:          # bit = dot <= u, stored as not (dot >= u + 1)
            u = t
            while u < INT32_MAX and a * (u + 1) + b >= 0:
                u += 1
            while u > INT32_MIN and a * u + b < 0:
                u -= 1
            t = min(u + 1, INT32_MAX)
        threshold[i] = t
    return threshold.astype(np.int32), flip
