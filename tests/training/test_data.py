"""cgru.training.data: arrays cut into batches, shuffled by a seeded generator, and the validation
split."""

import numpy as np
import pytest

from cgru.training.data import ArrayBatches, split_validation


def test_array_batches_and_the_validation_split(rng):
    x = np.arange(10)[:, None]
    lengths = np.arange(10)
    batches = list(ArrayBatches(x, x, lengths, 4).epoch())
    assert [b.x[:, 0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[2].lengths.tolist() == [8, 9]
    shuffled = ArrayBatches(x, x, None, 4, np.random.default_rng(0))
    order = np.random.default_rng(0).permutation(10)
    assert np.concatenate([b.x[:, 0] for b in shuffled.epoch()]).tolist() == order.tolist()
    assert shuffled.steps == 3
    (tx, _, tl), (vx, _, vl) = split_validation(x, x, lengths, 0.25)  # floor(10 * 0.75) = 7 to train on
    assert tx[:, 0].tolist() == tl.tolist() == list(range(7))
    assert vx[:, 0].tolist() == vl.tolist() == [7, 8, 9]
    with pytest.raises(ValueError, match="validation_split"):
        split_validation(x[:1], x[:1], None, 0.5)
