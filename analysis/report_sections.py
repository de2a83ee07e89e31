"""The report's sections: each computes its statistics, draws its figures and returns its Markdown.

A section draws a figure only when the store holds its data, and otherwise records in
``report.skipped`` why not. Sections run inside the report's dask context, so every ``compute`` here
runs on the chosen scheduler.
"""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import xarray as xr

from analysis import curves, figures, fits, scaling, spikes, weights
from analysis.connectome import connectome_section
from analysis.markdown import MiB, fmt, rows_of, table
from analysis.points import POINT, group_labels, labels, point_value


def _skip(report, names, reason: str) -> None:
    for name in names:
        report.skipped[name] = reason


def _draw(report, name: str, path: Path, draw) -> None:
    report.figures[name] = draw(path / name)


# ------------------------------------------------------------------------------------------- scaling
def scaling_section(ds: xr.Dataset, out: Path, report) -> list[str]:
    names = ["memory_vs_T.png", "seconds_per_step_vs_n_rec.png"]
    if not scaling.has_scaling(ds):
        _skip(report, names, "no scaling-probe measurements (step_seconds_median, temp/argument/output bytes)")
        return []
    tab = scaling.scaling_table(ds)
    for name, dim, what in ((names[0], "T", "T"), (names[1], "n_rec", "n_rec")):
        if dim not in tab.dims or tab.sizes[dim] < 2:
            report.skipped[name] = f"{what} takes fewer than two values in this store"
        elif name == names[0]:
            _draw(report, name, out, lambda p: figures.memory_vs_T(tab, p))
        else:
            _draw(report, name, out, lambda p: figures.seconds_vs_n_rec(tab, p))
    dims = [d for d in tab.dims]
    columns = [("step_seconds_median", "s/step (ms)", 1e-3), ("compile_seconds", "compile (s)", 1.0),
               ("step_bytes", "step memory (MiB)", MiB), ("temp_bytes", "XLA temp (MiB)", MiB),
               ("peak_rss_bytes", "peak RSS (MiB)", MiB), ("device_peak_bytes", "device peak (MiB)", MiB),
               ("loss", "loss", 1.0), ("n_points", "points", 1.0)]
    columns = [c for c in columns if c[0] in tab]
    headers, rows = rows_of(tab, dims, columns)
    lines = ["## Scaling: time and memory per configuration", "",
             "Median over the points of each configuration. Step memory = XLA compiled memory of one "
             "training step (temp + argument + output bytes); peak RSS is the process' peak.", ""]
    lines += table(headers, rows) + [""]
    pair = scaling.growth_pair(tab)
    if pair is not None:
        growth = scaling.memory_growth(tab, "step_bytes", pair)
        temp = scaling.memory_growth(tab, "temp_bytes", pair)
        slope = scaling.growth_exponent(tab["step_bytes"])
        merged = xr.Dataset({"growth": growth * 100, "temp_growth": temp * 100, "slope": slope.round(3)})
        gdims = [d for d in merged.dims]
        headers, rows = rows_of(merged, gdims, [("growth", f"step memory growth T={pair[0]:g}->{pair[1]:g} (%)", 1),
                                                ("temp_growth", "XLA temp growth (%)", 1),
                                                ("slope", "log-log slope over all T", 1)])
        lines += [f"### Memory growth from T={pair[0]:g} to T={pair[1]:g}", "",
                  "A slope of 1 means memory linear in T (BPTT keeps every step's activations); about 0 "
                  "means constant memory (online learning).", ""] + table(headers, rows) + [""]
    return lines


# ------------------------------------------------------------------------------------------ training
def curves_section(ds: xr.Dataset, out: Path, report) -> list[str]:
    name = "accuracy_vs_iteration.png"
    present = [v for v in curves.CURVE_VARS if curves.has_curve(ds, v)]
    if not present:
        report.skipped[name] = "no loss or accuracy per iteration (train-network results)"
        return []
    per_var = dict(zip(present, dask.compute(*(curves.curves_by_group(ds, v) for v in present)), strict=True))
    _draw(report, name, out, lambda p: figures.curves_per_group(per_var, p))
    group = group_labels(ds, curves.GROUP_KEYS)
    columns = {}
    for var in present:
        columns[f"final_{var}"] = curves.final_values(ds, var)
    for var in ("test_accuracy", "test_loss", "compile_seconds"):
        if var in ds.data_vars and ds[var].dims == (POINT,):
            columns[var] = ds[var].astype(np.float64)
    if "step_seconds" in ds.data_vars and "iteration" in ds["step_seconds"].dims:
        columns["step_seconds"] = ds["step_seconds"].astype(np.float64).median("iteration")
    per_point = xr.Dataset(columns).compute().assign_coords(group=(POINT, group))
    tab = per_point.groupby("group").median()
    tab["n_points"] = xr.ones_like(per_point[next(iter(columns))]).groupby("group").sum()
    cols = [(c, h, s) for c, h, s in (("n_points", "points", 1), ("final_accuracy", "final accuracy", 1),
                                      ("final_loss", "final loss", 1), ("test_accuracy", "test accuracy", 1),
                                      ("test_loss", "test loss", 1), ("step_seconds", "s/step (ms)", 1e-3),
                                      ("compile_seconds", "compile (s)", 1)) if c in tab]
    headers, rows = rows_of(tab, ["group"], cols)
    headers[0] = "method"
    return ["## Training per method", "", "Medians over the points of each method; final = last iteration.", ""] \
        + table(headers, rows) + [""]


def weights_section(ds: xr.Dataset, out: Path, report) -> list[str]:
    name = "weight_histograms.png"
    if not weights.has_weights(ds):
        report.skipped[name] = "no weight histograms (w_hist_exc/w_hist_inh per snapshot)"
        return []
    edges = weights.common_bin_edges(ds)
    units = ds["weight_bin_edges"].attrs.get("units", "uS")
    stats = weights.weight_statistics(ds)
    by = "method"
    ds_grouped = ds.assign_coords(group=(POINT, group_labels(ds, (by,))))
    tab = weights.per_method(stats, ds_grouped, by="group").compute()
    if edges is None:
        report.skipped[name] = "the points use different weight bins (weight_bin_edges differ)"
    else:
        _draw(report, name, out, lambda p: figures.weight_histograms(tab, edges, p, by="group", units=units))
    lines = ["## Weights before vs after training", "",
             f"Per method: mean abs(w) ({units}) and the fraction of weights below 1% of the initial mean, "
             "averaged over points; TV = total-variation distance between the before and after weight distributions "
             "(0: unchanged, 1: disjoint), mean over points.", ""]
    for p in weights.POPULATIONS:
        cols = [(f"{c}_{p}", h, 1) for c, h in (("mean_before", f"mean abs(w) before ({units})"),
                                                ("mean_after", f"mean abs(w) after ({units})"),
                                                ("frac_small_before", "frac. near 0 before"),
                                                ("frac_small_after", "frac. near 0 after"),
                                                ("tv_distance", "TV distance"))] + [("n_points", "points", 1)]
        headers, rows = rows_of(tab, ["group"], [c for c in cols if c[0] in tab])
        headers[0] = "method"
        title = f"### {weights.POPULATION_NAMES[p].capitalize()} presynaptic weights"
        lines += [title, ""] + table(headers, rows) + [""]
    return lines


def spikes_section(ds: xr.Dataset, out: Path, report) -> list[str]:
    names = ["rate_cv_distributions.png", "raster.png"]
    if not spikes.has_spikes(ds):
        _skip(report, names, "no spike events with dt and n_steps (spike_time, spike_neuron, spike_trial_offsets)")
        return []
    stats = spikes.spike_statistics(ds)
    summary = spikes.population_summary(stats)
    stats, summary = dask.compute(stats, summary)
    group = group_labels(ds, ("method",))
    rates = {g: stats["rate"].values[group == g].ravel() for g in np.unique(group)}
    cvs = {g: stats["isi_cv"].values[group == g].ravel() for g in np.unique(group)}
    _draw(report, names[0], out, lambda p: figures.rate_cv_distributions(rates, cvs, p))
    trials = stats["n_trials"].values
    if (trials > 0).any():
        point = str(stats[POINT].values[int(np.argmax(trials > 0))])
        times, neurons = spikes.trial_raster(ds, point, 0)
        one = ds.sel({POINT: point})
        exc = one["is_excitatory"].values if "is_excitatory" in ds else None
        duration = float(point_value(ds, "n_steps").sel({POINT: point})) * float(
            point_value(ds, "dt").sel({POINT: point}))
        title = f"point {point} ({labels(ds, 'method')[list(ds[POINT].values).index(point)]}), trial 0"
        _draw(report, names[1], out, lambda p: figures.raster(times, neurons, p, title, exc, duration))
    else:
        report.skipped[names[1]] = "no point recorded a trial"
    summary = summary.assign_coords(group=(POINT, group)).assign(
        population_rate=stats["population_rate"].mean("time_bin"))
    tab = summary.groupby("group").mean()
    cols = [(c, h, 1) for c, h in (("rate_mean_all", "rate (Hz)"), ("rate_mean_exc", "E rate (Hz)"),
                                   ("rate_mean_inh", "I rate (Hz)"), ("population_rate", "population rate (Hz)"),
                                   ("isi_cv_median_all", "median ISI CV"), ("fano_mean_all", "Fano factor"))
            if c in tab]
    headers, rows = rows_of(tab, ["group"], cols)
    headers[0] = "method"
    return ["## Spiking activity of the recorded trials", "",
            "Per method, mean over points of: the mean firing rate over neurons (all, E, I), the population rate "
            "averaged over time, the median CV of inter-spike intervals over neurons and the mean Fano factor of "
            "spike counts over trials.", ""] + table(headers, rows) + [""]


# ---------------------------------------------------------------------------------------------- fits
def fits_section(ds: xr.Dataset, out: Path, report) -> list[str]:
    names = ["fit_traces.png", "loss_vs_time.png"]
    if not fits.has_fits(ds):
        _skip(report, names, "no fitted parameters (fit-neuron results)")
        return []
    lines = ["## Fits per method", "", "Medians over the points of each group (model/target/method as swept); "
             "rel. error = median over parameters of |fitted - true| / |true| where the truth is stored.", ""]
    tab = fits.fit_table(ds)
    cols = [c for c in (("n_points", "points", 1), ("loss", "final loss", 1), ("seconds", "seconds (s)", 1),
                        ("evaluations", "evaluations", 1), ("rel_error", "rel. error", 1),
                        ("spike_count_error", "spike-count error", 1)) if c[0] in tab]
    headers, rows = rows_of(tab, ["group"], cols)
    headers[0] = "method"
    units = ds["loss"].attrs.get("units", "") if "loss" in ds else ""
    lines += table(headers, rows) + (["", f"Loss units: {units}."] if units else []) + [""]
    if "true_value" in ds.data_vars:
        rec = fits.recovery_by_group(ds).compute()
        params = [str(p) for p in rec["param"].values if np.isfinite(rec["rel_error"].sel(param=p).values).any()]
        if params:
            rows = [[str(g)] + [fmt(rec["rel_error"].sel(group=g, param=p).item()) for p in params]
                    for g in rec["group"].values]
            lines += ["### Parameter recovery (median |fitted - true| / |true|)", ""] \
                + table(["method"] + params, rows) + [""]
    if "target_voltage" in ds.data_vars and "fitted_voltage" in ds.data_vars:
        point = fits.best_point(ds)
        traces = fits.point_traces(ds, point)
        loss = float(ds["loss"].sel({POINT: point}).values)
        title = f"best fit: point {point} ({labels(ds, 'method')[list(ds[POINT].values).index(point)]}), " \
                f"loss {fmt(loss)} {units}"
        _draw(report, names[0], out, lambda p: figures.fit_traces(
            traces["time"], traces["target"], traces["fitted"], p, title, traces.get("current")))
    else:
        report.skipped[names[0]] = "no target_voltage/fitted_voltage traces stored"
    if fits.has_progress(ds):
        by_group = fits.loss_vs_time_by_group(ds).compute()
        _draw(report, names[1], out, lambda p: figures.loss_vs_time(by_group, p))
    else:
        report.skipped[names[1]] = "no progress_seconds/progress_loss records"
    return lines


SECTIONS = [
    ("scaling tables", scaling_section),
    ("training curves", curves_section),
    ("weight statistics", weights_section),
    ("spike statistics", spikes_section),
    ("fit statistics", fits_section),
    ("connectome statistics", connectome_section),
]
