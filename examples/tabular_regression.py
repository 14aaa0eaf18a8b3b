"""Regression on tabular data with a GRU: each row is a sequence of length 1.

    python examples/tabular_regression.py [--out loss.png]

The data (examples/data/diabetes.csv; see examples/data/README.md) are the 442 patients of the
diabetes study of Efron et al. (2004): ten baseline measurements and a measure of disease
progression one year later, the target. The features are standardised with training-set
statistics and each row is fed to the GRU as one time step, shape (rows, 1, 10). Early
stopping on a validation split picks the number of epochs. The loss curves are saved as a PNG
(needs matplotlib; without it the plot is skipped).
"""

import argparse
from pathlib import Path

import numpy as np

import cgru
from cgru import GRU, Dense, Sequential
from cgru.callbacks import EarlyStopping

DATA = Path(__file__).parent / "data" / "diabetes.csv"


def load_data():
    with open(DATA) as f:
        columns = f.readline().strip().split(",")
    table = np.loadtxt(DATA, delimiter=",", skiprows=1)
    return columns[:-1], table[:, :-1], table[:, -1:]


def r2(prediction, target):
    return 1 - np.sum((target - prediction) ** 2) / np.sum((target - target.mean()) ** 2)


def main():
    parser = argparse.ArgumentParser(description="Tabular regression with a GRU + Dense model.")
    parser.add_argument("--out", default="loss.png", help="where to save the loss curves (PNG)")
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for smoke tests)")
    args = parser.parse_args()

    names, features, target = load_data()
    print(f"{len(target)} rows, features {', '.join(names)}; target mean {target.mean():.1f}")
    order = np.random.default_rng(3).permutation(len(target))
    train, test = order[:350], order[350:]
    mean, std = features[train].mean(axis=0), features[train].std(axis=0)
    x = ((features - mean) / std).astype(np.float32)[:, None, :]  # (rows, time=1, features)
    t_mean, t_std = target[train].mean(), target[train].std()
    y = ((target - t_mean) / t_std).astype(np.float32)

    cgru.set_random_seed(3)
    model = Sequential([GRU(16, input_shape=(1, x.shape[-1])), Dense(1)])
    model.compile(optimizer=cgru.optimizers.Adam(learning_rate=0.003), loss="mse", metrics=["mae"])
    stop = EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    history = model.fit(x[train], y[train], batch_size=32, epochs=15 if args.quick else 100,
                        validation_split=0.15, callbacks=[stop], verbose=0)
    loss, val_loss = history.history["loss"], history.history["val_loss"]
    print(f"{len(loss)} epochs (early stopping kept the best of them, epoch {int(np.argmin(val_loss)) + 1})")
    print("training loss:  ", " ".join(f"{v:.3f}" for v in loss))
    print("validation loss:", " ".join(f"{v:.3f}" for v in val_loss))

    predicted = model.predict(x[test]) * t_std + t_mean
    # A reference: ordinary least squares on the same features.
    design = np.hstack([x[:, 0], np.ones((len(x), 1), dtype=np.float32)])
    coef = np.linalg.lstsq(design[train], target[train], rcond=None)[0]
    linear = design[test] @ coef
    print(f"test R^2: GRU {r2(predicted, target[test]):.3f}, "
          f"linear regression {r2(linear, target[test]):.3f}")
    print(f"test mean absolute error: GRU {np.mean(np.abs(predicted - target[test])):.1f}")

    try:
        import matplotlib

        matplotlib.use("Agg")  # write the file, open no window
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no loss plot")
        return
    history.plot(path=args.out, title="GRU on the diabetes data")
    print("loss curves saved to", args.out)


if __name__ == "__main__":
    main()
