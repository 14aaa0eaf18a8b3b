"""cgru.metrics: the Metric base class for users' own metrics, its mergeable state, names in
compile, save/load of metric objects, and metric states passing through a strategy."""

import warnings

import numpy as np
import pytest

import cgru
from cgru import GRU, Dense, Sequential, callbacks, metrics
from cgru.training.strategy import LocalStrategy


class Positives(metrics.Metric):
    """The weighted count of predictions above 0.5 (the Metric docstring's example)."""

    direction = "up"

    def __init__(self, name="positives", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.count = self.add_variable((), name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = metrics.array_module(y_pred)
        hits = (xp.asarray(y_pred) > 0.5).astype(self.dtype)
        if sample_weight is not None:
            w = xp.asarray(sample_weight, dtype=self.dtype)
            hits = hits * w.reshape(w.shape + (1,) * (hits.ndim - w.ndim))
        self.count.assign_add(hits.sum())

    def result(self):
        return float(self.count.value)


class LargestError(metrics.Metric):
    """The largest absolute error seen: a state merged by "max"."""

    direction = "down"

    def __init__(self, name="largest_error", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.worst = self.add_variable((), initializer=-np.inf, aggregation="max", name="worst")

    def update_state(self, y_true, y_pred, sample_weight=None):
        err = np.abs(np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)).max(axis=-1)
        if sample_weight is not None:
            err = np.where(np.asarray(sample_weight) > 0, err, -np.inf)
        self.worst.assign(max(float(self.worst), float(err.max())))

    def result(self):
        return float(self.worst)


def test_a_users_metric_follows_keras_api():
    m = Positives()
    assert m.name == "positives" and m.dtype == cgru.floatx() and len(m.variables) == 1
    assert m([0, 1, 1], [0.2, 0.7, 0.9]) == 2.0
    m.update_state([[0], [1]], [[0.9], [0.9]], sample_weight=[0.5, 0.0])
    assert m.result() == 2.5
    m.reset_state()
    assert m.result() == 0.0
    with pytest.raises(NotImplementedError, match="update_state"):
        metrics.Metric().update_state([1], [1])


def test_states_merge_by_their_aggregation():
    a, b = LargestError(), LargestError()
    a.update_state([[0.0]], [[2.0]])
    b.update_state([[0.0], [0.0]], [[1.0], [5.0]], sample_weight=[1.0, 0.0])  # 5.0 weighs nothing
    assert a.get_state().aggregations == ("max",)
    a.merge_state(b)
    assert a.result() == 2.0
    state = metrics.merge_states([a.get_state(), metrics.MetricState((np.array(7.0),), ("max",))])
    assert a.stateless_result(state) == 7.0 and a.result() == 2.0
    fresh = a.stateless_reset_state()
    assert fresh[0] == -np.inf and a.result() == 2.0
    updated = a.stateless_update_state(fresh, [[1.0]], [[4.5]])
    assert updated[0] == 3.5 and a.result() == 2.0
    with pytest.raises(ValueError, match="different layouts"):
        metrics.merge_states([a.get_state(), metrics.Mean().get_state()])
    with pytest.raises(ValueError, match="aggregation"):
        metrics.Mean().add_variable((), aggregation="mean")
    with pytest.raises(ValueError, match="2 state variables"):
        metrics.Mean().set_state([np.zeros(())])
    with pytest.raises(ValueError, match="state shapes"):
        metrics.Mean().stateless_result([np.zeros(2), np.zeros(())])


def test_metric_variables_read_like_keras_variables():
    m = metrics.Mean()
    m.total.assign(np.float32(3))
    m.total.assign_add(2)
    assert float(m.total) == 5.0 and m.total + 1 == 6.0 and 10 - m.total == 5.0
    assert m.total.value.dtype == np.float64
    v = metrics.Precision(thresholds=[0.2, 0.8]).true_positives
    assert v.shape == (2,) and v[1] == 0.0
    with pytest.raises(ValueError, match="cannot assign shape"):
        v.assign(np.zeros(3))


def test_users_metrics_in_fit_see_padded_steps_with_weight_zero(ops, rng):
    model = Sequential(
        [GRU(3, return_sequences=True, input_shape=(5, 2), seed=1), Dense(2, seed=2)], device=ops.name
    )
    model.compile(optimizer="sgd", loss="mse", metrics=[Positives()], weighted_metrics=[Positives()])
    assert model.metrics_names == ["loss", "positives", "weighted_positives"]
    x = rng.standard_normal((6, 5, 2)).astype(np.float32)
    y = rng.standard_normal((6, 5, 2)).astype(np.float32)
    lengths = np.array([5, 1, 3, 4, 2, 5])
    w = rng.uniform(0.0, 2.0, (6, 5))
    logs = model.test_on_batch(x, y, sample_weight=w, lengths=lengths, return_dict=True)
    pred = model.predict(x, lengths=lengths)
    valid = (np.arange(5)[None, :] < lengths[:, None]).astype(float)
    hits = (pred > 0.5).sum(-1)
    assert logs["positives"] == pytest.approx((hits * valid).sum())
    assert logs["weighted_positives"] == pytest.approx((hits * valid * w).sum(), rel=1e-6)
    history = model.fit(x, y, lengths=lengths, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert set(history.history) == {"loss", "positives", "weighted_positives"}


class TwoProcesses(LocalStrategy):
    """As if a second process had run the same batch: every metric state and the loss sum
    are merged with their copy before they are logged."""

    def reduce_batch(self, result):
        states = [metrics.merge_states([s, s]) for s in result.stats]
        return result._replace(size=2 * result.size, stats=states)


def test_metric_states_pass_through_the_strategy(ops, rng):
    model = Sequential(
        [GRU(3, input_shape=(4, 2), seed=1), Dense(2, activation="sigmoid", seed=2)], device=ops.name
    )
    model.compile(
        optimizer="sgd",
        loss="binary_crossentropy",
        metrics=["binary_accuracy", metrics.TruePositives(), "auc"],
    )
    x = rng.standard_normal((10, 4, 2))
    y = rng.integers(0, 2, (10, 2)).astype(np.float32)
    alone = model.evaluate(x, y, batch_size=4, return_dict=True)
    both = cgru.training.loop.evaluate(model, x, y, 4, 0, None, True, strategy=TwoProcesses())
    for key in ("loss", "binary_accuracy", "auc"):  # means and ratios: unchanged
        assert both[key] == pytest.approx(alone[key], rel=1e-12)
    assert both["true_positives"] == 2 * alone["true_positives"]  # counts: both processes'


def test_compile_takes_names_objects_classes_and_functions():
    model = Sequential([Dense(2, input_shape=(3,))])

    model.compile(loss="mse", metrics=["auc", metrics.Precision(name="p"), metrics.Recall, half_error])
    assert model.metrics_names == ["loss", "auc", "p", "recall", "half_error"]
    x, y = np.ones((4, 3)), np.array([[0, 1], [1, 1], [0, 0], [1, 0]], np.float32)
    logs = model.evaluate(x, y, return_dict=True)
    assert logs["half_error"] == pytest.approx(0.5 * np.abs(model.predict(x) - y).mean(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown metric 'Mse'"):
        model.compile(metrics=["Mse"])
    with pytest.raises(TypeError, match="metrics must be"):
        model.compile(metrics=[3])
    with pytest.raises(TypeError, match="weighted_metrics must be a list"):
        model.compile(weighted_metrics=3)


def test_a_metric_at_several_thresholds_logs_an_array(capsys):
    model = Sequential([Dense(1, activation="sigmoid", input_shape=(2,), seed=1)])
    model.compile(loss="binary_crossentropy", metrics=[metrics.Precision(thresholds=[0.1, 0.9])])
    x, y = np.random.default_rng(0).standard_normal((8, 2)), np.ones((8, 1))
    logs = model.evaluate(x, y, return_dict=True, verbose=2)
    assert logs["precision"].shape == (2,)
    assert "precision: [" in capsys.readouterr().out


def test_callbacks_know_the_direction_of_new_metrics(rng):
    model = Sequential([Dense(1, activation="sigmoid", input_shape=(2,), seed=1)])
    model.compile(
        loss="binary_crossentropy", metrics=["auc", "RootMeanSquaredError"], weighted_metrics=["auc"]
    )
    x, y = rng.standard_normal((8, 2)), rng.integers(0, 2, (8, 1))
    for monitor, direction in (
        ("val_auc", "max"),
        ("val_RootMeanSquaredError", "min"),
        ("weighted_auc", "max"),
    ):
        stop = callbacks.EarlyStopping(monitor=monitor, patience=5)
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), callbacks=[stop])
        assert stop.direction == direction, monitor


@metrics.register_metric(name="tests.Positives")
class SavedPositives(Positives):
    pass


def half_error(y_true, y_pred):
    return 0.5 * np.abs(np.asarray(y_pred) - np.asarray(y_true)).mean(axis=-1)


def test_metric_objects_survive_save_and_load(tmp_path, rng):
    model = Sequential([GRU(3, input_shape=(4, 2), seed=1), Dense(2, activation="sigmoid", seed=2)])
    compiled = [
        metrics.AUC(curve="PR", num_thresholds=50, name="pr"),
        metrics.Precision(thresholds=[0.3, 0.6]),
        SavedPositives(name="pos"),
        "top_k_categorical_accuracy",
    ]
    model.compile(
        loss="binary_crossentropy",
        metrics=compiled,
        weighted_metrics=[metrics.TopKCategoricalAccuracy(k=1), metrics.BinaryAccuracy(threshold=0.3)],
    )
    model.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz")
    assert loaded.metrics_names == model.metrics_names
    x, y = rng.standard_normal((9, 4, 2)), rng.integers(0, 2, (9, 2)).astype(np.float32)
    w = rng.uniform(0, 2, 9)
    a = model.test_on_batch(x, y, sample_weight=w, return_dict=True)
    b = loaded.test_on_batch(x, y, sample_weight=w, return_dict=True)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-6, err_msg=key)
    assert loaded._metrics[0].get_config() == compiled[0].get_config()


def test_an_unregistered_metric_is_left_out_of_the_file_with_a_warning(tmp_path):
    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(loss="mse", metrics=["mae", Positives()], weighted_metrics=[half_error])
    with pytest.warns(UserWarning, match="register_metric") as caught:
        model.save(tmp_path / "m.npz")
    assert len(caught) == 2
    assert cgru.load_model(tmp_path / "m.npz").metrics_names == ["loss", "mae"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile(loss="mse", metrics=["mae"])
        model.save(tmp_path / "m.npz")


def test_loading_an_unknown_metric_class_says_how_to_fix_it(tmp_path):
    @metrics.register_metric(name="tests.Vanishing")
    class Vanishing(Positives):
        pass

    model = Sequential([Dense(1, input_shape=(2,))])
    model.compile(loss="mse", metrics=[Vanishing()])
    model.save(tmp_path / "m.npz")
    del metrics.registry.METRICS.classes["tests.Vanishing"]
    with pytest.raises(ValueError, match="unknown metric class 'tests.Vanishing'.*register_metric"):
        cgru.load_model(tmp_path / "m.npz")
    assert cgru.load_model(tmp_path / "m.npz", compile=False).count_params() == 3
    with pytest.raises(ValueError, match="belongs to"):
        metrics.register_metric(Positives, name="AUC")


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3"])
def test_auc_refuses_a_bad_number_of_labels(bad):
    with pytest.raises((TypeError, ValueError), match="num_labels"):
        metrics.AUC(multi_label=True, num_labels=bad)
