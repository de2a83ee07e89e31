"""The one way figures are made here: a :class:`matplotlib.figure.Figure` on the Agg canvas, saved as PNG.

No pyplot (no global backend switch, no figure registry): figures can be drawn from any thread. Kept apart
from ``analysis.figures`` so a command that draws one figure imports matplotlib only, not xarray.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 120


def blank_figure(width: float, height: float) -> Figure:
    """An empty figure on the Agg canvas (constrained layout): the one way every figure here is made."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def new_figure(n_panels: int, width: float = 4.2, height: float = 3.4, ncols: int | None = None, sharey=False):
    """A figure of ``n_panels`` axes on a grid of ``ncols`` columns; returns (figure, axes)."""
    ncols = ncols or min(n_panels, 3)
    nrows = int(np.ceil(n_panels / ncols))
    fig = blank_figure(width * ncols, height * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def save(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` as a PNG at ``path`` (whatever its suffix: temporary names stay PNG)."""
    path = Path(path)
    fig.savefig(path, dpi=dpi, format="png")
    return path
