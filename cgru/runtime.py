"""Backend information and thread control (the thread count itself lives in
``cgru.backends.parallel``, beside the code that reads it)."""

from __future__ import annotations

from .backends import compiled_available, get_backend, get_ops
from .backends.parallel import available_cores, get_num_threads, num_threads, set_num_threads

__all__ = ["available_cores", "backend_info", "get_num_threads", "num_threads", "set_num_threads"]


def backend_info() -> dict:
    """What runs the models: ``backend`` name, ``compiled`` (bool), ``blas`` (the BLAS actually
    linked, with version, or None), ``threads`` (cgru's thread count), ``isa`` (the instruction
    set level of the compiled kernels in use, or None) and ``quantized_kernels``: what computes
    the products of each reduced-precision mode (``Sequential.quantize``) on the current backend,
    e.g. ``{"bfloat16": "avx512_bf16 (vdpbf16ps)", "int8": "avx512_vnni (vpdpbusd)"}``, or None
    where the backend has no reduced-precision kernels."""
    compiled = compiled_available()
    if compiled:
        from . import _engine

        blas, isa = _engine.blas_config(), _engine.get_isa()
    else:
        blas = isa = None
    backend = get_backend()
    return {"backend": backend, "compiled": compiled, "blas": blas, "threads": get_num_threads(),
            "isa": isa, "quantized_kernels": get_ops(backend).quantized_kernels()}
