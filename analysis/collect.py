"""Read a whole store as one dataset: :func:`open_sweep`; make later opens fast: :func:`consolidate`.

Opening never runs one xarray open per point. A *catalog* holds, per point, its group attrs, the names,
dims, shapes, dtypes and attrs of its arrays (a *schema*, shared by the many points that look alike)
and the labels of its dimension coordinates (shared too). :func:`consolidate` writes the catalog once
into the group ``index`` of the store (its ``zarr.json`` attributes, replaced atomically); later opens
read that one file and rescan only the points whose ``zarr.json`` changed since (a point written or
retried after the collect). Each variable then becomes one dask array whose chunks read many points'
arrays with zarr and decode them with xarray's CF rules, so nothing is read before ``.compute()``.

Zarr's own consolidated metadata is deliberately not used: it would hide points written after it.

Corrupt points (:func:`analysis.store.inspect_group`: metadata that does not parse, a file missing or of
another size, with ``verify`` another checksum) are left out of the dataset and named in
``attrs["corrupt_points"]`` ({id: reason}) and in a warning. A chunk that fails to decode when the data is
computed raises :class:`analysis.errors.CorruptPoint`, which names the point and the array.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from analysis import atomic
from analysis.errors import BadStore, CorruptPoint, CorruptPointsWarning
from analysis.jsonsafe import read_json, strict
from analysis.paths import local_store
from analysis.store import (
    CHECKSUMS,
    COMPLETE,
    COORDINATES,
    CORRUPT,
    FAILED,
    FILES,
    POINT_KEYS,
    POINTS,
    inspect_group,
    point_groups,
    state_of,
    store_attrs,
)

INDEX_GROUP = "index"
INDEX_VERSION = 3
INCLUDE = {"complete": (COMPLETE,), "failed": (FAILED,), "all": (COMPLETE, FAILED)}
CHUNK_BYTES = 64 * 2**20
MAX_CHUNK_POINTS = 4096


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stamp(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_mtime_ns, st.st_size]


@functools.lru_cache(maxsize=256)
def _native_dtype(spec_json: str):
    from zarr.dtype import parse_dtype

    return parse_dtype(json.loads(spec_json), zarr_format=3).to_native_dtype()


def _decode(name: str, dims: tuple, raw, attrs: dict):
    """Decode a raw zarr array as xarray's Zarr reader would (fill values, CF encodings)."""
    import numpy as np
    import xarray as xr
    from xarray.backends.zarr import FillValueCoder
    from xarray.conventions import decode_cf_variable

    attrs = dict(attrs)
    attrs.pop("coordinates", None)
    if "_FillValue" in attrs:
        attrs["_FillValue"] = FillValueCoder.decode(attrs["_FillValue"], raw.dtype)
    var = decode_cf_variable(name, xr.Variable(dims, raw, attrs))
    values = np.asarray(var.values)
    if values.dtype.kind in "TU":
        values = values.astype(object)
    return values, dict(var.attrs)


def _read_raw(path: Path, point_id: str, name: str, layout: dict | None = None):
    """A point's array as stored. ``layout`` (from the catalog) allows the fast path below."""
    if layout is not None:
        values = _read_single_chunk(path / POINTS / point_id / name, layout)
        if values is not None:
            return values
    import zarr

    return zarr.open_array(local_store(path / POINTS / point_id / name, read_only=True), mode="r", zarr_format=3)[...]


def _fast_layout(meta: dict) -> dict | None:
    """What the fast path needs, if the array is what xarray writes by default: one chunk, the ``bytes``
    codec (little endian) optionally followed by ``zstd``, default chunk keys; else None (zarr reads it)."""
    codecs = meta.get("codecs", [])
    names = [c.get("name") for c in codecs]
    key = meta.get("chunk_key_encoding", {})
    if names not in (["bytes"], ["bytes", "zstd"]) or key.get("name") != "default":
        return None
    if (key.get("configuration") or {}).get("separator", "/") != "/":
        return None
    if (codecs[0].get("configuration") or {}).get("endian", "little") != "little":
        return None
    if list(meta["chunk_grid"]["configuration"]["chunk_shape"]) != list(meta["shape"]):
        return None
    return {"dtype": meta["data_type"], "zstd": names[-1] == "zstd"}


def _read_single_chunk(array_dir: Path, layout: dict):
    """Read a one-chunk array straight from its chunk file, decoded with the zstd codec zarr itself uses:
    far faster than opening tiny arrays through zarr. None when the chunk is absent (all fill value)."""
    import numpy as np
    from numcodecs.zstd import Zstd

    with open(array_dir / "zarr.json", "rb") as f:
        shape = json.load(f)["shape"]
    chunk = array_dir / "/".join(["c", *("0" for _ in shape)])
    try:
        data = chunk.read_bytes()
    except FileNotFoundError:
        return None
    if layout["zstd"]:
        data = Zstd().decode(data)
    dtype = _native_dtype(json.dumps(layout["dtype"], sort_keys=True))
    return np.frombuffer(bytes(data), dtype=dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype).reshape(shape)


# --------------------------------------------------------------------------------------------- catalog
class Catalog:
    """Per point: ``stamp`` (mtime, size of its zarr.json), ``attrs``, ``schema`` (hash), ``shapes``,
    ``labels`` ({dim: hash}). ``schemas[hash]`` = {var: {dims, dtype, attrs}}; ``labels[hash]`` =
    {dtype, values}."""

    def __init__(self, points=None, schemas=None, labels=None):
        self.points: dict[str, dict] = points or {}
        self.schemas: dict[str, dict] = schemas or {}
        self.labels: dict[str, dict] = labels or {}

    def to_json(self) -> dict:
        return {"version": INDEX_VERSION, "points": self.points, "schemas": self.schemas, "labels": self.labels}


def _entry_state(entry: dict) -> str:
    """complete / failed / incomplete, or corrupt when the scan found the group unreadable."""
    return CORRUPT if entry.get("corrupt") else state_of(entry["attrs"])


def _scan_point(path: Path, point_id: str, stamp: list[int], verify: bool = False):
    """Catalog entry of one point (+ its schema and labels) from its zarr.json files; a group that cannot
    be read as written gets ``corrupt`` (the reason) and no schema."""
    group_dir = path / POINTS / point_id
    checked = inspect_group(group_dir, CHECKSUMS if verify else FILES)
    entry = {"stamp": stamp, "attrs": checked.attrs or {}, "schema": None, "shapes": {}, "labels": {},
             "corrupt": checked.reason if checked.state == CORRUPT else None}
    if checked.state != COMPLETE:
        return entry, None, {}
    try:
        return _scan_arrays(path, point_id, entry)
    except Exception as err:  # an array's metadata or a coordinate's chunk that cannot be read
        entry.update(schema=None, shapes={}, labels={}, corrupt=f"{type(err).__name__}: {err}")
        return entry, None, {}


def _scan_arrays(path: Path, point_id: str, entry: dict):
    import numpy as np

    group_dir = path / POINTS / point_id
    schema, labels = {}, {}
    for child in sorted(os.scandir(group_dir), key=lambda e: e.name):
        if not child.is_dir() or child.name.startswith("."):
            continue
        ameta = read_json(Path(child.path) / "zarr.json")
        if not ameta or ameta.get("node_type") != "array":
            continue
        var_attrs = ameta.get("attributes", {})
        dims = ameta.get("dimension_names") or var_attrs.get("_ARRAY_DIMENSIONS") or []
        schema[child.name] = {"dims": list(dims), "dtype": ameta["data_type"], "attrs": var_attrs,
                              "layout": _fast_layout(ameta)}
        entry["shapes"][child.name] = list(ameta["shape"])
        if list(dims) == [child.name]:
            raw = _read_raw(path, point_id, child.name, schema[child.name]["layout"])
            values, _ = _decode(child.name, tuple(dims), raw, var_attrs)
            if values.dtype.kind in "mM":
                label = {"dtype": str(values.dtype), "values": values.astype(str).tolist()}
            else:
                label = {"dtype": "object" if values.dtype.kind == "O" else str(values.dtype),
                         "values": np.asarray(values).tolist()}
            digest = _digest(label)
            labels[digest] = label
            entry["labels"][child.name] = digest
    digest = _digest(schema)
    entry["schema"] = digest
    return entry, (digest, schema), labels


def _read_index(path: Path) -> Catalog:
    meta = read_json(path / INDEX_GROUP / "zarr.json")
    index = (meta or {}).get("attributes", {}).get("diffbrain_index")
    if not index or index.get("version") != INDEX_VERSION:
        return Catalog()
    return Catalog(index["points"], index["schemas"], index["labels"])


def catalog(path: str | os.PathLike, use_index: bool = True, verify: bool = False) -> Catalog:
    """The catalog of every point group: from the index where still valid, rescanning the rest.

    ``verify``: rescan every point and check every file against the checksum written with it.
    """
    path = Path(path)
    store_attrs(path)
    old = _read_index(path) if use_index and not verify else Catalog()
    new = Catalog()
    stale = []
    for entry in point_groups(path):
        stamp = _stamp(Path(entry.path) / "zarr.json")
        known = old.points.get(entry.name)
        if stamp is not None and known is not None and known["stamp"] == stamp:
            new.points[entry.name] = known
            if known["schema"]:
                new.schemas[known["schema"]] = old.schemas[known["schema"]]
            for digest in known["labels"].values():
                new.labels[digest] = old.labels[digest]
        else:
            stale.append((entry.name, stamp))
    workers = min(8, max(1, len(stale) // 64))
    with ThreadPoolExecutor(workers) as pool:
        for (point_id, _), (entry, schema, labels) in zip(
            stale, pool.map(lambda item: _scan_point(path, *item, verify=verify), stale), strict=True
        ):
            new.points[point_id] = entry
            if schema:
                new.schemas[schema[0]] = schema[1]
            new.labels.update(labels)
    return new


def corrupt_points(cat: Catalog) -> dict[str, str]:
    """{point id: reason} of the catalog's corrupt points."""
    return {pid: e["corrupt"] for pid, e in sorted(cat.points.items()) if e.get("corrupt")}


def consolidate(path: str | os.PathLike, verify: bool = False) -> dict:
    """Write the catalog into the store's ``index`` group so that later :func:`open_sweep` calls are fast.

    Incremental: points unchanged since the last consolidation are not rescanned (``verify``: every point
    is rescanned and every file checked against its checksum). Returns counts and the corrupt points.
    """
    start = time.perf_counter()
    path = Path(path)
    cat = catalog(path, verify=verify)
    index_dir = path / INDEX_GROUP
    index_dir.mkdir(exist_ok=True)
    doc = {"zarr_format": 3, "node_type": "group", "attributes": {"diffbrain_index": cat.to_json()}}
    atomic.write_file(index_dir / "zarr.json",
                      json.dumps(strict(doc), separators=(",", ":"), allow_nan=False, default=_json_default))
    states = [_entry_state(e) for e in cat.points.values()]
    return {"points": len(states), "complete": states.count(COMPLETE), "failed": states.count(FAILED),
            "corrupt": states.count(CORRUPT),
            "incomplete": len(states) - states.count(COMPLETE) - states.count(FAILED) - states.count(CORRUPT),
            "corrupt_points": corrupt_points(cat), "seconds": round(time.perf_counter() - start, 3)}


def _json_default(value: Any):
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ------------------------------------------------------------------------------------------- open_sweep
def _fill_for(dtype):
    import numpy as np

    if dtype.kind == "f" or dtype.kind == "c":
        return np.nan
    if dtype.kind in "iu":
        return -1
    if dtype.kind == "b":
        return False
    if dtype.kind == "M":
        return np.datetime64("NaT")
    if dtype.kind == "m":
        return np.timedelta64("NaT")
    return ""


def _common_dtype(dtypes):
    import numpy as np

    kinds = {d.kind for d in dtypes}
    if kinds & {"O", "U", "T", "S"}:
        return np.dtype(object)
    return np.result_type(*dtypes)


def _read_block(path: str, name: str, dims: tuple, entries: list, rest_shape: tuple, dtype, fill):
    """One chunk along ``point``: each entry is None (fill) or (point_id, attrs, layout, index arrays)."""
    import numpy as np

    block = np.full((len(entries), *rest_shape), fill, dtype=dtype)
    for i, entry in enumerate(entries):
        if entry is None:
            continue
        point_id, attrs, layout, index = entry
        try:
            values, _ = _decode(name, dims, _read_raw(Path(path), point_id, name, layout), attrs)
        except Exception as err:  # a chunk that does not decode, a file that vanished: name the point
            raise CorruptPoint(path, point_id, f"array {name!r} cannot be read: {type(err).__name__}: {err}") from None
        if not index:
            block[i] = values
        elif all(isinstance(ix, slice) for ix in index):  # no labelled dimension: the point fills a corner
            block[i][index] = values
        else:
            full = [np.arange(ix.stop)[ix] if isinstance(ix, slice) else ix for ix in index]
            if all(len(ix) for ix in full):
                block[i][np.ix_(*full)] = values
    return block


def _decoded_dtype(name: str, dims: tuple, spec: Any, attrs: dict):
    import numpy as np

    key = json.dumps([name, dims, spec, attrs], sort_keys=True, default=str)
    if key not in _DTYPE_CACHE:
        raw = np.zeros((1,) * len(dims), dtype=_native_dtype(json.dumps(spec, sort_keys=True)))
        _DTYPE_CACHE[key] = _decode(name, dims, raw, attrs)[0].dtype
    return _DTYPE_CACHE[key]


_DTYPE_CACHE: dict[str, Any] = {}


def _label_index(cat: Catalog, digest: str):
    import numpy as np
    import pandas as pd

    label = cat.labels[digest]
    dtype = None if label["dtype"] == "object" else label["dtype"]
    return pd.Index(np.asarray(label["values"], dtype=dtype))


def open_sweep(path: str | os.PathLike, include: str = "complete"):
    """The store as one lazily loaded ``xarray.Dataset`` along ``point`` (see docs/store-format.md).

    ``include``: "complete" (default), "failed" or "all" (complete and failed; failed points carry their
    status and error and NaN-filled data). Raises :class:`BadStore` for a path that is not a store, a
    damaged or newer store root, or (include="complete") a store without complete points. Corrupt points
    are left out, named in ``attrs["corrupt_points"]`` and in a :class:`CorruptPointsWarning`; a chunk
    that fails to decode when computed raises :class:`CorruptPoint` naming the point and the array.
    """
    import dask.array as da
    import numpy as np
    import xarray as xr
    from dask.base import tokenize

    if include not in INCLUDE:
        raise BadStore(path, f"include={include!r} is not known", f"use one of: {', '.join(INCLUDE)}")
    path = Path(path).resolve()
    root_attrs = store_attrs(path)
    cat = catalog(path)
    ids = sorted(pid for pid, e in cat.points.items() if _entry_state(e) in INCLUDE[include])
    corrupt = corrupt_points(cat)
    if corrupt:
        shown = "; ".join(f"{pid}: {why}" for pid, why in list(corrupt.items())[:5])
        warnings.warn(f"{path}: {len(corrupt)} corrupt point(s) left out ({shown}"
                      f"{'; ...' if len(corrupt) > 5 else ''}); `diffbrain sweep resume --retry-corrupt` "
                      "moves them aside and computes them again", CorruptPointsWarning, stacklevel=2)
    if not ids:
        raise BadStore(path, f"has no {'complete ' if include == 'complete' else ''}points "
                       f"({len(cat.points)} point groups in all"
                       + (f", {len(corrupt)} corrupt" if corrupt else "") + ")",
                       "wait for the sweep to finish (diffbrain sweep status) or pass include='all'")
    entries = [cat.points[pid] for pid in ids]
    n = len(ids)

    coords: dict[str, Any] = {"point": ("point", np.asarray(ids, dtype=object))}
    for key, default in COORDINATES.items():
        values = [e["attrs"].get(key) for e in entries]
        values = [default if v is None else v for v in values]
        coords[key] = ("point", np.asarray(values, dtype=object if isinstance(default, str) else type(default)))

    # variables of complete points: dims, dtypes, labelled dims
    data = [i for i, e in enumerate(entries) if state_of(e["attrs"]) == COMPLETE]
    var_dims: dict[str, tuple] = {}
    var_dtypes: dict[str, list] = {}
    var_attrs: dict[str, dict] = {}
    coord_names: set[str] = set()
    dim_labels: dict[str, set] = {}
    dim_unlabelled: set[str] = set()
    for i in data:
        schema = cat.schemas[entries[i]["schema"]]
        for name, var in schema.items():
            dims = tuple(var["dims"])
            if dims == (name,):
                continue
            if var_dims.setdefault(name, dims) != dims:
                raise BadStore(path, f"variable {name!r} has dims {dims} in point {ids[i]} but "
                               f"{var_dims[name]} elsewhere", "points of one sweep must return the same dims")
            var_dtypes.setdefault(name, []).append(_decoded_dtype(name, dims, var["dtype"], var["attrs"]))
            var_attrs.setdefault(name, var["attrs"])
            coord_names.update(str(var["attrs"].get("coordinates", "")).split())
            for dim in dims:
                if dim in entries[i]["labels"]:
                    dim_labels.setdefault(dim, set()).add(entries[i]["labels"][dim])
                else:
                    dim_unlabelled.add(dim)
    labelled = {d for d in dim_labels if d not in dim_unlabelled}
    unions = {d: functools.reduce(lambda a, b: a.union(b), (_label_index(cat, h) for h in sorted(hs)))
              for d, hs in dim_labels.items() if d in labelled}
    indexers: dict[tuple[str, str], Any] = {}
    for d in labelled:
        for h in dim_labels[d]:
            ix = unions[d].get_indexer(_label_index(cat, h))
            if (ix < 0).any():
                raise BadStore(path, f"dimension {d!r} has repeated labels", "labels along a dimension must be unique")
            indexers[(d, h)] = ix
    sizes: dict[str, int] = {d: len(u) for d, u in unions.items()}
    for i in data:
        schema = cat.schemas[entries[i]["schema"]]
        for name, shape in entries[i]["shapes"].items():
            for dim, size in zip(schema[name]["dims"], shape, strict=True):
                if dim not in labelled:
                    sizes[dim] = max(sizes.get(dim, 0), size)
    for d, u in unions.items():
        coords[d] = (d, u.values)

    data_vars = {}
    token = tokenize(str(path), [(pid, e["stamp"]) for pid, e in zip(ids, entries, strict=True)])
    for name in sorted(var_dims):
        dims = var_dims[name]
        dtype = _common_dtype(var_dtypes[name])
        fill = _fill_for(dtype)
        rest = tuple(sizes[d] for d in dims)
        per_point = max(1, int(np.prod(rest)) * dtype.itemsize)
        step = int(max(1, min(MAX_CHUNK_POINTS, CHUNK_BYTES // per_point)))
        plan = []
        for i, e in enumerate(entries):
            if state_of(e["attrs"]) != COMPLETE or name not in e["shapes"]:
                plan.append(None)
                continue
            var = cat.schemas[e["schema"]][name]
            # slices, not index arrays, for unlabelled dims: the dask graph stays small (it holds every entry)
            index = tuple(indexers[(d, e["labels"][d])] if d in labelled else slice(0, size)
                          for d, size in zip(dims, e["shapes"][name], strict=True))
            plan.append((ids[i], var["attrs"], var.get("layout"), index))
        key = f"open_sweep-{name}-{token}"
        graph = {(key, b) + (0,) * len(dims): (_read_block, str(path), name, dims, plan[s:s + step], rest, dtype, fill)
                 for b, s in enumerate(range(0, n, step))}
        chunks = (tuple(min(step, n - s) for s in range(0, n, step)),) + tuple((r,) for r in rest)
        array = da.Array(graph, key, chunks, meta=np.empty((0,) * (1 + len(dims)), dtype=dtype))
        attrs = {k: v for k, v in var_attrs[name].items() if k not in ("_FillValue", "coordinates")}
        data_vars[name] = (("point",) + dims, array, attrs)

    # swept parameters: coordinates; equal ones: attrs["fixed_params"]
    params = [e["attrs"].get("params") or {} for e in entries]
    fixed, swept = {}, {}
    for key in sorted(set().union(*params)):
        values = [p.get(key) for p in params]
        if all(v == values[0] and type(v) is type(values[0]) for v in values):
            fixed[key] = values[0]
        else:
            swept[key] = values
    for key, values in swept.items():
        name = key if key not in data_vars and key not in sizes else f"{key}_param"
        kinds = {type(v) for v in values}
        coords[name] = ("point", np.asarray(values, dtype=object if (type(None) in kinds or str in kinds) else None))

    ds = xr.Dataset({k: v for k, v in data_vars.items() if k not in coord_names}, coords=coords)
    ds = ds.assign_coords({k: v for k, v in data_vars.items() if k in coord_names})
    common = None
    for i in data:
        own = {k: v for k, v in entries[i]["attrs"].items() if k not in POINT_KEYS and k != "coordinates"}
        common = own if common is None else {k: v for k, v in common.items() if k in own and own[k] == v}
    ds.attrs = {**(common or {}), **root_attrs, "fixed_params": fixed, "corrupt_points": corrupt}
    return ds
