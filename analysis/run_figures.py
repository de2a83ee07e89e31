"""Figures of one run (``train``, ``simulate-network``, ``fit``, ``demo``), drawn as the report draws its own.

Every figure is a :class:`matplotlib.figure.Figure` on the Agg canvas (``analysis.figures.new_figure``), never
pyplot: no global backend switch, safe from any thread. The functions take a run's dataset (or its plain
arrays for a fit) and a path, and return the path. The weight histograms of a training run are the report's
own figure, fed with the run's statistics, so the two never disagree.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from analysis import figures, weights


def learning_curves(ds: xr.Dataset, path: str | Path) -> Path:
    """Training loss and accuracy per iteration, and the final test accuracy."""
    fig, (ax_loss, ax_acc) = figures.new_figure(2, width=5.0, height=3.5)
    it = ds["iteration"].values
    ax_loss.plot(it, ds["loss"].values, lw=1)
    ax_loss.set(xlabel="iteration", ylabel="recall cross-entropy per step", yscale="log", title="loss")
    ax_acc.plot(it, ds["accuracy"].values, lw=1, label="training batch")
    ax_acc.axhline(float(ds["test_accuracy"]), color="k", ls="--", lw=1, label="test (end)")
    ax_acc.set(xlabel="iteration", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    ax_acc.legend(loc="lower right")
    fig.suptitle(f"{ds.attrs['method']}, {ds.attrs['conn_method']}, n_rec={ds.attrs['n_rec']}")
    return figures.save(fig, path)


def raster_and_membrane(ds: xr.Dataset, path: str | Path, trial: int = 0) -> Path:
    """Spike raster of one recorded test trial (E red, I blue) and the stored membrane traces."""
    fig = figures.blank_figure(10, 6)
    ax_r, ax_v = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    dt = float(ds["dt"])
    offsets = ds["spike_trial_offsets"].values
    sl = slice(int(offsets[trial]), int(offsets[trial + 1]))
    times = ds["spike_time"].values[sl] * dt
    neurons = ds["spike_neuron"].values[sl]
    excitatory = ds["is_excitatory"].values[neurons] if neurons.size else np.zeros(0, bool)
    ax_r.scatter(times[excitatory], neurons[excitatory], s=2, c="tab:red", label="excitatory")
    ax_r.scatter(times[~excitatory], neurons[~excitatory], s=2, c="tab:blue", label="inhibitory")
    ax_r.set(ylabel="neuron", ylim=(-0.5, ds.sizes["neuron"] - 0.5), title=f"test trial {trial}: spikes")
    ax_r.legend(loc="upper right", markerscale=4)
    for k, neuron in enumerate(ds["v_neuron"].values):
        ax_v.plot(ds["v_time"].values, ds["v_trace"].values[:, k], lw=0.8, label=f"neuron {neuron}")
    ax_v.set(xlabel="time (ms)", ylabel="membrane (mV)", title="membrane potential (trial 0)")
    if ds.sizes.get("v_neuron", 0):
        ax_v.legend(loc="upper right", fontsize=7, ncol=2)
    return figures.save(fig, path)


def run_weight_histograms(ds: xr.Dataset, path: str | Path) -> Path:
    """The report's before/after weight figure for this one run (first and last snapshot)."""
    stats = weights.weight_statistics(ds)
    table = stats.expand_dims(method=[str(ds.attrs.get("method", "run"))])
    for p in weights.POPULATIONS:
        table[f"tv_distance_pooled_{p}"] = table[f"tv_distance_{p}"]
    units = ds["w_hist_exc"].attrs.get("units", "") or "1"
    return figures.weight_histograms(table, np.asarray(ds["weight_bin_edges"].values), path, units=units)


def write_train_figures(ds: xr.Dataset, directory: str | Path) -> tuple[list[Path], list[str]]:
    """All figures a training run's dataset supports; returns (written paths, reasons for the skipped ones)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    if ds.sizes.get("iteration", 0) > 0:
        written.append(learning_curves(ds, directory / "loss_accuracy.png"))
    else:
        skipped.append("loss_accuracy.png: no training iterations (mode=sim)")
    if ds.sizes.get("trial_edge", 0) >= 2:
        written.append(raster_and_membrane(ds, directory / "raster_membrane.png"))
    else:
        skipped.append("raster_membrane.png: no recorded trial")
    written.append(run_weight_histograms(ds, directory / "weight_histograms.png"))
    return written, skipped


def simulation_raster(ds: xr.Dataset, path: str | Path, max_neurons: int = 500) -> Path:
    """Raster of up to ``max_neurons`` neurons (evenly chosen, E red, I blue) over the population rate."""
    n = ds.sizes["neuron"]
    shown = np.unique(np.linspace(0, n - 1, min(n, max_neurons)).astype(np.int64))
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[shown] = np.arange(shown.size)
    dt = float(ds["dt"])
    neuron = ds["spike_neuron"].values
    keep = row_of[neuron] >= 0
    t = ds["spike_time"].values[keep] * dt
    rows = row_of[neuron[keep]]
    exc = ds["is_excitatory"].values[neuron[keep]]
    fig = figures.blank_figure(10, 6)
    ax_r, ax_p = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ax_r.scatter(t[exc], rows[exc], s=1, c="tab:red", lw=0, label="excitatory")
    ax_r.scatter(t[~exc], rows[~exc], s=1, c="tab:blue", lw=0, label="inhibitory")
    ax_r.set(ylabel=f"neuron ({shown.size} of {n})", ylim=(-1, shown.size))
    ax_r.legend(loc="upper right", markerscale=8)
    ax_p.plot(ds["rate_time"].values, ds["population_rate"].values, lw=0.8, c="k")
    ax_p.set(xlabel="time (ms)", ylabel="rate (Hz)")
    fig.suptitle(f"{ds.attrs['preset']}, n={n}, {ds.attrs['conn_method']}: mean {float(ds['mean_rate']):.1f} Hz "
                 f"(E {float(ds['mean_rate_exc']):.1f}, I {float(ds['mean_rate_inh']):.1f}), "
                 f"{float(ds['seconds_per_sim_second']):.3g} s per simulated s")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return figures.save(fig, path)


def fit_traces(path: str | os.PathLike, current: np.ndarray, dt: float, fitted_voltage: np.ndarray,
               fitted_spikes: np.ndarray, target_voltage: np.ndarray | None = None,
               target_spikes: np.ndarray | None = None, title: str = "") -> Path:
    """Per trace (columns): voltage target vs fitted (or spike rasters) above the input current.

    Arrays are [B, T] (mV, 0/1, nA); ``dt`` in ms.
    """
    n = current.shape[0]
    time = np.arange(current.shape[1]) * dt
    fig = figures.blank_figure(3.2 * n, 4.6)
    axes = fig.subplots(2, n, squeeze=False, sharex="col", height_ratios=(3, 1))
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
    return figures.save(fig, path, dpi=90)


def loss_curves(path: str | os.PathLike, curves: dict[str, tuple[np.ndarray, np.ndarray]], ylabel: str,
                title: str = "") -> Path:
    """Best loss so far against wall seconds, one line per method (log-log where positive)."""
    fig, (ax,) = figures.new_figure(1, width=5.5, height=3.8)
    for name, (seconds, loss) in curves.items():
        ax.step(seconds, np.maximum(loss, 1e-6), where="post", label=name)
    ax.set(xscale="log", yscale="log", xlabel="wall time (s)", ylabel=ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return figures.save(fig, path, dpi=90)
