"""Batch inference over Dask: score a large array of sequences chunk by chunk on a cluster.

    python examples/dask_batch_inference.py [--quick] [--scheduler tcp://host:8786]

(needs dask: pip install ".[dask]"). Without --scheduler it starts a LocalCluster of two worker
processes on this machine; with one it uses that cluster (dask-jobqueue on Slurm, Kubernetes...).

A small Bidirectional GRU is trained in this process on noisy sine waves of ragged lengths to
tell their frequency. Then a lazy dask array of many more waves (and a dask array of their
lengths, chunked alike) is scored with `model.predict(x, lengths=...)`: a lazy dask array,
computed chunk by chunk on the workers. The model travels to each worker once, as the bytes of
its save format, and each worker rebuilds it once. The script checks the result against
`predict` on the same waves in this process and compares the predicted frequencies with the
true ones.
"""

import argparse
import sys

import numpy as np

import cgru
from cgru import GRU, Bidirectional, Dense, Sequential

STEPS = 40


def waves(freq, phase, lengths, noise):
    """Right-padded noisy sine waves (n, STEPS, 1) of the given frequencies, phases and lengths."""
    wave = np.sin(freq[:, None] * np.arange(STEPS) + phase[:, None]) + noise
    wave[np.arange(STEPS) >= lengths[:, None]] = 0.0
    return wave[:, :, None].astype(np.float32)


def make_waves(n, rng):
    freq = rng.uniform(0.2, 0.6, n)
    lengths = rng.integers(10, STEPS + 1, n)
    x = waves(freq, rng.uniform(0, 2 * np.pi, n), lengths, 0.05 * rng.normal(size=(n, STEPS)))
    return x, lengths, ((freq - 0.4) * 5).astype(np.float32)[:, None]


def lazy_waves(da, n, chunk, seed):
    """A dask array of n waves, each chunk made on the worker that computes it (only their
    frequencies, phases and lengths are held here), their lengths chunked alike, and their
    scaled frequencies."""
    rng = np.random.default_rng(seed)
    freq, phase = rng.uniform(0.2, 0.6, n), rng.uniform(0, 2 * np.pi, n)
    lengths = rng.integers(10, STEPS + 1, n)
    f, p, n_ = (da.from_array(a, chunks=chunk) for a in (freq, phase, lengths))
    x = da.map_blocks(lambda f, p, n_: waves(f, p, n_, 0.0), f, p, n_, new_axis=[1, 2],
                      chunks=(f.chunks[0], (STEPS,), (1,)), dtype=np.float32)
    return x, n_, (freq - 0.4) * 5


def main():
    parser = argparse.ArgumentParser(description="Predict a dask array of sequences on a cluster.")
    parser.add_argument("--quick", action="store_true", help="less data (smoke tests)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    args = parser.parse_args()
    try:
        import dask.array as da
        from distributed import Client, LocalCluster
    except ImportError as exc:
        print(f"{exc}\ninstall the extra from the repository root: pip install \".[dask]\"")
        return 0

    cgru.set_random_seed(0)
    x, lengths, y = make_waves(1600 if args.quick else 4000, np.random.default_rng(0))
    model = Sequential([Bidirectional(GRU(16), input_shape=(STEPS, 1)), Dense(1)])
    model.compile(optimizer=cgru.optimizers.Adam(0.003), loss="mse")
    model.fit(x, y, lengths=lengths, batch_size=32, epochs=5 if args.quick else 15, verbose=0)
    print(f"trained: training MSE {model.evaluate(x, y, lengths=lengths):.4f}")

    n, chunk = (20_000, 2_500) if args.quick else (200_000, 10_000)
    xd, ld, truth = lazy_waves(da, n, chunk, seed=1)
    predicted = model.predict(xd, lengths=ld, batch_size=512)  # lazy: nothing has run yet
    print(f"{n} waves in {xd.numblocks[0]} chunks -> {predicted!r}")

    cluster = None if args.scheduler else LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                       dashboard_address=None)
    with Client(args.scheduler or cluster) as client:
        frequencies = predicted.compute()
        loads = client.run(cgru.distributed.model_cache.cache_info)
    if cluster is not None:
        cluster.close()
    print(f"model rebuilt per worker: {sorted(info['loads'] for info in loads.values())}")
    mse = float(np.mean((frequencies[:, 0] - truth) ** 2))
    print(f"MSE of the predicted frequencies {mse:.4f} (predicting the mean: {np.var(truth):.4f})")
    head = xd[:1000].compute(), ld[:1000].compute()
    same = np.abs(model.predict(head[0], lengths=head[1]) - frequencies[:1000]).max()
    print(f"max difference from predict in this process: {same:.2e} (equals predict: {same <= 1e-6})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
