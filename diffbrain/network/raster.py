"""The figure of one ``simulate-network`` run: a spike raster and the population rate (Agg, PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def raster_figure(ds, path: Path, max_neurons: int = 500) -> Path:
    """Raster of up to ``max_neurons`` neurons (evenly chosen, E in red, I in blue) over the population rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig, (ax_r, ax_p) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax_r.scatter(t[exc], rows[exc], s=1, c="tab:red", lw=0, label="excitatory")
    ax_r.scatter(t[~exc], rows[~exc], s=1, c="tab:blue", lw=0, label="inhibitory")
    ax_r.set(ylabel=f"neuron ({shown.size} of {n})", ylim=(-1, shown.size))
    ax_r.legend(loc="upper right", markerscale=8)
    ax_p.plot(ds["rate_time"].values, ds["population_rate"].values, lw=0.8, c="k")
    ax_p.set(xlabel="time (ms)", ylabel="rate (Hz)")
    fig.suptitle(f"{ds.attrs['preset']}, n={n}, {ds.attrs['conn_method']}: mean {float(ds['mean_rate']):.1f} Hz "
                 f"(E {float(ds['mean_rate_exc']):.1f}, I {float(ds['mean_rate_inh']):.1f}), "
                 f"{float(ds['seconds_per_sim_second']):.3g} s per simulated s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path
