"""Per-point values and group labels of an ``open_sweep`` Dataset, wherever the store keeps them.

A value such as ``dt`` or ``method`` may be a data variable or a coordinate along ``point`` (it was
swept or returned per point), a 0-d variable, a fixed sweep parameter (``attrs["fixed_params"]``) or a
dataset attribute. The statistics modules read them through :func:`point_value` so they do not care.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from analysis.store import POINT_KEYS

POINT = "point"


def has_value(ds: xr.Dataset, name: str) -> bool:
    """Whether :func:`point_value` can find ``name``."""
    return name in ds.variables or name in fixed_params(ds) or name in ds.attrs


def fixed_params(ds: xr.Dataset) -> dict:
    """The sweep parameters equal for every point (``attrs["fixed_params"]``), or an empty dict."""
    fixed = ds.attrs.get("fixed_params")
    return dict(fixed) if isinstance(fixed, dict) else {}


def point_value(ds: xr.Dataset, name: str, default: Any = None) -> xr.DataArray:
    """``name`` as a DataArray along ``point`` (lazy if the store is); ``default`` if nowhere, else KeyError."""
    if name in ds.variables:
        value = ds[name]
        if value.dims == (POINT,):
            return value
        if value.dims == ():
            return constant(ds, value.values.item(), name)
        raise ValueError(f"{name!r} has dims {value.dims}, expected one value per point")
    for source in (fixed_params(ds), ds.attrs):
        if name in source:
            return constant(ds, source[name], name)
    if default is not None:
        return constant(ds, default, name)
    raise KeyError(name)


def constant(ds: xr.Dataset, value: Any, name: str = "") -> xr.DataArray:
    """The same ``value`` for every point."""
    values = np.full(ds.sizes.get(POINT, 0), value, dtype=object if isinstance(value, str) else None)
    if isinstance(value, str):
        values = values.astype(str)
    return xr.DataArray(values, dims=(POINT,), coords={POINT: ds[POINT].values}, name=name or None)


def labels(ds: xr.Dataset, name: str, default: str = "all") -> np.ndarray:
    """Eager string labels along ``point`` for grouping (``method``, ``conn_method``...)."""
    try:
        values = point_value(ds, name)
    except KeyError:
        return np.full(ds.sizes.get(POINT, 0), default).astype(str)
    return np.asarray(values.values).astype(str)


def swept(ds: xr.Dataset, name: str) -> bool:
    """Whether ``name`` varies between the points (a coordinate along ``point`` with > 1 distinct value)."""
    if name not in ds.coords or ds[name].dims != (POINT,):
        return False
    return len(np.unique(np.asarray(ds[name].values).astype(str))) > 1


def group_labels(ds: xr.Dataset, keys: tuple[str, ...] = ("method",), default: str = "all") -> np.ndarray:
    """One string label per point joining the values of ``keys`` that vary between points (``a/b``).

    When none varies, the label is the first key's value (e.g. the one fixed ``method``), else ``default``.
    """
    varying = [k for k in keys if swept(ds, k)]
    if not varying:
        return labels(ds, keys[0], default) if keys else np.full(ds.sizes.get(POINT, 0), default).astype(str)
    columns = [labels(ds, k, default) for k in varying]
    return np.array(["/".join(parts) for parts in zip(*columns, strict=True)]).astype(str)


def with_group(obj, ds: xr.Dataset, keys: tuple[str, ...] = ("method",), name: str = "group"):
    """``obj`` (DataArray or Dataset along ``point``) with a ``name`` coordinate from :func:`group_labels`."""
    group = group_labels(ds, keys)
    return obj.assign_coords({name: (POINT, group)})


def swept_params(ds: xr.Dataset) -> list[str]:
    """Coordinates along ``point`` that are swept parameters (not the point record's keys)."""
    return [str(c) for c in ds.coords if c != POINT and ds[c].dims == (POINT,) and c not in POINT_KEYS]

