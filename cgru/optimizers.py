"""Optimizers with Keras 3's update formulas and defaults, written against ``xp`` (numpy or cupy).

By name (``compile(optimizer="adam")``: "sgd", "adam", "adamw", "rmsprop") or object
(``optimizers.Adam(learning_rate=1e-3)``). Every optimizer takes:

- ``learning_rate``: a float, or a callable ``f(iterations) -> float`` (a schedule);
- ``clipnorm``: clip each gradient to this L2 norm; ``global_clipnorm``: clip all gradients
  together to this global norm (not with ``clipnorm``); ``clipvalue``: clip each element to
  ``[-clipvalue, clipvalue]``;
- ``weight_decay``: decoupled weight decay, ``w -= w * weight_decay * learning_rate`` before
  the update (AdamW's default is 0.004).

A step leaves every weight's array as it is: it updates a copy, which becomes the weight's new
array, and copies of the per-weight state (momenta, kept in the optimizer, keyed by parameter),
then publishes the new arrays, the new state and the step count at once
(:func:`cgru.layers.weights.publish`). A step interrupted before that changes nothing, and a
call running on another thread sees the weights before or after it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .layers.weights import publish


def _check_float(
    value: Any, name: str, lo: float = 0.0, hi: float = math.inf, hi_open: bool = False
) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not (lo <= f <= hi) or (hi_open and f == hi) or math.isnan(f):
        raise ValueError(f"{name} must be in [{lo}, {hi}{')' if hi_open else ']'}, got {value}")
    return f


def _xp_of(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return np
    import cupy

    return cupy


class Optimizer:
    """Base class: subclasses implement ``_update(value, grad, slots, lr)``, which updates
    ``value`` (a copy of the weight's array) and the arrays in ``slots`` (copies of the weight's
    state, empty at its first step: create them there) in place."""

    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
    ) -> None:
        if callable(learning_rate):
            self.learning_rate = learning_rate
        else:
            self.learning_rate = _check_float(learning_rate, "learning_rate")
        self.weight_decay = None if weight_decay is None else _check_float(weight_decay, "weight_decay")
        self.clipnorm = None if clipnorm is None else _check_float(clipnorm, "clipnorm")
        self.clipvalue = None if clipvalue is None else _check_float(clipvalue, "clipvalue")
        self.global_clipnorm = (
            None if global_clipnorm is None else _check_float(global_clipnorm, "global_clipnorm")
        )
        if self.clipnorm is not None and self.global_clipnorm is not None:
            raise ValueError("only one of clipnorm and global_clipnorm can be set")
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots: dict[int, dict] = {}
        self._spare: dict[int, dict] = {}  # each weight's state before the last step: reused arrays

    # ------------------------------------------------------------------------------- API
    def current_learning_rate(self) -> float:
        lr = self.learning_rate
        return float(lr(self.iterations)) if callable(lr) else lr

    def _clip(self, grads: list) -> list:
        if self.clipnorm is not None:
            out = []
            for g in grads:
                norm = float(_xp_of(g).sqrt((g * g).sum()))
                out.append(g * (self.clipnorm / norm) if norm > self.clipnorm else g)
            grads = out
        if self.global_clipnorm is not None:
            total = math.sqrt(sum(float((g * g).sum()) for g in grads))
            if total > self.global_clipnorm:
                grads = [g * (self.global_clipnorm / total) for g in grads]
        if self.clipvalue is not None:
            grads = [_xp_of(g).clip(g, -self.clipvalue, self.clipvalue) for g in grads]
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
        grads = self._clip([g for g, _ in pairs])
        lr = self.current_learning_rate()
        updates, states = [], {}
        for g, (_, p) in zip(grads, pairs):
            value = p.value.copy()
            slots = self._working_slots(p)
            if self.weight_decay:
                value -= value * (self.weight_decay * lr)
            self._update(value, g.astype(value.dtype, copy=False), slots, lr)
            updates.append((p, value))
            states[id(p)] = slots

        def commit() -> None:
            self._spare.update({key: self._slots.get(key) for key in states})
            self._slots.update(states)
            self.iterations += 1

        return publish(updates, commit, expected)

    def _working_slots(self, p: Any) -> dict:
        """A copy of ``p``'s state for a step to update, in the arrays of its state before the
        previous step where there are (the optimizer's own: no other reader)."""
        current = self._slots.get(id(p))
        work = {"_param": p}
        if current is None or current.get("_param") is not p:
            return work
        spare = self._spare.get(id(p))
        if spare is None or spare.get("_param") is not p:
            spare = {}
        for key, array in current.items():
            if key == "_param":
                continue
            buffer = spare.get(key)
            if buffer is None or buffer.shape != array.shape or buffer.dtype != array.dtype:
                buffer = array.copy()
            else:
                buffer[...] = array
            work[key] = buffer
        return work

    def apply(self, params: list) -> None:
        """Update ``params`` (Parameters) from their ``grad`` (those without one are skipped)."""
        self.apply_gradients((p.grad, p) for p in params)

    def _update(self, value: Any, g: Any, slots: dict, lr: float) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the iteration count and every per-weight state."""
        self.iterations = 0
        self._slots.clear()
        self._spare.clear()

    # ---------------------------------------------------------------------------- config
    def get_config(self) -> dict:
        lr = self.learning_rate
        config = {
            "name": self.name,
            "learning_rate": None if callable(lr) else lr,
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
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class SGD(Optimizer):
    """Gradient descent with optional momentum (Keras: ``m = momentum*m - lr*g; w += m``;
    Nesterov: ``w += momentum*m - lr*g``). Default learning rate 0.01."""

    def __init__(
        self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs: Any
    ):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _check_float(momentum, "momentum", 0.0, 1.0)
        self.nesterov = bool(nesterov)

    def _update(self, value, g, slots, lr):
        if self.momentum == 0:
            value -= lr * g
            return
        m = slots.get("momentum")
        if m is None:
            m = slots["momentum"] = _xp_of(value).zeros_like(value)
        m *= self.momentum
        m -= lr * g
        if self.nesterov:
            value += self.momentum * m - lr * g
        else:
            value += m

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
        self.beta_1 = _check_float(beta_1, "beta_1", 0.0, 1.0, hi_open=True)
        self.beta_2 = _check_float(beta_2, "beta_2", 0.0, 1.0, hi_open=True)
        self.epsilon = _check_float(epsilon, "epsilon")
        self.amsgrad = bool(amsgrad)

    def _update(self, value, g, slots, lr):
        xp = _xp_of(value)
        if "m" not in slots:
            slots["m"] = xp.zeros_like(value)
            slots["v"] = xp.zeros_like(value)
            if self.amsgrad:
                slots["vhat"] = xp.zeros_like(value)
        step = self.iterations + 1
        alpha = lr * math.sqrt(1 - self.beta_2**step) / (1 - self.beta_1**step)
        m, v = slots["m"], slots["v"]
        m += (g - m) * (1 - self.beta_1)
        v += (g * g - v) * (1 - self.beta_2)
        if self.amsgrad:
            vhat = slots["vhat"]
            xp.maximum(vhat, v, out=vhat)
            v = vhat
        value -= (m * alpha) / (xp.sqrt(v) + self.epsilon)

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
        self.rho = _check_float(rho, "rho", 0.0, 1.0)
        self.momentum = _check_float(momentum, "momentum", 0.0, 1.0)
        self.epsilon = _check_float(epsilon, "epsilon")
        self.centered = bool(centered)

    def _update(self, value, g, slots, lr):
        xp = _xp_of(value)
        if "v" not in slots:
            slots["v"] = xp.zeros_like(value)
            if self.centered:
                slots["avg"] = xp.zeros_like(value)
            if self.momentum > 0:
                slots["mom"] = xp.zeros_like(value)
        v = slots["v"]
        v *= self.rho
        v += (1 - self.rho) * g * g
        if self.centered:
            avg = slots["avg"]
            avg *= self.rho
            avg += (1 - self.rho) * g
            denominator = v - avg * avg + self.epsilon
        else:
            denominator = v + self.epsilon
        increment = lr * g / xp.sqrt(denominator)
        if self.momentum > 0:
            mom = slots["mom"]
            mom *= self.momentum
            mom += increment
            value -= mom
        else:
            value -= increment

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
