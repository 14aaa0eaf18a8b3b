"""Learning-rate schedules: Keras 3's, with its names, arguments, defaults and formulas.

Pass one as any optimizer's ``learning_rate``::

    from cgru.optimizers import SGD
    from cgru.optimizers.schedules import ExponentialDecay

    SGD(learning_rate=ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.9))

The optimizer calls the schedule with its step count before each step (the number of steps
already taken: the first step runs at ``schedule(0)``, as in Keras). A schedule called on a
number returns a float; on an array of steps, the array of learning rates (handy for plotting).
Values are computed in float64 (Keras computes in the dtype of ``initial_learning_rate``,
float32 for a Python float, so the two agree to float32 precision).

- :class:`ExponentialDecay`: ``initial_learning_rate * decay_rate ** (step / decay_steps)``
  (the exponent floored with ``staircase``);
- :class:`PiecewiseConstantDecay`: ``values[0]`` while ``step <= boundaries[0]``, ``values[i]``
  while ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after;
- :class:`PolynomialDecay`: from ``initial_learning_rate`` to ``end_learning_rate`` over
  ``decay_steps`` as ``(1 - step / decay_steps) ** power``, then constant (or, with ``cycle``,
  again over the next multiple of ``decay_steps``);
- :class:`InverseTimeDecay`: ``initial_learning_rate / (1 + decay_rate * step / decay_steps)``
  (the ratio floored with ``staircase``);
- :class:`CosineDecay`: an optional linear warmup from ``initial_learning_rate`` to
  ``warmup_target`` over ``warmup_steps``, then a cosine from there to ``alpha`` times it over
  ``decay_steps``, then constant.

Saving: a model's file records its optimizer's schedule as ``{"class_name", "config"}``.
Subclass :class:`LearningRateSchedule` for your own (``__call__(step)`` and ``get_config()``)
and register it with :func:`register_schedule` so that ``load_model`` can rebuild it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..registry import Registry


class LearningRateSchedule:
    """Base class of learning-rate schedules: a callable from the optimizer's step count to the
    learning rate.

    Subclasses implement ``__call__(step)`` and, to be saved with a model, ``get_config()``
    (JSON-serialisable constructor arguments; :meth:`from_config` calls ``cls(**config)``),
    and are registered with :func:`register_schedule`::

        @register_schedule(name="mypkg.InverseSqrt")
        class InverseSqrt(LearningRateSchedule):
            def __init__(self, scale):
                self.scale = scale

            def __call__(self, step):
                return self.scale / (step + 1) ** 0.5

            def get_config(self):
                return {"scale": self.scale}
    """

    def __call__(self, step: Any) -> Any:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> dict:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override `get_config()` in "
            "order to be serializable."
        )

    @classmethod
    def from_config(cls, config: dict) -> LearningRateSchedule:
        """A schedule from :meth:`get_config`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            return f"<{type(self).__name__}>"
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in config.items())})"


# ------------------------------------------------------------------------------ checks
def _number(value: Any, name: str) -> int | float:
    """A real number (not a bool), as the Python int or float it is."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return value.item() if isinstance(value, np.generic) else value


def _decay_steps(value: Any, name: str = "decay_steps") -> int | float:
    steps = _number(value, name)
    if not steps > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={steps}")
    return steps


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _name(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"name must be a string, got {value!r}")
    return value


def _steps(step: Any) -> np.ndarray:
    """The step count(s) as float64; TypeError for anything but real numbers."""
    try:
        steps = np.asarray(step)
    except (TypeError, ValueError):
        steps = None
    if steps is None or steps.dtype.kind not in "iuf":
        raise TypeError(
            f"a learning rate schedule takes the step count (a number or an array of numbers), got {step!r}"
        )
    return steps.astype(np.float64, copy=False)


def _result(values: np.ndarray) -> Any:
    """A float for one step, the array for an array of steps."""
    return float(values) if values.ndim == 0 else values


# --------------------------------------------------------------------------- schedules
class _TimeDecay(LearningRateSchedule):
    """The arguments, config and progress shared by :class:`ExponentialDecay` and
    :class:`InverseTimeDecay`: both decay with ``step / decay_steps`` (floored with
    ``staircase``) at ``decay_rate``."""

    def __init__(
        self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool, name: str
    ) -> None:
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _decay_steps(decay_steps)
        self.decay_rate = _number(decay_rate, "decay_rate")
        self.staircase = _flag(staircase, "staircase")
        self.name = _name(name)

    def _progress(self, step: Any) -> np.ndarray:
        """``step / decay_steps``, floored with ``staircase``, as float64."""
        p = _steps(step) / self.decay_steps
        return np.floor(p) if self.staircase else p

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class ExponentialDecay(_TimeDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase`` the
    exponent is ``floor(step / decay_steps)``. ``decay_steps`` must be > 0."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "ExponentialDecay",
    ) -> None:
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step: Any) -> Any:
        return _result(self.initial_learning_rate * np.power(float(self.decay_rate), self._progress(step)))


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` for ``step <= boundaries[0]``, ``values[i]`` for
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` for ``step > boundaries[-1]``.

    ``values`` has one more element than ``boundaries`` (ValueError otherwise, as Keras), and
    the boundaries must not decrease (Keras documents them as increasing and adds overlapping
    intervals' values when they are not; cgru raises ValueError).
    """

    def __init__(self, boundaries: Any, values: Any, name: str = "PiecewiseConstant") -> None:
        boundaries = self._numbers(boundaries, "boundaries")
        values = self._numbers(values, "values")
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of "
                f"length {len(values)}."
            )
        if not boundaries:
            raise ValueError("boundaries must hold at least one step (and values two learning rates)")
        for before, after in zip(boundaries, boundaries[1:]):
            if after < before:
                raise ValueError(f"boundaries must not decrease, got {boundaries}")
        self.boundaries = boundaries
        self.values = values
        self.name = _name(name)

    @staticmethod
    def _numbers(items: Any, name: str) -> list:
        if isinstance(items, (str, bytes, dict)) or not hasattr(items, "__iter__"):
            raise TypeError(f"{name} must be a list of numbers, got {items!r}")
        return [_number(v, f"{name}[{i}]") for i, v in enumerate(items)]

    def __call__(self, step: Any) -> Any:
        steps = _steps(step)
        bounds = self.boundaries
        out = np.where(steps <= bounds[0], float(self.values[0]), 0.0)
        out = out + np.where(steps > bounds[-1], float(self.values[-1]), 0.0)
        for low, high, value in zip(bounds[:-1], bounds[1:], self.values[1:-1]):
            out = out + np.where((steps > low) & (steps <= high), float(value), 0.0)
        return _result(out)

    def get_config(self) -> dict:
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial_learning_rate - end_learning_rate) * (1 - step / decay_steps) ** power +
    end_learning_rate`` with ``step`` capped at ``decay_steps``; with ``cycle``, ``decay_steps``
    is instead its first multiple not below ``step`` (``decay_steps`` itself at step 0)."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str = "PolynomialDecay",
    ) -> None:
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _decay_steps(decay_steps)
        self.end_learning_rate = _number(end_learning_rate, "end_learning_rate")
        self.power = _number(power, "power")
        self.cycle = _flag(cycle, "cycle")
        self.name = _name(name)

    def __call__(self, step: Any) -> Any:
        steps = _steps(step)
        decay_steps = float(self.decay_steps)
        if self.cycle:
            multiplier = np.where(steps == 0, 1.0, np.ceil(steps / decay_steps))
            decay_steps = decay_steps * multiplier
        else:
            steps = np.minimum(steps, decay_steps)
        p = steps / decay_steps
        span = self.initial_learning_rate - self.end_learning_rate
        return _result(span * np.power(1.0 - p, float(self.power)) + self.end_learning_rate)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(_TimeDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with ``staircase``
    the ratio is ``floor(step / decay_steps)``."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
        name: str = "InverseTimeDecay",
    ) -> None:
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step: Any) -> Any:
        return _result(self.initial_learning_rate / (1.0 + self.decay_rate * self._progress(step)))


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (Keras 3's ``CosineDecay``).

    Without ``warmup_target``: ``initial_learning_rate * ((1 - alpha) * c + alpha)`` with
    ``c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))``. With it, the first
    ``warmup_steps`` steps go linearly from ``initial_learning_rate`` to ``warmup_target``
    (``initial + (target - initial) * step / warmup_steps``), then the same cosine decays from
    ``warmup_target`` over ``decay_steps`` (``step - warmup_steps``), after which the rate stays
    at ``alpha * warmup_target``. ``decay_steps`` must be > 0 and ``warmup_steps`` >= 0.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        name: str = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _decay_steps(decay_steps)
        self.alpha = _number(alpha, "alpha")
        self.name = _name(name)
        self.warmup_target = None if warmup_target is None else _number(warmup_target, "warmup_target")
        self.warmup_steps = _number(warmup_steps, "warmup_steps")
        if not self.warmup_steps >= 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")

    def _decay(self, steps: np.ndarray, decay_from: float) -> np.ndarray:
        cosine = 0.5 * (1.0 + np.cos(math.pi * (steps / self.decay_steps)))
        return decay_from * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: Any) -> Any:
        steps = _steps(step)
        if self.warmup_target is None:
            return _result(self._decay(np.minimum(steps, self.decay_steps), self.initial_learning_rate))
        warmup = float(self.warmup_steps)
        steps = np.minimum(steps, self.decay_steps + warmup)
        in_warmup = steps < warmup
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 warmup steps: never in warmup
            rising = (self.warmup_target - self.initial_learning_rate) * (steps / warmup)
        rising = rising + self.initial_learning_rate
        decaying = self._decay(steps - warmup, self.warmup_target)
        return _result(np.where(in_warmup, rising, decaying))

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


# ------------------------------------------------------------------------------ registry
SCHEDULES = Registry(
    "schedule",
    LearningRateSchedule,
    "cgru.optimizers.schedules.register_schedule",
    "cgru.optimizers.schedules.LearningRateSchedule",
)
for _cls in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecay):
    SCHEDULES.register_builtin(_cls)


def register_schedule(cls: type | None = None, *, name: str | None = None, override: bool = False):
    """Register a :class:`LearningRateSchedule` subclass so that models whose optimizer uses it
    can be saved and loaded: ``@register_schedule`` or ``@register_schedule(name="pkg.Name")``
    (the rules of :func:`cgru.register_layer`: the class name by default, built-in names kept)."""
    return SCHEDULES.register(cls, name=name, override=override)


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{"class_name", "config"}`` for a schedule of a registered class; ValueError for an
    unregistered class, TypeError for a config that cannot be saved."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"expected a LearningRateSchedule, got {schedule!r}")
    try:
        return SCHEDULES.serialize(schedule, f"learning rate schedule {type(schedule).__name__}")
    except NotImplementedError as exc:
        raise TypeError(str(exc)) from None


def deserialize(config: Any) -> LearningRateSchedule:
    """A schedule from :func:`serialize`'s output (Keras's serialized form of a built-in
    schedule, with its extra ``module`` and ``registered_name`` keys, reads the same)."""
    return SCHEDULES.deserialize(config)


__all__ = [
    "CosineDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "deserialize",
    "register_schedule",
    "serialize",
]
