"""Training and evaluation: what ``compile``, ``fit``, ``evaluate``, ``train_on_batch`` and
``test_on_batch`` of :class:`~cgru.Sequential` run.

- :mod:`.compiled`: the optimizer, loss and metrics ``compile()`` chooses, checked and saved;
- :mod:`.data`: batches of arrays and the checks of a data set;
- :mod:`.adapters`: the forms of data (arrays, generators, PyDatasets, iterables of batches)
  and the batch sources they become, with Keras's epoch rules; :mod:`.prefetch`: a PyDataset's
  batches prepared ahead by threads or processes;
- :mod:`.weights`: class weights turned into sample weights from the targets (the sample
  weights' checks and rules: :mod:`cgru.sample_weights`);
- :mod:`.step`: one step on one batch (forward, loss, backward, gradients, optimizer);
- :mod:`.logs`: the loss and metric values, accumulated in one place;
- :mod:`.strategy`: where several processes combine gradients and logs, and who prints;
- :mod:`.loop`: the one batch loop that ``fit`` and ``evaluate`` share, and the four entry points;
- :mod:`.surface`: the few model members all of this uses (the model's module is never imported).
"""

from .compiled import compile_config, compile_model, metrics_names, optimizer_state, restore_optimizer_state
from .data import Batch
from .loop import evaluate, fit, test_on_batch, train_on_batch
from .step import loss_and_grads

__all__ = [
    "Batch",
    "compile_config",
    "compile_model",
    "evaluate",
    "fit",
    "loss_and_grads",
    "metrics_names",
    "optimizer_state",
    "restore_optimizer_state",
    "test_on_batch",
    "train_on_batch",
]
