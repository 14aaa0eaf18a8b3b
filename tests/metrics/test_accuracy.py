"""cgru.metrics' "accuracy": the kind resolved from the shapes of the targets and outputs, as Keras 3
resolves it (tests/data/keras_accuracy.json, recorded by tests/make_keras_golden.py)."""

import json

import numpy as np
import pytest
from paths import DATA

from cgru import GRU, Dense, Sequential, metrics

ACCURACY = json.loads((DATA / "keras_accuracy.json").read_text())["cases"]


def test_accuracy_kind_follows_the_shapes(ops, rng):
    x = rng.standard_normal((8, 4, 3)).astype(np.float32)
    cases = [
        (Dense(1, activation="sigmoid"), "binary_crossentropy", rng.integers(0, 2, (8, 1))),
        (Dense(3, activation="softmax"), "categorical_crossentropy", np.eye(3)[rng.integers(0, 3, 8)]),
        (Dense(3, activation="softmax"), "sparse_categorical_crossentropy", rng.integers(0, 3, 8)),
    ]
    for head, loss, y in cases:
        model = Sequential([GRU(5, seed=1), head], device=ops.name)
        model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        loss_value, acc = model.evaluate(x, y)
        pred = model.predict(x)
        if loss == "binary_crossentropy":
            expected = ((pred > 0.5) == y).mean()
        elif loss == "categorical_crossentropy":
            expected = (pred.argmax(-1) == y.argmax(-1)).mean()
        else:
            expected = (pred.argmax(-1) == y).mean()
        assert acc == pytest.approx(expected)
        assert model.metrics_names == ["loss", "accuracy"]
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(metrics=["f1-ish"])


# ------------------------------------------------------------------------ as Keras 3 resolves it
def _case_arrays(case):
    y_true = np.asarray(case["y_true"], dtype=case["y_true_dtype"])
    return y_true, np.asarray(case["y_pred"], dtype=np.float32)


@pytest.mark.parametrize("name", list(ACCURACY))
def test_accuracy_resolves_from_shapes_as_keras(name):
    case = ACCURACY[name]
    y_true, y_pred = _case_arrays(case)
    out_shape = (None, *y_pred.shape[1:])
    for identifier in ("accuracy", "acc", "Accuracy"):
        metric = metrics.get(identifier, y_true.shape, out_shape)
        assert type(metric).__name__ == case["resolved"] and metric.name == identifier
        assert metric(y_true, y_pred) == pytest.approx(case["accuracy"], abs=1e-6)
    assert case["acc"] == case["accuracy"]
    for identifier, value in case["explicit"].items():
        assert metrics.get(identifier)(y_true, y_pred) == pytest.approx(value, abs=1e-6), identifier


def test_fit_reports_keras_accuracy_for_multilabel_sigmoid(ops, rng):
    assert ACCURACY["multilabel_sigmoid_bce"]["resolved"] == "CategoricalAccuracy"
    x = rng.standard_normal((40, 5, 3)).astype(np.float32)
    y = rng.integers(0, 2, (40, 3)).astype(np.float32)
    model = Sequential([GRU(6, seed=3), Dense(3, activation="sigmoid")], device=ops.name)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "binary_accuracy"])
    _, accuracy, binary = model.evaluate(x, y)
    pred = model.predict(x)
    assert accuracy == pytest.approx(np.mean(pred.argmax(-1) == y.argmax(-1)))
    assert binary == pytest.approx(np.mean((pred > 0.5) == y))
    history = model.fit(x, y, epochs=1, batch_size=40, shuffle=False, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "binary_accuracy"}


def test_accuracy_needs_the_shapes():
    with pytest.raises(ValueError, match="shapes"):
        metrics.get("accuracy")
