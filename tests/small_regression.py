"""A small compiled GRU regression model and its data, for the tests of fit, callbacks and progress."""

import numpy as np

from cgru import GRU, Dense, Sequential


def _regression(ops, seed=0, **compile_kwargs):
    model = Sequential(
        [
            GRU(8, return_sequences=True, input_shape=(6, 3), seed=seed),
            GRU(6, seed=seed + 1),
            Dense(1, seed=seed + 2),
        ],
        device=ops.name,
    )
    model.compile(optimizer=compile_kwargs.pop("optimizer", "adam"), loss="mse", **compile_kwargs)
    return model


def _data(rng, n=64):
    x = rng.standard_normal((n, 6, 3)).astype(np.float32)
    y = x[:, :, :1].mean(axis=1) + 0.1
    return x, y
