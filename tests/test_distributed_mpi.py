"""MPIStrategy across real processes: ``mpiexec -n 2`` and ``-n 3`` runs of a training script.

Each rank fits its own uneven shard of ragged sequences (a Bidirectional GRU + Dense model,
Adam, validation data, callbacks) from its own initial weights. The final weights must be
bitwise identical on every rank, and equal to one process's ``fit`` on the whole data with
the global batch size: the data laid out as the rank-order concatenation of the ranks' batches
(float64 within 1e-12, float32 within 1e-5), with the same History.

Needs mpi4py and an ``mpiexec`` (the test extra brings the mpich wheel's); skipped without.
MPICH's launcher runs as root without any flag; Open MPI's refuses unless given
``--allow-run-as-root`` (or OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1), which
:func:`mpiexec_command` adds when it finds Open MPI.
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cgru

pytest.importorskip("mpi4py")

# The script every rank runs: argv = out directory, dtype, shard sizes (comma-separated).
WORKER = textwrap.dedent('''
    import sys

    import numpy as np

    import cgru

    T, F, OUT, BATCH, EPOCHS = 6, 3, 2, 4, 3


    def make_data(n, dtype, seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, T, F)).astype(dtype)
        y = rng.standard_normal((n, T, OUT)).astype(dtype)
        lengths = rng.integers(0, T + 1, n)
        lengths[0] = T
        return x, y, lengths


    def make_model(dtype, seed):
        model = cgru.Sequential([
            cgru.Bidirectional(cgru.GRU(5, return_sequences=True, seed=seed, dtype=dtype),
                               input_shape=(T, F)),
            cgru.Dense(OUT, seed=seed + 1, dtype=dtype),
        ], device="cpu" if cgru.backend_info()["compiled"] else "numpy")
        # the metric computes in the model's dtype (its default is cgru.floatx(), as in Keras)
        mae = cgru.metrics.MeanAbsoluteError("mae", dtype)
        model.compile(optimizer=cgru.optimizers.Adam(0.01), loss="mse", metrics=[mae])
        return model


    def shards(sizes):
        bounds = np.cumsum([0, *sizes])
        return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


    def validation_sizes(ranks):
        return [6] + [5] * (ranks - 1)


    def main():
        from cgru.distributed import MPIStrategy

        out, dtype, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
        cgru.set_num_threads(1)
        strategy = MPIStrategy()
        rank = strategy.rank
        assert strategy.size == len(sizes), (strategy.size, sizes)
        x, y, lengths = make_data(sum(sizes), dtype, 1)
        vx, vy, vl = make_data(sum(validation_sizes(len(sizes))), dtype, 2)
        rows, val_rows = shards(sizes)[rank], shards(validation_sizes(len(sizes)))[rank]
        model = make_model(dtype, seed=10 * rank)  # rank 0's weights must reach every rank
        stopper = cgru.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
        checkpoint = cgru.callbacks.ModelCheckpoint(out + "/ckpt-rank" + str(rank) + "-{epoch}.npz")
        history = model.fit(
            x[rows], y[rows], lengths=lengths[rows], batch_size=BATCH, epochs=EPOCHS, shuffle=False,
            validation_data=({"x": vx[val_rows], "lengths": vl[val_rows]}, vy[val_rows]),
            callbacks=[stopper, checkpoint],
            verbose=2, strategy=strategy,
        )
        digest = strategy.check_replicas(model)
        np.savez(
            out + "/rank" + str(rank) + ".npz",
            *model.get_weights(),
            history=np.array([history.history[k] for k in sorted(history.history)]),
            keys=np.array(sorted(history.history)),
            iterations=model.optimizer.iterations,
            digest=digest,
        )


    if __name__ == "__main__":
        main()
''')


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (a virtualenv's, from the mpich wheel), else on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def mpiexec_command(mpiexec: str, ranks: int) -> list[str]:
    """``mpiexec -n ranks``, with the flags Open MPI needs to run as root and to start more
    ranks than cores (MPICH's hydra needs neither)."""
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=60)
    command = [mpiexec, "-n", str(ranks)]
    if "Open MPI" in version.stdout + version.stderr or "OpenRTE" in version.stdout + version.stderr:
        command.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-run-as-root")
    return command


def run_mpi(ranks: int, script: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich, or a system MPI)")
    env = dict(os.environ)
    package_parent = str(Path(cgru.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    command = [*mpiexec_command(mpiexec, ranks), sys.executable, "-m", "mpi4py", str(script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mpi") / "fit_shard.py"
    path.write_text(WORKER)
    return path


@pytest.mark.parametrize(
    ("sizes", "dtype", "tol"),
    [((12, 9), "float64", 1e-12), ((8, 8, 6), "float64", 1e-12), ((12, 9), "float32", 1e-5)],
    ids=["2-ranks-float64", "3-ranks-float64", "2-ranks-float32"],
)
def test_mpi_fit_equals_one_process_fit(worker, tmp_path, sizes, dtype, tol):
    result = run_mpi(len(sizes), worker, str(tmp_path), dtype, ",".join(map(str, sizes)))
    assert result.returncode == 0, f"mpiexec failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(len(sizes))]
    script = runpy.run_path(str(worker))  # the worker's data and model, for the reference
    n_weights = len([k for k in ranks[0].files if k.startswith("arr_")])
    weights = [[rank[f"arr_{i}"] for i in range(n_weights)] for rank in ranks]
    for other in weights[1:]:  # the replicas are bitwise identical
        for a, b in zip(weights[0], other):
            np.testing.assert_array_equal(a, b)
    assert len({str(rank["digest"]) for rank in ranks}) == 1

    batch, ranks_n = script["BATCH"], len(sizes)
    x, y, lengths = script["make_data"](sum(sizes), dtype, 1)
    val_sizes = script["validation_sizes"](ranks_n)
    vx, vy, vl = script["make_data"](sum(val_sizes), dtype, 2)

    def interleaved(rows_per_rank):
        steps = max(-(-len(rows) // batch) for rows in rows_per_rank)
        return np.concatenate([rows[i * batch:(i + 1) * batch]
                               for i in range(steps) for rows in rows_per_rank])

    order, val_order = interleaved(script["shards"](sizes)), interleaved(script["shards"](val_sizes))
    reference = script["make_model"](dtype, 0)
    stopper = cgru.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    history = reference.fit(
        x[order], y[order], lengths=lengths[order], batch_size=batch * ranks_n, epochs=script["EPOCHS"],
        shuffle=False, validation_data=({"x": vx[val_order], "lengths": vl[val_order]}, vy[val_order]),
        callbacks=[stopper],
        verbose=0,
    )
    for got, want in zip(weights[0], reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    assert int(ranks[0]["iterations"]) == reference.optimizer.iterations
    keys = list(ranks[0]["keys"])
    assert keys == sorted(history.history)
    for rank in ranks:
        np.testing.assert_allclose(rank["history"], [history.history[k] for k in keys], rtol=max(tol, 1e-12))
    # only rank 0 prints and writes checkpoints
    epochs = script["EPOCHS"]
    written = sorted(p.name for p in tmp_path.glob("ckpt-*"))
    assert written == [f"ckpt-rank0-{e}.npz" for e in range(1, epochs + 1)]
    assert result.stdout.count(f"Epoch 1/{epochs}") == 1


def test_a_failing_rank_ends_the_job_instead_of_hanging(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(textwrap.dedent('''
        import numpy as np
        import cgru
        from cgru.distributed import MPIStrategy

        strategy = MPIStrategy()
        model = cgru.Sequential([cgru.Dense(1, input_shape=(2,))])
        model.compile(optimizer="sgd", loss="mse")
        batch_size = 0 if strategy.rank == 1 else 2   # rank 1 fails its argument check
        model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=batch_size, verbose=0, strategy=strategy)
    '''))
    result = run_mpi(2, script, timeout=120)
    assert result.returncode != 0
    assert "batch_size must be" in result.stderr


def test_the_example_trains_on_two_ranks(tmp_path):
    example = Path(__file__).resolve().parent.parent / "examples" / "distributed_training.py"
    if not example.exists():
        pytest.skip("examples/ is not beside tests/ here")
    result = run_mpi(2, example, "--quick", "--out", str(tmp_path / "model.npz"))
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out = result.stdout
    assert "ranks: 2" in out and out.count("replicas identical on every rank") == 1  # rank 0 alone prints
    assert cgru.load_model(tmp_path / "model.npz").count_params() > 0
