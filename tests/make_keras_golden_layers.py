"""Record what Keras 3 computes for the layers that sit around a GRU (needs keras 3 and a
backend, e.g. tensorflow-cpu; the suite only reads the files, so it runs without them):

    python tests/make_keras_golden_layers.py        # with an interpreter that has keras 3

The cases are tests/keras_layer_cases.py's. Each layer and model gets random weights (set with
``set_weights``), a random input ``x`` and a random tensor ``r`` of its output's shape; recorded
are the output ``y`` (inference) and, by ``tf.GradientTape``, the gradients of ``sum(y * r)``
with respect to ``x`` and to every weight. Models with lengths get a batch padded with their
Masking layer's ``mask_value`` after each length, and ``r`` is zero at the padded steps of a
sequence output (where Keras's GRU repeats its last output and cgru's gives zeros).

Writes, in tests/data/:

- ``keras_layers.npz``: ``<case>/x``, ``/r``, ``/y``, ``/dx``, ``/w<i>`` (the weights, in
  ``get_weights`` order), ``/g<i>`` (their gradients) for every case; ``<case>/mask`` for the
  Masking cases (Keras's ``compute_mask``).
- ``keras_layers.json``: per case, the Keras class names and ``get_config()`` of its layers and
  how many weights each has (what ``cgru.from_keras`` reads), and for the models the input
  shape, ``count_params()``, and per layer the name, class, output shape and parameter count
  that ``summary()`` prints, with the summary's "params" lines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras_layer_cases import LAYERS, MASKING, MODELS, build  # noqa: E402

DATA = Path(__file__).parent / "data"


def lookup(name: str):
    return keras.Input if name == "Input" else getattr(keras.layers, name)


def random_weights(rng: np.random.Generator, layers: list) -> None:
    """Every weight random (scaled so that activations stay in their interesting ranges)."""
    for layer in layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(w.dtype) for w in weights])


def describe(layer) -> dict:
    """What cgru.from_keras reads of a layer."""
    return {"class_name": type(layer).__name__, "config": layer.get_config(),
            "weights": len(layer.get_weights())}


def record(arrays: dict, name: str, fn, weights: list, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Run ``fn(x)`` under a gradient tape and store x, r, y and the gradients of sum(y * r)."""
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = fn(xt)
        loss = tf.reduce_sum(y * r)
    grads = tape.gradient(loss, [xt, *weights])
    arrays[f"{name}/x"], arrays[f"{name}/r"], arrays[f"{name}/y"] = x, r, np.asarray(y)
    arrays[f"{name}/dx"] = np.asarray(grads[0])
    for i, (w, g) in enumerate(zip(weights, grads[1:])):
        arrays[f"{name}/w{i}"] = np.asarray(w.numpy())
        arrays[f"{name}/g{i}"] = np.asarray(g)
    return np.asarray(y)


def padded(rng: np.random.Generator, shape: tuple, lengths: list[int], value: float) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    for row, length in enumerate(lengths):
        x[row, length:] = value
    return x


def output_tensor_for(rng: np.random.Generator, shape: tuple, lengths: list[int] | None) -> np.ndarray:
    r = rng.standard_normal(shape).astype(np.float32)
    if lengths is not None and len(shape) == 3:
        for row, length in enumerate(lengths):
            r[row, length:] = 0
    return r


def layer_cases(rng, arrays: dict, meta: dict) -> None:
    for name, (item, shape) in LAYERS.items():
        layer = build(item, lookup)
        scale = 2.5 if name.startswith("act_") else 1.0
        x = (rng.standard_normal(shape) * scale).astype(np.float32)
        layer(x)  # builds
        random_weights(rng, [layer])
        y = layer(x, training=False)
        r = rng.standard_normal(y.shape).astype(np.float32)
        record(arrays, name, lambda t, layer=layer: layer(t, training=False), layer.trainable_weights, x, r)
        meta[name] = {"layers": [describe(layer)], "input_shape": list(shape)}


def masking_cases(rng, arrays: dict, meta: dict) -> None:
    for name, (value, lengths) in MASKING.items():
        layer = keras.layers.Masking(mask_value=value)
        x = padded(rng, (len(lengths), 7, 4), lengths, value)
        r = rng.standard_normal(x.shape).astype(np.float32)
        record(arrays, name, lambda t, layer=layer: layer(t), [], x, r)
        arrays[f"{name}/mask"] = np.asarray(layer.compute_mask(tf.constant(x)))
        meta[name] = {"layers": [describe(layer)], "input_shape": list(x.shape), "lengths": lengths}


def summary_rows(model) -> list:
    return [[layer.name, type(layer).__name__, list(layer.output.shape), layer.count_params()]
            for layer in model.layers]


def summary_text(model) -> list[str]:
    printed: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: printed.append(line))
    return printed


def model_cases(rng, arrays: dict, meta: dict) -> None:
    for name, (specs, shape, lengths) in MODELS.items():
        model = keras.Sequential([build(item, lookup) for item in specs], name=name)
        random_weights(rng, model.layers)
        masking = [item["kwargs"].get("mask_value", 0.0) for item in specs if item["class"] == "Masking"]
        if lengths:
            x = padded(rng, shape, lengths, masking[0])
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        y = model(x, training=False)
        r = output_tensor_for(rng, tuple(y.shape), lengths)
        record(arrays, name, lambda t, model=model: model(t, training=False), model.trainable_weights, x, r)
        lines = [line.strip() for text in summary_text(model) for line in text.splitlines()]
        meta[name] = {
            "layers": [describe(layer) for layer in model.layers],
            "input_shape": list(model.input_shape),
            "lengths": lengths,
            "count_params": model.count_params(),
            "summary": summary_rows(model),
            "summary_params": [line for line in lines if "params:" in line],
        }


def main() -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(20261129)
    arrays: dict = {}
    meta: dict = {"keras": keras.__version__, "tensorflow": tf.__version__, "cases": {}}
    layer_cases(rng, arrays, meta["cases"])
    masking_cases(rng, arrays, meta["cases"])
    model_cases(rng, arrays, meta["cases"])
    DATA.mkdir(exist_ok=True)
    np.savez_compressed(DATA / "keras_layers.npz", **arrays)
    (DATA / "keras_layers.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
    print(f"wrote {len(meta['cases'])} cases to {DATA}")


if __name__ == "__main__":
    main()
