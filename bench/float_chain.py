"""Float MLPs of the paper's shapes: ``Runtime.classify`` against the bare NumPy chain.

    python -m edgebnn.bench.float_chain

The bare chain is ``h = relu(h @ W + b)`` per layer, the least a Python
program can do; ``classify`` adds input checks, softmax, entropy and the
result object. Single-threaded BLAS, interleaved rounds, ratios.
"""
import numpy as np

from edgebnn import Runtime
from edgebnn.commands import command_parser

from .binary import float_mlp
from .shapes import mlp_weights
from .timing import interleaved, single_threaded

SHAPES = [(784, 1000, 500, 2), (784, 1000, 500, 10), (784, 2500, 2000, 1500, 1000, 500, 10),
          (4, 8, 2)]


def compare(sizes, seed=0):
    rng = np.random.default_rng(seed)
    model = float_mlp(rng, sizes)
    rt = Runtime(model)
    # the bare chain gets its own copies of the same weights, laid out (in, out)
    transposed = [layer.weight_t.copy() for layer in model.layers]
    biases = [layer.bias.copy() for layer in model.layers]
    x = rng.standard_normal(sizes[0]).astype(np.float32)

    def bare_chain():
        h = x
        for w, b in zip(transposed[:-1], biases[:-1]):
            h = np.maximum(h @ w + b, 0)
        return h @ transposed[-1] + biases[-1]

    weight_count = mlp_weights(sizes)
    calls = max(2, min(200, int(2e6 / weight_count)))
    times = interleaved({"bare": bare_chain, "classify": lambda: rt.classify(x)}, calls=calls)
    return weight_count, times


def main():
    print(f"{'net':<36} {'weights':>10} {'bare us':>9} {'classify us':>12} {'ratio':>6}")
    for sizes in SHAPES:
        count, times = compare(sizes)
        print(f"{'-'.join(map(str, sizes)):<36} {count:>10,} {times['bare'] * 1e6:>9.1f} "
              f"{times['classify'] * 1e6:>12.1f} {times['classify'] / times['bare']:>6.3f}")


if __name__ == "__main__":
    command_parser("edgebnn.bench.float_chain", __doc__.splitlines()[0]).parse_args()
    single_threaded()
    main()
