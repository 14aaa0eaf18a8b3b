"""What training asks of a model: the narrow internal surface :class:`~cgru.Sequential` offers.

The training code never imports the model's module; it calls these members only, so a model
class that has them can be trained by :mod:`cgru.training`.
"""

from __future__ import annotations

from typing import Any, Protocol


class Trainee(Protocol):
    """The members of a model that :mod:`cgru.training` uses.

    Keras-visible state: ``layers``, ``trainable_weights``, ``compiled``, ``optimizer``,
    ``loss``, ``stop_training``, ``history``, ``dtype`` (the output's float dtype),
    ``_metrics`` and ``_weighted_metrics`` (the metrics as compiled: names or objects; the
    weighted ones see the sample weights). The methods, all on checked data:
    """

    layers: list
    trainable_weights: list
    compiled: bool
    optimizer: Any
    loss: Any
    stop_training: bool
    history: Any
    dtype: str
    _metrics: list
    _weighted_metrics: list

    def compute_output_shape(self, input_shape: tuple) -> Any:
        """The output shape for ``input_shape`` (batch first)."""

    def _accept_input(self, x: Any, lengths: Any) -> Any:
        """Build the model for ``x``'s shape if needed and check ``x``'s shape against it and
        ``lengths`` (the model's entry check); returns the checked lengths (int64 or None)."""

    def _check_stateful_batches(self, n: int, batch_size: int, what: str) -> None:
        """Raise when stateful layers cannot take ``n`` samples in batches of ``batch_size``."""

    def _current_ops(self) -> Any:
        """The backend ops the model runs on now."""

    def _ensure_bound(self) -> Any:
        """Bind the layers to the current ops (moving weights if the backend changed); the ops."""

    def _pinned_now(self) -> Any:
        """The weights as one consistent set (:class:`cgru.layers.weights.Pinned`)."""

    def _run_pinned(self, fn: Any, *args: Any) -> Any:
        """``fn(pinned, *args)`` on one set of weights from start to end."""

    def _prepare_input(self, x: Any) -> Any:
        """A batch of host input as the first layer takes it (on the backend's device)."""

    def _forward(self, x: Any, training: bool, lengths: Any, pinned: Any = None) -> tuple:
        """``(output, caches, output lengths)`` of every layer run on ``pinned``'s weights."""

    def _backward(self, dy: Any, caches: list) -> None:
        """Backpropagate the output gradient ``dy`` through :meth:`_forward`'s ``caches``,
        leaving each weight's gradient in its ``grad``."""
