"""A straight line ``seconds = intercept + slope * weights`` by least squares.

Per-sample time of a dense network grows with its weight count: the slope is
the cost of one weight on this machine (memory traffic for floats, a bit of
XOR-popcount for binary layers), the intercept the fixed cost of a call.
That line is what lets ``budget`` turn milliseconds into a network size.
"""
import math
from typing import NamedTuple


class Line(NamedTuple):
    """``seconds = intercept + slope * weights`` and how well it fits (R^2)."""
    intercept: float
    slope: float
    r2: float

    def seconds(self, weights):
        return self.intercept + self.slope * weights

    def as_dict(self):
        return {"intercept_s": self.intercept, "slope_s_per_weight": self.slope, "r2": self.r2}


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
    return Line(intercept, slope, r2)
