"""One row per point of a store, for pandas/polars users: ``diffbrain export STORE --to FILE.parquet|.csv``.

Columns: ``point_id``, ``status`` (complete / failed / corrupt / incomplete), ``experiment``, the point's
parameters (swept and fixed, by name; a parameter whose name is also a result's is ``NAME_param``, as in
:func:`analysis.collect.open_sweep`), its scalar results (variables with no dimension besides ``point``),
and the record: ``host``, ``job_id``, ``started``, ``ended``, ``wall_seconds``, ``peak_rss_bytes``,
``gpus`` (how many), ``restart_count``, ``error`` (last line). Arrays stay in the store. The file is written
through a temporary sibling and renamed into place.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from analysis import atomic
from analysis.collect import _entry_state, catalog, open_sweep
from analysis.errors import BadPath, BadStore
from analysis.paths import check_writable, os_problem, user_path
from analysis.store import COMPLETE

FORMATS = (".parquet", ".csv")
RECORD = ("host", "job_id", "started", "ended", "wall_seconds", "peak_rss_bytes", "gpus", "restart_count", "error")


def _scalar_results(path: Path, complete: list[str]) -> dict[str, dict[str, object]]:
    """{variable: {point id: value}} of the 0-d results of the complete points (through open_sweep)."""
    if not complete:
        return {}
    ds = open_sweep(path, include="complete")
    names = [name for name, var in ds.data_vars.items() if var.dims == ("point",)]
    ids = [str(p) for p in ds["point"].values]
    out = {}
    for name in sorted(names):
        values = ds[name].values
        out[name] = {pid: (v.item() if hasattr(v, "item") else v) for pid, v in zip(ids, values, strict=True)}
    return out


def _last_line(text) -> str | None:
    if not text:
        return None
    lines = str(text).strip().splitlines()
    return lines[-1] if lines else None


def points_table(store: str | os.PathLike):
    """The store as a ``pandas.DataFrame``, one row per point group (sorted by id)."""
    import pandas as pd

    path = user_path(store, "store").resolve()
    cat = catalog(path)
    if not cat.points:
        raise BadStore(path, "holds no points yet", "wait for the sweep to run (diffbrain sweep status)")
    ids = sorted(cat.points)
    states = {pid: _entry_state(cat.points[pid]) for pid in ids}
    results = _scalar_results(path, [pid for pid in ids if states[pid] == COMPLETE])
    params = {pid: dict(cat.points[pid]["attrs"].get("params") or {}) for pid in ids}
    param_names = sorted(set().union(*params.values()))
    reserved = {"point_id", "status", "experiment", *RECORD, *results}
    rows = []
    for pid in ids:
        attrs = cat.points[pid]["attrs"]
        row: dict[str, object] = {"point_id": pid, "status": states[pid], "experiment": attrs.get("experiment")}
        for name in param_names:
            row[f"{name}_param" if name in reserved else name] = params[pid].get(name)
        for name, values in results.items():
            row[name] = values.get(pid, math.nan)
        wall = attrs.get("wall_seconds")
        row.update(host=attrs.get("host"), job_id=attrs.get("job_id"), started=attrs.get("started"),
                   ended=attrs.get("ended"), wall_seconds=math.nan if wall is None else float(wall),
                   peak_rss_bytes=attrs.get("peak_rss_bytes"), gpus=len(attrs.get("gpus") or []),
                   restart_count=attrs.get("restart_count"), error=_last_line(attrs.get("error")))
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in frame.columns:  # one type per column (parquet needs it): mixed values become text
        kinds = {type(v) for v in frame[column] if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = [None if v is None else str(v) for v in frame[column]]
        elif kinds and kinds <= {int, float} and None in set(frame[column].tolist()):
            frame[column] = pd.to_numeric(frame[column])
    return frame


def export(store: str | os.PathLike, to: str | os.PathLike):
    """Write :func:`points_table` of ``store`` to ``to`` (``.parquet`` through pyarrow, or ``.csv``); the table."""
    target = user_path(to, "--to")
    if target.suffix.lower() not in FORMATS:
        raise BadPath("--to", f"{target.name} is neither .parquet nor .csv", "give FILE.parquet or FILE.csv")
    target = check_writable(target.resolve(), "--to", kind="file")
    frame = points_table(store)
    try:
        with atomic.staged(target) as tmp:
            if target.suffix.lower() == ".parquet":
                frame.to_parquet(tmp, engine="pyarrow", index=False)
            else:
                frame.to_csv(tmp, index=False)
            os.replace(tmp, target)
    except OSError as err:
        raise os_problem(err, "--to", target, kind="file") from None
    return frame
