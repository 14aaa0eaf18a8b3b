"""The GRU's activation table (cgru/backends/activations.py): the codes every compiled engine
takes, and the formulas of the NumPy reference."""

import re
from pathlib import Path

import numpy as np
import pytest

from cgru.backends import activations
from cgru.backends.activations import (
    ACTIVATION_CODES,
    ACTIVATIONS,
    RECURRENT_ACTIVATION_CODES,
    RECURRENT_ACTIVATIONS,
    activate,
    activation_grad,
)

PACKAGE = Path(activations.__file__).resolve().parents[1]
ENGINE_HEADER = PACKAGE.parent / "src" / "cgru" / "gru_kernels.h"
GRU_CU = PACKAGE / "backends" / "gru.cu"


def enum_values(text: str, name: str) -> dict:
    """{"tanh": 0, ...} from ``enum name { CGRU_TANH = 0, ... }``."""
    body = re.search(r"enum\s+" + name + r"\s*\{([^}]*)\}", text)
    assert body, name
    return {key.lower(): int(value) for key, value in re.findall(r"CGRU_(\w+)\s*=\s*(\d+)", body.group(1))}


def test_the_table_names_every_activation_once():
    assert ACTIVATIONS == tuple(ACTIVATION_CODES) == ("tanh", "relu", "linear")
    assert RECURRENT_ACTIVATIONS == tuple(RECURRENT_ACTIVATION_CODES) == ("sigmoid", "hard_sigmoid")
    for codes in (ACTIVATION_CODES, RECURRENT_ACTIVATION_CODES):
        assert sorted(codes.values()) == list(range(len(codes)))


@pytest.mark.skipif(not ENGINE_HEADER.is_file(), reason="needs the source tree")
def test_the_c_engine_codes_are_the_table():
    text = ENGINE_HEADER.read_text()
    assert enum_values(text, "cgru_activation") == ACTIVATION_CODES
    assert enum_values(text, "cgru_recurrent_activation") == RECURRENT_ACTIVATION_CODES


def test_the_cuda_kernel_codes_are_the_table():
    text = GRU_CU.read_text()
    assert enum_values(text, "cgru_activation_code") == ACTIVATION_CODES
    assert enum_values(text, "cgru_recurrent_activation_code") == RECURRENT_ACTIVATION_CODES


def test_the_cython_driver_and_the_cuda_backend_take_the_table():
    from cgru.backends import compiled_available, cuda_kernels

    assert cuda_kernels.ACTIVATION_CODES is ACTIVATION_CODES
    assert cuda_kernels.RECURRENT_ACTIVATION_CODES is RECURRENT_ACTIVATION_CODES
    if compiled_available():
        from cgru import _engine

        assert _engine.ACTIVATION_CODES is ACTIVATION_CODES
        assert _engine.RECURRENT_ACTIVATION_CODES is RECURRENT_ACTIVATION_CODES


@pytest.mark.parametrize("name", ACTIVATIONS + RECURRENT_ACTIVATIONS)
def test_each_derivative_matches_finite_differences(name):
    """activation_grad(name, y) at y = activate(name, x), against central differences of the
    activation in float64, away from the kinks of relu and hard_sigmoid."""
    x = np.linspace(-5, 5, 401)
    x = x[np.abs(x) > 1e-3]
    x = x[np.abs(np.abs(x) - 3) > 1e-3]
    step = 1e-6
    numeric = (activate(name, x + step) - activate(name, x - step)) / (2 * step)
    np.testing.assert_allclose(activation_grad(name, activate(name, x)), numeric, atol=1e-8)


def test_the_formulas_are_the_keras_ones():
    x = np.array([-8.0, -3.0, -1.0, 0.0, 0.5, 3.0, 8.0])
    np.testing.assert_allclose(activate("hard_sigmoid", x), np.clip(x / 6 + 0.5, 0, 1), rtol=1e-15)
    np.testing.assert_allclose(activate("sigmoid", x), 0.5 * (1 + np.tanh(x / 2)), rtol=1e-13)
    np.testing.assert_array_equal(activate("relu", x), np.where(x > 0, x, 0))
    np.testing.assert_array_equal(activate("linear", x), x)


def test_an_unknown_name_is_refused():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        activate("gelu", np.zeros(2))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        activation_grad("gelu", np.zeros(2))
