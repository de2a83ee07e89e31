"""The report's figures: matplotlib with the Agg canvas, written as PNG files.

Every function takes small, already computed statistics (from the other ``analysis`` modules) and a
path, draws one figure and returns the path. No pyplot state is used, so figures can be drawn from any
thread.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

LINESTYLES = ("-", "--", ":", "-.")
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


def _series(da: xr.DataArray, along: str, panel: str | None):
    """(panel value, {other dim: value}, values along ``along``) for every non-empty line of ``da``."""
    panels = list(da[panel].values) if panel and panel in da.dims else [None]
    for value in panels:
        sub = da.sel({panel: value}) if value is not None else da
        others = [d for d in sub.dims if d != along]
        for combo in itertools.product(*(list(sub[d].values) for d in others)):
            line = sub.sel(dict(zip(others, combo, strict=True))) if others else sub
            if np.isfinite(line.values).any():
                yield value, dict(zip(others, combo, strict=True)), line


def _label(key: dict, da: xr.DataArray) -> str:
    """``dim=value`` for the dims that vary (size > 1) in ``da``."""
    return ", ".join(f"{k}={v}" for k, v in key.items() if da.sizes.get(k, 1) > 1) or "all"


def _plain_log_axes(ax, xticks) -> None:
    """Log axes labelled with plain numbers: x at the measured values, y at 1-2-5 steps."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    ax.set_xticks(sorted({float(x) for x in xticks}))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _style(key: dict, color_dim: str, style_dim: str, colors: dict, styles: dict) -> dict:
    color = colors.setdefault(key.get(color_dim), f"C{len(colors)}")
    style = styles.setdefault(key.get(style_dim), LINESTYLES[len(styles) % len(LINESTYLES)])
    return {"color": color, "linestyle": style}


def _loglog_per_method(da: xr.DataArray, x: str, color_dim: str, xlabel: str, ylabel: str, title: str,
                       path: str | Path) -> Path:
    """One log-log panel per method of ``da`` against ``x``; line colour by ``color_dim``, style by connectivity."""
    methods = list(da["method"].values) if "method" in da.dims else [None]
    fig, axes = new_figure(len(methods), sharey=True)
    colors, styles = {}, {}
    for ax, method in zip(axes, methods, strict=True):
        sub = da.sel({"method": method}) if method is not None else da
        for _, key, line in _series(sub, x, None):
            ok = np.isfinite(line.values)
            ax.plot(line[x].values[ok], line.values[ok], marker="o",
                    label=_label(key, da), **_style(key, color_dim, "conn_method", colors, styles))
        ax.set(xscale="log", yscale="log", xlabel=xlabel, title=str(method or ""))
        _plain_log_axes(ax, da[x].values)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(ylabel)
    fig.suptitle(title)
    return save(fig, path)


def memory_vs_T(table: xr.Dataset, path: str | Path, var: str = "step_bytes") -> Path:
    """Memory vs T per method (one panel each), log-log, one line per n_rec (line style: connectivity)."""
    return _loglog_per_method(table[var] / 2**20, "T", "n_rec", "T (time steps)",
                              f"{var.replace('_', ' ')} (MiB)", "Memory of one training step vs sequence length", path)


def seconds_vs_n_rec(table: xr.Dataset, path: str | Path) -> Path:
    """Median seconds per training step vs n_rec per method (one panel each), one line per T."""
    return _loglog_per_method(table["step_seconds_median"] * 1e3, "n_rec", "T", "n_rec (neurons)",
                              "time per training step (ms)", "Training step time vs network size", path)


def curves_per_group(curves: dict[str, xr.Dataset], path: str | Path) -> Path:
    """One panel per variable (accuracy, loss): median per group over iterations, quartile band."""
    fig, axes = new_figure(len(curves), width=5.0)
    for ax, (var, ds) in zip(axes, curves.items(), strict=True):
        for i, group in enumerate(ds["group"].values):
            one = ds.sel(group=group)
            x = one["iteration"].values
            ax.plot(x, one["median"].values, color=f"C{i}", label=f"{group} (median)")
            ax.fill_between(x, one["q25"].values, one["q75"].values, color=f"C{i}", alpha=0.2, linewidth=0)
        units = ds.attrs.get("units", "")
        ax.set(xlabel="iteration", ylabel=f"{var}" + (f" ({units})" if units not in ("", "1") else ""),
               title=f"{var} vs iteration")
        ax.legend(fontsize=7)
    return save(fig, path)


def weight_histograms(table: xr.Dataset, edges: np.ndarray, path: str | Path, by: str = "method",
                      units: str = "uS") -> Path:
    """Rows: methods; columns: E and I. Fraction of weights per magnitude bin before vs after training."""
    from analysis.weights import POPULATION_NAMES, POPULATIONS

    groups = list(table[by].values)
    fig = blank_figure(8.5, 2.8 * len(groups))
    axes = fig.subplots(len(groups), 2, squeeze=False)
    for row, group in zip(axes, groups, strict=True):
        for ax, p in zip(row, POPULATIONS, strict=True):
            one = table.sel({by: group})
            for when, color in (("before", "0.4"), ("after", "C3")):
                density = one[f"density_{when}_{p}"].values
                ax.stairs(density, edges, color=color, label=when, linewidth=1.5)
            tv = float(one[f"tv_distance_pooled_{p}"])
            ax.set(title=f"{group}: {POPULATION_NAMES[p]} (TV {tv:.2f})", xlabel=f"|w| ({units})",
                   ylabel="fraction of weights")
            ax.legend(fontsize=7)
    fig.suptitle("Recurrent weight distributions before vs after training")
    return save(fig, path)


def rate_cv_distributions(rates: dict[str, np.ndarray], cvs: dict[str, np.ndarray], path: str | Path) -> Path:
    """Histograms per group of firing rates (Hz) and ISI CVs over all neurons of its points."""
    fig, (ax_rate, ax_cv) = new_figure(2, width=5.0)
    all_rates = np.concatenate([r[np.isfinite(r)] for r in rates.values()] + [np.zeros(1)])
    all_cvs = np.concatenate([c[np.isfinite(c)] for c in cvs.values()] + [np.zeros(1)])
    rate_bins = np.linspace(0, max(all_rates.max(), 1e-3) * 1.05, 31)
    cv_bins = np.linspace(0, max(all_cvs.max(), 1.0) * 1.05, 31)
    for i, group in enumerate(rates):
        r, c = rates[group][np.isfinite(rates[group])], cvs[group][np.isfinite(cvs[group])]
        ax_rate.hist(r, rate_bins, histtype="step", color=f"C{i}", label=f"{group} (n={r.size})", linewidth=1.5)
        ax_cv.hist(c, cv_bins, histtype="step", color=f"C{i}", label=f"{group} (n={c.size})", linewidth=1.5)
    ax_rate.set(xlabel="firing rate (Hz)", ylabel="neurons", title="Firing rate per neuron")
    ax_cv.set(xlabel="CV of inter-spike intervals", ylabel="neurons", title="ISI CV per neuron")
    ax_rate.legend(fontsize=7)
    ax_cv.legend(fontsize=7)
    return save(fig, path)


def raster(times_ms: np.ndarray, neurons: np.ndarray, path: str | Path, title: str,
           is_excitatory: np.ndarray | None = None, duration_ms: float | None = None) -> Path:
    """Spike raster of one trial (E blue, I red when known)."""
    fig, (ax,) = new_figure(1, width=8.0, height=4.0)
    if is_excitatory is not None and len(neurons):
        exc = np.asarray(is_excitatory, bool)[neurons]
        ax.scatter(times_ms[exc], neurons[exc], s=2, color="C0", label="excitatory", marker="|")
        ax.scatter(times_ms[~exc], neurons[~exc], s=2, color="C3", label="inhibitory", marker="|")
        ax.legend(fontsize=7, loc="upper right")
    else:
        ax.scatter(times_ms, neurons, s=2, color="k", marker="|")
    if duration_ms:
        ax.set_xlim(0, duration_ms)
    ax.set(xlabel="time (ms)", ylabel="neuron", title=title)
    return save(fig, path)


def fit_traces(time_ms: np.ndarray, target: np.ndarray, fitted: np.ndarray, path: str | Path, title: str,
               current: np.ndarray | None = None) -> Path:
    """Target vs fitted membrane potential of each trace (rows), with the input current when stored."""
    n = target.shape[0]
    fig = blank_figure(9, 2.6 * n + (1.4 if current is not None else 0))
    rows = n + (1 if current is not None else 0)
    axes = fig.subplots(rows, 1, squeeze=False, sharex=True).ravel()
    for k in range(n):
        axes[k].plot(time_ms, target[k], color="0.3", label="target", linewidth=1)
        axes[k].plot(time_ms, fitted[k], color="C3", label="fitted", linewidth=1, alpha=0.8)
        axes[k].set(ylabel="V (mV)", title=f"trace {k}")
        axes[k].legend(fontsize=7, loc="upper right")
    if current is not None:
        for k in range(current.shape[0]):
            axes[-1].plot(time_ms, current[k], linewidth=1, label=f"trace {k}")
        axes[-1].set(ylabel="I (nA)")
    axes[-1].set_xlabel("time (ms)")
    fig.suptitle(title)
    return save(fig, path)


def loss_vs_time(by_group: xr.Dataset, path: str | Path) -> Path:
    """Best loss so far vs wall seconds per group (median, quartile band), log-log."""
    fig, (ax,) = new_figure(1, width=6.0, height=4.0)
    x = by_group["elapsed"].values
    for i, group in enumerate(by_group["group"].values):
        one = by_group.sel(group=group)
        median = one["median"].values
        ax.plot(x, median, color=f"C{i}", label=str(group), drawstyle="steps-post")
        ax.fill_between(x, one["q25"].values, one["q75"].values, color=f"C{i}", alpha=0.2, linewidth=0,
                        step="post")
        ok = np.flatnonzero(np.isfinite(median))
        if ok.size:  # mark where the group's median first exists (a fit with one record is a single point)
            ax.plot(x[ok[0]], median[ok[0]], "o", color=f"C{i}")
    units = by_group["median"].attrs.get("units", "")
    values = np.concatenate([by_group[v].values.ravel() for v in ("median", "q25", "q75")])
    values = values[np.isfinite(values)]
    wide = lambda v: v.size > 0 and v.min() > 0 and v.max() / v.min() > 10  # log only over a decade or more
    ax.set(xscale="log" if wide(x[x > 0]) else "linear", yscale="log" if wide(values) else "linear",
           xlabel="wall time (s)",
           ylabel="median best loss so far" + (f" ({units})" if units not in ("", "1") else ""),
           title="Loss vs wall time per method (band: quartiles)")
    ax.legend(fontsize=7)
    return save(fig, path)
