"""A plugin layer: RMSNormalization written with cgru's public Layer API.

    python examples/plugin_layer.py [--out model.npz]

A layer subclasses cgru.Layer and implements build (create weights), forward (output and what
backward needs), backward (weight gradients and the input gradient) and get_config; with
@cgru.register_layer it then works in Sequential, fit, summary and save/load_model like a
built-in. The example checks the backward pass against finite differences, trains a model with
the layer between two GRUs, and reloads it from disk.
"""

import argparse
import os
import tempfile

import numpy as np

import cgru
from cgru import GRU, Dense, Sequential


@cgru.register_layer
class RMSNormalization(cgru.Layer):
    """Divides each feature vector (last axis) by its root mean square, then scales it by
    ``scale`` (Keras's ``RMSNormalization(axis=-1)``: ``x / sqrt(mean(x**2) + epsilon) * scale``)."""

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.scale = self.add_weight("scale", (input_shape[-1],), initializer="ones")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        xp = self.xp  # numpy or cupy: the layer runs on every backend
        inv_rms = 1 / xp.sqrt((x * x).mean(axis=-1, keepdims=True) + self.epsilon)
        x_hat = x * inv_rms
        y = x_hat * self.scale.value
        return y, ((x_hat, inv_rms) if training else None)

    def backward(self, dy, cache):
        x_hat, inv_rms = cache
        features = dy.shape[-1]
        self.scale.grad = (dy * x_hat).reshape(-1, features).sum(axis=0)
        g = dy * self.scale.value
        return inv_rms * (g - x_hat * (g * x_hat).mean(axis=-1, keepdims=True))

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def check_gradients():
    """Compare backward with central differences of sum(y * w), in float64."""
    rng = np.random.default_rng(0)
    layer = RMSNormalization(dtype="float64", name="gradient_check")
    x = rng.normal(size=(2, 3, 5))
    layer(x)  # builds the layer
    layer.set_weights([rng.normal(size=5)])
    w = rng.normal(size=x.shape)
    _, cache = layer.forward(x, training=True)
    dx = layer.backward(w, cache)
    eps, numeric = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        numeric[i] = (np.sum(layer(x + step) * w) - np.sum(layer(x - step) * w)) / (2 * eps)
    error = np.max(np.abs(dx - numeric))
    print(f"gradient check: max |backward - finite difference| = {error:.1e}")
    assert error < 1e-6


def main():
    parser = argparse.ArgumentParser(description="A user-defined layer trained and saved with cgru.")
    parser.add_argument("--out", help="where to save the model (default: a temporary file)")
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for smoke tests)")
    args = parser.parse_args()

    check_gradients()

    # The task: is the mean of a sequence of 12 numbers positive?
    cgru.set_random_seed(4)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1500, 12, 3)).astype(np.float32)
    y = (x[:, :, 0].mean(axis=1) > 0).astype(np.float32)[:, None]

    model = Sequential([
        GRU(16, return_sequences=True, input_shape=(12, 3)),
        RMSNormalization(),
        GRU(16),
        Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.summary()
    history = model.fit(x, y, epochs=3 if args.quick else 8, batch_size=32, validation_split=0.2, verbose=2)
    print(f"validation accuracy {history.history['val_accuracy'][-1]:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = args.out or os.path.join(tmp, "plugin_model.npz")
        model.save(path)
        reloaded = cgru.load_model(path)  # finds RMSNormalization through the registry
    assert isinstance(reloaded.layers[1], RMSNormalization)
    same = np.array_equal(reloaded.predict(x[:100]), model.predict(x[:100]))
    print(f"saved and reloaded {path}: predictions identical: {same}")
    assert same


if __name__ == "__main__":
    main()
