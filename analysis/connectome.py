"""Connectome runs in the report: weights before/after training and firing rates per cell class and transmitter.

``train-network`` points with ``conn_method = "connectome"`` store, per grouping (``class``: the presynaptic
neuron's cell class, coord ``cell_class``; ``transmitter``: its transmitter, coord ``transmitter``), counts of
effective recurrent weights in log-spaced bins (``w_hist_{grouping}`` over ``stage`` x group x ``wg_bin``,
edges ``w_group_bin_edges``), their mean (``w_mean_{grouping}``), synapse and neuron counts and the mean
firing rate of the group's neurons (``rate_{grouping}``). Points are pooled per run group (the swept
``connectome`` and ``method``): histograms summed, means and rates averaged. One figure per grouping
(panels: groups; lines: run groups before/after) and one table per grouping in ``summary.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from analysis import figures
from analysis.markdown import fmt, table
from analysis.points import POINT, group_labels

GROUPINGS = {"class": ("cell_class", "cell class"), "transmitter": ("transmitter", "transmitter")}
RUN_KEYS = ("connectome", "method")
FIGURES = {g: f"connectome_weights_by_{g}.png" for g in GROUPINGS}


def has_connectome(ds: xr.Dataset) -> bool:
    return all(f"w_hist_{g}" in ds.data_vars for g in GROUPINGS) and "w_group_bin_edges" in ds.data_vars


def group_table(ds: xr.Dataset, grouping: str) -> xr.Dataset:
    """Per run group (dim ``run``) and cell class or transmitter: pooled ``hist`` (stage, wg_bin), mean
    weights ``mean_initial``/``mean_final`` (S), ``rate`` (Hz), ``synapses`` and ``n_points``; ``edges``
    per run group (NaN where its points' bins differ: they cannot be pooled)."""
    dim = GROUPINGS[grouping][0]
    runs = group_labels(ds, RUN_KEYS)
    stored = ds[[f"w_hist_{grouping}", f"w_mean_{grouping}", f"rate_{grouping}", f"synapses_{grouping}",
                 "w_group_bin_edges"]].compute()
    hist = stored[f"w_hist_{grouping}"].astype(np.float64)
    hist = hist.where(hist >= 0)  # absent (another point's group): NaN or -1
    out = []
    for run in sorted(set(runs.tolist())):
        on = runs == run
        sub = stored.isel({POINT: np.flatnonzero(on)})
        h = hist.isel({POINT: np.flatnonzero(on)})
        edges = sub["w_group_bin_edges"].values
        same = np.allclose(edges, edges[0], equal_nan=True)
        mean = sub[f"w_mean_{grouping}"].astype(np.float64)
        synapses = sub[f"synapses_{grouping}"].astype(np.float64)
        out.append(xr.Dataset({
            "hist": h.sum(POINT, min_count=1),
            "mean_initial": mean.sel(stage="initial").mean(POINT),
            "mean_final": mean.sel(stage="final").mean(POINT),
            "rate": sub[f"rate_{grouping}"].astype(np.float64).mean(POINT),
            "synapses": synapses.where(synapses >= 0).mean(POINT),
            "edges": xr.DataArray(edges[0] if same else np.full(edges.shape[1], np.nan), dims=("wg_edge",)),
            "n_points": int(on.sum()),
        }).expand_dims(run=[run]))
    return xr.concat(out, dim="run").transpose("run", dim, ...)


def weights_figure(tab: xr.Dataset, grouping: str, path: Path) -> Path:
    """Panels: the groups (classes or transmitters); per run group, the fraction of the group's synapses
    per log-spaced weight bin before (dashed) and after (solid) training."""
    dim, words = GROUPINGS[grouping]
    groups = [g for g in tab[dim].values if np.isfinite(tab["hist"].sel({dim: g}).values).any()]
    fig, axes = figures.new_figure(max(1, len(groups)), width=4.2, height=3.0)
    for ax, group in zip(axes, groups, strict=False):
        for i, run in enumerate(tab["run"].values):
            edges = tab["edges"].sel(run=run).values
            if not np.isfinite(edges).all():
                continue
            for stage, style in (("initial", "--"), ("final", "-")):
                counts = tab["hist"].sel(run=run, stage=stage, **{dim: group}).values
                if not np.isfinite(counts).any() or np.nansum(counts) == 0:
                    continue
                label = f"{run} {'before' if stage == 'initial' else 'after'}"
                ax.stairs(np.nan_to_num(counts) / np.nansum(counts), edges, color=f"C{i % 10}", linestyle=style,
                          label=label)
        ax.set_xscale("log")
        ax.set(title=f"{words} {group}", xlabel="|w| (S)", ylabel="fraction of synapses")
        ax.legend(fontsize=6)
    fig.suptitle(f"Recurrent weights by presynaptic {words}, before vs after training")
    figures.save(fig, path)
    return path


def connectome_section(ds: xr.Dataset, out: Path, report) -> list[str]:
    """The report's section for connectome runs (nothing when the store has none)."""
    if not has_connectome(ds):
        for name in FIGURES.values():
            report.skipped[name] = "no connectome runs (w_hist_class/w_hist_transmitter of conn_method connectome)"
        return []
    lines = ["## Connectome: weights and rates by cell class and transmitter", "",
             "Per run group (connectome/method as swept) and presynaptic cell class or transmitter: synapses, "
             "mean abs(w) (S) before and after training (mean over points), its change, and the mean firing rate of "
             "the group's neurons over the recorded test trials.", ""]
    for grouping, (dim, words) in GROUPINGS.items():
        tab = group_table(ds, grouping)
        name = FIGURES[grouping]
        report.figures[name] = weights_figure(tab, grouping, out / name)
        rows = []
        for run in tab["run"].values:
            for group in tab[dim].values:
                one = tab.sel(run=run, **{dim: group})
                synapses, before, after = (float(one[v]) for v in ("synapses", "mean_initial", "mean_final"))
                rate = float(one["rate"])
                if not np.isfinite([synapses, rate]).any():
                    continue
                change = 100.0 * (after / before - 1.0) if before > 0 else float("nan")
                rows.append([str(run), str(group), synapses, before, after, change, rate, int(one["n_points"])])
        lines += [f"### By presynaptic {words}", ""]
        lines += table(["run", words, "synapses", "mean abs(w) before (S)", "mean abs(w) after (S)", "change (%)",
                        "rate (Hz)", "points"], ([r[0], r[1]] + [fmt(v) for v in r[2:]] for r in rows)) + [""]
    return lines
