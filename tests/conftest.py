"""Shared fixtures: backends under test and seeded random generators."""

import numpy as np
import pytest

import cgru
from cgru.backends import compiled_available


def backends_under_test() -> list[str]:
    """The reference backend and the compiled one (when built)."""
    names = ["numpy"]
    if compiled_available():
        names.append("cpu")
    return names


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(params=backends_under_test())
def ops(request):
    return cgru.get_ops(request.param)
