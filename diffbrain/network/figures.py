"""Figures of one ``train-network`` run, drawn from its dataset alone (matplotlib, Agg, PNG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(ds, path: Path) -> Path:
    """Training loss and accuracy per iteration, and the final test accuracy."""
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    it = ds["iteration"].values
    ax_loss.plot(it, ds["loss"].values, lw=1)
    ax_loss.set(xlabel="iteration", ylabel="recall cross-entropy per step", yscale="log", title="loss")
    ax_acc.plot(it, ds["accuracy"].values, lw=1, label="training batch")
    ax_acc.axhline(float(ds["test_accuracy"]), color="k", ls="--", lw=1, label="test (end)")
    ax_acc.set(xlabel="iteration", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
    ax_acc.legend(loc="lower right")
    fig.suptitle(f"{ds.attrs['method']}, {ds.attrs['conn_method']}, n_rec={ds.attrs['n_rec']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def raster_and_membrane(ds, path: Path, trial: int = 0) -> Path:
    """Spike raster of one recorded test trial (E red, I blue) and the stored membrane traces."""
    plt = _pyplot()
    dt = float(ds["dt"])
    offsets = ds["spike_trial_offsets"].values
    sl = slice(int(offsets[trial]), int(offsets[trial + 1]))
    times = ds["spike_time"].values[sl] * dt
    neurons = ds["spike_neuron"].values[sl]
    excitatory = ds["is_excitatory"].values[neurons] if neurons.size else np.zeros(0, bool)
    fig, (ax_r, ax_v) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=(2, 1))
    ax_r.scatter(times[excitatory], neurons[excitatory], s=2, c="tab:red", label="excitatory")
    ax_r.scatter(times[~excitatory], neurons[~excitatory], s=2, c="tab:blue", label="inhibitory")
    ax_r.set(ylabel="neuron", ylim=(-0.5, ds.sizes["neuron"] - 0.5), title=f"test trial {trial}: spikes")
    ax_r.legend(loc="upper right", markerscale=4)
    for k, neuron in enumerate(ds["v_neuron"].values):
        ax_v.plot(ds["v_time"].values, ds["v_trace"].values[:, k], lw=0.8, label=f"neuron {neuron}")
    ax_v.set(xlabel="time (ms)", ylabel="membrane (mV)", title="membrane potential (trial 0)")
    if ds.sizes.get("v_neuron", 0):
        ax_v.legend(loc="upper right", fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def weight_histograms(ds, path: Path) -> Path:
    """Effective recurrent weights from E and from I neurons, before (first snapshot) and after (last)."""
    plt = _pyplot()
    edges = ds["weight_bin_edges"].values
    centers, width = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    snaps = ds["snapshot"].values
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, pop in zip(axes, ("exc", "inh"), strict=True):
        hist = ds[f"w_hist_{pop}"].values
        ax.bar(centers, hist[0], width=width, alpha=0.5, label=f"iteration {snaps[0]}")
        if len(snaps) > 1:
            ax.bar(centers, hist[-1], width=width, alpha=0.5, label=f"iteration {snaps[-1]}")
        used = np.nonzero(hist.sum(axis=0))[0]
        ax.set_xlim(0, edges[used.max() + 1] if used.size else edges[-1])
        name = "excitatory" if pop == "exc" else "inhibitory"
        ax.set(xlabel="effective conductance |w| (S)", ylabel="synapses", title=f"from {name} neurons")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_figures(ds, directory: Path) -> tuple[list[Path], list[str]]:
    """All figures the dataset supports; returns (written paths, reasons for the skipped ones)."""
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
    written.append(weight_histograms(ds, directory / "weight_histograms.png"))
    return written, skipped
