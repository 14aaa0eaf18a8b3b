"""Regenerate the PyTorch golden vectors in tests/data/ (needs torch).

    python tests/make_golden.py

Each case runs ``torch.nn.GRU`` in float64 on random inputs (packed sequences when ragged) and
stores, in ``tests/data/gru_golden_<case>.npz``:

- ``x`` (B, T, I), ``lengths`` (B,), upstream gradients ``gy`` (B, T, D*H) and ``gh``
  (L*D, B, H), and ``meta`` = [num_layers, bidirectional, hidden, ragged];
- the module's raw parameters under their state_dict names (``weight_ih_l0``, ...);
- its outputs ``y`` (B, T, D*H) and ``h_n`` (L*D, B, H);
- gradients: ``grad_x`` and ``grad_<param name>`` of sum(y * gy) + sum(h_n * gh).

The suite only reads these files, so it runs without torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"

# name: (batch, time, input, hidden, num_layers, bidirectional, lengths or None)
CASES = {
    "uni_full": (2, 5, 3, 4, 1, False, None),
    "uni_ragged": (3, 6, 4, 5, 1, False, [6, 2, 4]),
    "bi_ragged": (3, 7, 5, 6, 1, True, [7, 4, 1]),
    "bi_full": (2, 4, 3, 3, 1, True, None),
    "stacked_bi_ragged": (3, 6, 3, 5, 2, True, [6, 3, 5]),
    "batch1_long": (1, 24, 2, 7, 1, False, None),
}


def make_case(batch, time, features, hidden, num_layers, bidirectional, lengths, seed):
    import torch

    torch.manual_seed(seed)
    gru = torch.nn.GRU(features, hidden, num_layers=num_layers, bidirectional=bidirectional,
                       batch_first=True).double()
    with torch.no_grad():  # larger than the default init, so the gates leave their linear range
        for p in gru.parameters():
            p.uniform_(-0.8, 0.8)
    directions = 2 if bidirectional else 1
    x = torch.randn(batch, time, features, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(batch, time, directions * hidden, dtype=torch.float64)
    gh = torch.randn(num_layers * directions, batch, hidden, dtype=torch.float64)
    lens = lengths if lengths is not None else [time] * batch
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    out, h_n = gru(packed)
    y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=time)
    ((y * gy).sum() + (h_n * gh).sum()).backward()
    arrays = {
        "x": x.detach().numpy(),
        "lengths": np.asarray(lens, dtype=np.int64),
        "gy": gy.numpy(),
        "gh": gh.numpy(),
        "meta": np.array([num_layers, int(bidirectional), hidden, int(lengths is not None)]),
        "y": y.detach().numpy(),
        "h_n": h_n.detach().numpy(),
        "grad_x": x.grad.numpy(),
    }
    for name, p in gru.named_parameters():
        arrays[name] = p.detach().numpy()
        arrays["grad_" + name] = p.grad.numpy()
    return arrays


def main() -> None:
    DATA.mkdir(exist_ok=True)
    for seed, (name, case) in enumerate(CASES.items()):
        np.savez_compressed(DATA / f"gru_golden_{name}.npz", **make_case(*case, seed=seed))
        print("wrote", DATA / f"gru_golden_{name}.npz")


if __name__ == "__main__":
    main()
