"""Reading the PyTorch golden vectors (made by make_golden.py) and running them through ops."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
GOLDEN_CASES = sorted(p.stem.removeprefix("gru_golden_") for p in DATA.glob("gru_golden_*.npz"))


def load_case(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"gru_golden_{name}.npz", allow_pickle=False) as f:
        return dict(f)


def torch_gates_to_keras(a: np.ndarray, hidden: int) -> np.ndarray:
    """Reorder PyTorch's gate blocks (r, z, n) along axis 0 into Keras's (z, r, h)."""
    return np.concatenate([a[hidden:2 * hidden], a[:hidden], a[2 * hidden:]])


def keras_weights(case: dict, layer: int, suffix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H)) of one layer/direction."""
    hidden = int(case["meta"][2])
    w_ih, w_hh = case[f"weight_ih_l{layer}{suffix}"], case[f"weight_hh_l{layer}{suffix}"]
    b_ih, b_hh = case[f"bias_ih_l{layer}{suffix}"], case[f"bias_hh_l{layer}{suffix}"]
    return (
        torch_gates_to_keras(w_ih, hidden).T.copy(),
        torch_gates_to_keras(w_hh, hidden).T.copy(),
        np.stack([torch_gates_to_keras(b_ih, hidden), torch_gates_to_keras(b_hh, hidden)]),
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
