"""MLP shapes: "784-1000-500-10" strings, weight counts, sizes for a target count.

A network's size is counted as the paper counts it: every weight and bias of
its dense layers, ``sum(n_in * n_out + n_out)``, so 784-1000-500-2 has
1,286,502 weights. A binary MLP of the same shape is given the same count
(its per-output thresholds stand where the biases were).
"""


def parse_shape(text):
    """``"784-1000-500-10"`` -> ``(784, 1000, 500, 10)``, or ValueError saying why."""
    try:
        sizes = tuple(int(part) for part in str(text).split("-"))
    except ValueError:
        raise ValueError(f"shape {text!r}: expected layer sizes joined by '-', "
                         f"like 784-1000-500-10") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"shape {text!r}: needs at least 2 positive layer sizes")
    if sizes[-1] < 2:
        raise ValueError(f"shape {text!r}: the last layer must give at least 2 class scores")
    return sizes


def shape_name(sizes):
    return "-".join(str(n) for n in sizes)


def mlp_weights(sizes):
    """Weights and biases of a dense chain of these layer sizes."""
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))


def sizes_for(weights, hidden_layers=2, n_in=784, n_out=10):
    """The ``n_in-h-...-h-n_out`` shape whose weight count is closest to ``weights``."""
    if hidden_layers < 1:
        raise ValueError(f"hidden_layers must be at least 1, got {hidden_layers}")

    def shape(width):
        return (n_in,) + (width,) * hidden_layers + (n_out,)
    low, high = 1, 1
    while mlp_weights(shape(high)) < weights:
        high *= 2
    while high - low > 1:          # mlp_weights grows with the width: bisect
        middle = (low + high) // 2
        if mlp_weights(shape(middle)) < weights:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda w: abs(mlp_weights(shape(w)) - weights))
    return shape(best)


def sweep_shapes(min_weights, max_weights, points, hidden_layers=2):
    """``points`` shapes with weight counts evenly spaced from min to max (distinct)."""
    if points < 2:
        raise ValueError(f"a sweep needs at least 2 points, got {points}")
    if not 0 < min_weights < max_weights:
        raise ValueError(f"the size range needs 0 < min ({min_weights:,}) < max ({max_weights:,})")
    step = (max_weights - min_weights) / (points - 1)
    shapes = []
    for i in range(points):
        sizes = sizes_for(min_weights + i * step, hidden_layers)
        if sizes not in shapes:
            shapes.append(sizes)
    if len(shapes) < 2:
        raise ValueError("the size range is too narrow: widen it or use fewer points")
    return shapes
