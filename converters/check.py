"""``--check``: the source framework and the converted model on the same samples.

Both classify the same samples: the user's own (``--samples``: a .npy
array, or a folder of .npy / PNG / PGM files, read as ``edgebnn-classify``
reads them), or random ones. Random inputs prove little: real data sits in
a small corner of the input space (MNIST digits are mostly zero pixels), so
a converter bug that only real data meets, such as a wrong scale, a
flipped layout or a threshold off by one on typical activations, passes
on noise. The check prints the largest difference of class probabilities,
the label agreement and the worst sample, and gives the exit status:

- ``PASSED`` (0): labels agree on at least ``--min-agreement`` of the samples;
- ``DISAGREES`` (1): they agree on fewer;
- ``NOT_CHECKED`` (3): the check could not run: the source framework is
  not installed, or the source model failed in it.
"""
import os

import numpy as np

from edgebnn.errors import InputError
from edgebnn.samples import read_folder, read_samples

PASSED, DISAGREES, NOT_CHECKED = 0, 1, 3

MIN_AGREEMENT = 99.0
"""Percent of samples whose labels must agree, by default.

A correct conversion computes the same function up to float rounding, so
labels differ only on near ties, where the two top scores are closer than
the rounding (a binary layer after a float batch norm can flip one sign
there): well under one sample in a hundred. A wrong conversion changes most
labels (near chance, 1/C), and even a bug that touches only one class in
ten leaves about 90%. 99% keeps a margin above the first and fails the
second; with fewer than 100 samples it means that all must agree.
"""


def load(model, samples=None, random=100, seed=0):
    """``(names, batch, description)`` of the samples to check with, shaped as ``model`` takes them.

    ``samples`` is a file as ``read_samples`` takes it or a folder (InputError naming it
    when it cannot be read or does not fit the model); None draws ``random`` ones.
    """
    if samples is None:
        rng = np.random.default_rng(seed)
        shape = (random, *model.sample_shape)
        if model.input_dtype == np.uint8:
            batch = rng.integers(0, 256, shape).astype(np.uint8)
        else:
            batch = rng.standard_normal(shape).astype(np.float32)
        return [f"random sample {i}" for i in range(random)], batch, f"{random} random samples"
    if os.path.isdir(samples):
        pairs, skipped = read_folder(samples, model)
        left_out = f", {skipped} other files left out" if skipped else ""
        description = f"{len(pairs)} samples from the folder {samples}{left_out}"
    elif os.path.isfile(samples):
        pairs = read_samples(samples, model)
        description = f"{len(pairs)} samples from {samples}"
    else:
        raise InputError(f"{samples}: no such file or folder")
    for name, sample in pairs:
        if model.input_dtype == np.uint8 and sample.dtype != np.uint8:
            raise InputError(f"{name}: {sample.dtype} values, the model takes uint8 (raw pixels)")
    names = [name for name, _ in pairs]
    return names, np.stack([sample for _, sample in pairs]).astype(model.input_dtype), description


def compare(ours, theirs, names):
    """The numbers the check reports, from both sides' class probabilities (n, classes)."""
    difference = np.abs(ours - theirs).max(axis=1)
    agree = ours.argmax(axis=1) == theirs.argmax(axis=1)
    worst = int(difference.argmax())
    return {"samples": len(names), "agree": int(agree.sum()),
            "agreement": 100.0 * agree.mean(), "largest_difference": float(difference[worst]),
            "worst": {"name": names[worst], "runtime_label": int(ours[worst].argmax()),
                      "runtime_p": float(ours[worst].max()),
                      "source_label": int(theirs[worst].argmax()),
                      "source_p": float(theirs[worst].max())},
            "disagreeing": [names[i] for i in np.flatnonzero(~agree)]}


def probabilities(outputs):
    """Rows that are already probabilities stay; logits (or log-probabilities) get softmax."""
    if np.all(outputs >= 0) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-4):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def source_layout(x, source_shape):
    """Samples in the source's layout: channels-first sources get (C, H, W) from (H, W[, C])."""
    if x.shape[1:] == tuple(source_shape):
        return x
    channels, height, width = source_shape
    return x.reshape(len(x), height, width, channels).transpose(0, 3, 1, 2).copy()


def run(run_source, runtime, source_shape, samples=None, random=100,
        min_agreement=MIN_AGREEMENT, out=print):
    """Check ``runtime`` against ``run_source(x_real) -> outputs``; returns the exit status.

    ``x_real`` is the batch as the source sees it: ``x * scale + offset``,
    in the source's layout (``source_shape``). Bad samples raise InputError.
    """
    model = runtime.model
    names, x, description = load(model, samples, random)
    x_real = x.astype(np.float32) * np.float32(model.input_scale) + np.float32(model.input_offset)
    try:
        outputs = run_source(source_layout(x_real, source_shape))
    except ImportError as error:
        out(f"check NOT RUN: {error.name or error} is not installed, so the source model could "
            f"not be run; install it and check again")
        return NOT_CHECKED
    except Exception as error:          # whatever the framework raises
        out(f"check NOT RUN: the source model did not run ({type(error).__name__}: {error})")
        return NOT_CHECKED
    ours = np.array([result.scores for result in runtime.classify_batch(x)], np.float64)
    outputs = np.asarray(outputs, np.float64)
    if outputs.size != ours.size:
        out(f"check NOT RUN: the source gives outputs of shape {outputs.shape}, the runtime "
            f"{ours.shape[1]} class scores per sample")
        return NOT_CHECKED
    report = compare(ours, probabilities(outputs.reshape(ours.shape)), names)
    for line in format_report(report, description, min_agreement, real=samples is not None):
        out(line)
    return PASSED if report["agreement"] >= min_agreement else DISAGREES


def format_report(report, description, min_agreement, real):
    """The check's lines of text."""
    n, worst = report["samples"], report["worst"]
    lines = [f"check on {description}: largest class-probability difference "
             f"{report['largest_difference']:.3g}; labels agree on {report['agree']}/{n} "
             f"({report['agreement']:.1f}%, at least {min_agreement:g}% needed)",
             f"  worst sample: {worst['name']}: the source says {worst['source_label']} "
             f"(p {worst['source_p']:.4f}), the runtime {worst['runtime_label']} "
             f"(p {worst['runtime_p']:.4f})"]
    if report["disagreeing"]:
        shown = ", ".join(report["disagreeing"][:5])
        more = len(report["disagreeing"]) - 5
        lines.append(f"  labels differ on: {shown}{f' and {more} more' if more > 0 else ''}")
    if report["agreement"] < min_agreement:
        lines.append(f"check FAILED: the converted model disagrees with the source on "
                     f"{n - report['agree']} of {n} samples")
    else:
        lines.append("check passed")
    if not real:
        lines.append("  note: random inputs prove little; real data sits where random noise "
                     "rarely goes, so a bug only real data meets passes here. Check with your "
                     "own samples: --samples FILE.npy or --samples FOLDER (of .npy, PNG or PGM)")
    return lines
