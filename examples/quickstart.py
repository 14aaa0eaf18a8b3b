"""Quick start: train a small GRU with cgru's compiled engine, then predict.

    pip install . && python examples/quickstart.py

The task: read 30 steps of a noisy sine wave (random frequency and phase) and predict the next
value. Takes a few seconds on two cores; --quick trains for fewer epochs.
"""

import argparse
import time

import numpy as np

import cgru
from cgru import GRU, Dense, Sequential

STEPS = 30


def make_waves(n, rng):
    """n noisy sine waves: inputs (n, STEPS, 1) and the value that follows each (n, 1)."""
    freq = rng.uniform(0.1, 0.3, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    wave = np.sin(freq * np.arange(STEPS + 1) + phase) + 0.05 * rng.normal(size=(n, STEPS + 1))
    wave = wave.astype(np.float32)
    return wave[:, :STEPS, None], wave[:, STEPS:]


def main():
    parser = argparse.ArgumentParser(description="Train a small GRU on a synthetic task.")
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for smoke tests)")
    args = parser.parse_args()

    print("cgru", cgru.__version__, cgru.backend_info())
    cgru.set_random_seed(0)  # reproducible weights and shuffling
    rng = np.random.default_rng(0)
    x_train, y_train = make_waves(2000, rng)
    x_test, y_test = make_waves(200, rng)

    model = Sequential([GRU(32, input_shape=(STEPS, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.summary()

    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=32, epochs=3 if args.quick else 8,
                        validation_split=0.1, verbose=2)
    print(f"trained in {time.perf_counter() - start:.1f} s; loss by epoch:",
          " ".join(f"{v:.4f}" for v in history.history["loss"]))

    test_mse = model.evaluate(x_test, y_test)
    naive_mse = float(np.mean((x_test[:, -1] - y_test) ** 2))
    print(f"test MSE {test_mse:.4f} (repeating the last value: {naive_mse:.4f})")
    for predicted, true in zip(model.predict(x_test[:5])[:, 0], y_test[:5, 0]):
        print(f"predicted {predicted:+.3f}   true {true:+.3f}")


if __name__ == "__main__":
    main()
