"""Forecast yearly sunspot numbers with a GRU, compared with a naive forecast.

    python examples/forecast_timeseries.py

The series (examples/data/sunspots.csv, yearly mean sunspot numbers 1700-2008; see
examples/data/README.md) is cut into windows of 24 years, each followed by the year to predict.
Windows whose target year is before 1950 train the model (the last 10% of them validate it);
the targets 1950-2008 are the test set. The baseline repeats the last observed year.

The trained model is then quantized for inference (``model.quantize``) to bfloat16 and to int8
weights, and each form's test error is printed beside the float32 model's: the accuracy the
reduced-precision forms keep on a trained model (docs/reduced-precision.md).
"""

import argparse
import copy
from pathlib import Path

import numpy as np

import cgru
from cgru import GRU, Dense, Sequential
from cgru.callbacks import EarlyStopping

DATA = Path(__file__).parent / "data" / "sunspots.csv"
WINDOW, TEST_FROM = 24, 1950


def load_series():
    table = np.loadtxt(DATA, delimiter=",", skiprows=1)
    return table[:, 0].astype(int), table[:, 1]


def windows(series, years):
    """Inputs (n, WINDOW, 1), targets (n, 1) and the year of each target."""
    x = np.stack([series[i:i + WINDOW] for i in range(len(series) - WINDOW)])
    return x[:, :, None], series[WINDOW:, None], years[WINDOW:]


def main():
    parser = argparse.ArgumentParser(description="Sunspot forecasting with a GRU.")
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for smoke tests)")
    args = parser.parse_args()

    years, spots = load_series()
    print(f"{len(spots)} yearly values, {years[0]}-{years[-1]}, "
          f"mean {spots.mean():.1f}, max {spots.max():.1f}")
    scale = spots[years < TEST_FROM].max()  # scale with training data only
    x, y, target_years = windows((spots / scale).astype(np.float32), years)
    train, test = target_years < TEST_FROM, target_years >= TEST_FROM

    cgru.set_random_seed(2)
    model = Sequential([GRU(32, input_shape=(WINDOW, 1)), Dense(1)])
    model.compile(optimizer=cgru.optimizers.Adam(learning_rate=0.005), loss="mse")
    stop = EarlyStopping(monitor="val_loss", patience=20, restore_best_weights=True)
    history = model.fit(x[train], y[train], batch_size=16, epochs=30 if args.quick else 150,
                        validation_split=0.1, callbacks=[stop], verbose=0)
    losses = history.history["loss"]
    print(f"trained {len(losses)} epochs: loss {losses[0]:.4f} -> {losses[-1]:.4f}")

    predicted = model.predict(x[test])[:, 0] * scale
    actual = y[test, 0] * scale
    naive = x[test, -1, 0] * scale

    def mae(forecast):
        return float(np.mean(np.abs(forecast - actual)))

    def mse(forecast):
        return float(np.mean((forecast - actual) ** 2))

    print(f"test years {target_years[test][0]}-{target_years[test][-1]}: mean absolute error "
          f"GRU {mae(predicted):.1f}, naive last value {mae(naive):.1f}")
    for year, a, p, n in list(zip(target_years[test], actual, predicted, naive))[-5:]:
        print(f"  {year}: actual {a:6.1f}  GRU {p:6.1f}  naive {n:6.1f}")

    print("the trained model quantized for inference (test set, sunspot numbers):")
    print(f"  float32   MSE {mse(predicted):8.2f}  MAE {mae(predicted):6.2f}")
    for mode in ("bfloat16", "int8"):
        quantized = copy.deepcopy(model)  # quantize() turns a model inference-only, in place
        quantized.quantize(mode)
        forecast = quantized.predict(x[test])[:, 0] * scale
        print(f"  {mode:<9} MSE {mse(forecast):8.2f}  MAE {mae(forecast):6.2f}  "
              f"max |forecast - float32's| {np.abs(forecast - predicted).max():.3f}")


if __name__ == "__main__":
    main()
