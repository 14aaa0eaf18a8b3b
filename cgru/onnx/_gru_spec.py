"""How cgru's GRU settings map onto the ONNX ``GRU`` operator, for both directions of travel.

ONNX ``GRU`` stores W ``(D, 3H, I)``, R ``(D, 3H, H)`` and B ``(D, 6H)`` = [Wb, Rb], gate blocks
z, r, h (Keras's order, transposed: see :func:`cgru.interop.gru_to_gate_rows`), directions
forward first. ``linear_before_reset=1`` is cgru's ``reset_after=True``, 0 is
``reset_after=False``. Each direction names two activations, f (the z and r gates: cgru's
``recurrent_activation``) and g (the candidate: cgru's ``activation``).

``activation_alpha``/``activation_beta`` are read differently by different readers of the
standard: ONNX Runtime hands the values out in turn to the functions that take one, others index
them by the function's position. :func:`activation_attributes` writes lists that mean the same
under both readings (or says it cannot, and the exporter then splits the directions into
separate nodes); :func:`read_activations` reads them as ONNX Runtime does.
"""

from __future__ import annotations

import numpy as np

#: cgru activation -> (ONNX function, alpha, beta); None where the function takes no parameter.
CANDIDATE = {"tanh": ("Tanh", None, None), "relu": ("Relu", None, None), "linear": ("Affine", 1.0, 0.0)}
#: Keras 3's hard sigmoid relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1) is ONNX HardSigmoid(1/6, 0.5).
GATE = {"sigmoid": ("Sigmoid", None, None), "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5)}

#: ONNX RNN activation functions that take an alpha / a beta (ONNX Runtime's reading).
_TAKES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_TAKES_BETA = {"affine", "scaledtanh", "hardsigmoid"}
_DEFAULT = ("Sigmoid", "Tanh")


def direction_functions(recurrent_activation: str, activation: str) -> list[tuple]:
    """[(f name, alpha, beta), (g name, alpha, beta)] of one direction."""
    return [GATE[recurrent_activation], CANDIDATE[activation]]


def activation_attributes(functions: list[tuple]) -> dict | None:
    """GRU attributes for the per-direction functions ``[(name, alpha, beta), ...]`` (f, g of
    each direction in turn): {} for the default (Sigmoid, Tanh in every direction); None when
    no alpha/beta lists mean the same under both readings of the standard."""
    names = [f[0] for f in functions]
    if all((names[i], names[i + 1]) == _DEFAULT for i in range(0, len(names), 2)):
        return {}
    attrs: dict = {"activations": names}
    for key, column in (("activation_alpha", 1), ("activation_beta", 2)):
        takers = [(pos, f[column]) for pos, f in enumerate(functions) if f[column] is not None]
        slots: dict[int, float] = {}
        for rank, (pos, value) in enumerate(takers):
            # read in turn, value number `rank` goes to this function; read by position, number `pos`
            for slot in {rank, pos}:
                if slots.get(slot, value) != value:
                    return None
                slots[slot] = value
        if slots:
            attrs[key] = [float(slots.get(i, 0.0)) for i in range(max(slots) + 1)]
    return attrs


def read_activations(names: list[str], alphas: list[float], betas: list[float]) -> list[tuple]:
    """``[(name, alpha, beta), ...]`` with the values handed out as ONNX Runtime does: in turn,
    to the functions that take one (names compare case-insensitively)."""
    alphas, betas = list(alphas), list(betas)
    out = []
    for name in names:
        key = name.lower()
        alpha = alphas.pop(0) if key in _TAKES_ALPHA and alphas else None
        beta = betas.pop(0) if key in _TAKES_BETA and betas else None
        out.append((name, alpha, beta))
    return out


def gate_activation(function: tuple, where: str) -> str:
    """The cgru ``recurrent_activation`` for an ONNX f; ValueError when cgru has none."""
    name, alpha, beta = function
    name = name.lower()
    if name == "sigmoid":
        return "sigmoid"
    if name == "hardsigmoid" and _close(alpha, 1.0 / 6.0) and _close(beta, 0.5):
        return "hard_sigmoid"
    raise ValueError(f"{where}: gate activation {_describe(function)} is not supported; cgru has Sigmoid "
                     "and HardSigmoid(alpha=1/6, beta=0.5) (Keras 3's hard_sigmoid)")


def candidate_activation(function: tuple, where: str) -> str:
    """The cgru ``activation`` for an ONNX g; ValueError when cgru has none."""
    name, alpha, beta = function
    name = name.lower()
    if name in ("tanh", "relu"):
        return name
    if name == "affine" and _close(alpha, 1.0) and _close(beta, 0.0):
        return "linear"
    raise ValueError(f"{where}: candidate activation {_describe(function)} is not supported; cgru has Tanh, "
                     "Relu and Affine(alpha=1, beta=0) (linear)")


def _close(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-6 * max(1.0, abs(target))


def _describe(function: tuple) -> str:
    name, alpha, beta = function
    params = [f"{k}={v:g}" for k, v in (("alpha", alpha), ("beta", beta)) if v is not None]
    return f"{name}({', '.join(params)})" if params else name


def gate_rows_to_onnx(rows: list[tuple], dtype: np.dtype) -> tuple:
    """Per direction ``(w_in, w_rec, b_in, b_rec)`` -> ONNX (W, R, B); B is None when no
    direction has a bias (a missing bias is zeros)."""
    w = np.stack([r[0] for r in rows]).astype(dtype)
    r = np.stack([r[1] for r in rows]).astype(dtype)
    if all(row[2] is None for row in rows):
        return w, r, None
    h3 = w.shape[1]
    b = np.stack([np.concatenate([row[2] if row[2] is not None else np.zeros(h3),
                                  row[3] if row[3] is not None else np.zeros(h3)]) for row in rows])
    return w, r, b.astype(dtype)
