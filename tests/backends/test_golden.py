"""Every backend against PyTorch nn.GRU golden vectors (outputs, final states, gradients)."""

import numpy as np
import pytest
from golden import GOLDEN_CASES, load_case, run_case

TOLERANCE = {np.float64: 1e-10, np.float32: 2e-5}


def test_golden_cases_exist():
    assert len(GOLDEN_CASES) >= 5


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_matches_pytorch(ops, name, dtype):
    case = load_case(name)
    got = run_case(ops, case, dtype)
    expected_keys = [k for k in case if k in ("y", "h_n") or k.startswith("grad_")]
    assert set(expected_keys) <= set(got)
    for key in expected_keys:
        scale = max(1.0, float(np.abs(case[key]).max()))
        np.testing.assert_allclose(got[key], case[key], rtol=0, atol=TOLERANCE[dtype] * scale, err_msg=key)
        assert got[key].dtype == dtype, key
