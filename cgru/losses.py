"""Losses with Keras's formulas, defaults and reductions, written against ``xp`` (numpy or cupy).

By name (``compile(loss="mse")``) or object (``losses.Huber(delta=2.0)``):

==================================  ===============================================
``"mse"``, ``"mean_squared_error"``  mean over the last axis of ``(y - p)**2``
``"mae"``, ``"mean_absolute_error"`` mean over the last axis of ``|y - p|``
``"huber"``                          Keras's Huber loss (``delta=1.0``)
``"binary_crossentropy"``            probabilities clipped to [eps, 1 - eps] (or ``from_logits``)
``"categorical_crossentropy"``       one-hot targets; probabilities renormalised and clipped
``"sparse_categorical_crossentropy"`` integer class targets
==================================  ===============================================

Each loss reduces the last axis to one value per sample (per time step for sequence outputs),
then weighs and reduces those values as Keras 3 does (:mod:`cgru.sample_weights`):
``"sum_over_batch_size"`` (the default: ``sum(w * v)`` over the number of values, not over the
sum of the weights), ``"mean_with_sample_weight"``, ``"sum"`` or ``"none"``. With ``mask``
(right-padded sequence outputs, from ``lengths=``) the padded steps are left out: the mean runs
over the valid steps only, as Keras does with masks. ``eps`` is :func:`cgru.config.epsilon`
(1e-7).

``loss(y_true, y_pred, sample_weight=None)`` returns the reduced value;
``loss.value_and_grad(y_true, y_pred, mask=None, sample_weight=None)`` also returns the gradient
of the weighted loss with respect to ``y_pred`` (what ``fit`` uses).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import config as _config
from .sample_weights import loss_denominator, reduce_weighted_values, standardize_reduction
from .validation import xp_of


def align_targets(y_true: Any, y_pred: Any, sparse: bool = False, what: str = "y") -> Any:
    """``y_true`` reshaped/cast to match ``y_pred`` (Keras's squeeze-or-expand rule).

    Dense targets must have ``y_pred``'s shape, or lack its trailing axis of size 1 (or have an
    extra one); sparse targets have ``y_pred``'s shape without the class axis (or with a
    trailing 1). ValueError names both shapes otherwise.
    """
    xp = xp_of(y_pred)
    y_true = xp.asarray(y_true)
    if y_true.dtype.kind not in "fiub":
        raise TypeError(f"{what} must be numeric, got dtype {y_true.dtype}")
    pshape, tshape = tuple(y_pred.shape), tuple(y_true.shape)
    if sparse:
        if tshape == pshape[:-1] + (1,) and len(pshape) > 1:
            y_true = y_true.reshape(pshape[:-1])
        elif tshape != pshape[:-1]:
            raise ValueError(
                f"sparse targets {what} must have shape {pshape[:-1]} (the output shape "
                f"{pshape} without the class axis), got {tshape}"
            )
        if y_true.dtype.kind == "f" and not bool(xp.all(y_true == xp.round(y_true))):
            raise ValueError(f"sparse targets {what} must be integer class ids")
        y_true = y_true.astype(np.int64)
        if y_true.size:
            lo, hi = int(y_true.min()), int(y_true.max())
            if lo < 0 or hi >= pshape[-1]:
                raise ValueError(
                    f"sparse targets {what} must be class ids in 0..{pshape[-1] - 1}, "
                    f"got values in {lo}..{hi}"
                )
        return y_true
    if tshape != pshape:
        if len(tshape) == len(pshape) - 1 and pshape[-1] == 1 and tshape == pshape[:-1]:
            y_true = y_true.reshape(pshape)
        elif len(tshape) == len(pshape) + 1 and tshape[-1] == 1 and tshape[:-1] == pshape:
            y_true = y_true.reshape(pshape)
        else:
            raise ValueError(f"targets {what} of shape {tshape} do not match the model output shape {pshape}")
    return y_true.astype(y_pred.dtype, copy=False)


def check_target_shape(y_shape: tuple, out_shape: tuple, sparse: bool, what: str = "y") -> None:
    """Validate target shape against output shape (None = any size) without data."""

    def same(a: tuple, b: tuple) -> bool:
        return len(a) == len(b) and all(p is None or p == q for p, q in zip(b, a))

    y_shape, out_shape = tuple(y_shape), tuple(out_shape)
    if sparse:
        ok = same(y_shape, out_shape[:-1]) or same(y_shape, (*out_shape[:-1], 1))
        expected = f"{out_shape[:-1]} (the output shape {out_shape} without the class axis)"
    else:
        ok = (
            same(y_shape, out_shape)
            or (out_shape[-1] == 1 and same(y_shape, out_shape[:-1]))
            or (y_shape[-1:] == (1,) and same(y_shape[:-1], out_shape))
        )
        expected = f"{out_shape} (the model output shape)"
    if not ok:
        shown = tuple(y_shape)
        raise ValueError(f"targets {what} of shape {shown} do not match: expected {expected}")


class Loss:
    """Base class: subclasses implement ``_values(xp, y_true, y_pred) -> (values, grads)``.

    ``values`` has ``y_pred``'s shape without its last axis; ``grads`` is the gradient of each
    value with respect to ``y_pred`` (``y_pred``'s shape).
    """

    sparse = False

    def __init__(self, reduction: str | None = "sum_over_batch_size", name: str | None = None) -> None:
        self.reduction = standardize_reduction(reduction)
        self.name = name or _snake(type(self).__name__)

    def _values(self, xp: Any, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    @staticmethod
    def _check_mask(mask: Any, shape: tuple) -> None:
        if mask is not None and tuple(mask.shape) != tuple(shape):
            raise ValueError(f"mask must have shape {tuple(shape)}, got {tuple(mask.shape)}")

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None, mask: Any = None) -> Any:
        """The reduced loss (a float; the weighted per-value array for reduction "none").

        ``sample_weight``: None, a scalar, ``(B,)`` or, for sequence outputs, ``(B, T)``
        (:mod:`cgru.sample_weights` gives the rules); ``mask``: ``(B, T)`` valid steps.
        """
        xp = xp_of(y_pred)
        y_pred = xp.asarray(y_pred)
        if y_pred.dtype.kind != "f":
            y_pred = y_pred.astype(_config.floatx())
        y_true = align_targets(y_true, y_pred, self.sparse, "y_true")
        if mask is not None:
            mask = xp.asarray(mask)
            self._check_mask(mask, y_pred.shape[:-1])
        y_true, y_pred = self._masked_inputs(xp, y_true, y_pred, mask)
        values, _ = self._values(xp, y_true, y_pred)
        sample_weight = None if sample_weight is None else xp.asarray(sample_weight)
        reduced, _ = reduce_weighted_values(xp, values, sample_weight, mask, self.reduction)
        return reduced

    def value_and_grad(
        self, y_true: Any, y_pred: Any, mask: Any = None, sample_weight: Any = None
    ) -> tuple[float, Any]:
        """``(loss, d loss / d y_pred)`` for already aligned ``y_true`` (see :func:`align_targets`),
        weighted by ``sample_weight`` and ``mask`` as :meth:`__call__`."""
        if self.reduction == "none":
            raise ValueError("a loss with reduction='none' cannot be used for training")
        xp = xp_of(y_pred)
        self._check_mask(mask, y_pred.shape[:-1])
        y_true, y_pred = self._masked_inputs(xp, y_true, y_pred, mask)
        values, grads = self._values(xp, y_true, y_pred)
        loss, coefficients = reduce_weighted_values(xp, values, sample_weight, mask, self.reduction)
        coefficients = coefficients.reshape(values.shape + (1,) * (grads.ndim - values.ndim))
        return loss, grads * coefficients

    def denominator(self, values_shape: tuple, sample_weight: Any = None, mask: Any = None) -> float | None:
        """What this loss's reduction divides the weighted sum of its values (of
        ``values_shape``: the output's shape without its last axis) by, with ``sample_weight``
        and ``mask`` as :meth:`value_and_grad` takes them: see
        :func:`cgru.sample_weights.loss_denominator` (None for ``"sum"`` and ``"none"``).

        A batch's loss is ``weighted sum / denominator``, so the loss of the union of batches
        is ``sum_i(loss_i * denominator_i) / sum_i(denominator_i)`` (with ``"sum"``: the sum of
        the losses), and so is its gradient: how data-parallel training combines the ranks'
        batches (:mod:`cgru.distributed.combine`).
        """
        given = sample_weight if sample_weight is not None else mask
        xp = np if given is None else xp_of(given)
        return loss_denominator(xp, tuple(values_shape), sample_weight, mask, self.reduction)

    def _masked_inputs(self, xp: Any, y_true: Any, y_pred: Any, mask: Any) -> tuple[Any, Any]:
        """Benign values at masked (padded) entries, so that whatever the model output or the
        targets hold there (zeros, NaN) cannot turn the masked loss or gradient into NaN."""
        if mask is None:
            return y_true, y_pred
        keep = xp.asarray(mask) > 0
        y_pred = xp.where(keep[..., None], y_pred, y_pred.dtype.type(0.5))
        if self.sparse:
            y_true = xp.where(keep, y_true, 0)
        else:
            y_true = xp.where(keep[..., None], y_true, y_true.dtype.type(0.5))
        return y_true, y_pred

    def get_config(self) -> dict:
        return {"reduction": self.reduction, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> Loss:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def _snake(name: str) -> str:
    from .layers.base import to_snake_case

    return to_snake_case(name)


class MeanSquaredError(Loss):
    """``mean((y_true - y_pred)**2, axis=-1)``."""

    def _values(self, xp, y_true, y_pred):
        d = y_pred - y_true
        n = y_pred.shape[-1]
        return (d * d).mean(axis=-1), d * (2.0 / n)


class MeanAbsoluteError(Loss):
    """``mean(|y_true - y_pred|, axis=-1)``."""

    def _values(self, xp, y_true, y_pred):
        d = y_pred - y_true
        n = y_pred.shape[-1]
        return xp.abs(d).mean(axis=-1), xp.sign(d) * (1.0 / n)


class Huber(Loss):
    """Quadratic for ``|error| <= delta``, linear beyond: ``0.5*e**2`` or ``delta*|e| - 0.5*delta**2``."""

    def __init__(self, delta: float = 1.0, reduction: str = "sum_over_batch_size", name: str | None = None):
        super().__init__(reduction, name or "huber_loss")
        self.delta = float(delta)
        if not self.delta > 0:
            raise ValueError(f"delta must be > 0, got {delta}")

    def _values(self, xp, y_true, y_pred):
        e = y_pred - y_true
        a = xp.abs(e)
        small = a <= self.delta
        delta = self.delta
        values = xp.where(small, 0.5 * e * e, delta * a - 0.5 * delta * delta).mean(axis=-1)
        grads = xp.where(small, e, delta * xp.sign(e)) * (1.0 / y_pred.shape[-1])
        return values, grads.astype(y_pred.dtype, copy=False)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


def _sigmoid(xp, z):
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


class _SmoothedCrossentropy(Loss):
    """Shared options of the cross-entropies whose targets can be smoothed."""

    default_name = "crossentropy"

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        reduction: str = "sum_over_batch_size",
        name: str | None = None,
    ):
        super().__init__(reduction, name or self.default_name)
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
        }


class BinaryCrossentropy(_SmoothedCrossentropy):
    """Binary cross-entropy averaged over the last axis (Keras's formula).

    With probabilities (``from_logits=False``, the default) they are clipped to [eps, 1 - eps];
    ``label_smoothing`` moves targets toward 0.5.
    """

    default_name = "binary_crossentropy"

    def _values(self, xp, y_true, y_pred):
        y = y_true
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        n = y_pred.shape[-1]
        if self.from_logits:
            z = y_pred
            values = (xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))).mean(axis=-1)
            return values, (_sigmoid(xp, z) - y) * (1.0 / n)
        eps = _config.epsilon()
        p = xp.clip(y_pred, eps, 1.0 - eps)
        inside = (y_pred >= eps) & (y_pred <= 1.0 - eps)
        values = -(y * xp.log(p) + (1 - y) * xp.log(1 - p)).mean(axis=-1)
        grads = (-(y / p) + (1 - y) / (1 - p)) * inside * (1.0 / n)
        return values, grads.astype(y_pred.dtype, copy=False)


def _categorical(xp, y, y_pred, from_logits):
    if from_logits:
        z = y_pred - y_pred.max(axis=-1, keepdims=True)
        logsumexp = xp.log(xp.exp(z).sum(axis=-1, keepdims=True))
        log_q = z - logsumexp
        values = -(y * log_q).sum(axis=-1)
        grads = xp.exp(log_q) * y.sum(axis=-1, keepdims=True) - y
        return values, grads
    eps = _config.epsilon()
    s = y_pred.sum(axis=-1, keepdims=True)
    q = y_pred / s
    qc = xp.clip(q, eps, 1.0 - eps)
    values = -(y * xp.log(qc)).sum(axis=-1)
    g = -(y / qc) * ((q >= eps) & (q <= 1.0 - eps))
    grads = (g - (g * q).sum(axis=-1, keepdims=True)) / s
    return values, grads.astype(y_pred.dtype, copy=False)


class CategoricalCrossentropy(_SmoothedCrossentropy):
    """``-sum(y_true * log(y_pred), axis=-1)`` with one-hot (or soft) targets.

    Probabilities are renormalised to sum to 1 over the last axis, then clipped to [eps, 1-eps].
    """

    default_name = "categorical_crossentropy"

    def _values(self, xp, y_true, y_pred):
        y = y_true
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        return _categorical(xp, y, y_pred, self.from_logits)


class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy with integer class targets (``y_pred``'s shape without the class axis)."""

    sparse = True

    def __init__(
        self, from_logits: bool = False, reduction: str = "sum_over_batch_size", name: str | None = None
    ):
        super().__init__(reduction, name or "sparse_categorical_crossentropy")
        self.from_logits = bool(from_logits)

    def _values(self, xp, y_true, y_pred):
        classes = y_pred.shape[-1]
        onehot = (y_true[..., None] == xp.arange(classes)).astype(y_pred.dtype)
        return _categorical(xp, onehot, y_pred, self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


_CLASSES = {
    cls.__name__: cls
    for cls in (
        MeanSquaredError,
        MeanAbsoluteError,
        Huber,
        BinaryCrossentropy,
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
    )
}
_ALIASES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "cce": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def _functional(cls: type, **kwargs: Any):
    def fn(y_true: Any, y_pred: Any) -> Any:
        return cls(reduction="none", **kwargs)(y_true, y_pred)

    fn.__name__ = fn.__qualname__ = next(k for k, v in _ALIASES.items() if v is cls and "_" in k)
    fn.__doc__ = f"Per-sample {cls.__name__} (no reduction), as Keras's functional loss."
    fn._loss_class = cls
    return fn


mean_squared_error = mse = _functional(MeanSquaredError)
mean_absolute_error = mae = _functional(MeanAbsoluteError)
huber = _functional(Huber)
binary_crossentropy = _functional(BinaryCrossentropy)
categorical_crossentropy = _functional(CategoricalCrossentropy)
sparse_categorical_crossentropy = _functional(SparseCategoricalCrossentropy)


def get(identifier: Any) -> Loss:
    """A loss from a name, a ``{"class_name", "config"}`` dict, a Loss or a functional loss."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"unknown loss {identifier!r}; known: {sorted(_ALIASES)}")
        loss = cls()
        if identifier.lower() in _ALIASES:
            loss.name = identifier.lower()
        return loss
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = _CLASSES.get(identifier["class_name"])
        if cls is None:
            raise ValueError(f"unknown loss class {identifier['class_name']!r}; known: {sorted(_CLASSES)}")
        return cls.from_config(dict(identifier.get("config") or {}))
    if callable(identifier) and hasattr(identifier, "_loss_class"):
        return identifier._loss_class()
    if callable(identifier):
        raise TypeError(
            "a custom loss must subclass cgru.losses.Loss and implement "
            "_values(xp, y_true, y_pred) -> (values, gradients); plain functions have no gradient"
        )
    raise TypeError(f"loss must be a name or a cgru.losses.Loss, got {identifier!r}")


def serialize(loss: Loss) -> dict:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
