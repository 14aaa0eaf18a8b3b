"""What ``compile()`` chooses (optimizer, loss, metrics) and how it is checked and saved.

The choices are kept on the model, where Keras keeps them: ``model.optimizer``, ``model.loss``
and ``model._metrics`` (the metrics as given: names or :class:`~cgru.metrics.Metric` objects;
``"accuracy"`` becomes a concrete metric only once the data's shapes are known).
"""

from __future__ import annotations

from typing import Any

from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from ..validation import to_host
from .surface import Trainee

#: Keras compile() arguments that change nothing here: accepted and ignored.
IGNORED = ("run_eagerly", "jit_compile", "steps_per_execution", "auto_scale_loss")


def compile_model(model: Trainee, optimizer: Any, loss: Any, metrics: Any, **kwargs: Any) -> None:
    """Check and set the optimizer, loss and metrics (names or objects) of ``model``."""
    unknown = sorted(k for k in kwargs if k not in IGNORED)
    if unknown:
        raise TypeError(f"compile() got unsupported argument(s): {unknown}")
    opt = _optimizers.get(optimizer)
    loss_obj = _losses.get(loss)
    if metrics is None:
        metrics = []
    elif isinstance(metrics, (str, _metrics.Metric)):
        metrics = [metrics]
    else:
        metrics = list(metrics)
    for m in metrics:
        _metrics.check(m)
    model.optimizer, model.loss, model._metrics = opt, loss_obj, metrics
    model.compiled = True


def require_compiled(model: Trainee, what: str) -> None:
    if not model.compiled:
        raise ValueError(f"you must call compile() before {what}()")


def metrics_names(model: Trainee) -> list[str]:
    """The log keys: ``"loss"`` and each compiled metric's name."""
    return ["loss", *[_metrics.name_of(m) for m in model._metrics]]


def resolve_metrics(model: Trainee, y_shape: tuple, out_shape: tuple) -> list:
    """The compiled metrics as objects; "accuracy" takes its kind from the targets' and the
    output's shapes (Keras 3's rule, see :mod:`cgru.metrics`), not from the loss."""
    return [_metrics.get(m, y_shape, out_shape) for m in model._metrics]


def compile_config(model: Trainee) -> dict | None:
    """The compile settings as saved with the model (None when not compiled)."""
    if not model.compiled:
        return None
    return {
        "optimizer": _optimizers.serialize(model.optimizer),
        "loss": _losses.serialize(model.loss),
        "metrics": [m for m in model._metrics if isinstance(m, str)],
    }


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
    "compile_config",
    "compile_model",
    "metrics_names",
    "optimizer_state",
    "require_compiled",
    "restore_optimizer_state",
    "resolve_metrics",
]
