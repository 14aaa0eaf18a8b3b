"""MPIStrategy across real processes: ``mpiexec -n 2`` and ``-n 3`` runs of a training script.

Each rank fits its own uneven shard of ragged sequences (a Bidirectional GRU + Dense model,
Adam, validation data, callbacks) from its own initial weights. The final weights must be
bitwise identical on every rank, and equal to one process's ``fit`` on the whole data with
the global batch size: the data laid out as the rank-order concatenation of the ranks' batches
(float64 within 1e-12, float32 within 1e-5), with the same History on every rank. The weighted
runs add per-step sample weights (training and validation) and metrics whose states are sums,
sums combined nonlinearly (AUC) and maxima and minima, all in the step's one all-reduce.

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
from isolated import this_cgru_env
from paths import ROOT

import cgru

pytest.importorskip("mpi4py")

# The script every rank runs: argv = out directory, dtype, shard sizes (comma-separated), task
# ("plain": mse on real targets; "weighted": binary targets weighted per step, with metrics whose
# states are sums, a sum combined nonlinearly (AUC), and maxima and minima).
WORKER = textwrap.dedent('''
    import sys

    import numpy as np

    import cgru

    T, F, OUT, BATCH, EPOCHS = 6, 3, 2, 4, 3


    class ErrorRange(cgru.metrics.Metric):
        """The largest minus the smallest absolute error of a weighted value: "max" and "min"
        state arrays."""

        def __init__(self, name="error_range", dtype=None):
            super().__init__(name=name, dtype=dtype)
            self.peak = self.add_variable((), initializer=-np.inf, aggregation="max")
            self.low = self.add_variable((), initializer=np.inf, aggregation="min")

        def update_state(self, y_true, y_pred, sample_weight=None):
            error = np.abs(np.asarray(y_pred, self.dtype) - np.asarray(y_true, self.dtype)).max(-1)
            counted = error if sample_weight is None else error[np.asarray(sample_weight) > 0]
            if counted.size:
                self.peak.assign(max(float(self.peak), float(counted.max())))
                self.low.assign(min(float(self.low), float(counted.min())))

        def result(self):
            return float(self.peak) - float(self.low)


    def make_data(n, dtype, seed, task="plain"):
        """x, y, lengths and sample weights (None for the plain task)."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, T, F)).astype(dtype)
        y = rng.standard_normal((n, T, OUT)).astype(dtype)
        lengths = rng.integers(0, T + 1, n)
        lengths[0] = T
        if task == "plain":
            return x, y, lengths, None
        y = (y > 0).astype(dtype)
        w = rng.uniform(0.0, 2.0, (n, T)).astype(dtype)
        w[rng.random(w.shape) < 0.2] = 0.0
        return x, y, lengths, w


    def make_model(dtype, seed, task="plain"):
        weighted = task == "weighted"
        model = cgru.Sequential([
            cgru.Bidirectional(cgru.GRU(5, return_sequences=True, seed=seed, dtype=dtype),
                               input_shape=(T, F)),
            cgru.Dense(OUT, activation="sigmoid" if weighted else None, seed=seed + 1, dtype=dtype),
        ], device="cpu" if cgru.backend_info()["compiled"] else "numpy")
        # the metrics compute in the model's dtype (their default is cgru.floatx(), as in Keras)
        mae = cgru.metrics.MeanAbsoluteError("mae", dtype)
        if not weighted:
            model.compile(optimizer=cgru.optimizers.Adam(0.01), loss="mse", metrics=[mae])
            return model
        model.compile(
            optimizer=cgru.optimizers.Adam(0.01), loss="binary_crossentropy",
            metrics=[ErrorRange(dtype=dtype)],
            weighted_metrics=[mae, cgru.metrics.AUC(num_thresholds=50, dtype=dtype)],
        )
        return model


    def shards(sizes):
        bounds = np.cumsum([0, *sizes])
        return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


    def validation_sizes(ranks):
        return [6] + [5] * (ranks - 1)


    def take(a, rows):
        return None if a is None else a[rows]


    def main():
        from cgru.distributed import MPIStrategy

        out, dtype, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
        task = sys.argv[4]
        cgru.set_num_threads(1)
        strategy = MPIStrategy()
        rank = strategy.rank
        assert strategy.size == len(sizes), (strategy.size, sizes)
        x, y, lengths, w = make_data(sum(sizes), dtype, 1, task)
        vx, vy, vl, vw = make_data(sum(validation_sizes(len(sizes))), dtype, 2, task)
        rows, val_rows = shards(sizes)[rank], shards(validation_sizes(len(sizes)))[rank]
        model = make_model(dtype, 10 * rank, task)  # rank 0's weights must reach every rank
        stopper = cgru.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
        checkpoint = cgru.callbacks.ModelCheckpoint(out + "/ckpt-rank" + str(rank) + "-{epoch}.npz")
        history = model.fit(
            x[rows], y[rows], lengths=lengths[rows], sample_weight=take(w, rows), batch_size=BATCH,
            epochs=EPOCHS, shuffle=False,
            validation_data=({"x": vx[val_rows], "lengths": vl[val_rows]}, vy[val_rows], take(vw, val_rows)),
            callbacks=[stopper, checkpoint] if task == "plain" else [stopper],
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
    env = this_cgru_env()
    command = [*mpiexec_command(mpiexec, ranks), sys.executable, "-m", "mpi4py", str(script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mpi") / "fit_shard.py"
    path.write_text(WORKER)
    return path


@pytest.mark.parametrize(
    ("sizes", "dtype", "tol", "task"),
    [
        ((12, 9), "float64", 1e-12, "plain"),
        ((8, 8, 6), "float64", 1e-12, "plain"),
        ((12, 9), "float32", 1e-5, "plain"),
        ((12, 9), "float64", 1e-12, "weighted"),
        ((8, 8, 6), "float64", 1e-12, "weighted"),
        ((12, 9), "float32", 1e-5, "weighted"),
    ],
    ids=[
        "2-ranks-float64", "3-ranks-float64", "2-ranks-float32",
        "2-ranks-float64-weighted", "3-ranks-float64-weighted", "2-ranks-float32-weighted",
    ],
)
def test_mpi_fit_equals_one_process_fit(worker, tmp_path, sizes, dtype, tol, task):
    """Final weights identical on every rank and equal to one process's fit on the global
    batches; the History (loss, metrics, validation) identical on every rank and equal to that
    process's: with sample weights and metrics aggregated by sum, max and min for "weighted"."""
    result = run_mpi(len(sizes), worker, str(tmp_path), dtype, ",".join(map(str, sizes)), task)
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
    x, y, lengths, w = script["make_data"](sum(sizes), dtype, 1, task)
    val_sizes = script["validation_sizes"](ranks_n)
    vx, vy, vl, vw = script["make_data"](sum(val_sizes), dtype, 2, task)

    def interleaved(rows_per_rank):
        steps = max(-(-len(rows) // batch) for rows in rows_per_rank)
        return np.concatenate([rows[i * batch:(i + 1) * batch]
                               for i in range(steps) for rows in rows_per_rank])

    order, val_order = interleaved(script["shards"](sizes)), interleaved(script["shards"](val_sizes))
    take = script["take"]
    reference = script["make_model"](dtype, 0, task)
    stopper = cgru.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    history = reference.fit(
        x[order], y[order], lengths=lengths[order], sample_weight=take(w, order), batch_size=batch * ranks_n,
        epochs=script["EPOCHS"], shuffle=False,
        validation_data=({"x": vx[val_order], "lengths": vl[val_order]}, vy[val_order], take(vw, val_order)),
        callbacks=[stopper], verbose=0,
    )
    for got, want in zip(weights[0], reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    assert int(ranks[0]["iterations"]) == reference.optimizer.iterations
    keys = list(ranks[0]["keys"])
    assert keys == sorted(history.history)
    if task == "weighted":
        assert {"error_range", "auc", "mae", "val_error_range", "val_auc", "val_mae"} <= set(keys)
    for rank in ranks:
        np.testing.assert_array_equal(rank["history"], ranks[0]["history"])  # identical on every rank
        np.testing.assert_allclose(rank["history"], [history.history[k] for k in keys], rtol=max(tol, 1e-12))
    # only rank 0 prints and writes checkpoints
    epochs = script["EPOCHS"]
    assert result.stdout.count(f"Epoch 1/{epochs}") == 1
    if task == "plain":
        written = sorted(p.name for p in tmp_path.glob("ckpt-*"))
        assert written == [f"ckpt-rank0-{e}.npz" for e in range(1, epochs + 1)]


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
    example = ROOT / "examples" / "distributed_training.py"
    if not example.exists():
        pytest.skip("examples/ is not beside tests/ here")
    result = run_mpi(2, example, "--quick", "--out", str(tmp_path / "model.npz"))
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out = result.stdout
    assert "ranks: 2" in out and out.count("replicas identical on every rank") == 1  # rank 0 alone prints
    assert cgru.load_model(tmp_path / "model.npz").count_params() > 0
