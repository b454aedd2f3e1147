"""A multi-view MNIST stand-in for the DDNN paper's multi-camera data set (not public).

Six end devices look at the same digit, each through its own flaw, so that
no single device sees everything and some see much less than others:

    0  top half       the lower 14 rows are blanked
    1  bottom half    the upper 14 rows are blanked
    2  left half      the right 14 columns are blanked
    3  right half     the left 14 columns are blanked
    4  noisy          the whole digit under heavy Gaussian noise (sigma 100)
    5  faint          shifted by up to 4 pixels, 70% of its pixels dropped, contrast 0.4, noise

Every view is a 28x28 uint8 image, so all devices can share one
architecture. The noise and shifts come from a generator seeded per split,
so a split's views are the same on every run.
"""
import numpy as np

VIEWS = ("top half", "bottom half", "left half", "right half", "noisy", "faint")
SEEDS = {"train": 1, "validation": 2, "test": 3}


def _blank(images, rows=None, cols=None):
    out = images.copy()
    if rows is not None:
        out[:, rows, :] = 0
    if cols is not None:
        out[:, :, cols] = 0
    return out


def _noisy(images, rng, sigma):
    noise = rng.normal(0.0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


def _faint(images, rng):
    shifted = np.empty_like(images)
    shifts = rng.integers(-4, 5, (len(images), 2))
    for i, (dy, dx) in enumerate(shifts):
        shifted[i] = np.roll(images[i], (dy, dx), axis=(0, 1))
    kept = shifted * (rng.random(images.shape) > 0.7) * 0.4
    return _noisy(kept, rng, 30.0)


def make_views(images, split="test"):
    """``(devices, n, 28, 28)`` uint8: the six views of ``images`` ``(n, 28, 28)``."""
    rng = np.random.default_rng(SEEDS.get(split, 0))
    images = np.asarray(images, np.uint8)
    half = slice(14, 28), slice(0, 14)
    return np.stack([
        _blank(images, rows=half[0]),
        _blank(images, rows=half[1]),
        _blank(images, cols=half[0]),
        _blank(images, cols=half[1]),
        _noisy(images.astype(np.float64), rng, 100.0),
        _faint(images.astype(np.float64), rng),
    ])
