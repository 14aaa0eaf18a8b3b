"""Sample weights and padded steps in losses, metrics, train_on_batch/test_on_batch and the
logs, against Keras 3 (tests/data/keras_metrics.json, from tests/make_keras_golden_metrics.py)
and against finite differences of the weighted loss."""

import json
from pathlib import Path

import numpy as np
import pytest
from finite_differences import assert_weight_gradients, numeric_gradient

import cgru
from cgru import GRU, Dense, Embedding, Sequential, losses, metrics, optimizers
from cgru.sample_weights import check_sample_weight
from cgru.training import loss_and_grads
from cgru.training.data import ArrayBatches, Batch, check_arrays
from cgru.training.loop import evaluate_source
from cgru.training.strategy import LocalStrategy

GOLDEN = json.loads((Path(__file__).parent / "data" / "keras_metrics.json").read_text())
LOSSES = {case["label"]: case for case in GOLDEN["losses"]}
MODELS = {case["name"]: case for case in GOLDEN["models"]}


def arr(a, dtype=np.float32):
    return None if a is None else np.asarray(a, dtype)


# ---------------------------------------------------------------------------------- losses
@pytest.mark.parametrize("label", list(LOSSES))
def test_weighted_losses_match_keras(label):
    case = LOSSES[label]
    y, p, w = arr(case["y_true"]), arr(case["y_pred"]), arr(case["sample_weight"])
    for key, want in case["values"].items():
        reduction, _, masked = key.partition("/")
        loss = getattr(losses, case["class_name"])(reduction=reduction, **case["config"])
        mask = arr(case["mask"]) if masked else None
        got = loss(y, p, sample_weight=w, mask=mask)
        np.testing.assert_allclose(got, np.asarray(want), rtol=2e-5, atol=1e-6, err_msg=f"{label} {key}")


def test_a_per_sample_weight_weighs_every_step_of_a_sequence():
    """Keras 3 asks for (B, 1) there (it fails on (B,)); cgru reads (B,) the same way."""
    case = LOSSES["MeanSquaredError/seq/sample_col"]
    y, p, w = arr(case["y_true"]), arr(case["y_pred"]), arr(case["sample_weight"])
    for key, want in case["values"].items():
        reduction, _, masked = key.partition("/")
        loss = losses.MeanSquaredError(reduction=reduction)
        mask = arr(case["mask"]) if masked else None
        got = loss(y, p, sample_weight=w[:, 0], mask=mask)
        np.testing.assert_allclose(got, np.asarray(want), rtol=2e-5, atol=1e-6, err_msg=key)


WEIGHT_SHAPES = {"none": None, "sample": (4,), "sample_col": (4, 1), "step": (4, 3)}


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
@pytest.mark.parametrize("weights", list(WEIGHT_SHAPES))
@pytest.mark.parametrize(
    "name",
    ["mse", "huber", "binary_crossentropy", "sparse_categorical_crossentropy", "categorical_crossentropy"],
)
def test_weighted_loss_gradient_finite_differences(rng, name, weights, reduction):
    loss = losses.get(name)
    loss.reduction = reduction
    p = rng.uniform(0.05, 0.95, (4, 3, 5))
    if name == "sparse_categorical_crossentropy":
        y = rng.integers(0, 5, (4, 3))
    elif name == "categorical_crossentropy":
        y = np.eye(5)[rng.integers(0, 5, (4, 3))]
    elif name == "binary_crossentropy":
        y = rng.integers(0, 2, (4, 3, 5)).astype(float)
    else:
        y = rng.standard_normal((4, 3, 5))
    w = None if WEIGHT_SHAPES[weights] is None else rng.uniform(0.0, 2.0, WEIGHT_SHAPES[weights])
    for mask in (None, np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], float)):
        value, grad = loss.value_and_grad(losses.align_targets(y, p, loss.sparse), p, mask, sample_weight=w)
        assert value == pytest.approx(loss(y, p, sample_weight=w, mask=mask), rel=1e-12)
        moved = p.copy()
        numeric = numeric_gradient(
            lambda moved=moved, mask=mask: loss(y, moved, sample_weight=w, mask=mask), moved
        )
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_sum_over_batch_size_divides_by_the_number_of_values_not_the_weights():
    y, p = np.zeros((4, 1)), np.ones((4, 1))
    w = np.array([1.0, 2.0, 0.0, 5.0])
    assert losses.MeanSquaredError()(y, p, sample_weight=w) == pytest.approx(8.0 / 4)
    assert losses.MeanSquaredError(reduction="mean_with_sample_weight")(y, p, sample_weight=w) == 1.0
    assert losses.MeanSquaredError(reduction="sum")(y, p, sample_weight=w) == 8.0


def test_bad_sample_weights_are_refused_clearly():
    out = (None, 5, 2)
    assert check_sample_weight(None, out, 3) is None
    np.testing.assert_array_equal(check_sample_weight([[1], [2], [3]], out, 3), [1, 2, 3])
    assert check_sample_weight(np.ones((3, 5, 1)), out, 3).shape == (3, 5)
    with pytest.raises(ValueError, match="sample_weight.*3 samples"):
        check_sample_weight(np.ones(4), out, 3)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        check_sample_weight(np.ones((3, 4)), out, 3)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        check_sample_weight(np.ones((3, 5)), (None, 2), 3)  # not a sequence output
    with pytest.raises(ValueError, match="finite"):
        check_sample_weight([1.0, np.nan, 1.0], out, 3)
    with pytest.raises(TypeError, match="sample_weight must be numeric"):
        check_sample_weight(["a", "b", "c"], out, 3)
    with pytest.raises(ValueError, match="sample_weight of shape"):
        losses.MeanSquaredError()(np.zeros((4, 2)), np.ones((4, 2)), sample_weight=np.ones(3))


def test_train_on_batch_refuses_bad_weights_before_any_change(ops, rng):
    model = Sequential([GRU(3, input_shape=(4, 2), seed=1), Dense(1, seed=2)], device=ops.name)
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    x, y = rng.standard_normal((5, 4, 2)), rng.standard_normal((5, 1))
    with pytest.raises(ValueError, match="sample_weight"):
        model.train_on_batch(x, y, sample_weight=np.ones(4))
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


# ----------------------------------------------------------------------- models vs Keras
def build_model(case, ops):
    layers = []
    for k, (kind, config) in enumerate(case["layers"]):
        if k == 0:
            config = {**config, "input_shape": (6,) if kind == "Embedding" else (6, 3)}
        layers.append({"GRU": GRU, "Dense": Dense, "Embedding": Embedding}[kind](**config))
    model = Sequential(layers, device=ops.name)
    model.set_weights([arr(w) for w in case["weights"]])
    spec = case["compile"]

    def metric(m):
        return m if isinstance(m, str) else getattr(metrics, m[0])(**m[1])

    loss = (
        spec["loss"]
        if isinstance(spec["loss"], str)
        else losses.get({"class_name": spec["loss"][0], "config": spec["loss"][1]})
    )
    model.compile(
        optimizer=optimizers.SGD(0.5),
        loss=loss,
        metrics=[metric(m) for m in spec["metrics"]],
        weighted_metrics=[metric(m) for m in spec["weighted_metrics"]],
    )
    return model


def inputs(case, step):
    x = arr(step["x"])
    if case["layers"][0][0] == "Embedding":
        x = x.astype(np.int64)
    return x, arr(step["y"]), arr(step["sample_weight"])


def assert_logs(got, want, what):
    assert list(got) == list(want) or set(got) == set(want), (what, list(got), list(want))
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=3e-5, atol=3e-6, err_msg=f"{what}: {key}")


@pytest.mark.parametrize("name", list(MODELS))
def test_train_and_test_on_batch_match_keras(ops, name):
    case = MODELS[name]
    model = build_model(case, ops)
    assert set(model.metrics_names) == set(case["steps"][0]["test"])
    for k, step in enumerate(case["steps"]):
        x, y, w = inputs(case, step)
        assert_logs(model.test_on_batch(x, y, sample_weight=w, return_dict=True), step["test"], f"test {k}")
        assert_logs(
            model.train_on_batch(x, y, sample_weight=w, return_dict=True), step["train"], f"train {k}"
        )
        for j, (got, want) in enumerate(zip(model.get_weights(), step["weights_after"])):
            np.testing.assert_allclose(
                got, np.asarray(want), rtol=1e-4, atol=2e-6, err_msg=f"step {k} weight {j}"
            )


class WeightedArrays:
    """A batch source like fit's, with sample weights in its batches."""

    def __init__(self, x, y, lengths, weights, batch_size):
        self.arrays = ArrayBatches(x, y, lengths, batch_size)
        self.weights, self.batch_size, self.steps = weights, batch_size, self.arrays.steps

    def epoch(self, index=0):
        for k, batch in enumerate(self.arrays.epoch(index)):
            rows = slice(k * self.batch_size, (k + 1) * self.batch_size)
            yield batch._replace(sample_weight=self.weights[rows])


@pytest.mark.parametrize("name", [n for n in MODELS if "evaluate" in MODELS[n]])
def test_logs_over_several_batches_are_keras_running_values(ops, name):
    """Keras's evaluate over batches of unequal size: the loss a size-weighted mean of batch
    losses, each metric its result on everything seen."""
    case = MODELS[name]
    model = build_model(case, ops)
    model.set_weights([arr(w) for w in case["evaluate"]["weights"]])
    data = [inputs(case, step) for step in case["steps"]]
    x, y = np.concatenate([d[0] for d in data]), np.concatenate([d[1] for d in data])
    x, y, lengths, out_shape = check_arrays(model, x, y, None, "evaluate")
    w = check_sample_weight(np.concatenate([d[2] for d in data]), out_shape, len(x))
    source = WeightedArrays(x, y, lengths, w, case["evaluate"]["batch_size"])
    bound = cgru.training.compiled.resolve_metrics(model, y.shape, out_shape)
    logs = evaluate_source(model, source, bound, LocalStrategy())
    assert_logs(logs, case["evaluate"]["logs"], "evaluate")


def test_metric_names_resolve_as_keras():
    names = GOLDEN["names"]
    y_shape, out_shape = (2, 3), (None, 3)
    for identifier, want in names["resolved"].items():
        if "error" in want:
            with pytest.raises(ValueError, match="unknown metric"):
                metrics.get(identifier, y_shape, out_shape)
            continue
        metric = metrics.get(identifier, y_shape, out_shape)
        assert (type(metric).__name__, metric.name) == (want["class_name"], want["name"]), identifier
    dup = names["duplicates"]
    got = ["loss", *metrics.log_names(dup["metrics"], dup["weighted_metrics"])]
    assert sorted(got) == sorted(dup["log_keys"])


# ------------------------------------------------------------- whole-model weighted gradient
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight", "sum"])
@pytest.mark.parametrize("per_step", [False, True])
def test_whole_model_weighted_gradient_finite_differences(ops, rng, reduction, per_step):
    """float64, padded sequence output: the gradient is that of the weighted, masked loss."""
    model = Sequential(
        [
            GRU(3, return_sequences=True, dtype="float64", seed=1, input_shape=(5, 2)),
            Dense(2, dtype="float64", seed=3),
        ],
        device=ops.name,
    )
    model.set_weights([w + 0.1 * rng.standard_normal(w.shape) for w in model.get_weights()])
    model.compile(optimizer="sgd", loss=losses.MeanSquaredError(reduction=reduction))
    x, y = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 5, 2))
    lengths = np.array([5, 2, 4])
    w = rng.uniform(0.2, 2.0, (3, 5) if per_step else (3,))

    def loss_now():
        return model.test_on_batch(x, y, sample_weight=w, lengths=lengths)

    loss, _ = loss_and_grads(model, Batch(x, y, lengths, w))
    assert loss == pytest.approx(loss_now(), rel=1e-12)
    assert_weight_gradients(ops, model.weights, loss_now, rtol=1e-5, atol=1e-9)


def test_weights_of_padded_steps_and_their_values_never_count(ops, rng):
    """Per-sample weights on a padded sequence output (Keras 3 cannot: it needs (B, 1)):
    the loss is sum(w*m*v)/sum(m), a weighted metric sum(w*m*v)/sum(w*m), an unweighted one
    sum(m*v)/sum(m); NaN in the padded targets changes nothing."""
    model = Sequential(
        [GRU(3, return_sequences=True, input_shape=(5, 2), seed=1), Dense(2, seed=2)], device=ops.name
    )
    model.compile(
        optimizer="sgd", loss="mse", metrics=["mae"], weighted_metrics=["mae", "RootMeanSquaredError"]
    )
    x, y = (
        rng.standard_normal((4, 5, 2)).astype(np.float32),
        rng.standard_normal((4, 5, 2)).astype(np.float32),
    )
    lengths = np.array([5, 1, 3, 4])
    w = np.array([0.5, 2.0, 1.0, 0.0])
    poisoned = y.copy()
    poisoned[np.arange(5)[None, :] >= lengths[:, None]] = np.nan
    logs = model.test_on_batch(x, poisoned, sample_weight=w, lengths=lengths, return_dict=True)
    pred = model.predict(x, lengths=lengths).astype(np.float64)
    m = (np.arange(5)[None, :] < lengths[:, None]).astype(float)
    wm = w[:, None] * m
    sq, ab = ((pred - y) ** 2).mean(-1), np.abs(pred - y).mean(-1)
    assert logs["loss"] == pytest.approx((wm * sq).sum() / m.sum(), rel=1e-5)
    assert logs["mae"] == pytest.approx((m * ab).sum() / m.sum(), rel=1e-5)
    assert logs["weighted_mae"] == pytest.approx((wm * ab).sum() / wm.sum(), rel=1e-5)
    assert logs["RootMeanSquaredError"] == pytest.approx(np.sqrt((wm * sq).sum() / wm.sum()), rel=1e-5)


# ------------------------------------------------------------- denominators of the reductions
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean", "mean_with_sample_weight", "sum"])
@pytest.mark.parametrize("weights", list(WEIGHT_SHAPES))
@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_loss_denominators_split_over_batches(rng, reduction, weights, masked):
    """A batch's loss times its denominator is its weighted sum sum(w*m*v) (float64 loops), and
    both add up over the parts of a batch: so the parts' losses combine into the whole's as
    sum(D_r * L_r) / sum(D_r) (what data-parallel training relies on)."""
    loss = losses.MeanSquaredError(reduction=reduction)
    y, p = rng.standard_normal((4, 3, 5)), rng.standard_normal((4, 3, 5))
    shape = WEIGHT_SHAPES[weights]
    w = None if shape is None else rng.uniform(0.0, 2.0, shape)
    mask = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]], float) if masked else None

    # each value's weight: a per-sample weight weighs every step of its sample
    per_value = np.ones((4, 3)) if w is None else np.broadcast_to(w.reshape(4, -1), (4, 3))
    per_sample = w is not None and w.size == 4

    def reference(rows):
        """(numerator, denominator) of the rows by the rules of cgru.sample_weights, in loops."""
        numerator = denominator = 0.0
        for b in rows:
            for t in range(3):
                m = 1.0 if mask is None else mask[b, t]
                value = sum((p[b, t, k] - y[b, t, k]) ** 2 for k in range(5)) / 5
                numerator += per_value[b, t] * m * value
                if reduction != "mean_with_sample_weight" or w is None:
                    denominator += m  # the valid values, never the weights
                elif mask is None and per_sample:
                    denominator += per_value[b, t] if t == 0 else 0.0  # the weights as given
                else:
                    denominator += per_value[b, t] * m
        return numerator, denominator

    def part(rows):
        sw = None if w is None else w[rows]
        mk = None if mask is None else mask[rows]
        return loss(y[rows], p[rows], sample_weight=sw, mask=mk), loss.denominator((len(rows), 3), sw, mk)

    whole, whole_d = part(np.arange(4))
    numerator, denominator = reference(range(4))
    if reduction == "sum":
        assert whole_d is None
        assert whole == pytest.approx(numerator, rel=1e-12)
    else:
        assert whole_d == pytest.approx(denominator, rel=1e-12)
        assert whole * whole_d == pytest.approx(numerator, rel=1e-12)
    parts = [part(rows) for rows in (np.arange(0, 1), np.arange(1, 1), np.arange(1, 4))]
    if reduction == "sum":
        assert sum(value for value, _ in parts) == pytest.approx(whole, rel=1e-12)
    else:
        assert sum(d for _, d in parts) == pytest.approx(whole_d, rel=1e-12)
        combined = sum(value * d for value, d in parts) / sum(d for _, d in parts)
        assert combined == pytest.approx(whole, rel=1e-12)


def test_a_denominator_of_cancelling_weights_is_nan():
    """Weights of both signs summing to 0: the loss is 0, its weighted sum is not; the
    denominator says so with NaN. Zero weights or no valid values lose nothing: 0."""
    loss = losses.MeanSquaredError(reduction="mean_with_sample_weight")
    y, p = np.zeros((2, 1)), np.array([[1.0], [3.0]])
    assert loss(y, p, sample_weight=np.array([1.0, -1.0])) == 0.0
    assert np.isnan(loss.denominator((2,), np.array([1.0, -1.0])))
    assert loss.denominator((2,), np.zeros(2)) == 0.0
    assert loss.denominator((0,), np.zeros(0)) == 0.0
    assert losses.MeanSquaredError().denominator((2,), np.array([1.0, -1.0])) == 2.0
