"""Build the Keras 3 ``.keras`` archive the Keras converter is tested on, with Keras itself.

    python3 -m pip install keras==3.15.1 torch==2.13.0
    KERAS_BACKEND=torch python3 examples/make_keras3_archive.py --out tests/fixtures/keras

TensorFlow has no wheel for every machine; Keras 3 runs on its PyTorch backend
as well, and a ``.keras`` archive does not depend on the backend that wrote
it. Writes ``float_mlp.keras`` (Flatten, Dense + ReLU, BatchNormalization
with measured statistics and random gammas, Dense + softmax) and
``float_mlp_keras_archive.npz`` with random uint8 samples ``x``, the
preprocessing ``scale`` and ``offset`` and Keras's own ``outputs`` on
``x * scale + offset``; and the same for ``functional_chain.keras``, a
Functional model (Dense -> BatchNormalization -> ReLU -> Dense -> Softmax),
and ``float_cnn.keras``, a small float CNN on 12x12 images.
"""
import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/keras", help="output folder")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((7, 9)), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.BatchNormalization(),
                              keras.layers.Dense(4, activation="softmax")])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 7, 9)).astype(np.uint8)
    scale, offset = np.float32(1 / 255), np.float32(-0.5)
    real = x.astype(np.float32) * scale + offset
    norm = model.layers[2]
    hidden = keras.Sequential(model.layers[:2]).predict(real, verbose=0)
    gamma = rng.uniform(-1.5, 1.5, 16).astype(np.float32)
    norm.set_weights([gamma, rng.normal(0, 0.3, 16).astype(np.float32),
                      hidden.mean(axis=0), hidden.var(axis=0) + 1e-3])
    model.save(os.path.join(args.out, "float_mlp.keras"))
    np.savez(os.path.join(args.out, "float_mlp_keras_archive.npz"), x=x, scale=scale,
             offset=offset, outputs=model.predict(real, verbose=0))
    chain = functional_chain(rng, real)
    chain.save(os.path.join(args.out, "functional_chain.keras"))
    np.savez(os.path.join(args.out, "functional_chain_keras_archive.npz"), x=x, scale=scale,
             offset=offset, outputs=chain.predict(real, verbose=0))
    images = rng.integers(0, 256, (100, 12, 12, 1)).astype(np.uint8)
    cnn = float_cnn(rng, images.astype(np.float32) * scale + offset)
    cnn.save(os.path.join(args.out, "float_cnn.keras"))
    np.savez(os.path.join(args.out, "float_cnn_keras_archive.npz"), x=images, scale=scale,
             offset=offset, outputs=cnn.predict(images.astype(np.float32) * scale + offset,
                                                verbose=0))


def float_cnn(rng, real):
    """A small float CNN: Conv2D + ReLU, max pool, Conv2D, batch norm, ReLU, average pool,
    then Dense + softmax."""
    norm = keras.layers.BatchNormalization()
    model = keras.Sequential([keras.Input((12, 12, 1)),
                              keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Conv2D(6, 3), norm,
                              keras.layers.ReLU(), keras.layers.AveragePooling2D(2),
                              keras.layers.Flatten(), keras.layers.Dense(5, activation="softmax")])
    before = keras.Sequential(model.layers[:3]).predict(real, verbose=0)
    norm.set_weights([rng.uniform(0.5, 1.5, 6).astype(np.float32),
                      rng.normal(0, 0.3, 6).astype(np.float32),
                      before.mean(axis=(0, 1, 2)), before.var(axis=(0, 1, 2)) + 1e-3])
    return model


def functional_chain(rng, real):
    """A Functional model that is one chain, with batch norm between a Dense and its ReLU
    and the activations as layers of their own; its layers named freely."""
    inputs = keras.Input((7, 9), name="pixels")
    hidden = keras.layers.Dense(12, name="hidden")(keras.layers.Flatten()(inputs))
    norm = keras.layers.BatchNormalization(name="norm")
    scores = keras.layers.Dense(4, name="scores")(keras.layers.ReLU()(norm(hidden)))
    model = keras.Model(inputs, keras.layers.Softmax()(scores))
    before = keras.Model(inputs, hidden).predict(real, verbose=0)
    norm.set_weights([rng.uniform(0.5, 1.5, 12).astype(np.float32),
                      rng.normal(0, 0.3, 12).astype(np.float32),
                      before.mean(axis=0), before.var(axis=0) + 1e-3])
    return model


if __name__ == "__main__":
    main()
