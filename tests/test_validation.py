"""cgru.validation: the one home of the argument checks, and the modules that reuse it."""

import math

import numpy as np
import pytest

from cgru import config, validation
from cgru.backends import base as backends_base


def test_check_lengths_normalises_and_refuses():
    out = validation.check_lengths([3, 1.0, 0], 3, 4)
    assert out.dtype == np.int64 and out.flags.c_contiguous and out.tolist() == [3, 1, 0]
    assert validation.check_lengths(None, 3, 4) is None
    assert validation.check_lengths([4, 4], 2, 4) is None  # every sequence full: no lengths
    with pytest.raises(TypeError, match="integers"):
        validation.check_lengths([1.5, 2], 2, 4)
    with pytest.raises(ValueError, match="one entry per sequence"):
        validation.check_lengths([1, 2, 3], 2, 4)
    with pytest.raises(ValueError, match=r"0\.\.4"):
        validation.check_lengths([1, 5], 2, 4)
    with pytest.raises(ValueError, match="time axis"):
        validation.check_lengths_for([1], (1,))


def test_one_definition_serves_every_old_caller():
    assert backends_base.check_lengths is validation.check_lengths
    assert config.check_seed is validation.check_seed


@pytest.mark.parametrize(
    "check, args, error",
    [
        (validation.check_int, (True, "n", 0), TypeError),
        (validation.check_int, (-1, "n", 0), ValueError),
        (validation.check_positive_int, (0, "units"), ValueError),
        (validation.check_positive_int, (2.0, "units"), TypeError),
        (validation.check_seed, (-3,), ValueError),
        (validation.check_seed, ("1",), TypeError),
        (validation.check_rate, (1.0, "rate"), ValueError),
        (validation.check_rate, ("x", "rate"), TypeError),
        (validation.check_float, (math.nan, "lr"), ValueError),
        (validation.check_float, (1.0, "beta", 0.0, 1.0, True), ValueError),
        (validation.as_float, (False, "baseline"), TypeError),
        (validation.check_shape, ((2, -1), "input_shape"), ValueError),
        (validation.check_shape, ("ab", "input_shape"), TypeError),
        (validation.as_batch_array, (np.float32(1.0),), ValueError),
        (validation.as_numeric_array, (np.array(["a"]), "x"), TypeError),
    ],
)
def test_checks_raise_naming_the_argument(check, args, error):
    with pytest.raises(error):
        check(*args)


def test_checks_return_normalised_values():
    assert validation.check_int(np.int64(3), "n", 1) == 3 and type(validation.check_int(3, "n", 1)) is int
    assert validation.check_float("0.5", "lr") == 0.5
    assert validation.check_shape([None, np.int32(3)], "s") == (None, 3)
    assert validation.check_rate(0, "rate") == 0.0
    assert validation.as_batch_array([[1, 2]]).shape == (1, 2)


def test_xp_of():
    assert validation.xp_of(np.zeros(2)) is np
    assert validation.xp_of([1.0, 2.0]) is np


def test_lengths_from_an_array_like_with_a_get_method():
    """Only a GPU array is copied through .get(): a host array-like that happens to have a get
    method (a pandas Series, a mapping-like array) is read as an array."""

    class Lengths:
        def __init__(self, values):
            self.values = np.asarray(values)

        def __array__(self, dtype=None, copy=None):
            return self.values

        def get(self, key, default=None):
            return default

    np.testing.assert_array_equal(validation.check_lengths(Lengths([1, 2]), 2, 3), [1, 2])
