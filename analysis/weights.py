"""E and I weight distributions before vs after training, from the stored weight histograms.

``train-network`` stores, per snapshot (coord ``snapshot`` = iteration; 0 = before training), counts of
effective recurrent weights in fixed magnitude bins (``w_hist_exc``/``w_hist_inh`` over ``w_bin``, edges
``weight_bin_edges``), the mean weight magnitude and the fraction of weights near zero. In an
``open_sweep`` Dataset the ``snapshot`` labels are the union over points, NaN where a point has none, so
"before" is each point's first stored snapshot and "after" its last. (Integer counts at absent labels may
also come filled with -1 instead of NaN: counts are never negative, so both mean "absent".) Everything here is xarray
arithmetic: lazy on a dask-backed store.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from analysis.points import POINT, labels

POPULATIONS = ("exc", "inh")
POPULATION_NAMES = {"exc": "excitatory", "inh": "inhibitory"}


def has_weights(ds: xr.Dataset) -> bool:
    """Whether the Dataset holds weight histograms with snapshots for both populations."""
    needed = ["weight_bin_edges"] + [f"w_hist_{p}" for p in POPULATIONS]
    return (all(v in ds.data_vars for v in needed) and "snapshot" in ds[needed[1]].dims
            and ds.sizes["snapshot"] > 0 and ds.sizes.get("w_bin", 0) > 0)


def _first_last(valid: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Masks of each point's first and last valid snapshot."""
    running = valid.astype(np.int64).cumsum("snapshot")
    total = valid.astype(np.int64).sum("snapshot")
    return valid & (running == 1), valid & (running == total)


def _pick(values: xr.DataArray, mask: xr.DataArray, has_any: xr.DataArray) -> xr.DataArray:
    return values.where(mask).sum("snapshot").where(has_any)


def weight_statistics(ds: xr.Dataset) -> xr.Dataset:
    """Per point and population: histograms before/after, their densities and difference, and scalars.

    Variables (``{p}`` is ``exc`` or ``inh``): ``hist_before_{p}``, ``hist_after_{p}`` (counts per bin),
    ``density_before_{p}``, ``density_after_{p}`` (fraction of weights per bin), ``density_change_{p}``
    (after - before), ``tv_distance_{p}`` (total-variation distance, 0.5 * sum |change|, in [0, 1]),
    ``mean_before_{p}``/``mean_after_{p}`` (mean |w|, the stored units) and
    ``frac_small_before_{p}``/``frac_small_after_{p}`` (fraction below 1% of the initial mean),
    ``snapshot_before``/``snapshot_after`` (iterations).
    """
    if not has_weights(ds):
        raise KeyError("the Dataset has no weight histograms")
    out: dict[str, xr.DataArray] = {}
    for p in POPULATIONS:
        hist = ds[f"w_hist_{p}"].astype(np.float64)
        hist = hist.where(hist >= 0)  # -1 or NaN: a snapshot this point does not have
        valid = hist.notnull().any("w_bin")
        first, last = _first_last(valid)
        has_any = valid.any("snapshot")
        before, after = _pick(hist, first, has_any), _pick(hist, last, has_any)
        dens_before = before / before.sum("w_bin")
        dens_after = after / after.sum("w_bin")
        change = dens_after - dens_before
        units = ds[f"w_hist_{p}"].attrs.get("units", "1")
        out[f"hist_before_{p}"] = before.assign_attrs(units=units, long_name=f"{POPULATION_NAMES[p]} weights before")
        out[f"hist_after_{p}"] = after.assign_attrs(units=units, long_name=f"{POPULATION_NAMES[p]} weights after")
        out[f"density_before_{p}"] = dens_before.assign_attrs(units="1")
        out[f"density_after_{p}"] = dens_after.assign_attrs(units="1")
        out[f"density_change_{p}"] = change.assign_attrs(units="1", long_name="after - before, fraction per bin")
        out[f"tv_distance_{p}"] = (0.5 * abs(change).sum("w_bin")).where(has_any).assign_attrs(
            units="1", long_name="total-variation distance after vs before")
        for name in ("mean", "frac_small"):
            var = f"w_{name}_{p}"
            if var in ds.data_vars:
                stored = ds[var].astype(np.float64)
                ok = stored.notnull()
                first_s, last_s = _first_last(ok)
                units = ds[var].attrs.get("units", "uS" if name == "mean" else "1")
                out[f"{name}_before_{p}"] = _pick(stored, first_s, ok.any("snapshot")).assign_attrs(units=units)
                out[f"{name}_after_{p}"] = _pick(stored, last_s, ok.any("snapshot")).assign_attrs(units=units)
        if p == POPULATIONS[0]:
            iteration = hist["snapshot"].astype(np.float64)
            out["snapshot_before"] = _pick(iteration.broadcast_like(first), first, has_any)
            out["snapshot_after"] = _pick(iteration.broadcast_like(last), last, has_any)
    stats = xr.Dataset(out)
    return stats.drop_vars([c for c in stats.coords if "snapshot" in stats[c].dims], errors="ignore")


def common_bin_edges(ds: xr.Dataset) -> np.ndarray | None:
    """The weight bin edges if every point uses the same ones (eager, small), else None."""
    edges = np.asarray(ds["weight_bin_edges"].values, dtype=np.float64)
    if edges.ndim == 1:
        return edges
    edges = edges[~np.all(np.isnan(edges), axis=1)]
    if edges.size == 0 or not np.allclose(edges, edges[0], equal_nan=True):
        return None
    return edges[0][~np.isnan(edges[0])]


def per_method(stats: xr.Dataset, ds: xr.Dataset, by: str = "method") -> xr.Dataset:
    """Mean over the points of each ``by`` value (dim ``by``): pooled histograms are summed, scalars averaged.

    ``n_points`` counts the points behind each row. Densities are recomputed from the pooled counts.
    """
    group = xr.DataArray(labels(ds, by), dims=(POINT,), coords={POINT: stats[POINT].values}, name=by)
    stats = stats.assign_coords({by: group})
    counts = [v for v in stats.data_vars if v.startswith("hist_")]
    scalars = [v for v in stats.data_vars if stats[v].dims == (POINT,)]
    summed = stats[counts].groupby(by).sum(min_count=1)
    averaged = stats[scalars].groupby(by).mean()
    out = xr.merge([summed, averaged])
    for p in POPULATIONS:
        for when in ("before", "after"):
            hist = out[f"hist_{when}_{p}"]
            out[f"density_{when}_{p}"] = (hist / hist.sum("w_bin")).assign_attrs(units="1")
        change = out[f"density_after_{p}"] - out[f"density_before_{p}"]
        out[f"density_change_{p}"] = change.assign_attrs(units="1")
        out[f"tv_distance_pooled_{p}"] = (0.5 * abs(change).sum("w_bin")).assign_attrs(units="1")
    ones = xr.DataArray(np.ones(group.size, np.int64), dims=(POINT,), coords={by: group})
    out["n_points"] = ones.groupby(by).sum()
    return out
