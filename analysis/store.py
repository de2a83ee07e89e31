"""The sweep result store (Zarr v3): create it, write one point, read point states.

Layout (docs/store-format.md): the root group holds the sweep spec and provenance; ``points/<id>`` is one
group per point, written only by the task that runs it. A point's arrays go first (xarray's Zarr writer),
then its metadata and ``status`` in one atomic rewrite of the group's ``zarr.json`` (zarr writes it to a
temporary file and renames it into place): that rewrite is the completion marker. A task killed at any
moment leaves the point without a status, i.e. incomplete, and every other group untouched.

Reading states uses only ``json`` and ``os`` (no zarr/xarray import) so that ``sweep plan`` and
``sweep status`` stay fast.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analysis.errors import BadStore

LAYOUT_VERSION = 1
POINTS = "points"
COMPLETE, FAILED, INCOMPLETE = "complete", "failed", "incomplete"
STATES = (COMPLETE, FAILED)
# group attrs that belong to the point record, not to the experiment's dataset
POINT_KEYS = (
    "point_id", "experiment", "params", "seed", "host", "devices", "gpus", "started", "ended", "wall_seconds",
    "peak_rss_bytes", "job_id", "restart_count", "status", "error",
)


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def store_attrs(path: str | os.PathLike) -> dict:
    """The root attributes of a store; :class:`BadStore` if ``path`` is not a diffbrain store."""
    path = Path(path)
    meta = _read_json(path / "zarr.json")
    if meta is None or meta.get("node_type") != "group" or "diffbrain_store_layout" not in meta.get("attributes", {}):
        raise BadStore(path, "not a diffbrain result store (no zarr.json with diffbrain_store_layout)",
                       "give the store path of a sweep (its `store` key), e.g. results/name.zarr")
    attrs = meta["attributes"]
    if int(attrs["diffbrain_store_layout"]) > LAYOUT_VERSION:
        raise BadStore(path, f"store layout {attrs['diffbrain_store_layout']} is newer than this toolkit reads "
                       f"({LAYOUT_VERSION})", "upgrade diffbrain")
    return attrs


def is_store(path: str | os.PathLike) -> bool:
    try:
        store_attrs(path)
    except BadStore:
        return False
    return True


def create_store(path: str | os.PathLike, sweep: Mapping[str, Any], provenance: Mapping[str, Any]) -> Path:
    """Create the store (root attrs + ``points`` group) or update an existing one's ``sweep`` attr.

    ``sweep`` is ``{name, experiment, spec, source}``; ``provenance`` is ``{created, toolkit_version,
    git_commit, packages, ...}``. An existing store must hold the same experiment.
    """
    import zarr

    path = Path(path)
    attrs = {"diffbrain_store_layout": LAYOUT_VERSION, "sweep": dict(sweep), **dict(provenance)}
    if path.exists():
        old = store_attrs(path)
        old_exp = old.get("sweep", {}).get("experiment")
        if old_exp != sweep.get("experiment"):
            raise BadStore(path, f"holds points of experiment {old_exp!r}, not {sweep.get('experiment')!r}",
                           "give this sweep its own `store` path")
        root = zarr.open_group(str(path), mode="r+")
        history = list(old.get("sweep_history", []))
        if old.get("sweep") != attrs["sweep"]:
            history.append({"created": old.get("created"), "sweep": old.get("sweep")})
        root.attrs.update({"sweep": attrs["sweep"], "sweep_history": history})
    else:
        tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3, attributes=attrs)
        root.create_group(POINTS)
        try:
            os.rename(tmp, path)  # never a half-created store under the real name
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not is_store(path):  # someone else created it meanwhile: fine if it is a store
                raise
    return path


def point_dir(path: str | os.PathLike, point_id: str) -> Path:
    return Path(path) / POINTS / point_id


def read_point_attrs(path: str | os.PathLike, point_id: str) -> dict | None:
    """The attrs of a point group, or None if the group does not exist (or is unreadable)."""
    meta = _read_json(point_dir(path, point_id) / "zarr.json")
    return None if meta is None else meta.get("attributes", {})


def state_of(attrs: Mapping[str, Any] | None) -> str:
    status = (attrs or {}).get("status")
    return status if status in STATES else INCOMPLETE


def point_states(path: str | os.PathLike) -> dict[str, str]:
    """``{point_id: "complete" | "failed" | "incomplete"}`` for every point group in the store."""
    store_attrs(path)
    states = {}
    try:
        entries = list(os.scandir(Path(path) / POINTS))
    except FileNotFoundError:
        return states
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        meta = _read_json(Path(entry.path) / "zarr.json")
        states[entry.name] = state_of(None if meta is None else meta.get("attributes"))
    return states


def _clean_attrs(attrs: Mapping[str, Any]) -> dict:
    """Dataset attrs minus the point record's keys (the record wins; no premature ``status``)."""
    return {k: v for k, v in attrs.items() if k not in POINT_KEYS}


def write_point(path: str | os.PathLike, point_id: str, dataset, record: Mapping[str, Any]) -> None:
    """Write one point: the dataset's arrays (if any), then ``record`` with its ``status`` as the marker.

    ``record`` holds the :data:`POINT_KEYS` (``status`` is "complete" or "failed"; ``error`` the error text
    or None). Any earlier group of the same point (incomplete or failed) is replaced. Raises if the
    dataset cannot be written; the point is then left incomplete (the caller may record it as failed).
    """
    import zarr

    if record.get("status") not in STATES:
        raise ValueError(f"record status must be one of {STATES}, got {record.get('status')!r}")
    json.dumps(dict(record), allow_nan=True)  # fail before touching the store if not JSON-serialisable
    store_attrs(path)
    group_dir = point_dir(path, point_id)
    if group_dir.exists():
        shutil.rmtree(group_dir)
    group_name = f"{POINTS}/{point_id}"
    if dataset is not None:
        dataset = dataset.copy(deep=False)
        dataset.attrs = _clean_attrs(dataset.attrs)
        dataset.to_zarr(str(path), group=group_name, mode="w", zarr_format=3, consolidated=False)
        group = zarr.open_group(str(path), path=group_name, mode="r+")
    else:
        group = zarr.open_group(str(path), path=group_name, mode="w", zarr_format=3)
    mark_point(group, record)


def mark_point(group, record: Mapping[str, Any]) -> None:
    """The completion marker: one atomic rewrite of the group's attrs with the record and its status."""
    group.attrs.update(dict(record))


def remove_point(path: str | os.PathLike, point_id: str) -> None:
    shutil.rmtree(point_dir(path, point_id), ignore_errors=True)
