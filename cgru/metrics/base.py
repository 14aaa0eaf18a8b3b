"""The :class:`Metric` base class, its state variables and the state protocol.

A metric accumulates a state over batches (``update_state``), reports a value from it
(``result``) and starts over (``reset_state``), with Keras 3's API. Its state is a list of
:class:`MetricVariable` arrays created in ``__init__`` (or on the first update) with
:meth:`Metric.add_variable`, each with an *aggregation* that says how two states of the same
metric combine: ``"sum"`` (the default: counts, totals, confusion matrices), ``"max"`` or
``"min"``.

That makes states mergeable: the state after batches ``a`` then ``b`` equals the merge of the
state after ``a`` alone and the state after ``b`` alone. ``fit`` and ``evaluate`` rely on it:
each step computes what its batch adds (:meth:`Metric.batch_state`), a distribution strategy
may combine those across processes (:func:`merge_states`: an all-reduce of each array with its
aggregation's operation), and the logs merge them into the pass's running state. A metric whose
update is not such a merge (an exponential moving average, say) cannot be accumulated this way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from functools import reduce
from typing import Any, NamedTuple

import numpy as np

from .. import config as _config
from ..layers.base import to_snake_case
from ..losses import check_target_shape
from ..validation import to_host, xp_of

#: How two states of a variable combine, and the NumPy (or MPI) operation that does it.
AGGREGATIONS = {"sum": np.add, "max": np.maximum, "min": np.minimum}


class MetricState(NamedTuple):
    """A metric's state as plain arrays: ``values`` (one NumPy array per variable, in the
    order of :attr:`Metric.variables`) and ``aggregations`` (each one's, see
    :data:`AGGREGATIONS`). Empty for a metric that has not built its variables yet."""

    values: tuple
    aggregations: tuple


def merge_states(states: Iterable[MetricState]) -> MetricState:
    """One state from several states of the same metric (each array combined with its
    aggregation). Empty states (metrics that saw no data yet) are skipped."""
    states = [s for s in states if s.values]
    if not states:
        return MetricState((), ())
    first = states[0]
    for other in states[1:]:
        if other.aggregations != first.aggregations or [np.shape(v) for v in other.values] != [
            np.shape(v) for v in first.values
        ]:
            raise ValueError(
                "cannot merge metric states of different layouts: "
                f"{[np.shape(v) for v in first.values]} {first.aggregations} and "
                f"{[np.shape(v) for v in other.values]} {other.aggregations}"
            )
    merged = tuple(
        reduce(AGGREGATIONS[agg], [s.values[i] for s in states]) for i, agg in enumerate(first.aggregations)
    )
    return MetricState(merged, first.aggregations)


class MetricVariable:
    """One array of a metric's state, on the host (NumPy), float64 unless asked otherwise.

    ``assign(value)`` and ``assign_add(value)`` accept NumPy or CuPy arrays and numbers;
    ``value`` (or ``numpy()``) is the array. Arithmetic (``var + x``, ``var[0]``...) works on
    the array, so Keras-style ``self.total.assign(self.total + xp.sum(v))`` reads as in Keras.
    """

    def __init__(
        self,
        shape: Any,
        initializer: Any = "zeros",
        dtype: Any = "float64",
        aggregation: str = "sum",
        name: str = "",
    ) -> None:
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {sorted(AGGREGATIONS)}, got {aggregation!r}")
        self.name = name
        self.aggregation = aggregation
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        self._initial = _initial_value(initializer, self.shape, self.dtype)
        self._value = self._initial.copy()

    @property
    def value(self) -> np.ndarray:
        return self._value

    def numpy(self) -> np.ndarray:
        return self._value.copy()

    def assign(self, value: Any) -> None:
        if isinstance(value, np.ndarray) and value.shape == self.shape:  # the common case, fast
            self._value = value.astype(self.dtype, copy=True)
            return
        value = np.asarray(to_host(value), dtype=self.dtype)
        if value.shape != self.shape:
            try:
                value = np.broadcast_to(value, self.shape)
            except ValueError:
                raise ValueError(
                    f"metric variable {self.name!r} has shape {self.shape}, cannot assign shape {value.shape}"
                ) from None
        self._value = np.array(value, dtype=self.dtype)

    def assign_add(self, value: Any) -> None:
        self.assign(self._value + np.asarray(to_host(value), dtype=self.dtype))

    def assign_sub(self, value: Any) -> None:
        self.assign(self._value - np.asarray(to_host(value), dtype=self.dtype))

    def reset(self) -> None:
        """Back to the initial value."""
        self._value = self._initial.copy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._value if dtype is None else self._value.astype(dtype)

    def __getitem__(self, key: Any) -> Any:
        return self._value[key]

    def __len__(self) -> int:
        return len(self._value)

    def __float__(self) -> float:
        return float(self._value)

    def __repr__(self) -> str:
        return f"<MetricVariable {self.name!r} shape={self.shape} aggregation={self.aggregation!r}>"


def _initial_value(initializer: Any, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A variable's initial array from ``"zeros"``, ``"ones"``, a number or a callable
    ``(shape, dtype) -> array``."""
    constants = {"zeros": 0.0, "ones": 1.0}
    if isinstance(initializer, str):
        if initializer.lower() not in constants:
            raise ValueError(
                f"initializer must be 'zeros', 'ones', a number or a callable, got {initializer!r}"
            )
        initializer = constants[initializer.lower()]
    if isinstance(initializer, (int, float, np.number)):
        return np.full(shape, initializer, dtype=dtype)
    if callable(initializer):
        value = np.asarray(to_host(initializer(shape, dtype)), dtype=dtype)
        if value.shape != shape:
            raise ValueError(f"initializer gave shape {value.shape}, expected {shape}")
        return value
    raise TypeError(f"initializer must be 'zeros', 'ones', a number or a callable, got {initializer!r}")


def _binary(op: Any, reflected: bool = False) -> Any:
    def method(self: MetricVariable, other: Any) -> Any:
        other = to_host(other) if hasattr(other, "__cuda_array_interface__") else other
        return op(other, self._value) if reflected else op(self._value, other)

    return method


for _name, _op in (
    ("add", np.add),
    ("sub", np.subtract),
    ("mul", np.multiply),
    ("truediv", np.true_divide),
    ("pow", np.power),
):
    setattr(MetricVariable, f"__{_name}__", _binary(_op))
    setattr(MetricVariable, f"__r{_name}__", _binary(_op, reflected=True))
MetricVariable.__neg__ = lambda self: -self._value  # type: ignore[attr-defined]


class Metric:
    """Base class of all metrics, built-in and your own (Keras 3's ``keras.metrics.Metric``).

    Subclasses create their state in ``__init__`` with :meth:`add_variable` and implement
    :meth:`update_state` and :meth:`result`; :meth:`reset_state` (back to the initial values)
    and the state protocol come with the base class. For example, a weighted count of
    positives::

        class Positives(cgru.metrics.Metric):
            direction = "up"

            def __init__(self, name="positives", dtype=None):
                super().__init__(name=name, dtype=dtype)
                self.count = self.add_variable((), name="count")

            def update_state(self, y_true, y_pred, sample_weight=None):
                xp = cgru.metrics.array_module(y_pred)
                hits = (xp.asarray(y_pred) > 0.5).astype(self.dtype)
                if sample_weight is not None:  # (B,) or (B, T): broadcast over the units
                    w = xp.asarray(sample_weight, dtype=self.dtype)
                    hits = hits * w.reshape(w.shape + (1,) * (hits.ndim - w.ndim))
                self.count.assign_add(hits.sum())

            def result(self):
                return float(self.count.value)

    In ``fit`` and ``evaluate``, ``update_state`` gets the targets and the model output as
    arrays of the model's backend (NumPy, or CuPy on the GPU: use :func:`array_module`), and a
    ``sample_weight`` of the output's shape without its last axis (``(B,)`` or ``(B, T)``), or
    None: padded steps of sequence outputs come with weight 0 (and zeros in their values), so a
    metric must honour ``sample_weight`` to leave them out. The metric objects given to
    ``compile`` are copied for each ``fit``/``evaluate`` call; the loop never changes them.

    ``name`` is the metric's key in the logs (by default the class name in snake case);
    ``dtype`` (default :func:`cgru.floatx`) is the precision its values are computed in; state
    variables are float64 unless created otherwise. ``direction`` (class attribute): ``"up"``
    when larger is better, ``"down"`` when smaller is, None when unknown (callbacks in
    ``mode="auto"`` then need an explicit mode). To save a model compiled with your metric,
    register the class (:func:`register_metric`) and give ``get_config`` every argument of
    ``__init__``.
    """

    direction: str | None = None

    def __init__(self, name: str | None = None, dtype: Any = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"a metric name must be a non-empty string, got {name!r}")
        self.name = name or to_snake_case(type(self).__name__)
        self.dtype = _config.standardize_dtype(dtype or _config.floatx())
        self._variables: list[MetricVariable] = []

    # ------------------------------------------------------------------ what subclasses write
    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Accumulate one batch into the state."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_state()")

    def result(self) -> Any:
        """The metric's value from the current state: a float (or an array, for metrics with
        several thresholds)."""
        raise NotImplementedError(f"{type(self).__name__} must implement result()")

    def reset_state(self) -> None:
        """Every state variable back to its initial value."""
        for variable in self._variables:
            variable.reset()

    # ------------------------------------------------------------------------------- state
    def add_variable(
        self,
        shape: Any = (),
        initializer: Any = "zeros",
        dtype: Any = "float64",
        aggregation: str = "sum",
        name: str | None = None,
    ) -> MetricVariable:
        """A new state variable: ``shape``, ``initializer`` (``"zeros"``, ``"ones"``, a number, or
        a callable ``(shape, dtype) -> array``), ``aggregation`` (``"sum"``, ``"max"`` or
        ``"min"``: how two states combine)."""
        if not hasattr(self, "_variables"):
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        variable = MetricVariable(
            shape, initializer, dtype, aggregation, name or f"variable_{len(self._variables)}"
        )
        self._variables.append(variable)
        return variable

    add_weight = add_variable

    @property
    def variables(self) -> list[MetricVariable]:
        """The state variables, in creation order."""
        return list(self._variables)

    def get_state(self) -> MetricState:
        """A copy of the state."""
        return MetricState(tuple([v._value.copy() for v in self._variables]), self._aggregations())

    def _aggregations(self) -> tuple:
        return tuple([v.aggregation for v in self._variables])

    def set_state(self, state: MetricState | Iterable) -> None:
        """Replace the state by ``state`` (a :class:`MetricState` or arrays in variable order)."""
        values = state.values if isinstance(state, MetricState) else tuple(state)
        if len(values) != len(self._variables):
            raise ValueError(
                f"{type(self).__name__} {self.name!r} has {len(self._variables)} state variables, "
                f"got {len(values)} arrays"
            )
        for variable, value in zip(self._variables, values):
            variable.assign(value)

    def merge_state(self, *others: MetricState | Metric) -> None:
        """Merge other states of this metric (or other instances' states) into this one."""
        states = [o.get_state() if isinstance(o, Metric) else o for o in others]
        merged = merge_states([self.get_state(), *states])
        if merged.values:
            if not self._variables:
                raise ValueError(f"{self.name!r} has not built its state variables yet; update it once first")
            self.set_state(merged)

    def batch_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> MetricState:
        """What one batch adds: the state a freshly reset metric reaches after updating on it.
        This metric's own state is left as it was."""
        saved = self._held()
        self.reset_state()
        try:
            self.update_state(y_true, y_pred, sample_weight=sample_weight)
            # the arrays a reset made fresh: no one else holds them
            return MetricState(tuple(self._held()), self._aggregations())
        finally:
            if len(saved) == len(self._variables):
                self._hold(saved)
            else:  # the update created the variables
                self.reset_state()

    def stateless_update_state(
        self, metric_variables: Any, y_true: Any, y_pred: Any, sample_weight: Any = None
    ) -> list:
        """Keras's stateless form: the state arrays after updating ``metric_variables``."""
        saved = self._held()
        self.set_state(metric_variables)
        try:
            self.update_state(y_true, y_pred, sample_weight=sample_weight)
            return self._held()
        finally:
            self._hold(saved)

    def stateless_result(self, metric_variables: Any) -> Any:
        """Keras's stateless form: :meth:`result` of the state ``metric_variables`` (which
        ``result`` reads, never changes)."""
        raw = list(metric_variables.values if isinstance(metric_variables, MetricState) else metric_variables)
        values = [np.asarray(to_host(v), dtype=var.dtype) for v, var in zip(raw, self._variables)]
        wanted = [var.shape for var in self._variables]
        if len(raw) != len(wanted) or [v.shape for v in values] != wanted:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} has state shapes {wanted}, got "
                f"{[np.shape(v) for v in raw]}"
            )
        saved = self._held()
        self._hold(values)
        try:
            return self.result()
        finally:
            self._hold(saved)

    def stateless_reset_state(self) -> list:
        """Keras's stateless form: the state arrays after a reset."""
        saved = self._held()
        self.reset_state()
        fresh = self._held()
        self._hold(saved)
        return fresh

    def _held(self) -> list:
        """The variables' arrays themselves (not copies)."""
        return [v._value for v in self._variables]

    def _hold(self, arrays: list) -> None:
        """Let the variables hold ``arrays`` (as they are: not copied)."""
        for v, a in zip(self._variables, arrays):
            v._value = a

    # ------------------------------------------------------------------------------ the rest
    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        """Update with one batch and return the result (as Keras)."""
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()

    def get_config(self) -> dict:
        """The arguments that rebuild this metric (``cls(**config)``)."""
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict) -> Metric:
        return cls(**config)

    def copy(self) -> Metric:
        """An independent copy (same configuration and state)."""
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def array_module(a: Any) -> Any:
    """``numpy`` or ``cupy``: the module of the arrays ``fit`` passes to a metric (``numpy``
    for anything that is not a GPU array)."""
    return xp_of(a)


def target_and_output(y_true: Any, y_pred: Any, sparse: bool = False) -> tuple:
    """``(xp, y_true, y_pred)`` as arrays of ``y_pred``'s module, their shapes checked: dense
    targets have the prediction's shape (up to a trailing axis of size 1), sparse ones lack its
    last axis."""
    xp = array_module(y_pred)
    y_pred = xp.asarray(y_pred)
    y_true = xp.asarray(y_true)
    if y_pred.ndim == 0:
        raise ValueError("y_pred must have at least one axis")
    check_target_shape(tuple(y_true.shape), tuple(y_pred.shape), sparse, "y_true")
    return xp, y_true, y_pred


def as_result(value: Any) -> Any:
    """A metric result as logs hold it: a float, or a NumPy array for several values."""
    value = to_host(value)
    return float(value) if value.size == 1 else value.astype(np.float64)


__all__ = [
    "AGGREGATIONS",
    "Metric",
    "MetricState",
    "MetricVariable",
    "array_module",
    "as_result",
    "merge_states",
    "target_and_output",
]
