"""Binary 784-1000-500-10 per sample: the runtime against an honest floor, its popcount paths, batches.

    python -m edgebnn.bench.binary

The floor is bench/binary_floor.c: plain scalar C with every size a
compile-time constant (64-bit XOR + popcount, integer thresholds, no branch
on a data bit, no intrinsics), built with -O3 -march=native so the compiler
may use every instruction this CPU has: the best a hand-written C program
without SIMD intrinsics gets. It runs the runtime's own packed weights on
the same float inputs. Measured in one run, interleaved (each candidate a
short round in turn; the median of its rounds), per sample:

  floor             the program above (it times itself: the median of its rounds)
  classify          Runtime.classify on the C backend, sample after sample
  classify_batch    Runtime.classify_batch of 64 samples, per sample
  forward <path>    the C kernel's one call alone (Model.forward: no input
                    check, summary or result) on each popcount path this CPU has
  NumPy ...         classify and classify_batch on the NumPy twin
  float classify    the float 784-1000-500-10

then the ratios the goals are about, and a binary conv net's time and the
peak memory one ``classify`` allocates.
"""
import os
import subprocess
import sys
import tempfile
import tracemalloc

import numpy as np

from edgebnn import BatchNorm, BinaryConv2d, BinaryDense, Dense, Model, Runtime, Sign
from edgebnn.bitpack import pack_signs, padding_mask
from edgebnn.fold import fold_sign

from edgebnn.commands import command_parser

from .timing import interleaved, single_threaded

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = 64


def random_signs(rng, n_out, n_in):
    """Random +-1 weights, packed: a random byte per 8 signs, padding bits 0 (cheap to
    draw for the billions of weights a budget may ask about)."""
    return rng.integers(0, 256, (n_out, -(-n_in // 8)), dtype=np.uint8) & padding_mask((n_in,))


def binary_mlp(rng, sizes=(784, 1000, 500, 10)):
    """Float input -> sign -> binary dense with thresholds -> binary dense dots -> batch norm."""
    layers = [Sign()]
    for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
        t, f = fold_sign(rng.standard_normal(n_out), rng.uniform(-0.1, 0.1, n_out) * n_in)
        layers.append(BinaryDense(random_signs(rng, n_out, n_in), t, f))
    layers.append(BinaryDense(random_signs(rng, sizes[-1], sizes[-2])))
    layers.append(BatchNorm(rng.uniform(0.01, 0.1, sizes[-1]), rng.standard_normal(sizes[-1])))
    return Model(layers, (sizes[0],))


def float_mlp(rng, sizes=(784, 1000, 500, 10)):
    """Dense + ReLU layers with random float32 weights (drawn as float32: large nets fit)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        weight = rng.standard_normal((n_out, n_in), dtype=np.float32)
        weight *= np.float32(1 / np.sqrt(n_in))
        layers.append(Dense(weight, np.zeros(n_out), "relu" if i < len(sizes) - 2 else "none"))
    return Model(layers, (sizes[0],))


def conv_net(rng):
    """uint8 28x28 -> binary conv 3x3x16 + max pool 2 (fused) -> binary dense -> 10 scores."""
    t, f = fold_sign(rng.standard_normal(16), rng.uniform(-0.3, 0.3, 16) * 9 * 255)
    conv = BinaryConv2d(pack_signs(rng.standard_normal((16, 3, 3, 1))), t, f, pool=(2, 2))
    dense = BinaryDense(pack_signs(rng.standard_normal((10, 13 * 13 * 16))))
    return Model([conv, dense, BatchNorm(np.full(10, 0.05), np.zeros(10))], (28, 28), "uint8")


def build_floor(model, inputs, folder):
    """Write the model's packed arrays as raw files and compile the floor beside them."""
    _, first, second, third, norm = model.layers
    arrays = {"w1": first.weight, "w2": second.weight, "w3": third.weight,
              "t1": first.threshold, "t2": second.threshold, "f1": first.flip,
              "f2": second.flip, "scale": norm.scale, "shift": norm.shift, "inputs": inputs}
    for name, array in arrays.items():
        np.ascontiguousarray(array).tofile(os.path.join(folder, name))
    program = os.path.join(folder, "floor")
    subprocess.run([os.environ.get("CC", "cc"), "-O3", "-march=native", "-std=c99",
                    "-o", program, os.path.join(HERE, "binary_floor.c")], check=True)
    return program


def run_floor(program, folder, rounds):
    out = subprocess.run([program, folder, str(SAMPLES), str(rounds)], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]) * 1e-9, float(out[1])


def main():
    from edgebnn.kernels import c_library
    rng = np.random.default_rng(0)
    model = binary_mlp(rng)
    inputs = rng.standard_normal((SAMPLES, 784)).astype(np.float32)
    runtimes = {"c": Runtime(model, backend="c"), "numpy": Runtime(model, backend="numpy")}
    float_rt = Runtime(float_mlp(rng))
    default = c_library.popcount_path
    with tempfile.TemporaryDirectory() as folder:
        program = build_floor(model, inputs, folder)
        _, checksum = run_floor(program, folder, 1)
        ours = sum(float(s) * (j + 1) for x in inputs
                   for j, s in enumerate(runtimes["c"].classify(x).logits))
        if not np.isclose(ours, checksum, rtol=1e-6):
            sys.exit(f"the floor computes something else: checksum {checksum} vs {ours}")
        floor_times = []

        def floor():
            floor_times.append(run_floor(program, folder, 31)[0])

        def on(path, work):
            """``work`` on popcount path ``path`` (process-wide: set at every call)."""
            def run():
                c_library.use_popcount_path(path)
                return work()
            return run

        def loop(rt):
            return lambda: [rt.classify(x) for x in inputs]

        c_model = runtimes["c"].model
        checked = [c_model.check_input(x) for x in inputs]

        def forward():      # the one C call of the chain, without checks, summary and result
            return [c_model.forward(x) for x in checked]

        candidates = {"floor": floor, "classify": on(default, loop(runtimes["c"])),
                      f"classify_batch ({SAMPLES})":
                          on(default, lambda: runtimes["c"].classify_batch(inputs))}
        for path in reversed(c_library.popcount_paths):
            candidates[f"forward {path}"] = on(path, forward)
        candidates.update({"NumPy classify": loop(runtimes["numpy"]),
                           f"NumPy classify_batch ({SAMPLES})":
                               lambda: runtimes["numpy"].classify_batch(inputs),
                           "float classify": loop(float_rt)})
        try:
            # rounds of one call (64 samples, about a millisecond): short enough that most
            # run whole between other processes' time slices on a busy machine; hot, as the
            # floor times its own rounds with its weights in the caches
            times = interleaved(candidates, calls=1, rounds=41, warmup=3, rotate=True, hot=True)
        finally:
            c_library.use_popcount_path(default)
    per_sample = {name: t / SAMPLES for name, t in times.items()}
    per_sample["floor"] = float(np.median(floor_times))
    report(per_sample, c_library.popcount_paths)
    return per_sample


def report(per_sample, paths):
    """The times side by side, then the ratios the goals are about."""
    floor, classify = per_sample["floor"], per_sample["classify"]
    print(f"binary 784-1000-500-10, float input, per sample; C popcount paths "
          f"{' '.join(paths)} (default {paths[-1]})")
    for name, seconds in per_sample.items():
        print(f"  {name:<26} {seconds * 1e6:10.2f} us   {seconds / floor:7.2f}x floor")
    print("  floor: plain scalar C, constant sizes, cc -O3 -march=native (bench/binary_floor.c)")
    batch = per_sample[f"classify_batch ({SAMPLES})"]
    print(f"classify_batch of {SAMPLES}: {classify / batch:.2f}x the samples per second of a loop "
          f"of classify (goal: at least 2)")
    print(f"classify: {classify / floor:.2f}x the floor's time per sample (goal: at most 1)")
    if len(paths) > 1:
        best, next_best = paths[-1], paths[-2]
        speedup = per_sample[f"forward {next_best}"] / per_sample[f"forward {best}"]
        print(f"forward on {best}: {speedup:.2f}x as fast as on {next_best} "
              f"(goal for avx512 over avx2: at least 1.5)")
    print(f"NumPy twin: classify {per_sample['NumPy classify'] / classify:.0f}x, classify_batch "
          f"{per_sample[f'NumPy classify_batch ({SAMPLES})'] / batch:.0f}x the C backend's time")


def conv_report():
    rng = np.random.default_rng(1)
    net = conv_net(rng)
    image = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    for backend in ("c", "numpy"):
        rt = Runtime(net, backend=backend)
        seconds = interleaved({"conv": lambda: rt.classify(image)}, calls=20, rounds=10)["conv"]
        tracemalloc.start()
        rt.classify(image)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"binary conv 3x3x16 + pool 2 + dense 10 on uint8 28x28, {backend}: "
              f"{seconds * 1e6:.1f} us per sample, peak {peak} bytes allocated per classify "
              f"(a float32 26x26x16 feature map would be {26 * 26 * 16 * 4})")


if __name__ == "__main__":
    command_parser("edgebnn.bench.binary", __doc__.splitlines()[0]).parse_args()
    single_threaded()
    main()
    conv_report()
