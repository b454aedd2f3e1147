"""The shipped demo models side by side: which one classifies a digit fastest here.

    python -m edgebnn.bench.shipped

``classify`` per sample on the demo's 16 digits, C backend, one thread, in
interleaved rounds (each model a turn of 10 passes over the digits; the
median over 21 rounds): the binary ``mnist-bnn.h5``, the float
``mnist-mlp.h5`` and the same float net converted with ``--weights int8``.
Times are printed as ratios to the float net, measured in the same run.
"""
import numpy as np

from edgebnn import Runtime, models
from edgebnn.commands import command_parser
from edgebnn.converters.common import with_int8_weights

from .profile import processor
from .timing import interleaved, single_threaded


def runtimes():
    float_net = Runtime("mnist-mlp.h5", backend="c")
    return {"mnist-bnn.h5": Runtime("mnist-bnn.h5", backend="c"), "mnist-mlp.h5": float_net,
            "mnist-mlp.h5 --weights int8": Runtime(with_int8_weights(float_net.model),
                                                   backend="c")}


def main(rounds=21):
    """Print each model's time per sample and its ratio to the float net."""
    digits = np.load(models.path("mnist-samples.npz"))["images"]
    runs = {name: (lambda rt: lambda: [rt.classify(x) for x in digits])(rt)
            for name, rt in runtimes().items()}
    seconds = interleaved(runs, calls=10, rounds=rounds, warmup=3, rotate=True)
    base = seconds["mnist-mlp.h5"]
    print(f"per-sample classify, median of {rounds} interleaved rounds, {processor()}")
    for name, time in seconds.items():
        per_sample = time / len(digits)
        print(f"  {name:<28} {per_sample * 1e6:7.1f} us  {time / base:5.2f}x mnist-mlp.h5")


if __name__ == "__main__":
    command_parser("edgebnn.bench.shipped", __doc__.splitlines()[0]).parse_args()
    single_threaded()
    main()
