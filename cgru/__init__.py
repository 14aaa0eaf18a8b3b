"""cgru: gated recurrent unit networks with a compiled CPU engine and an optional GPU backend."""

from .backends import available_backends, get_backend, get_ops, register_backend, set_backend
from .runtime import backend_info, get_num_threads, num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "available_backends",
    "backend_info",
    "get_backend",
    "get_num_threads",
    "get_ops",
    "num_threads",
    "register_backend",
    "set_backend",
    "set_num_threads",
]
