"""cgru.runtime: backend_info and the thread count it reports."""

import pytest

import cgru
from cgru.backends import compiled_available


def test_backend_info_and_threads():
    info = cgru.backend_info()
    assert {"backend", "compiled", "blas", "threads"} <= set(info)
    assert info["compiled"] == compiled_available()
    if info["compiled"]:
        assert info["blas"].startswith("OpenBLAS")
        assert info["backend"] == "cpu"
    before = cgru.get_num_threads()
    with cgru.num_threads(1):
        assert cgru.get_num_threads() == 1
        assert cgru.backend_info()["threads"] == 1
    assert cgru.get_num_threads() == before
    with pytest.raises(ValueError, match="n must be >= 1"):
        cgru.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        cgru.set_num_threads(1.5)
