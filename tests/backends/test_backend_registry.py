"""The backend registry (cgru.backends): the backends available, registering and selecting one."""

import pytest

import cgru


def test_backend_registry():
    assert {"numpy", "cpu", "cuda"} <= set(cgru.available_backends())
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        cgru.set_backend("nope")
    with pytest.raises(TypeError, match="must be callable"):
        cgru.register_backend("broken", 42)

    class Tiny(cgru.backends.numpy_ops.NumpyOps):
        name = "tiny"

    cgru.register_backend("tiny", Tiny)
    assert isinstance(cgru.get_ops("tiny"), Tiny)
    previous = cgru.get_backend()
    cgru.set_backend("tiny")
    try:
        assert cgru.get_backend() == "tiny"
    finally:
        cgru.set_backend(previous)
