"""Gradients all-reduced on the GPUs through NCCL (CuPy's ``cupy.cuda.nccl``), one process per GPU.

With a model on the ``"cuda"`` backend, :class:`~cgru.distributed.MPIStrategy` (its default
``gpu_collectives="auto"``) reduces each step's fused gradient buffer where it lies, on the
GPU, with ``ncclAllReduce``, and broadcasts the initial weights with ``ncclBcast``; MPI only
starts the NCCL communicator (rank 0's unique id goes to the others by ``MPI_Bcast``) and
carries the small host messages (the models' signatures, evaluation sums). The launch is the
same as on CPUs, one rank per GPU::

    mpiexec -n 8 python -m mpi4py train.py      # 8 GPUs, on one node or several

    # train.py
    from cgru.distributed import MPIStrategy, use_local_gpu
    use_local_gpu()                 # before anything touches the GPU: rank i of a node -> GPU i
    model = make_model(device="cuda")

NCCL is asynchronous on a CUDA stream: the all-reduce is queued on the current stream after
the kernels that computed the gradients, and the optimizer's kernels queue after it, so nothing
waits on the host except where the step reads its scalars (loss, counts) back, once per step.

Status: this path has not run on GPUs. What is tested without a GPU (tests/test_distributed_*):
the fused buffer on the emulated CuPy backend, the calls this module makes (pointers, counts,
NCCL datatypes, roots, the stream) against an in-process stand-in for ``NcclCommunicator``, and
the whole strategy over host collectives. NCCL's own behaviour is not: its algorithms, its
speed, and whether every rank gets the same bits of a sum, which the replicas staying bitwise
identical relies on (:meth:`~cgru.distributed.strategy.DataParallelStrategy.check_replicas`
checks it on a real run).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: NCCL's datatypes for the buffers the strategy makes (attribute names of cupy.cuda.nccl).
_NCCL_TYPES = {np.dtype(np.uint8): "NCCL_UINT8", np.dtype(np.float32): "NCCL_FLOAT32",
               np.dtype(np.float64): "NCCL_FLOAT64", np.dtype(np.float16): "NCCL_FLOAT16"}


def nccl_module(required: bool) -> Any:
    """``cupy.cuda.nccl`` if CuPy has NCCL; else None, or ImportError when ``required``."""
    try:
        from cupy.cuda import nccl
    except ImportError as exc:
        if required:
            raise ImportError(
                "gpu_collectives='nccl' needs CuPy built with NCCL (the cupy-cuda12x wheel has it; "
                f"python -m cupyx.tools.install_library --library nccl adds it otherwise): {exc}"
            ) from exc
        return None
    return nccl


def pointer(array: Any) -> int:
    """The device address of a CuPy array (of a NumPy array's data, under the CPU emulation)."""
    data = getattr(array, "data", None)
    return data.ptr if hasattr(data, "ptr") else array.ctypes.data


class NCCLCollectives:
    """The collectives of :mod:`cgru.distributed.strategy` on GPU buffers through NCCL, with
    ``host`` (:class:`~cgru.distributed.mpi.MPICollectives`) for host buffers and objects.

    ``cupy``: the array module of the model's buffers; ``nccl``: ``cupy.cuda.nccl`` (or a
    stand-in with the same names)."""

    def __init__(self, host: Any, cupy: Any, nccl: Any) -> None:
        self.host = host
        self.rank, self.size = host.rank, host.size
        self.cupy = cupy
        self.nccl = nccl
        unique_id = nccl.get_unique_id() if host.rank == 0 else None
        self.comm = nccl.NcclCommunicator(host.size, host.broadcast_object(unique_id, 0), host.rank)

    def _datatype(self, buffer: Any) -> int:
        name = _NCCL_TYPES.get(np.dtype(buffer.dtype))
        if name is None:
            known = sorted(map(str, _NCCL_TYPES))
            raise TypeError(f"NCCL collectives take {known} buffers, got {buffer.dtype}")
        return getattr(self.nccl, name)

    def _stream(self) -> int:
        return self.cupy.cuda.get_current_stream().ptr

    def _check(self, buffer: Any) -> None:
        if buffer.ndim != 1 or not buffer.flags.c_contiguous:
            raise ValueError("NCCL collectives take 1-D contiguous buffers")

    def allreduce_sum(self, buffer: Any) -> Any:
        self._check(buffer)
        address = pointer(buffer)
        self.comm.allReduce(address, address, buffer.size, self._datatype(buffer), self.nccl.NCCL_SUM,
                            self._stream())
        return buffer

    def broadcast(self, buffer: Any, root: int = 0) -> Any:
        self._check(buffer)
        self.comm.bcast(pointer(buffer), buffer.size, self._datatype(buffer), root, self._stream())
        return buffer

    def allgather(self, obj: Any) -> list:
        return self.host.allgather(obj)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.host.broadcast_object(obj, root)


def use_local_gpu(comm: Any = None) -> int:
    """Make this rank use GPU ``local rank % GPUs of the node`` (ranks on one node get different
    GPUs), before any array reaches the GPU; returns the device number. Needs CuPy and mpi4py."""
    import cupy

    from .mpi import import_mpi

    MPI = import_mpi()
    comm = MPI.COMM_WORLD if comm is None else comm
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        device = local.Get_rank() % cupy.cuda.runtime.getDeviceCount()
    finally:
        local.Free()
    cupy.cuda.Device(device).use()
    return device


__all__ = ["NCCLCollectives", "nccl_module", "pointer", "use_local_gpu"]
