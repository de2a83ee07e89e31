"""Figures of a fit: target vs fitted traces and the input currents (matplotlib, Agg, written to a file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def plot_fit(path: str | os.PathLike, current: np.ndarray, dt: float, fitted_voltage: np.ndarray,
             fitted_spikes: np.ndarray, target_voltage: np.ndarray | None = None,
             target_spikes: np.ndarray | None = None, title: str = "") -> Path:
    """Write a PNG: per trace (columns), voltage target vs fitted (or spike rasters) above the input current.

    Arrays are [B, T] (mV, 0/1, nA); ``dt`` in ms.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = current.shape[0]
    time = np.arange(current.shape[1]) * dt
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 4.6), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [3, 1]})
    for i in range(n):
        top, bottom = axes[0, i], axes[1, i]
        if target_voltage is not None:
            top.plot(time, target_voltage[i], color="0.3", lw=0.9, label="target")
            top.plot(time, fitted_voltage[i], color="tab:red", lw=0.8, alpha=0.85, label="fitted")
            top.set_ylabel("V (mV)" if i == 0 else "")
        else:
            rows = ((1, target_spikes, "0.3", "target"), (0, fitted_spikes, "tab:red", "fitted"))
            for row, spikes, color, label in rows:
                times = time[np.asarray(spikes[i]) > 0.5]
                top.vlines(times, row + 0.1, row + 0.9, color=color, lw=1.2, label=label)
            top.set_yticks([0.5, 1.5], ["fitted", "target"])
        bottom.plot(time, current[i], color="tab:blue", lw=0.8)
        bottom.set_xlabel("time (ms)")
        bottom.set_ylabel("I (nA)" if i == 0 else "")
        top.set_title(f"trace {i}", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_losses(path: str | os.PathLike, curves: dict[str, tuple[np.ndarray, np.ndarray]], ylabel: str,
                title: str = "") -> Path:
    """Write a PNG of best loss so far against wall seconds, one line per method (log-log where positive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, (seconds, loss) in curves.items():
        ax.step(seconds, np.maximum(loss, 1e-6), where="post", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
