"""cgru.training.logs: the logs of an epoch accumulated batch by batch."""

import numpy as np

from cgru.metrics import Mean, MetricState
from cgru.training.compiled import BoundMetric
from cgru.training.logs import BatchResult, LogsAccumulator


def _mean_state(total, count):
    """The state of a Mean metric (total, count) that a batch adds."""
    return MetricState((np.array(total), np.array(count)), ("sum", "sum"))


def test_logs_weight_each_batch_loss_by_its_size():
    never = MetricState((), ())  # a metric that saw no value
    logs = LogsAccumulator([BoundMetric("mae", Mean(), False), BoundMetric("never", Mean(), False)])
    logs.add(BatchResult(2.0, 3, [_mean_state(6.0, 3.0), never]))
    logs.add(BatchResult(4.0, 1, [_mean_state(1.0, 2.0), never]))
    assert logs.result() == {"loss": (2.0 * 3 + 4.0) / 4, "mae": 7.0 / 5.0, "never": 0.0}
    assert LogsAccumulator([]).result() == {"loss": 0.0}
