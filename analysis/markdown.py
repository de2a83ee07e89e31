"""Markdown tables and number formatting for ``summary.md``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import xarray as xr

MiB = 2**20


def fmt(value, digits: int = 4, scale: float = 1.0) -> str:
    """A number as text: NaN/None as an en dash, integers exactly, floats with ``digits`` significant digits."""
    if value is None:
        return "–"
    if isinstance(value, (str, np.str_)):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    value = float(value)
    if not math.isfinite(value):
        return "–"
    value = value / scale
    if value == int(value) and abs(value) < 1e12 and scale == 1.0:
        return str(int(value))
    return f"{value:.{digits}g}"


def table(headers: Sequence[str], rows: Iterable[Sequence]) -> list[str]:
    """A Markdown table (list of lines); cells are formatted with :func:`fmt` unless already text."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |")
    return lines


def rows_of(ds: xr.Dataset, dims: Sequence[str], columns: Sequence[tuple[str, str, float]],
            skip_empty: bool = True) -> tuple[list[str], list[list]]:
    """Headers and rows of a table with one row per combination of ``dims`` (computed Dataset).

    ``columns`` are ``(variable, header, scale)``; a value is shown divided by ``scale``. Rows whose
    values (other than ``n_points``) are all NaN (combinations never run) are left out when ``skip_empty``.
    """
    headers = list(dims) + [header for _, header, _ in columns]
    rows = []
    stacked = ds[[c for c, _, _ in columns]]
    coords = [list(ds[d].values) for d in dims]
    for combo in np.array(np.meshgrid(*[np.arange(len(c)) for c in coords], indexing="ij")).reshape(len(dims), -1).T \
            if dims else [()]:
        sel = {d: coords[k][i] for k, (d, i) in enumerate(zip(dims, combo, strict=True))}
        one = stacked.sel(sel) if sel else stacked
        values = [float(one[c].values) / scale for c, _, scale in columns]
        measured = [v for (c, _, _), v in zip(columns, values, strict=True) if c != "n_points"]
        if skip_empty and not any(math.isfinite(v) for v in measured):
            continue
        rows.append([str(v) for v in sel.values()] + [fmt(v) for v in values])
    return headers, rows
