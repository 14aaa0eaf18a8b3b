"""Optimizers with Keras 3's update formulas and defaults, written against ``xp`` (numpy or cupy).

By name (``compile(optimizer="adam")``: "sgd", "adam", "adamw", "rmsprop") or object
(``optimizers.Adam(learning_rate=1e-3)``). Every optimizer takes:

- ``learning_rate``: a float, a :class:`~cgru.optimizers.schedules.LearningRateSchedule`
  (:mod:`cgru.optimizers.schedules`, called with the step count) or a function of the step
  count (a function of no arguments, as Keras 3 allows, is called without one);
- at most one of ``clipnorm`` (clip each gradient to this L2 norm), ``global_clipnorm`` (clip
  all gradients together to this global norm) and ``clipvalue`` (clip each element to
  ``[-clipvalue, clipvalue]``): giving two raises ValueError, as Keras 3 does; 0 means no
  clipping (Keras's rule);
- ``weight_decay``: decoupled weight decay, ``w -= w * weight_decay * learning_rate`` before
  the update (AdamW's default is 0.004).

``optimizer.learning_rate`` reads and sets the learning rate as Keras 3's does (see
:attr:`Optimizer.learning_rate`); ``optimizer.iterations`` counts the steps taken, and step
``iterations`` runs at the schedule's value for ``iterations`` (0 for the first).

A step writes into no array it read: it computes each weight's new array and its new per-weight
state (momenta, kept in the optimizer, keyed by parameter, in arrays of the state before the
previous step, reused), then publishes the new arrays, the new state and the step count at once
(:func:`cgru.layers.weights.publish`). A step interrupted before that changes nothing, and a
call running on another thread sees the weights before or after it. The learning rate a step
uses is the one for the step count it read when it began; the count moves on only with the
published step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import config as _config
from ..layers.weights import publish
from ..validation import accepts_positional, check_float, xp_of
from . import schedules
from .schedules import LearningRateSchedule


class StepState:
    """One weight's optimizer state across a step (moment arrays, each shaped like the weight).

    ``old(key)``: the array before the step (zeros at the first one), never to be written;
    ``new(key)``: the array to fill with its value after the step, taken from the state before
    the previous step where there is one (the optimizer's own arrays: nothing else reads them).
    """

    __slots__ = ("like", "before", "spare", "after")

    def __init__(self, like: Any, before: dict, spare: dict) -> None:
        self.like, self.before, self.spare, self.after = like, before, spare, {}

    def old(self, key: str) -> Any:
        array = self.before.get(key)
        return xp_of(self.like).zeros_like(self.like) if array is None else array

    def new(self, key: str) -> Any:
        array = self.spare.get(key)
        if array is None or array.shape != self.like.shape or array.dtype != self.like.dtype:
            array = xp_of(self.like).empty_like(self.like)
        self.after[key] = array
        return array


class Optimizer:
    """Base class: subclasses implement ``_update(value, grad, state, lr) -> new value``, which
    returns the weight's new array and fills its new state through ``state`` (a
    :class:`StepState`), writing into neither ``value`` nor ``state.old(...)``."""

    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
    ) -> None:
        self._learning_rate: Any = None
        self._takes_step = False  # whether a function learning rate takes the step count
        self.learning_rate = learning_rate
        self.weight_decay = None if weight_decay is None else check_float(weight_decay, "weight_decay")
        self.clipnorm = None if clipnorm is None else check_float(clipnorm, "clipnorm")
        self.clipvalue = None if clipvalue is None else check_float(clipvalue, "clipvalue")
        self.global_clipnorm = (
            None if global_clipnorm is None else check_float(global_clipnorm, "global_clipnorm")
        )
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
            )
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots: dict[int, dict] = {}
        self._spare: dict[int, dict] = {}  # each weight's state before the last step: reused arrays

    # ------------------------------------------------------------------- learning rate
    @property
    def learning_rate(self) -> Any:
        """The learning rate of the next step, as a NumPy scalar of :func:`cgru.floatx` (what
        Keras 3's float variable holds: ``float(opt.learning_rate)`` is its exact value, and
        ``opt.learning_rate == 0.001`` compares at that precision).

        With a schedule (or function) it is the schedule's value at :attr:`iterations`. Setting
        a schedule or a function replaces the learning rate; setting a number is allowed only
        when the learning rate is a number (TypeError otherwise, as Keras 3 does).
        """
        return self._floatx(self._learning_rate_at(self.iterations))

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        if isinstance(learning_rate, LearningRateSchedule):
            self._learning_rate, self._takes_step = learning_rate, True
        elif callable(learning_rate):
            takes_step = accepts_positional(learning_rate, 1)
            if not (takes_step or accepts_positional(learning_rate, 0)):
                raise TypeError(
                    "a learning_rate function must take the step count (or no argument), got "
                    f"{learning_rate!r}"
                )
            self._learning_rate, self._takes_step = learning_rate, takes_step
        elif callable(self._learning_rate):
            kind = (
                "`LearningRateSchedule` object"
                if isinstance(self._learning_rate, LearningRateSchedule)
                else "function"
            )
            raise TypeError(
                f"This optimizer was created with a {kind} as its `learning_rate` constructor "
                "argument, hence its learning rate is not settable. If you need the learning rate "
                "to be settable, you should instantiate the optimizer with a float `learning_rate` "
                f"argument. (Received: learning_rate={learning_rate!r})"
            )
        else:
            self._learning_rate = check_float(learning_rate, "learning_rate")

    def _learning_rate_at(self, step: int) -> float:
        """The learning rate for step ``step`` (0 for the first), in float64."""
        lr = self._learning_rate
        if not callable(lr):
            return lr
        value = lr(step) if self._takes_step else lr()
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"the learning rate schedule {lr!r} returned {value!r} for step {step}, not a number"
            ) from None

    @staticmethod
    def _floatx(value: float) -> Any:
        return np.dtype(_config.floatx()).type(value)

    def current_learning_rate(self) -> Any:
        """The learning rate of the next step (same as :attr:`learning_rate`)."""
        return self.learning_rate

    # ------------------------------------------------------------------------------- API
    def _clip(self, grads: list) -> list:
        """The gradients clipped by the one clipping argument that is set (and > 0)."""
        if self.clipnorm:
            out = []
            for g in grads:
                norm = float(xp_of(g).sqrt((g * g).sum()))
                out.append(g * (self.clipnorm / norm) if norm > self.clipnorm else g)
            return out
        if self.global_clipnorm:
            total = math.sqrt(sum(float((g * g).sum()) for g in grads))
            if total > self.global_clipnorm:
                return [g * (self.global_clipnorm / total) for g in grads]
            return grads
        if self.clipvalue:
            return [xp_of(g).clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def apply_gradients(self, grads_and_vars: Any) -> None:
        """Update each parameter from its gradient: an iterable of ``(grad, Parameter)``."""
        self._step(grads_and_vars)

    def _step(self, grads_and_vars: Any, expected: Any = None) -> bool:
        """:meth:`apply_gradients`, published as one change; ``expected`` as for
        :func:`~cgru.layers.weights.publish` (False: the step was dropped)."""
        pairs = [(g, p) for g, p in grads_and_vars if g is not None]
        for g, p in pairs:
            if tuple(g.shape) != tuple(p.value.shape):
                raise ValueError(f"gradient for {p.name} has shape {tuple(g.shape)}, expected {p.shape}")
        if not pairs:
            return True
        lr = self._learning_rate_at(self.iterations)
        if not math.isfinite(lr):
            raise ValueError(
                f"the learning rate for step {self.iterations} is {lr} ({self._learning_rate!r}): "
                "it must be a finite number"
            )
        grads = self._clip([g for g, _ in pairs])
        updates, states = [], {}
        for g, (_, p) in zip(grads, pairs):
            value = p.value
            if self.weight_decay:
                value = value - value * (self.weight_decay * lr)
            state = StepState(value, self._state_of(p, self._slots), self._state_of(p, self._spare))
            updates.append((p, self._update(value, g.astype(value.dtype, copy=False), state, lr)))
            states[id(p)] = {"_param": p, **state.after}

        def commit() -> None:
            self._spare.update({key: self._slots.get(key) for key in states})
            self._slots.update(states)
            self.iterations += 1

        return publish(updates, commit, expected)

    @staticmethod
    def _state_of(p: Any, table: dict) -> dict:
        state = table.get(id(p))
        return state if state is not None and state.get("_param") is p else {}

    def apply(self, params: list) -> None:
        """Update ``params`` (Parameters) from their ``grad`` (those without one are skipped)."""
        self.apply_gradients((p.grad, p) for p in params)

    def _update(self, value: Any, g: Any, state: StepState, lr: float) -> Any:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the iteration count and every per-weight state."""
        self.iterations = 0
        self._slots.clear()
        self._spare.clear()

    # ----------------------------------------------------------------------------- state
    def get_state(self, params: list) -> dict:
        """What the next step depends on besides the weights, for ``params`` (Parameters, e.g. a
        model's trainable weights, in order): ``{"iterations": int, "slots": [{name: array}
        for each parameter]}``, each array shaped like its parameter (as held: on the
        backend's device). A parameter not stepped yet has no slots (``{}``)."""
        slots = []
        for p in params:
            state = self._state_of(p, self._slots)
            slots.append({name: array for name, array in state.items() if name != "_param"})
        return {"iterations": self.iterations, "slots": slots}

    def set_state(self, params: list, state: dict) -> None:
        """Continue from ``state`` (as :meth:`get_state` gives it) for ``params``: each array is
        copied to its parameter's device and dtype. ValueError, changing nothing, when the
        state does not fit the parameters."""
        iterations = state.get("iterations") if isinstance(state, dict) else None
        slots = state.get("slots") if isinstance(state, dict) else None
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"optimizer state: iterations must be an int >= 0, got {iterations!r}")
        if not isinstance(slots, (list, tuple)) or len(slots) != len(params):
            count = len(slots) if isinstance(slots, (list, tuple)) else slots
            raise ValueError(f"optimizer state: expected slots for {len(params)} weights, got {count!r}")
        table = {}
        for p, named in zip(params, slots):
            if not isinstance(named, dict):
                raise ValueError(f"optimizer state for {p.name} must be a dict of arrays, got {named!r}")
            value = p.value
            xp = xp_of(value)
            arrays = {}
            for name, array in named.items():
                if not isinstance(name, str) or name == "_param":
                    raise ValueError(f"optimizer state for {p.name} has a bad slot name {name!r}")
                if tuple(getattr(array, "shape", ())) != tuple(value.shape):
                    raise ValueError(
                        f"optimizer slot {name!r} of {p.name} must have shape {tuple(value.shape)}, "
                        f"got {getattr(array, 'shape', type(array).__name__)}"
                    )
                arrays[name] = xp.array(array, dtype=value.dtype)
            if arrays:
                table[id(p)] = {"_param": p, **arrays}
        self._slots = table
        self._spare = {}
        self.iterations = iterations

    # ---------------------------------------------------------------------------- config
    def get_config(self) -> dict:
        """The constructor arguments; a schedule's learning rate as
        :func:`~cgru.optimizers.schedules.serialize` gives it. TypeError for a plain function."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            raise TypeError(
                f"the learning rate of {type(self).__name__} is the function {lr!r}, which cannot be "
                "saved: write it as a subclass of cgru.optimizers.schedules.LearningRateSchedule "
                "registered with @cgru.optimizers.schedules.register_schedule"
            )
        config = {
            "name": self.name,
            "learning_rate": lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }
        return config

    @classmethod
    def from_config(cls, config: dict) -> Optimizer:
        config = dict(config)
        if config.get("learning_rate") is None:
            config.pop("learning_rate", None)
        elif isinstance(config["learning_rate"], dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r})"


class SGD(Optimizer):
    """Gradient descent with optional momentum (Keras: ``m = momentum*m - lr*g; w += m``;
    Nesterov: ``w += momentum*m - lr*g``). Default learning rate 0.01."""

    def __init__(
        self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any
    ):
        super().__init__(learning_rate, **kwargs)
        self.momentum = check_float(momentum, "momentum", 0.0, 1.0)
        self.nesterov = bool(nesterov)

    def _update(self, value, g, state, lr):
        if self.momentum == 0:
            return value - lr * g
        m = xp_of(value).multiply(state.old("momentum"), self.momentum, out=state.new("momentum"))
        m -= lr * g
        if self.nesterov:
            return value + (self.momentum * m - lr * g)
        return value + m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Keras: bias correction folded into the step size; epsilon outside the square root)."""

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs: Any,
    ):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = check_float(beta_1, "beta_1", 0.0, 1.0, hi_open=True)
        self.beta_2 = check_float(beta_2, "beta_2", 0.0, 1.0, hi_open=True)
        self.epsilon = check_float(epsilon, "epsilon")
        self.amsgrad = bool(amsgrad)

    def _update(self, value, g, state, lr):
        xp = xp_of(value)
        step = self.iterations + 1
        alpha = lr * math.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)
        m0, v0 = state.old("m"), state.old("v")
        m = xp.subtract(g, m0, out=state.new("m"))  # m0 + (g - m0) * (1 - beta_1)
        m *= 1 - self.beta_1
        m += m0
        v = xp.multiply(g, g, out=state.new("v"))  # v0 + (g * g - v0) * (1 - beta_2)
        v -= v0
        v *= 1 - self.beta_2
        v += v0
        if self.amsgrad:
            v = xp.maximum(state.old("vhat"), v, out=state.new("vhat"))
        return value - (m * alpha) / (xp.sqrt(v) + self.epsilon)

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (default ``weight_decay=0.004``, as Keras)."""

    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs: Any,
    ):
        super().__init__(
            learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            weight_decay=weight_decay,
            **kwargs,
        )


class RMSprop(Optimizer):
    """RMSprop (Keras: ``v = rho*v + (1-rho)*g**2; w -= lr*g/sqrt(v + epsilon)``, optional
    momentum and centering)."""

    def __init__(
        self,
        learning_rate: Any = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        **kwargs: Any,
    ):
        super().__init__(learning_rate, **kwargs)
        self.rho = check_float(rho, "rho", 0.0, 1.0)
        self.momentum = check_float(momentum, "momentum", 0.0, 1.0)
        self.epsilon = check_float(epsilon, "epsilon")
        self.centered = bool(centered)

    def _update(self, value, g, state, lr):
        xp = xp_of(value)
        v = xp.multiply(state.old("v"), self.rho, out=state.new("v"))
        v += (1 - self.rho) * g * g
        if self.centered:
            avg = xp.multiply(state.old("avg"), self.rho, out=state.new("avg"))
            avg += (1 - self.rho) * g
            denominator = v - avg * avg + self.epsilon
        else:
            denominator = v + self.epsilon
        increment = lr * g / xp.sqrt(denominator)
        if self.momentum > 0:
            mom = xp.multiply(state.old("mom"), self.momentum, out=state.new("mom"))
            mom += increment
            return value - mom
        return value - increment

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }


_CLASSES = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop)}
_ALIASES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "adamw", "rmsprop"), a config dict or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}; known: {sorted(_ALIASES)}")
        return cls()
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = _CLASSES.get(identifier["class_name"]) or _ALIASES.get(str(identifier["class_name"]).lower())
        if cls is None:
            raise ValueError(
                f"unknown optimizer class {identifier['class_name']!r}; known: {sorted(_CLASSES)}"
            )
        return cls.from_config(dict(identifier.get("config") or {}))
    raise TypeError(f"optimizer must be a name or a cgru.optimizers.Optimizer, got {identifier!r}")


def serialize(optimizer: Optimizer) -> dict:
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}
