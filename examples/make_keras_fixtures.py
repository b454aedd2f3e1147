"""Build the small Keras / Larq models the Keras converter is tested on, with Keras itself.

    python3 -m venv /tmp/kerasenv
    /tmp/kerasenv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 larq==0.14.0
    /tmp/kerasenv/bin/python examples/make_keras_fixtures.py --out tests/fixtures/keras

Larq 0.14 needs Keras 2, so the Larq models are built with tf-keras
(``TF_USE_LEGACY_KERAS=1``); one float model is also built with Keras 3, whose
legacy HDF5 layout differs. Each flavour runs in its own process, because the
choice of Keras is made when TensorFlow is first imported.

For each model ``NAME.h5`` the script writes ``NAME.npz`` with random uint8
samples ``x``, the preprocessing ``scale`` and ``offset`` (the Keras model
sees ``x * scale + offset``, computed in float32 like the runtime does), the
Keras model's own outputs ``outputs`` and, for binary nets, ``dots``: the
output of the last binary layer, integer dot products, from a Keras
sub-model. Batch norms get statistics measured on the net's own activations
(so the thresholds fall where the dot products are) and random gammas (some
negative) and betas; the latent weights keep their random initialization.
"""
import argparse
import os
import subprocess
import sys
import zlib

import numpy as np

FLAVOURS = {"tf-keras": "1", "keras3": "0"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/keras", help="output folder")
    parser.add_argument("--flavour", choices=sorted(FLAVOURS), help="one flavour only "
                        "(default: each in its own process)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.flavour is None:
        for flavour, legacy in FLAVOURS.items():
            env = dict(os.environ, TF_USE_LEGACY_KERAS=legacy, TF_CPP_MIN_LOG_LEVEL="3")
            subprocess.run([sys.executable, __file__, "--out", args.out, "--flavour", flavour],
                           env=env, check=True)
        return
    if os.environ.get("TF_USE_LEGACY_KERAS") != FLAVOURS[args.flavour]:
        sys.exit(f"run --flavour {args.flavour} with TF_USE_LEGACY_KERAS={FLAVOURS[args.flavour]}")
    import tensorflow as tf
    tf.keras.utils.set_random_seed(0)
    builders = TF_KERAS_MODELS if args.flavour == "tf-keras" else KERAS3_MODELS
    for name, build in builders.items():
        write_fixture(tf.keras, build(), name, args.out)


# the models --------------------------------------------------------------------

def float_mlp_tf_keras():
    import tensorflow as tf
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        layers.Input((7, 9)), layers.Flatten(), layers.Dense(20, activation="relu"),
        layers.Dropout(0.3), layers.Dense(12), layers.BatchNormalization(), layers.Dense(5),
        layers.Activation("softmax")], name="float_mlp")
    return model, 200, 1 / 255, -0.5


def float_mlp_keras3():
    import keras
    layers = keras.layers
    model = keras.Sequential([
        layers.Input((7, 9)), layers.Flatten(), layers.Dense(16, activation="relu"),
        layers.Dense(8, activation="relu"), layers.Dense(4, activation="softmax")],
        name="float_mlp3")
    return model, 200, 1 / 255, 0.0


def binary_mlp():
    """First layer on the raw input (no input quantizer), a folded bias, BN without gamma."""
    import larq as lq
    import tensorflow as tf
    layers = tf.keras.layers
    kwargs = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                  kernel_constraint="weight_clip")
    model = tf.keras.Sequential([
        layers.Input((12, 12)), layers.Flatten(),
        lq.layers.QuantDense(48, kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                             use_bias=False),
        layers.BatchNormalization(),
        lq.layers.QuantDense(24, use_bias=True, **kwargs),
        layers.BatchNormalization(scale=False),
        lq.layers.QuantDense(6, use_bias=False, **kwargs),
        layers.BatchNormalization(), layers.Activation("softmax")], name="binary_mlp")
    bias = next(layer for layer in model.layers if getattr(layer, "units", None) == 24)
    bias.set_weights([bias.get_weights()[0], np.random.default_rng(1).normal(0, 2, 24)])
    return model, 200, 1 / 255, -0.5


def binary_conv():
    """Larq's MNIST-tutorial shape, smaller: conv, pool, BN; conv 'same', pool, BN; dense."""
    import larq as lq
    import tensorflow as tf
    layers = tf.keras.layers
    kwargs = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                  kernel_constraint="weight_clip", use_bias=False)
    model = tf.keras.Sequential([
        layers.Input((12, 11, 3)),
        lq.layers.QuantConv2D(8, 3, kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                              use_bias=False),
        layers.MaxPooling2D(2), layers.BatchNormalization(scale=False),
        lq.layers.QuantConv2D(16, 3, padding="same", **kwargs),
        layers.MaxPooling2D(2), layers.BatchNormalization(),
        layers.Flatten(),
        lq.layers.QuantDense(4, **kwargs),
        layers.BatchNormalization(), layers.Activation("softmax")], name="binary_conv")
    return model, 100, 1 / 255, 0.0


TF_KERAS_MODELS = {"float_mlp_tf_keras": float_mlp_tf_keras, "binary_mlp": binary_mlp,
                   "binary_conv": binary_conv}
KERAS3_MODELS = {"float_mlp_keras3": float_mlp_keras3}


# statistics, outputs, files ------------------------------------------------------

def randomize_batch_norms(keras, model, x_real, rng):
    """Each batch norm, in order: statistics of its real input, then random gamma and beta."""
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        seen = keras.Model(model.inputs, layer.input)(x_real).numpy()
        axes = tuple(range(seen.ndim - 1))
        n = seen.shape[-1]
        values = {"moving_mean": seen.mean(axis=axes),
                  "moving_variance": seen.var(axis=axes) * rng.uniform(0.5, 1.5, n),
                  "gamma": rng.normal(0, 1, n), "beta": rng.normal(0, 0.5, n)}
        layer.set_weights([values[_short(w.name)] for w in layer.weights])


def _short(name):
    return name.rsplit("/", 1)[-1].split(":")[0]


def last_binary_dots(keras, model, x_real):
    """The output of the last Larq layer: its integer dot products (None for float nets)."""
    binary = [layer for layer in model.layers if type(layer).__name__.startswith("Quant")]
    if not binary:
        return None
    dots = keras.Model(model.inputs, binary[-1].output)(x_real).numpy()
    assert np.array_equal(dots, np.round(dots)), "the last binary layer's outputs are not integers"
    return dots.astype(np.int32)


def write_fixture(keras, built, name, folder):
    model, n_samples, scale, offset = built
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    shape = tuple(model.inputs[0].shape[1:])
    x = rng.integers(0, 256, (n_samples, *shape)).astype(np.uint8)
    x_real = x.astype(np.float32) * np.float32(scale) + np.float32(offset)
    randomize_batch_norms(keras, model, x_real, rng)
    outputs = model(x_real, training=False).numpy()
    arrays = {"x": x, "scale": scale, "offset": offset, "outputs": outputs}
    dots = last_binary_dots(keras, model, x_real)
    if dots is not None:
        arrays["dots"] = dots
    path = os.path.join(folder, name + ".h5")
    model.save(path, include_optimizer=False)
    np.savez_compressed(os.path.join(folder, name + ".npz"), **arrays)
    print(f"{path}: {os.path.getsize(path)} bytes, {n_samples} samples")


if __name__ == "__main__":
    main()
