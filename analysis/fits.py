"""Fit sweeps (``fit-neuron``): loss vs wall time per method and parameter-recovery error.

Methods are compared within groups of points that share what makes losses comparable: the group label
joins the swept values of ``model``, ``target`` and ``method`` (:data:`GROUP_KEYS`). Loss-vs-time curves
are the best loss reached by each elapsed time, sampled on one log-spaced time grid for all points, so
that they can be summarised across points (median) per group. All reductions are lazy on dask data.
"""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

from analysis.points import POINT, with_group

GROUP_KEYS = ("model", "target", "method")


def has_fits(ds: xr.Dataset) -> bool:
    """Whether the Dataset holds fitted parameters (a fit sweep)."""
    return "fitted" in ds.data_vars and "param" in ds["fitted"].dims


def has_progress(ds: xr.Dataset) -> bool:
    """Whether the Dataset holds best-loss-so-far records against wall time."""
    return "progress_seconds" in ds.data_vars and "progress_loss" in ds.data_vars and ds.sizes.get("progress", 0) > 0


def recovery_error(ds: xr.Dataset) -> xr.Dataset:
    """Per point and parameter, where ``true_value`` is finite: ``abs_error`` (parameter units),
    ``rel_error`` = |fitted - true| / |true| (NaN where true is 0) and ``range_error`` = |fitted - true| /
    (upper - lower), the error as a fraction of the search range."""
    fitted, truth = ds["fitted"].astype(np.float64), ds["true_value"].astype(np.float64)
    error = abs(fitted - truth).where(truth.notnull())
    out = {
        "abs_error": error.assign_attrs(long_name="|fitted - true|"),
        "rel_error": (error / abs(truth).where(truth != 0)).assign_attrs(
            units="1", long_name="|fitted - true| / |true|"),
    }
    if "lower" in ds.data_vars and "upper" in ds.data_vars:
        span = (ds["upper"] - ds["lower"]).astype(np.float64)
        out["range_error"] = (error / span.where(span > 0)).assign_attrs(
            units="1", long_name="|fitted - true| / (upper - lower)")
    return xr.Dataset(out)


def recovery_by_group(ds: xr.Dataset) -> xr.Dataset:
    """Median over each group's points of :func:`recovery_error` (dims ``group``, ``param``) and the
    number of points with ground truth (``n_known``)."""
    errors = with_group(recovery_error(ds), ds, GROUP_KEYS)
    table = errors.groupby("group").median()
    table["n_known"] = errors["abs_error"].notnull().groupby("group").sum()
    return table


def _best_so_far(seconds: np.ndarray, loss: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Lowest loss recorded at or before each grid time (NaN before the first record); one point."""
    ok = np.isfinite(seconds) & np.isfinite(loss)
    if not ok.any():
        return np.full(grid.shape, np.nan)
    order = np.argsort(seconds[ok], kind="stable")
    times = seconds[ok][order]
    best = np.minimum.accumulate(loss[ok][order])
    index = np.searchsorted(times, grid, side="right") - 1
    return np.where(index >= 0, best[np.clip(index, 0, None)], np.nan)


def time_grid(ds: xr.Dataset, n: int = 60) -> np.ndarray:
    """Log-spaced elapsed seconds from the earliest positive record to the latest (computed, small)."""
    seconds = ds["progress_seconds"]
    first, last = dask.compute(seconds.where(seconds > 0).min(), seconds.max())
    first, last = float(first), float(last)
    if not (np.isfinite(first) and np.isfinite(last)):
        raise ValueError("no progress records")
    if last <= first:
        return np.array([first])
    return np.geomspace(first, last, n)


def loss_vs_time(ds: xr.Dataset, grid: np.ndarray | None = None) -> xr.DataArray:
    """Best loss so far per point at each ``elapsed`` time of ``grid`` (dims point, elapsed; lazy)."""
    grid = time_grid(ds) if grid is None else np.asarray(grid, dtype=np.float64)
    seconds, loss = (ds[v].astype(np.float64) for v in ("progress_seconds", "progress_loss"))
    if seconds.chunks is not None:
        seconds, loss = seconds.chunk({"progress": -1}), loss.chunk({"progress": -1})
    curve = xr.apply_ufunc(
        _best_so_far, seconds, loss,
        kwargs={"grid": grid},
        input_core_dims=[["progress"], ["progress"]],
        output_core_dims=[["elapsed"]],
        vectorize=True,
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"elapsed": grid.size}},
    )
    units = ds["progress_loss"].attrs.get("units", ds["loss"].attrs.get("units", "") if "loss" in ds else "")
    return curve.assign_coords(elapsed=("elapsed", grid, {"units": "s"})).assign_attrs(
        units=units, long_name="best loss so far")


def loss_vs_time_by_group(ds: xr.Dataset, grid: np.ndarray | None = None) -> xr.Dataset:
    """Median, lower and upper quartile over each group's points of :func:`loss_vs_time` (dims group, elapsed).

    Before a point's first record its best loss counts as infinite (nothing found yet), so a statistic is
    shown (finite) only once enough of the group's points have a result, and the median never rises.
    """
    curves = loss_vs_time(ds, grid)
    units = curves.attrs.get("units", "")
    curves = with_group(curves.fillna(np.inf), ds, GROUP_KEYS)
    grouped = curves.groupby("group")

    def finite(stat: xr.DataArray) -> xr.DataArray:
        return stat.where(np.isfinite(stat)).assign_attrs(units=units)

    return xr.Dataset({
        "median": finite(grouped.median()),
        "q25": finite(grouped.quantile(0.25).drop_vars("quantile")),
        "q75": finite(grouped.quantile(0.75).drop_vars("quantile")),
    })


def fit_table(ds: xr.Dataset) -> xr.Dataset:
    """Per group: points, median final loss, wall seconds and evaluations, and the median over points
    and parameters of the relative recovery error where ground truth is stored (computed: small)."""
    columns = {}
    for name in ("loss", "seconds", "evaluations"):
        if name in ds.data_vars and ds[name].dims == (POINT,):
            columns[name] = ds[name].astype(np.float64)
    if "target_spike_count" in ds.data_vars and "fitted_spike_count" in ds.data_vars:
        fitted_n, target_n = (ds[v].astype(np.float64) for v in ("fitted_spike_count", "target_spike_count"))
        miss = abs(fitted_n - target_n).where((fitted_n >= 0) & (target_n >= 0))  # -1: padding
        columns["spike_count_error"] = miss.mean([d for d in miss.dims if d != POINT]).assign_attrs(
            units="spikes", long_name="mean |fitted - target| spike count per trace")
    if "true_value" in ds.data_vars:
        columns["rel_error"] = recovery_error(ds)["rel_error"].median("param")
    table = with_group(xr.Dataset(columns).compute(), ds, GROUP_KEYS)  # one scalar per point: small
    out = table.groupby("group").median()
    for name, column in columns.items():
        out[name].attrs = dict(ds[name].attrs) if name in ds.data_vars else dict(column.attrs)
    ones = xr.DataArray(np.ones(ds.sizes[POINT], np.int64), dims=(POINT,), coords={"group": table["group"]})
    out["n_points"] = ones.groupby("group").sum()
    return out


def point_traces(ds: xr.Dataset, point: str) -> dict[str, np.ndarray]:
    """One point's ``time`` (ms), ``target``, ``fitted`` and ``current`` (trace x time), without the NaN
    samples and traces that ``open_sweep``'s union of other points' time labels and trace counts adds."""
    one = ds.sel({POINT: point})
    names = {"target": "target_voltage", "fitted": "fitted_voltage", "current": "current"}
    arrays = dict(zip(names, dask.compute(*(one[v] for v in names.values() if v in ds.data_vars)), strict=False))
    target = np.asarray(arrays["target"].values, dtype=np.float64)
    keep_time = np.isfinite(target).any(axis=0)
    keep_trace = np.isfinite(target).any(axis=1)
    time = arrays["target"]["time"].values if "time" in arrays["target"].coords else np.arange(target.shape[1])
    out = {"time": np.asarray(time, dtype=np.float64)[keep_time]}
    for key, array in arrays.items():
        out[key] = np.asarray(array.values, dtype=np.float64)[np.ix_(keep_trace, keep_time)]
    return out


def best_point(ds: xr.Dataset) -> str:
    """The point id with the lowest final loss (for the fitted-vs-target trace figure)."""
    loss = ds["loss"].astype(np.float64).compute()
    if not np.isfinite(loss.values).any():
        return str(ds[POINT].values[0])
    return str(loss[POINT].values[int(np.nanargmin(loss.values))])
