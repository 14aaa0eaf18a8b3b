"""Bad input raises ValueError/TypeError naming the problem, and a failed call leaves the model
exactly as it was."""

import numpy as np
import pytest

from cgru import GRU, Bidirectional, Dense, Dropout, Embedding, Sequential, callbacks


def trained_model(ops, **kwargs):
    model = Sequential(
        [GRU(5, return_sequences=True, input_shape=(None, 3), seed=1), GRU(4, seed=2), Dense(2, seed=3)],
        device=ops.name,
    )
    model.compile(optimizer="adam", loss="mse", **kwargs)
    return model


def snapshot(model):
    return [w.copy() for w in model.get_weights()]


def assert_unchanged(model, before):
    after = model.get_weights()
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def data(rng):
    return rng.standard_normal((12, 6, 3)).astype(np.float32), rng.standard_normal((12, 2)).astype(np.float32)


def test_wrong_input_shapes(ops, data):
    x, y = data
    model = trained_model(ops)
    with pytest.raises(ValueError, match=r"expects input of shape \(None, None, 3\)"):
        model.predict(x[..., :2])
    with pytest.raises(ValueError, match="expects input of shape"):
        model.predict(x[0])
    with pytest.raises(ValueError, match="expects input of shape"):
        model(x[..., :2])
    with pytest.raises(ValueError, match="expects input of shape"):
        model(x[:, :, None])
    with pytest.raises(ValueError, match="3-D"):
        Sequential([GRU(2)]).build((None, 4))
    with pytest.raises(ValueError, match="batch axis"):
        Sequential([GRU(2)]).build((4,))
    layer = GRU(2)
    layer(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, time, 4\)"):
        layer(np.zeros((2, 3, 5)))  # a layer called on its own checks too


def test_non_numeric_data(ops, data):
    x, y = data
    model = trained_model(ops)
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([[["a", "b", "c"]]]))
    with pytest.raises(TypeError, match="numeric"):
        model(np.array([[[object(), 1, 2]]], dtype=object))
    with pytest.raises(ValueError, match="rectangular"):
        model.predict([[[1.0, 2.0, 3.0]], [[1.0, 2.0]]])
    with pytest.raises(TypeError, match="numeric"):
        model.fit(x, np.full((12, 2), "y"), verbose=0)
    with pytest.raises(TypeError, match="must be an array"):
        model.predict(None)


def test_fit_validation_leaves_weights_intact(ops, data):
    x, y = data
    model = trained_model(ops)
    before = snapshot(model)
    bad_calls = [
        (ValueError, "same number of samples", dict(x=x, y=y[:10])),
        (ValueError, r"do not match", dict(x=x, y=y[:, :1].repeat(3, axis=1))),
        (ValueError, "lengths", dict(x=x, y=y, lengths=[3] * 11)),
        (ValueError, r"0\.\.6", dict(x=x, y=y, lengths=[7] * 12)),
        (ValueError, r"0\.\.6", dict(x=x, y=y, lengths=[-1] * 12)),
        (TypeError, "integers", dict(x=x, y=y, lengths=[2.5] * 12)),
        (ValueError, "batch_size", dict(x=x, y=y, batch_size=0)),
        (TypeError, "batch_size", dict(x=x, y=y, batch_size=2.0)),
        (ValueError, "epochs", dict(x=x, y=y, epochs=-1)),
        (ValueError, "validation_split", dict(x=x, y=y, validation_split=1.0)),
        (ValueError, "validation_split", dict(x=x, y=y, validation_split=0.95)),
        (ValueError, "validation_data", dict(x=x, y=y, validation_data=(x,))),
        (ValueError, "same number of samples", dict(x=x, y=y, validation_data=(x, y[:3]))),
        (ValueError, "verbose", dict(x=x, y=y, verbose=3)),
        (TypeError, "Callback", dict(x=x, y=y, callbacks=[lambda: None])),
        (ValueError, "at least one", dict(x=x[:0], y=y[:0])),
    ]
    for exc, match, kwargs in bad_calls:
        with pytest.raises(exc, match=match):
            model.fit(**kwargs)
        assert_unchanged(model, before)
    assert model.optimizer.iterations == 0


def test_sparse_targets_and_embedding_ids_checked_before_training(ops, rng):
    ids = rng.integers(1, 10, (16, 5))
    ids[13, 2] = 10  # out of range, in the last batch
    model = Sequential(
        [Embedding(10, 4, input_shape=(5,)), GRU(3), Dense(3, activation="softmax")], device=ops.name
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        model.fit(ids, rng.integers(0, 3, 16), batch_size=4, verbose=0)
    assert_unchanged(model, before)
    ids[13, 2] = 3
    labels = rng.integers(0, 3, 16)
    labels[15] = 3
    with pytest.raises(ValueError, match=r"0\.\.2"):
        model.fit(ids, labels, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="integer"):
        model.fit(ids, labels + 0.5, batch_size=4, verbose=0)
    assert_unchanged(model, before)
    masked = Sequential(
        [Embedding(10, 4, mask_zero=True, input_shape=(5,)), GRU(3), Dense(3)], device=ops.name
    )
    masked.compile(optimizer="sgd", loss="mse")
    before = snapshot(masked)
    left_padded = np.array([[0, 0, 1, 2, 3]] * 4)
    with pytest.raises(ValueError, match="right-padded"):
        masked.fit(left_padded, np.zeros((4, 3)), verbose=0)
    assert_unchanged(masked, before)


def test_unknown_names(ops):
    model = trained_model(ops)
    with pytest.raises(ValueError, match="unknown optimizer 'adamz'"):
        model.compile(optimizer="adamz")
    with pytest.raises(ValueError, match="unknown loss 'msq'"):
        model.compile(loss="msq")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        model.compile(metrics=["acuracy"])
    with pytest.raises(TypeError, match="unsupported"):
        model.compile(loss_weights=[1.0])
    assert type(model.loss).__name__ == "MeanSquaredError"  # a failed compile changes nothing
    with pytest.raises(ValueError, match="unknown activation 'gelu_x'"):
        Dense(2, activation="gelu_x")
    with pytest.raises(ValueError, match="unknown GRU activation 'sigmoid'"):
        GRU(2, activation="sigmoid")
    with pytest.raises(ValueError, match="recurrent_activation"):
        GRU(2, recurrent_activation="tanh")
    with pytest.raises(ValueError, match="unknown merge_mode"):
        Bidirectional(GRU(2), merge_mode="max")


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="units"):
        GRU(0)
    with pytest.raises(TypeError, match="units"):
        GRU("8")
    with pytest.raises(ValueError, match="dropout"):
        GRU(2, dropout=1.0)
    with pytest.raises(ValueError, match="rate"):
        Dropout(-0.1)
    with pytest.raises(ValueError, match="input_dim"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="input_shape"):
        GRU(2, input_shape=(5, -3))
    with pytest.raises(ValueError, match="dtype"):
        GRU(2, dtype="int32")
    with pytest.raises(TypeError, match="seed"):
        GRU(2, seed="x")


def test_set_weights_validates_everything_first(ops, data):
    model = trained_model(ops)
    before = snapshot(model)
    good = model.get_weights()
    with pytest.raises(ValueError, match="expects 8 weight arrays"):
        model.set_weights(good[:-1])
    bad_shape = [w.copy() for w in good]
    bad_shape[-1] = np.zeros(3)  # the last one wrong: nothing before it may be assigned
    for w in bad_shape[:-1]:
        w += 1
    with pytest.raises(ValueError, match=r"weight 7 \(dense_\d+/bias\).*shape \(2,\).*\(3,\)|weight 7"):
        model.set_weights(bad_shape)
    assert_unchanged(model, before)
    strings = [w.copy() for w in good]
    strings[3] = np.full(strings[3].shape, "x")
    with pytest.raises(TypeError, match="numeric"):
        model.set_weights(strings)
    assert_unchanged(model, before)
    with pytest.raises(TypeError, match="list"):
        model.set_weights(np.zeros(3))
    gru = model.layers[0]
    with pytest.raises(ValueError, match=r"shape \(3, 15\)"):
        gru.set_weights([np.zeros((4, 15)), np.zeros((5, 15)), np.zeros((2, 15))])
    assert_unchanged(model, before)


def test_failed_build_and_add_leave_the_model_usable(ops, rng):
    model = Sequential([GRU(3), Dense(2)], device=ops.name)
    with pytest.raises(ValueError):
        model.build((None, 4))
    assert not model.built and not model.layers[0].built
    model.build((None, 4, 5))
    assert model.count_params() == 3 * (15 + 9 + 6) + 8
    built = Sequential([GRU(3, input_shape=(4, 5)), Dense(2)], device=ops.name)
    before = snapshot(built)
    with pytest.raises(ValueError, match="3-D"):
        built.add(GRU(2))  # the output is 2-D
    assert len(built.layers) == 2
    assert_unchanged(built, before)
    built.add(Dense(1))
    assert built.output_shape == (None, 1)


def test_compile_required_and_empty_models(ops, data):
    x, y = data
    model = Sequential([GRU(2, input_shape=(6, 3))], device=ops.name)
    for call in (
        lambda: model.fit(x, y, verbose=0),
        lambda: model.evaluate(x, y),
        lambda: model.train_on_batch(x, y),
    ):
        with pytest.raises(ValueError, match="compile"):
            call()
    with pytest.raises(ValueError, match="no layers"):
        Sequential().build((None, 2, 3))
    with pytest.raises(ValueError, match="not yet been built"):
        Sequential([GRU(2)]).count_params()


def test_fast_call_path_falls_back_safely(ops, rng):
    model = trained_model(ops)
    x = rng.standard_normal((2, 5, 3))
    ref = ops.to_numpy(model(x.astype(np.float32)))
    np.testing.assert_array_equal(ops.to_numpy(model(x)), ref)  # float64 in: converted
    strided = np.asfortranarray(x.astype(np.float32))
    np.testing.assert_array_equal(ops.to_numpy(model(strided)), ref)  # non-contiguous in
    np.testing.assert_array_equal(ops.to_numpy(model(x.astype(np.float32)[:, ::1])), ref)
    with pytest.raises(ValueError):
        model(x[:, :, :2].astype(np.float32))


def test_stateful_batch_size_change_is_an_error(ops, rng):
    model = Sequential([GRU(3, stateful=True, input_shape=(1, 2))], device=ops.name)
    model(rng.standard_normal((4, 1, 2)).astype(np.float32))
    with pytest.raises(ValueError, match="reset_states"):
        model(rng.standard_normal((2, 1, 2)).astype(np.float32))
    model.reset_states()
    assert model(rng.standard_normal((2, 1, 2)).astype(np.float32)).shape == (2, 3)


def test_evaluate_and_predict_argument_errors(ops, data):
    x, y = data
    model = trained_model(ops, metrics=["mae"])
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(x, batch_size=0)
    with pytest.raises(ValueError, match="lengths"):
        model.predict(x, lengths=np.ones((12, 2), int))
    with pytest.raises(ValueError, match="same number of samples"):
        model.evaluate(x, y[:5])
    assert isinstance(model.evaluate(x, y, return_dict=True), dict)
    with pytest.raises(ValueError, match="y"):
        model.evaluate(x, None)


def test_checkpoint_and_early_stopping_arguments():
    with pytest.raises(ValueError, match="mode"):
        callbacks.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience"):
        callbacks.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="save_freq"):
        callbacks.ModelCheckpoint("x.npz", save_freq=0)


def test_stateful_models_need_equal_batches(ops, rng):
    model = Sequential([GRU(3, stateful=True, input_shape=(4, 2)), Dense(1)], device=ops.name)
    model.compile(optimizer="sgd", loss="mse")
    x, y = rng.standard_normal((10, 4, 2)), rng.standard_normal((10, 1))
    before = snapshot(model)
    with pytest.raises(ValueError, match="same size"):
        model.fit(x, y, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="same size"):
        model.predict(x, batch_size=4)
    assert_unchanged(model, before)
    model.fit(x, y, batch_size=5, verbose=0, shuffle=False)
    with pytest.raises(ValueError, match="reset_states"):
        model.evaluate(x, y, batch_size=2)
    model.reset_states()
    assert np.isfinite(model.evaluate(x, y, batch_size=2))


def test_keras_only_arguments():
    layer = GRU(
        3, unroll=False, implementation=1, use_cudnn=False, kernel_regularizer=None, recurrent_constraint=None
    )
    assert "unroll" not in layer.get_config()
    Dense(2, kernel_regularizer=None, bias_constraint=None, activity_regularizer=None)
    Embedding(5, 2, embeddings_regularizer=None)
    with pytest.raises(ValueError, match="kernel_regularizer is not supported"):
        GRU(3, kernel_regularizer="l2")
    with pytest.raises(ValueError, match="embeddings_constraint is not supported"):
        Embedding(5, 2, embeddings_constraint="non_neg")
