""":class:`LayerNormalization` (Keras's ``keras.layers.LayerNormalization``)."""

from __future__ import annotations

from typing import Any

from .base import Layer, _register_builtin
from .recurrent import _init_spec
from .weights import read_values


def _check_axis(axis: Any) -> int | list[int]:
    """Keras's ``axis``: an int or a list of ints (a tuple becomes a list)."""
    if isinstance(axis, (list, tuple)):
        if not axis or not all(isinstance(a, int) and not isinstance(a, bool) for a in axis):
            raise TypeError(f"axis must be an int or a non-empty list of ints, got {axis!r}")
        return list(axis)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"axis must be an int or a list of ints, got {axis!r}")
    return axis


@_register_builtin
class LayerNormalization(Layer):
    """Normalises each sample over ``axis``: ``(x - mean) / sqrt(var + epsilon) * gamma + beta``.

    Input of any rank >= 2 (batch first); the output has its shape. Mean and (biased) variance
    are taken over ``axis`` (an int or a list of ints, counted with the batch axis, negative from
    the end; default the last axis) for each sample separately, so with the default axis each
    time step of a sequence is normalised on its own and padded steps do not matter.

    Args:
        axis: the axis or axes to normalise over (never 0, the batch axis).
        epsilon: added to the variance (default 1e-3, Keras's).
        center: add the learned offset ``beta``; scale: multiply by the learned ``gamma``.
        beta_initializer, gamma_initializer: "zeros" and "ones" by default.
    Weights (Keras order): ``[gamma, beta]`` (each present when ``scale``/``center``), of shape
    the input's sizes along ``axis``.
    """

    defer_weight_init = True

    def __init__(
        self,
        axis: int | list[int] = -1,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: Any = "zeros",
        gamma_initializer: Any = "ones",
        beta_regularizer: Any = None,
        gamma_regularizer: Any = None,
        beta_constraint: Any = None,
        gamma_constraint: Any = None,
        rms_scaling: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for key, value in (("beta_regularizer", beta_regularizer), ("gamma_regularizer", gamma_regularizer),
                           ("beta_constraint", beta_constraint), ("gamma_constraint", gamma_constraint)):
            if value is not None:
                raise ValueError(f"LayerNormalization: {key} is not supported by cgru (only None)")
        if rms_scaling:
            raise ValueError("LayerNormalization: rms_scaling=True (deprecated in Keras) is not supported")
        self.axis = _check_axis(axis)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = _init_spec(beta_initializer)
        self.gamma_initializer = _init_spec(gamma_initializer)
        self.gamma = self.beta = None
        self._axes: tuple[int, ...] = ()
        self._rank = 0

    def _resolve_axes(self, input_shape: tuple) -> tuple[int, ...]:
        """The normalised axes as sorted non-negative ints for inputs of ``input_shape``."""
        rank = len(input_shape)
        given = self.axis if isinstance(self.axis, list) else [self.axis]
        axes = []
        for a in given:
            if not -rank <= a < rank or a % rank == 0:
                raise ValueError(
                    f"LayerNormalization {self.name!r}: axis {a} is out of range or the batch axis "
                    f"for input shape {tuple(input_shape)}"
                )
            axes.append(a % rank)
        if len(set(axes)) != len(axes):
            raise ValueError(f"LayerNormalization {self.name!r}: axis {self.axis} names an axis twice")
        return tuple(sorted(axes))

    def build(self, input_shape: tuple) -> None:
        axes = self._resolve_axes(input_shape)
        shape = tuple(input_shape[a] for a in axes)
        if any(d is None for d in shape) and (self.scale or self.center):
            raise ValueError(
                f"LayerNormalization {self.name!r} needs known sizes along axis {self.axis} for its "
                f"weights, got input shape {tuple(input_shape)}"
            )
        self._axes, self._rank = axes, len(input_shape)
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer)
        if self.center:
            self.beta = self.add_weight("beta", shape, self.beta_initializer)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        self._resolve_axes(input_shape)
        return tuple(input_shape)

    def _broadcast(self, w: Any) -> Any:
        """A weight shaped to broadcast against the input (its sizes at the normalised axes)."""
        shape = [1] * self._rank
        for a, size in zip(self._axes, w.shape):
            shape[a] = size
        return w.reshape(shape)

    def _weights(self, values: tuple) -> tuple[Any, Any]:
        """(gamma or None, beta or None) from ``values`` in ``weights`` order."""
        it = iter(values)
        gamma = next(it) if self.scale else None
        beta = next(it) if self.center else None
        return gamma, beta

    def _run(self, x: Any, training: bool, values: tuple) -> tuple[Any, Any]:
        if x.ndim != self._rank:
            raise ValueError(
                f"LayerNormalization {self.name!r} expects input of rank {self._rank}, "
                f"got shape {tuple(x.shape)}"
            )
        if x.dtype != self._np_dtype:
            x = x.astype(self._np_dtype)
        axes = self._axes
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        inv = 1 / self.xp.sqrt((centered * centered).mean(axis=axes, keepdims=True) + self.epsilon)
        normed = centered * inv
        gamma, beta = self._weights(values)
        y = normed * self._broadcast(gamma) if gamma is not None else normed
        if beta is not None:
            y = y + self._broadcast(beta)
        return y, ((normed, inv, gamma) if training else None)

    def forward(self, x: Any, training: bool = False) -> tuple[Any, Any]:
        return self._run(x, training, read_values(self._params)[1])

    def _pinned_forward(self, values: tuple) -> Any:
        if self._own_forward(LayerNormalization):
            return super()._pinned_forward(values)
        run = self._run
        return lambda x, training, lengths=None: run(x, training, values)

    def _pinned_infer(self, values: tuple) -> Any:
        if self._own_forward(LayerNormalization):
            return super()._pinned_infer(values)
        run = self._run
        return lambda x, lengths=None: run(x, False, values)[0]

    def backward(self, dy: Any, cache: Any) -> Any:
        normed, inv, gamma = cache
        axes = self._axes
        others = tuple(a for a in range(self._rank) if a not in axes)
        if self.gamma is not None:
            self.gamma.grad = (dy * normed).sum(axis=others).reshape(self.gamma.shape)
        if self.beta is not None:
            self.beta.grad = dy.sum(axis=others).reshape(self.beta.shape)
        g = dy * self._broadcast(gamma) if gamma is not None else dy
        return inv * (g - g.mean(axis=axes, keepdims=True)
                      - normed * (g * normed).mean(axis=axes, keepdims=True))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            axis=self.axis,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=self.beta_initializer,
            gamma_initializer=self.gamma_initializer,
        )
        return config


__all__ = ["LayerNormalization"]
