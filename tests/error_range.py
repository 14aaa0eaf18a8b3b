"""A metric whose states combine by maximum and minimum, which a sum cannot combine: what the
data-parallel tests (threads, MPI ranks) check that strategies gather beside summed states."""

import numpy as np

from cgru import metrics


class ErrorRange(metrics.Metric):
    """The largest minus the smallest absolute error of any weighted value: state arrays
    aggregated by "max" and "min"."""

    direction = "down"

    def __init__(self, name="error_range", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.peak = self.add_variable((), initializer=-np.inf, aggregation="max", name="peak")
        self.low = self.add_variable((), initializer=np.inf, aggregation="min", name="low")

    def update_state(self, y_true, y_pred, sample_weight=None):
        error = np.abs(np.asarray(y_pred, self.dtype) - np.asarray(y_true, self.dtype)).max(axis=-1)
        counted = error if sample_weight is None else error[np.asarray(sample_weight) > 0]
        if counted.size:
            self.peak.assign(max(float(self.peak), float(counted.max())))
            self.low.assign(min(float(self.low), float(counted.min())))

    def result(self):
        return float(self.peak) - float(self.low)
