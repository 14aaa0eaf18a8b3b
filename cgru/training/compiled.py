"""What ``compile()`` chooses (optimizer, loss, metrics) and how it is checked and saved.

The choices are kept on the model, where Keras keeps them: ``model.optimizer``, ``model.loss``,
``model._metrics`` and ``model._weighted_metrics`` (the metrics as given: names or
:class:`~cgru.metrics.Metric` objects; ``"accuracy"`` becomes a concrete metric only once the
data's shapes are known). Each ``fit``/``evaluate`` call works on its own copies
(:func:`resolve_metrics`), named as the logs name them.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from ..validation import to_host
from .surface import Trainee

#: Keras compile() arguments that change nothing here: accepted and ignored.
IGNORED = ("run_eagerly", "jit_compile", "steps_per_execution", "auto_scale_loss")


def _metric_list(metrics: Any, what: str) -> list:
    if metrics is None:
        return []
    if isinstance(metrics, (str, dict, _metrics.Metric)) or callable(metrics):
        metrics = [metrics]
    elif not isinstance(metrics, (list, tuple)):
        raise TypeError(f"{what} must be a list of metrics, got {metrics!r}")
    return [_metrics.standardize(m) for m in metrics]


def compile_model(
    model: Trainee, optimizer: Any, loss: Any, metrics: Any, weighted_metrics: Any = None, **kwargs: Any
) -> None:
    """Check and set the optimizer, loss and metrics (names or objects) of ``model``.

    ``metrics`` are computed without sample weights, ``weighted_metrics`` with them (Keras 3).
    """
    unknown = sorted(k for k in kwargs if k not in IGNORED)
    if unknown:
        raise TypeError(f"compile() got unsupported argument(s): {unknown}")
    opt = _optimizers.get(optimizer)
    loss_obj = _losses.get(loss)
    plain = _metric_list(metrics, "metrics")
    weighted = _metric_list(weighted_metrics, "weighted_metrics")
    model.optimizer, model.loss, model._metrics, model._weighted_metrics = opt, loss_obj, plain, weighted
    model.compiled = True


def require_compiled(model: Trainee, what: str) -> None:
    if not model.compiled:
        raise ValueError(f"you must call compile() before {what}()")


def _compiled(model: Trainee) -> tuple[list, list]:
    return list(model._metrics), list(model._weighted_metrics)


def metrics_names(model: Trainee) -> list[str]:
    """The log keys: ``"loss"`` and each compiled metric's (weighted ones last)."""
    return ["loss", *_metrics.log_names(*_compiled(model))]


class BoundMetric(NamedTuple):
    """A compiled metric for one ``fit``/``evaluate`` call: its own ``metric`` object (named
    ``name``, its log key) and whether it sees the sample weights (``weighted``)."""

    name: str
    metric: _metrics.Metric
    weighted: bool


def resolve_metrics(model: Trainee, y_shape: tuple, out_shape: tuple) -> list[BoundMetric]:
    """Fresh objects for the compiled metrics; "accuracy" takes its kind from the targets' and
    the output's shapes (Keras 3's rule, see :mod:`cgru.metrics`), not from the loss."""
    plain, weighted = _compiled(model)
    bound = []
    flags = [False] * len(plain) + [True] * len(weighted)
    for name, identifier, is_weighted in zip(_metrics.log_names(plain, weighted), [*plain, *weighted], flags):
        metric = _metrics.get(identifier, y_shape, out_shape)
        metric.name = name
        bound.append(BoundMetric(name, metric, is_weighted))
    return bound


def compile_config(model: Trainee) -> dict | None:
    """The compile settings as saved with the model (None when not compiled)."""
    if not model.compiled:
        return None
    return {
        "optimizer": _optimizers.serialize(model.optimizer),
        "loss": _losses.serialize(model.loss),
        "metrics": _saved_metrics(model._metrics),
        "weighted_metrics": _saved_metrics(model._weighted_metrics),
    }


def _saved_metrics(metrics: list) -> list:
    """The metrics as saved; one whose class (or function) is not registered is left out with
    a warning: the weights matter more than a metric the file cannot name."""
    saved = []
    for m in metrics:
        try:
            saved.append(_metrics.serialize_identifier(m))
        except ValueError as exc:
            warnings.warn(f"the saved compile settings leave out a metric: {exc}", stacklevel=4)
    return saved

def optimizer_state(model: Trainee) -> dict | None:
    """The optimizer's state as saved with the model: ``{"iterations": int, "slots": [(weight
    index in ``model.weights``, slot name, NumPy array), ...]}``; None when the model is not
    compiled or its optimizer has not stepped yet (nothing to save beyond a fresh optimizer)."""
    if not model.compiled:
        return None
    trainable = model.trainable_weights
    state = model.optimizer.get_state(trainable)
    if state["iterations"] == 0 and not any(state["slots"]):
        return None
    index = {id(p): i for i, p in enumerate(model.weights)}
    slots = [
        (index[id(p)], name, to_host(array))
        for p, named in zip(trainable, state["slots"])
        for name, array in sorted(named.items())
    ]
    return {"iterations": state["iterations"], "slots": slots}


def restore_optimizer_state(model: Trainee, saved: dict) -> None:
    """Continue the compiled model's optimizer from ``saved`` (as a model file holds it:
    ``{"iterations": int, "slots": {weight index: {slot name: array}}}``). ValueError when a
    slot belongs to a weight that is not trainable or does not fit its weight."""
    weights = model.weights
    trainable = {id(p) for p in model.trainable_weights}
    for i in saved["slots"]:
        if id(weights[i]) not in trainable:
            raise ValueError(f"optimizer slots for weight {i} ({weights[i].name}), which is not trainable")
    slots = [saved["slots"].get(i, {}) for i, p in enumerate(weights) if id(p) in trainable]
    model.optimizer.set_state(model.trainable_weights, {"iterations": saved["iterations"], "slots": slots})


__all__ = [
    "IGNORED",
    "BoundMetric",
    "compile_config",
    "compile_model",
    "metrics_names",
    "optimizer_state",
    "require_compiled",
    "restore_optimizer_state",
    "resolve_metrics",
]
