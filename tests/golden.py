"""Reading the PyTorch golden vectors (made by make_golden.py) and running them through ops;
PyTorch GRU weights in Keras's layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "data"
GOLDEN_CASES = sorted(p.stem.removeprefix("gru_golden_") for p in DATA.glob("gru_golden_*.npz"))


#: The parameters of one direction of a torch.nn.GRU layer, before their suffix ("_l0"...).
TORCH_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def load_case(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"gru_golden_{name}.npz", allow_pickle=False) as f:
        return dict(f)


def torch_gates_to_keras(a: np.ndarray, hidden: int) -> np.ndarray:
    """Reorder PyTorch's gate blocks (r, z, n) along axis 0 into Keras's (z, r, h)."""
    return np.concatenate([a[hidden:2 * hidden], a[:hidden], a[2 * hidden:]])


def gru_weights_from_torch(w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> list:
    """``[kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H)]`` from one direction's
    ``weight_ih (3H, I)``, ``weight_hh (3H, H)``, ``bias_ih`` and ``bias_hh (3H,)`` of PyTorch."""
    hidden = w_hh.shape[1]
    return [
        torch_gates_to_keras(w_ih, hidden).T.copy(),
        torch_gates_to_keras(w_hh, hidden).T.copy(),
        np.stack([torch_gates_to_keras(b_ih, hidden), torch_gates_to_keras(b_hh, hidden)]),
    ]


def keras_weights(case: dict, layer: int, suffix: str) -> list:
    """[kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H)] of one layer/direction."""
    return gru_weights_from_torch(*(case[f"{name}_l{layer}{suffix}"] for name in TORCH_NAMES))


def torch_to_keras(gru: Any, suffix: str = "_l0") -> list:
    """[kernel, recurrent_kernel, bias] in float64 of one direction (``suffix``: ``"_l0"``,
    ``"_l0_reverse"``...) of a live ``torch.nn.GRU``."""
    return gru_weights_from_torch(
        *(getattr(gru, f"{name}{suffix}").detach().double().numpy() for name in TORCH_NAMES)
    )


def run_case(ops, case: dict, dtype) -> dict[str, np.ndarray]:
    """Forward and backward of the whole (stacked, maybe bidirectional) network through ``ops``.

    Returns y, h_n, grad_x and the parameter gradients in PyTorch's layout and names.
    """
    num_layers, bidirectional, hidden = (int(v) for v in case["meta"][:3])
    suffixes = ["", "_reverse"] if bidirectional else [""]
    lengths = case["lengths"] if case["meta"][3] else None
    inputs = case["x"].astype(dtype)
    caches, h_n = [], []
    for layer in range(num_layers):
        outs = []
        for d, suffix in enumerate(suffixes):
            weights = (w.astype(dtype) for w in keras_weights(case, layer, suffix))
            y, h, cache = ops.gru_forward(inputs, *weights, lengths=lengths, reverse=d == 1, training=True)
            outs.append(ops.to_numpy(y))
            h_n.append(ops.to_numpy(h))
            caches.append(cache)
        inputs = np.concatenate(outs, axis=-1)
    result = {"y": inputs, "h_n": np.stack(h_n)}

    dy = case["gy"].astype(dtype)
    for layer in reversed(range(num_layers)):
        dx = 0
        for d, suffix in enumerate(suffixes):
            index = layer * len(suffixes) + d
            g = ops.gru_backward(dy[..., d * hidden:(d + 1) * hidden], case["gh"][index].astype(dtype),
                                 caches[index])
            dx = dx + ops.to_numpy(g.dx)
            back = lambda a: torch_gates_to_keras(ops.to_numpy(a).T, hidden)  # noqa: E731 (Keras -> torch)
            result[f"grad_weight_ih_l{layer}{suffix}"] = back(g.dkernel)
            result[f"grad_weight_hh_l{layer}{suffix}"] = back(g.drecurrent_kernel)
            dbias = ops.to_numpy(g.dbias)
            result[f"grad_bias_ih_l{layer}{suffix}"] = torch_gates_to_keras(dbias[0], hidden)
            result[f"grad_bias_hh_l{layer}{suffix}"] = torch_gates_to_keras(dbias[1], hidden)
        dy = dx
    result["grad_x"] = dy
    return result
