"""A straight line ``seconds = intercept + slope * weights`` by least squares, and when to trust it.

Per-sample time of a dense network grows with its weight count: the slope is
the cost of one weight on this machine (memory traffic for floats, a bit of
XOR-popcount for binary layers), the intercept the fixed cost of a call.
That line is what lets ``budget`` turn milliseconds into a network size, but
only where it was measured and only when the measurements lie on it: a
line keeps the points it was fitted to, and ``distrust`` says why a plan
must not rest on it.
"""
import math
from typing import NamedTuple

MIN_R2 = 0.99
"""The least R^2 a plan may rest on.

For sizes spread evenly over the measured range, the times span ``dT`` and
``1 - R^2 ~ 12 s^2 / dT^2``, where ``s`` is the scatter of the points
around the line (the spread of n evenly spaced values is ``dT^2 / 12``). At
R^2 = 0.99 the scatter is 3% of the span, so an answer near the top of the
range, where budgets land, is good to about 6% (two ``s``); the goal is
10%. At 0.95 the scatter is 6.5% (13% answers), and the 0.75 that a sweep
on a busy machine gave is 17% (a third off). Lines from an idle machine
reach 0.995 and more.
"""
MIN_SIZES = 3
MAX_DRIFT = 0.20
"""The most the same net's time may move between a sweep's passes.

A sweep times every size in several passes, in alternating order, and uses
the median over all of them. When the medians of single passes for one net
spread over more than 20% of that median, they do not all lie within 10%
of it: the machine's speed changed while it measured (other work on it, a
cache or memory bus it shares), and a later measurement, like one of those
passes, could miss the answer by more than the 10% an answer is meant to
hold. R^2 cannot see this: a drift that slows every size alike leaves a
straight line that holds only for the minutes it was measured in.
"""


class Line(NamedTuple):
    """``seconds = intercept + slope * weights``, how well it fits (R^2), the measured
    ``(weights, seconds)`` points it was fitted to, by size, and how far the time of
    one net moved between the sweep's passes (``drift``, a share of its median)."""
    intercept: float
    slope: float
    r2: float
    points: tuple
    drift: float = 0.0

    def seconds(self, weights):
        return self.intercept + self.slope * weights

    @property
    def low(self):
        """The smallest network measured (weights)."""
        return self.points[0][0]

    @property
    def high(self):
        """The largest network measured (weights)."""
        return self.points[-1][0]

    def outside(self, weights):
        """How far ``weights`` lies from the sizes measured: 1.0 within them, else the
        ratio (> 1) to the nearer end (no weights at all count as one)."""
        if weights > self.high:
            return weights / self.high
        if weights < self.low:
            return self.low / max(weights, 1.0)
        return 1.0

    def as_dict(self):
        return {"intercept_s": self.intercept, "slope_s_per_weight": self.slope, "r2": self.r2,
                "measured_weights": [self.low, self.high], "sizes": len(self.points),
                "drift": self.drift}


def fit_line(xs, ys):
    """Least-squares line through the points ``(xs[i], ys[i])``."""
    xs = [float(x) for x in xs]
    ys = [float(y) for y in ys]
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} x values but {len(ys)} y values")
    if len(xs) < 2:
        raise ValueError(f"a line needs at least 2 points, got {len(xs)}")
    if not all(math.isfinite(v) for v in xs + ys):
        raise ValueError("points must be finite numbers")
    n = len(xs)
    mean_x, mean_y = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("all points have the same x: no slope can be fitted")
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    residual = math.fsum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    total = math.fsum((y - mean_y) ** 2 for y in ys)
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    return Line(intercept, slope, r2, tuple(sorted(zip(xs, ys))))


def fit_lines(points):
    """``{line name: Line}`` of a sweep's points (dicts with "line", "weights", "seconds",
    and "pass_seconds", the median of each pass, when the sweep made several)."""
    lines = {}
    for name in dict.fromkeys(p["line"] for p in points):
        mine = [p for p in points if p["line"] == name]
        try:
            line = fit_line([p["weights"] for p in mine], [p["seconds"] for p in mine])
        except ValueError as error:
            raise ValueError(f"line {name!r}: {error}") from None
        lines[name] = line._replace(drift=max(drift(p) for p in mine))
    return lines


def drift(point):
    """How far one net's median time moved between passes, as a share of its median."""
    passes = point.get("pass_seconds") or []
    if len(passes) < 2:
        return 0.0
    return (max(passes) - min(passes)) / point["seconds"]


def distrust(line):
    """Why a plan must not rest on ``line``: a list of reasons, empty when it may."""
    reasons = []
    sizes = len({weights for weights, _ in line.points})
    if sizes < MIN_SIZES:
        reasons.append(f"fitted to {sizes} sizes: a line through two points always fits, "
                       f"so it proves nothing (measure at least {MIN_SIZES})")
    if line.slope <= 0:
        reasons.append(f"the time does not grow with the size (slope {line.slope * 1e9:.3g} "
                       f"ns/weight): the measurements are mostly noise")
    if line.r2 < MIN_R2:
        reasons.append(f"R^2 {line.r2:.3f} is under {MIN_R2}: the measured times do not lie on "
                       f"a line (a busy machine, or a bend where the nets outgrow a cache)")
    if line.drift > MAX_DRIFT:
        reasons.append(f"the same net's time moved by {line.drift:.0%} between the sweep's "
                       f"passes: the machine's speed drifted while it measured (other work "
                       f"on it?), and no answer is closer than that")
    start = line.seconds(line.low)
    if start <= 0:
        reasons.append(f"it predicts a negative time ({start * 1e6:.1f} us) for the smallest "
                       f"size measured ({line.low:,.0f} weights)")
    return reasons


def predict(line, weights):
    """``{"ms": the line's time, "outside": how far from the sizes measured}`` for a net of
    ``weights``, or ``{"refused": reasons}`` when the line cannot be trusted."""
    reasons = distrust(line)
    if reasons:
        return {"refused": reasons}
    return {"ms": line.seconds(weights) * 1e3, "outside": line.outside(weights)}
