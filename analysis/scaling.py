"""Scaling sweeps (``scaling-probe``): memory and seconds per step over method, connectivity, n_rec and T.

Each point measured one configuration. The table is the median over the points that share a
configuration (repeats, seeds), laid out with one dimension per key (NaN where a combination was not
run, e.g. optional points left out). ``step_bytes`` is XLA's compiled memory of one training step
(temp + argument + output bytes): the figure whose growth with T separates BPTT (activations of all T
steps kept: about linear) from online learning (eligibility traces of fixed size: about flat).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.points import POINT, has_value, point_value, swept_params

KEYS = ("method", "conn_method", "n_rec", "T")
UNITS = {
    "step_seconds_median": "s", "compile_seconds": "s", "step_bytes": "bytes", "temp_bytes": "bytes",
    "argument_bytes": "bytes", "output_bytes": "bytes", "peak_rss_bytes": "bytes", "device_peak_bytes": "bytes",
    "loss": "1",
}
XLA_PARTS = ("temp_bytes", "argument_bytes", "output_bytes")


def has_scaling(ds: xr.Dataset) -> bool:
    """Whether the Dataset holds scaling-probe measurements."""
    return "step_seconds_median" in ds.data_vars and all(v in ds.data_vars for v in XLA_PARTS)


# where T (time steps per trial) may be stored: scaling-probe's parameter is ``n_steps``, which it also
# returns as a variable, so open_sweep names the swept parameter ``n_steps_param``
T_SOURCES = ("T", "n_steps", "n_steps_param")


def _source(ds: xr.Dataset, key: str) -> str | None:
    names = T_SOURCES if key == "T" else (key,)
    return next((n for n in names if has_value(ds, n)), None)


def table_keys(ds: xr.Dataset) -> list[str]:
    """The configuration keys of the table: :data:`KEYS` that the store knows (T also as ``n_steps``), then
    other swept parameters."""
    keys = [k for k in KEYS if _source(ds, k) is not None]
    return keys + [k for k in swept_params(ds) if k not in keys and k not in T_SOURCES and k != "seed"]


def scaling_points(ds: xr.Dataset) -> xr.Dataset:
    """The measured scalars of every point plus ``step_bytes`` (lazy; units attached)."""
    out = {v: ds[v].astype(np.float64) for v in UNITS if v in ds.data_vars and ds[v].dims == (POINT,)}
    out["step_bytes"] = sum(out[v] for v in XLA_PARTS)
    for name, var in out.items():
        var.attrs = {**ds[name].attrs, "units": UNITS[name]} if name in ds.data_vars else {"units": UNITS[name]}
        if name == "loss" and name in ds.data_vars:
            var.attrs["units"] = ds[name].attrs.get("units", "1")
    return xr.Dataset(out)


def scaling_table(ds: xr.Dataset, keys: list[str] | None = None) -> xr.Dataset:
    """Median per configuration, one dimension per key (computed: the table is small), and ``n_points``."""
    keys = table_keys(ds) if keys is None else list(keys)
    points = scaling_points(ds).compute()  # one scalar per point and variable: small
    points = points.drop_vars([c for c in points.coords if c != POINT])
    key_values = {k: np.asarray(point_value(ds, _source(ds, k) or k).values) for k in keys}
    points = points.assign_coords({k: (POINT, v) for k, v in key_values.items()})
    points["n_points"] = xr.ones_like(points["step_bytes"], dtype=np.int64)
    if not keys:
        table = points.drop_vars("n_points").median(POINT)
        table["n_points"] = points["n_points"].sum(POINT)
        return table
    grouped = points.groupby(keys)
    table = grouped.median().drop_vars("n_points")
    table["n_points"] = grouped.sum()["n_points"].fillna(0).astype(np.int64)
    for name in table.data_vars:
        if name in points:
            table[name].attrs = dict(points[name].attrs)
    return table


def growth_pair(table: xr.Dataset, t_from: float = 1000, t_to: float = 2000) -> tuple[float, float] | None:
    """The T pair to compare: (t_from, t_to) if both were run, else the largest doubling, else the two largest."""
    if "T" not in table.dims or table.sizes["T"] < 2:
        return None
    ts = [float(t) for t in sorted(table["T"].values)]
    if float(t_from) in ts and float(t_to) in ts:
        return float(t_from), float(t_to)
    doublings = [(a, 2 * a) for a in ts if 2 * a in ts]
    return doublings[-1] if doublings else (ts[-2], ts[-1])


def memory_growth(table: xr.Dataset, var: str = "step_bytes", pair: tuple[float, float] | None = None) -> xr.DataArray:
    """Relative growth of ``var`` from T = pair[0] to pair[1] (0.1 = +10%), per remaining key."""
    pair = pair or growth_pair(table)
    if pair is None:
        raise ValueError("the table needs at least two values of T")
    low, high = (table[var].sel(T=t) for t in pair)
    growth = high / low - 1.0
    return growth.assign_attrs(units="1", long_name=f"{var} growth from T={pair[0]:g} to T={pair[1]:g}",
                               t_from=pair[0], t_to=pair[1])


def growth_exponent(table: xr.DataArray) -> xr.DataArray:
    """Least-squares slope of log(value) vs log(T) per series (1: linear in T, 0: flat); NaN if < 2 points."""
    def slope(values: np.ndarray, ts: np.ndarray) -> float:
        ok = np.isfinite(values) & (values > 0)
        if ok.sum() < 2:
            return np.nan
        return float(np.polyfit(np.log(ts[ok]), np.log(values[ok]), 1)[0])

    ts = table["T"].values.astype(np.float64)
    return xr.apply_ufunc(slope, table, input_core_dims=[["T"]], kwargs={"ts": ts}, vectorize=True,
                          output_dtypes=[np.float64]).assign_attrs(units="1", long_name="log-log slope vs T")
