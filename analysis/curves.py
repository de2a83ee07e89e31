"""Training curves across points: loss and accuracy per iteration, summarised per method.

``train-network`` stores ``loss`` and ``accuracy`` along ``iteration``; points with fewer iterations are
NaN-padded at the end by ``open_sweep``, so medians and quartiles per iteration use the points that
reached it. Lazy on dask data.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.points import POINT, with_group

GROUP_KEYS = ("method",)
CURVE_VARS = ("accuracy", "loss")


def has_curve(ds: xr.Dataset, var: str) -> bool:
    """Whether ``var`` is stored per iteration (and at least one iteration ran: not a ``mode = "sim"`` run)."""
    return var in ds.data_vars and ds[var].dims == (POINT, "iteration") and ds.sizes["iteration"] > 0


def curves_by_group(ds: xr.Dataset, var: str, keys: tuple[str, ...] = GROUP_KEYS) -> xr.Dataset:
    """Median, lower and upper quartile of ``var`` over each group's points, per iteration, and how many
    points reached each iteration (``n_points``); dims group, iteration."""
    values = ds[var].astype(np.float64)
    if values.chunks is not None:
        values = values.chunk({POINT: -1})  # quantiles over points need them in one chunk
    values = with_group(values.reset_coords(drop=True), ds, keys)
    grouped = values.groupby("group")
    units = ds[var].attrs.get("units", "1")
    out = xr.Dataset({
        "median": grouped.median().assign_attrs(units=units),
        "q25": grouped.quantile(0.25).drop_vars("quantile").assign_attrs(units=units),
        "q75": grouped.quantile(0.75).drop_vars("quantile").assign_attrs(units=units),
        "n_points": values.notnull().groupby("group").sum(),
    })
    if "iteration" not in out.coords:
        out = out.assign_coords(iteration=np.arange(out.sizes["iteration"]))
    return out.assign_attrs(variable=var, units=units)


def final_values(ds: xr.Dataset, var: str) -> xr.DataArray:
    """Each point's last stored (non-NaN) value of ``var`` along iteration."""
    values = ds[var].astype(np.float64)
    valid = values.notnull()
    last = valid & (valid.astype(np.int64).cumsum("iteration") == valid.astype(np.int64).sum("iteration"))
    return values.where(last).sum("iteration").where(valid.any("iteration")).assign_attrs(ds[var].attrs)
