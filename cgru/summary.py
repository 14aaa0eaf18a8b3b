"""``Sequential.summary()``: a Keras-like table of the layers, output shapes and parameter counts."""

from __future__ import annotations

from typing import Any

import numpy as np


def readable_bytes(n: float) -> str:
    """``n`` bytes as Keras writes sizes: ``"1.50 KB"``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def _size(params: list) -> tuple[int, int]:
    """(scalars, bytes) of ``params``."""
    counts = [int(np.prod(p.shape)) for p in params]
    return sum(counts), sum(c * p.value.dtype.itemsize for c, p in zip(counts, params))


def summary_lines(model: Any, line_length: int | None = None) -> list[str]:
    """The lines of the table for a built ``model``: its name, one row per layer, the totals.

    Columns widen to fit long names; ``line_length`` sets a minimum width (default 65).
    """
    rows = []
    shape: Any = model.input_shape
    for layer in model.layers:
        shape = layer.compute_output_shape(shape)
        rows.append(
            [
                f" {layer.name} ({type(layer).__name__})",
                str(shape).replace("'", ""),
                f"{layer.count_params():,}",
            ]
        )
    header = [" Layer (type)", "Output Shape", "Param #"]
    widths = [max(len(r[i]) for r in [header, *rows]) + 2 for i in range(3)]
    width = max(line_length or 65, sum(widths))
    widths[0] = max(widths[0], int(width * 0.45))
    widths[1] = max(widths[1], int(width * 0.85) - widths[0])
    widths[2] = width - widths[0] - widths[1]

    def row(fields: list) -> str:
        return "".join(str(f).ljust(w) for f, w in zip(fields, widths))

    lines = [f'Model: "{model.name}"', "_" * width, row(header), "=" * width]
    for i, fields in enumerate(rows):
        lines.append(row(fields))
        if i < len(rows) - 1:
            lines.append("")
    total = model.count_params()
    _, total_bytes = _size(model.weights)
    trainable, train_bytes = _size(model.trainable_weights)
    lines += [
        "=" * width,
        f"Total params: {total:,} ({readable_bytes(total_bytes)})",
        f"Trainable params: {trainable:,} ({readable_bytes(train_bytes)})",
        f"Non-trainable params: {total - trainable:,} ({readable_bytes(total_bytes - train_bytes)})",
        "_" * width,
    ]
    return [line.rstrip() if line.strip() else line for line in lines]


def print_summary(model: Any, line_length: int | None = None, print_fn: Any = None) -> None:
    """Pass each line of :func:`summary_lines` to ``print_fn`` (default: ``print``)."""
    print_fn = print_fn or print
    for line in summary_lines(model, line_length):
        print_fn(line)


__all__ = ["print_summary", "readable_bytes", "summary_lines"]
