"""Data-parallel training over MPI: every rank trains a replica on its own shard of the data.

    mpiexec -n 2 python -m mpi4py examples/distributed_training.py [--quick] [--out model.npz]

(needs mpi4py and an MPI: pip install ".[mpi]" mpich). It also runs as one process, as
`python examples/distributed_training.py`: one rank, the same code.

The task: read right-padded noisy sine waves of 10 to 40 steps (each with its own length) and
tell each one's frequency, with a Bidirectional GRU. Each rank makes (or would load)
only its own shard, every 'size'-th wave; `fit(..., strategy=MPIStrategy())` turns the per-rank
batch of 32 into a global batch of 32 x ranks: one fused all-reduce of the gradients per step,
weighted so that uneven shards and ragged lengths give exactly the gradient of the global batch.
Early stopping decides on the global validation loss, the same on every rank; only rank 0 prints
and writes the model file.
"""

import argparse
import sys

import numpy as np

import cgru
from cgru import GRU, Bidirectional, Dense, Sequential

STEPS = 40


def make_waves(n, rng):
    """n right-padded noisy sine waves: inputs (n, STEPS, 1), their lengths, and their
    frequencies scaled to [-1, 1] (n, 1)."""
    lengths = rng.integers(10, STEPS + 1, size=n)
    freq = rng.uniform(0.2, 0.6, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    wave = np.sin(freq * np.arange(STEPS) + phase) + 0.05 * rng.normal(size=(n, STEPS))
    wave[np.arange(STEPS) >= lengths[:, None]] = 0.0
    return wave[:, :, None].astype(np.float32), lengths, ((freq - 0.4) * 5).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description="Train one model on every MPI rank's shard.")
    parser.add_argument("--quick", action="store_true", help="less data, fewer epochs (smoke tests)")
    parser.add_argument("--out", help="where rank 0 saves the trained model (.npz)")
    args = parser.parse_args()
    try:
        from cgru.distributed import MPIStrategy

        strategy = MPIStrategy()
    except ImportError as exc:
        print(f"{exc}\ninstall the extra from the repository root: pip install \".[mpi]\" mpich")
        return 0
    say = print if strategy.is_chief else (lambda *a, **k: None)
    cgru.set_num_threads(1)  # one core per rank: start as many ranks as cores

    # Every rank draws the same data set and keeps its shard; a real job loads only its own.
    n = 1600 if args.quick else 4000
    x, lengths, y = make_waves(n, np.random.default_rng(0))
    mine = slice(strategy.rank, None, strategy.size)
    vx, vl, vy = make_waves(n // 5, np.random.default_rng(1))
    say(f"ranks: {strategy.size}; {len(x[mine])} training sequences on rank 0 of {n}; "
        f"global batch {32 * strategy.size}")

    cgru.set_random_seed(strategy.rank)  # different on every rank: rank 0's weights win
    model = Sequential([Bidirectional(GRU(16), input_shape=(STEPS, 1)), Dense(1)])
    model.compile(optimizer=cgru.optimizers.Adam(0.003), loss="mse", metrics=["mae"])
    stop = cgru.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(
        x[mine], y[mine], lengths=lengths[mine], batch_size=32, epochs=5 if args.quick else 20,
        validation_data=({"x": vx[mine], "lengths": vl[mine]}, vy[mine]), callbacks=[stop],
        seed=strategy.rank, verbose=2, strategy=strategy,
    )
    digest = strategy.check_replicas(model)  # raises unless every rank holds the same bits
    say(f"replicas identical on every rank (weights and optimizer state {digest[:12]}...)")

    mse, mae = model.evaluate(vx[mine], vy[mine], lengths=vl[mine], strategy=strategy)
    naive = float(np.mean((vy - y.mean()) ** 2))
    say(f"validation MSE {mse:.4f} after {len(history.epoch)} epochs "
        f"(predicting the mean frequency: {naive:.4f})")
    if args.out and strategy.is_chief:
        model.save(args.out)
        say(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
