"""cgru.metrics against Keras 3 (tests/data/keras_metrics.json, written by
tests/make_keras_golden_metrics.py): every metric updated batch by batch, with and without
sample weights, at several thresholds, on multi-label and sequence outputs; and the same
results through the mergeable state (each batch's state alone, then merged)."""

import json

import numpy as np
import pytest
from paths import DATA

from cgru import metrics

GOLDEN = json.loads((DATA / "keras_metrics.json").read_text())
CASES = {case["name"]: case for case in GOLDEN["metrics"]}


def batches(case):
    for batch in GOLDEN["datasets"][case["dataset"]]:
        w = batch["sample_weight"]
        yield (
            np.asarray(batch["y_true"], np.float32),
            np.asarray(batch["y_pred"], np.float32),
            None if w is None else np.asarray(w, np.float32),
        )


def build(case):
    return getattr(metrics, case["class_name"])(**case["config"])


def assert_close(got, want, what):
    # Keras accumulates in float32; cgru's state is float64
    np.testing.assert_allclose(
        np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=2e-5, atol=2e-6, err_msg=what
    )


def test_the_golden_data_covers_the_keras_metrics():
    assert GOLDEN["keras_version"].startswith("3.")
    names = {case["class_name"] for case in CASES.values()}
    assert {
        "AUC",
        "Precision",
        "Recall",
        "TopKCategoricalAccuracy",
        "SparseTopKCategoricalAccuracy",
        "MeanSquaredError",
        "MeanAbsolutePercentageError",
        "RootMeanSquaredError",
    } <= names
    assert any(case["name"].endswith("sequence-steps") for case in CASES.values())


@pytest.mark.parametrize("name", list(CASES))
def test_metric_matches_keras_batch_by_batch(name):
    case = CASES[name]
    metric = build(case)
    for k, (y, p, w) in enumerate(batches(case)):
        metric.update_state(y, p, sample_weight=w)
        assert_close(metric.result(), case["results"][k], f"{name}, after batch {k}")
    metric.reset_state()
    first = next(batches(case))
    assert_close(metric(*first), case["results"][0], f"{name}, after a reset")


@pytest.mark.parametrize("name", list(CASES))
def test_merged_batch_states_give_the_same_result(name):
    """What two processes would do: each batch's state alone, merged, then the result."""
    case = CASES[name]
    metric = build(case)
    states = [metric.batch_state(y, p, w) for y, p, w in batches(case)]
    assert all(not np.any(np.asarray(v)) for v in metric.get_state().values)  # left as it was
    merged = metric.copy()
    merged.reset_state()
    merged.merge_state(*states)
    assert_close(merged.result(), case["results"][-1], name)
    assert_close(metric.stateless_result(metrics.merge_states(states)), case["results"][-1], name)
