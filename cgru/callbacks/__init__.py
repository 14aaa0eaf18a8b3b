"""Training callbacks (Keras names and semantics).

- :class:`Callback`: the base class; override any ``on_*`` hook. ``self.model`` is the model
  being trained, ``self.params`` holds ``epochs``, ``steps`` and ``verbose``.
- :class:`History`: recorded automatically by ``fit`` and returned by it: ``history.history``
  maps ``"loss"``, each metric name, ``"val_loss"`` and ``"val_<metric>"`` to per-epoch values;
  :meth:`History.plot` draws them (needs matplotlib).
- :class:`EarlyStopping`: stop when a monitored value stops improving, optionally restoring the
  best weights (Keras 3's rules, ``min_delta`` included).
- :class:`ModelCheckpoint`: save the model (or only the weights) after each epoch, or only
  when it improves; ``filepath`` ends in ``.npz`` and may contain ``{epoch}`` and log keys,
  e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"`` (checked when the callback is made).
- :class:`MonitorCallback`: their common base (what "improves" means, ``mode="auto"``).
- :class:`TerminateOnNaN`: stop at the first batch with a NaN or infinite loss and put back the
  last weights that gave a finite loss.
- :class:`ReduceLROnPlateau`: multiply the learning rate by ``factor`` when a monitored value
  stops improving; :class:`LearningRateScheduler`: set it at each epoch's start from
  ``schedule(epoch, lr)``. Both log it at each epoch's end as ``"learning_rate"`` (so it is in
  ``History``), as Keras 3 does.
- :class:`CSVLogger`: write each epoch's logs to a CSV file, in Keras's format.
- :class:`LambdaCallback`: a callback made of functions, one per hook.

Batch logs hold the running means of the epoch so far (as Keras 3) plus ``"batch_loss"``,
the loss of that batch alone.

Modules: :mod:`.base` (the protocol, ``History``, ``LambdaCallback``), :mod:`.monitoring`
(``MonitorCallback``, ``EarlyStopping``, ``TerminateOnNaN``), :mod:`.checkpoint`,
:mod:`.learning_rate`, :mod:`.csv_logger`; every class is imported from ``cgru.callbacks``.
"""

from .base import Callback, CallbackList, History, LambdaCallback
from .base import check_callbacks as check_callbacks
from .checkpoint import CHECKPOINT_SUFFIX as CHECKPOINT_SUFFIX
from .checkpoint import ModelCheckpoint
from .csv_logger import CSVLogger
from .learning_rate import LearningRateScheduler, ReduceLROnPlateau
from .monitoring import EarlyStopping, MonitorCallback, TerminateOnNaN

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "MonitorCallback",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]
