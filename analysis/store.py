"""The sweep result store (Zarr v3): create it, write one point, read and check point states.

Layout (docs/store-format.md): the root group holds the sweep spec and provenance; ``points/<id>`` is one
group per point, written only by the task that runs it. A point is written whole under a temporary sibling
name (``points/.<id>.writing-...``): the dataset's arrays (xarray's Zarr writer, through an explicit
``LocalStore``), then its record, its ``status`` and a ``manifest`` (size and CRC-32 of every file of the
group) in one atomic rewrite of the group's ``zarr.json``; then one rename publishes it. A task killed at
any moment leaves the point absent (or as it was), never half-written, and every other group untouched.
A complete (or corrupt) point is never replaced: :func:`write_point` refuses it.

A point group is ``complete`` / ``failed`` (its marker), ``incomplete`` (no marker: a group from an older
toolkit that was killed while writing) or ``corrupt``. How hard to look is the ``check`` level: ``marker``
(the group's zarr.json only: missing with files beside it, or not parsing, is corrupt; what waiting and
``plan`` use), ``files`` (also every file of its manifest present with the size written; ``status``,
``submit``), ``checksums`` (also every file's CRC-32, which reads the whole store; ``--verify``).
:func:`move_corrupt_aside` moves a corrupt group to ``points/.corrupt/<id>``; nothing here deletes one.

Reading states uses only ``json`` and ``os`` (no zarr/xarray import) so that ``sweep plan`` and
``sweep status`` stay fast.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from analysis import atomic
from analysis.errors import BadStore
from analysis.jsonsafe import load_json, read_json, strict
from analysis.paths import check_writable, local_store, os_problem, user_path

LAYOUT_VERSION = 1
POINTS = "points"
CORRUPT_DIR = ".corrupt"  # inside points/: corrupt groups moved aside (never deleted)
COMPLETE, FAILED, INCOMPLETE, CORRUPT = "complete", "failed", "incomplete", "corrupt"
STATES = (COMPLETE, FAILED)
MARKER, FILES, CHECKSUMS = "marker", "files", "checksums"  # how hard a point group is checked


@dataclass
class PointRecord:
    """The attributes stored with every point group (docs/store-format.md), declared once: the runner
    (:mod:`hpc.tasks`) builds one per point, :func:`write_point` writes it, collect and analysis read its keys.

    A default is what a reader takes when a group lacks the key (or holds null): open_sweep's fill value
    for the :data:`COORDINATES`.
    """

    point_id: str = ""
    experiment: str = ""
    params: dict = field(default_factory=dict)
    seed: int = -1
    host: str = ""
    devices: list = field(default_factory=list)
    gpus: list = field(default_factory=list)
    started: str = ""
    ended: str = ""
    wall_seconds: float | None = math.nan  # None: unknown (the point's process died)
    peak_rss_bytes: int | None = None
    job_id: str | None = None
    restart_count: int = 0
    status: str = ""  # complete | failed: the completion marker
    error: str | None = ""  # the error text of a failed point (None on a complete one)
    manifest: dict | None = None  # {relative file path: [bytes, CRC-32]}: set by write_point
    code: dict | None = None  # where the point's code was imported from: {snapshot (digest or null), path}
    # the processes that computed it: {count, index (the writer's), nodes, distributed}; None: not recorded
    processes: dict | None = None

    def to_attrs(self) -> dict:
        return asdict(self)


# group attrs that belong to the point record, not to the experiment's dataset
POINT_KEYS = tuple(f.name for f in fields(PointRecord))
# record keys that open_sweep makes coordinates along ``point``, with the fill value of a point that lacks one
COORDINATES = {name: getattr(PointRecord, name) for name in
               ("status", "seed", "wall_seconds", "host", "started", "ended", "error")}


class PointExists(RuntimeError):
    """``write_point`` refused to replace a complete or corrupt point."""


@dataclass(frozen=True)
class PointState:
    """What a point group holds: ``state`` (complete/failed/incomplete/corrupt), why it is corrupt, its attrs."""

    state: str
    reason: str | None = None
    attrs: dict | None = None


def store_attrs(path: str | os.PathLike) -> dict:
    """The root attributes of a store; :class:`BadStore` if ``path`` is not a diffbrain store or its root
    metadata is damaged."""
    path = user_path(path, "store")
    meta, problem = load_json(path / "zarr.json")
    if problem is not None or (meta is not None and not isinstance(meta, dict)):
        raise BadStore(path, f"the store's root metadata (zarr.json) is damaged: it {problem or 'is not an object'}",
                       "restore zarr.json from a backup (the points under points/ are untouched); "
                       "nothing was changed")
    if meta is None or meta.get("node_type") != "group" or "diffbrain_store_layout" not in meta.get("attributes", {}):
        raise BadStore(path, "not a diffbrain result store (no zarr.json with diffbrain_store_layout)",
                       "give the store path of a sweep (its `store` key), e.g. results/name.zarr")
    attrs = meta["attributes"]
    try:
        layout = int(attrs["diffbrain_store_layout"])
    except (TypeError, ValueError):
        raise BadStore(path, f"the store's root metadata is damaged: layout {attrs['diffbrain_store_layout']!r}",
                       "restore zarr.json from a backup") from None
    if layout > LAYOUT_VERSION:
        raise BadStore(path, f"store layout {layout} is newer than this toolkit reads "
                       f"({LAYOUT_VERSION})", "upgrade diffbrain")
    return attrs


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a readable store (False for anything else, a damaged store included)."""
    try:
        store_attrs(path)
    except BadStore:
        return False
    return True


def store_exists(path: str | os.PathLike) -> bool:
    """False when nothing is at ``path``; True for a store; :class:`BadStore` for anything else there (a
    folder that is not a store, a damaged store): never mistaken for "no store yet"."""
    path = user_path(path, "store")
    if not os.path.lexists(path):
        return False
    store_attrs(path)
    return True


def create_store(path: str | os.PathLike, sweep: Mapping[str, Any], provenance: Mapping[str, Any]) -> Path:
    """Create the store (root attrs + ``points`` group) or update an existing one's ``sweep`` attr.

    ``sweep`` is ``{name, experiment, spec, source}``; ``provenance`` is ``{created, toolkit_version,
    git_commit, packages, ...}``. An existing store must hold the same experiment. A new store is made under
    a temporary sibling name and renamed into place; nothing else is touched.
    """
    import zarr

    path = check_writable(path, "store")
    attrs = strict({"diffbrain_store_layout": LAYOUT_VERSION, "sweep": dict(sweep), **dict(provenance)})
    if store_exists(path):
        old = store_attrs(path)
        old_exp = old.get("sweep", {}).get("experiment")
        if old_exp != sweep.get("experiment"):
            raise BadStore(path, f"holds points of experiment {old_exp!r}, not {sweep.get('experiment')!r}",
                           "give this sweep its own `store` path")
        root = zarr.open_group(local_store(path), mode="r+")
        history = list(old.get("sweep_history", []))
        if old.get("sweep") != attrs["sweep"]:
            history.append({"created": old.get("created"), "sweep": old.get("sweep")})
        root.attrs.update({"sweep": attrs["sweep"], "sweep_history": history})
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_problem(err, "store", path) from None
    with atomic.staged(path, "creating") as tmp:
        try:
            root = zarr.open_group(local_store(tmp), mode="w-", zarr_format=3, attributes=attrs)
            root.create_group(POINTS)
        except OSError as err:
            raise os_problem(err, "store", path) from None
        try:
            atomic.publish(tmp, path)
        except FileExistsError:  # someone else created it meanwhile: fine if it is a store
            atomic.remove_temp(tmp, path)
            store_attrs(path)
    return path


def point_dir(path: str | os.PathLike, point_id: str) -> Path:
    return Path(path) / POINTS / point_id


def read_point_attrs(path: str | os.PathLike, point_id: str) -> dict | None:
    """The attrs of a point group, or None if the group does not exist (or is unreadable)."""
    meta = read_json(point_dir(path, point_id) / "zarr.json")
    return None if meta is None else meta.get("attributes", {})


def state_of(attrs: Mapping[str, Any] | None) -> str:
    status = (attrs or {}).get("status")
    return status if status in STATES else INCOMPLETE


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def manifest_of(group_dir: Path) -> dict[str, list[int]]:
    """``{relative path: [size, crc32]}`` of every file of a group but its own ``zarr.json``."""
    out = {}
    for root, _, files in os.walk(group_dir):
        for name in files:
            full = Path(root) / name
            rel = full.relative_to(group_dir).as_posix()
            if rel != "zarr.json":
                out[rel] = [full.stat().st_size, _crc32(full)]
    return dict(sorted(out.items()))


def _check_files(group_dir: Path, manifest: Any, deep: bool) -> str | None:
    """Why the files of ``manifest`` are not as written (sizes; ``deep``: checksums too), or None."""
    if not isinstance(manifest, dict):
        return "its manifest is not a table of files"
    for rel, entry in manifest.items():
        full = group_dir / rel
        try:
            size = full.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return f"{rel} is missing"
        except OSError as err:
            return f"{rel} cannot be read ({err.strerror})"
        try:
            want_size, want_crc = int(entry[0]), int(entry[1])
        except (TypeError, ValueError, IndexError):
            return f"its manifest entry for {rel} is damaged"
        if size != want_size:
            return f"{rel} has {size} bytes, {want_size} were written"
        if deep and _crc32(full) != want_crc:
            return f"{rel} does not match the checksum written with it"
    return None


def _check_legacy_arrays(group_dir: Path, deep: bool) -> str | None:
    """Groups written before manifests: every array's metadata parses (``deep``: its data decodes)."""
    for child in sorted(os.scandir(group_dir), key=lambda e: e.name):
        if not child.is_dir() or child.name.startswith("."):
            continue
        meta, problem = load_json(Path(child.path) / "zarr.json")
        if problem is not None:
            return f"{child.name}/zarr.json {problem}"
        if deep and isinstance(meta, dict) and meta.get("node_type") == "array":
            import zarr

            try:
                zarr.open_array(local_store(child.path, read_only=True), mode="r", zarr_format=3)[...]
            except Exception as err:  # any codec or IO error: the array cannot be read
                return f"array {child.name} does not decode ({type(err).__name__}: {err})"
    return None


def inspect_group(group_dir: Path, check: str = FILES) -> PointState:
    """The state of the point group in ``group_dir``, checked to the ``check`` level (module docstring)."""
    meta, problem = load_json(group_dir / "zarr.json")
    if problem is not None:
        return PointState(CORRUPT, f"zarr.json {problem}")
    if meta is None:
        try:
            has_files = any(True for _ in os.scandir(group_dir))
        except OSError:
            has_files = False
        return PointState(CORRUPT, "zarr.json is missing") if has_files else PointState(INCOMPLETE)
    if (not isinstance(meta, dict) or meta.get("node_type") != "group"
            or not isinstance(meta.get("attributes", {}), dict)):
        return PointState(CORRUPT, "zarr.json is not the metadata of a group")
    attrs = meta.get("attributes", {})
    state = state_of(attrs)
    if state == INCOMPLETE or check == MARKER:
        return PointState(state, None, attrs)
    deep = check == CHECKSUMS
    reason = (_check_files(group_dir, attrs["manifest"], deep) if "manifest" in attrs
              else _check_legacy_arrays(group_dir, deep))
    return PointState(CORRUPT, reason, attrs) if reason else PointState(state, None, attrs)


def point_state(path: str | os.PathLike, point_id: str, check: str = FILES) -> PointState | None:
    """The state of one point, None when the store has no group for it."""
    group_dir = point_dir(path, point_id)
    if not group_dir.is_dir():
        return None
    return inspect_group(group_dir, check)


def point_groups(path: str | os.PathLike) -> list[os.DirEntry]:
    """The point group folders of a store (not the temporary or moved-aside ones, whose names start with '.')."""
    try:
        entries = list(os.scandir(Path(path) / POINTS))
    except FileNotFoundError:
        return []
    return [e for e in entries if not e.name.startswith(".") and e.is_dir()]


def scan_points(path: str | os.PathLike, check: str = FILES) -> dict[str, PointState]:
    """:class:`PointState` of every point group in the store, checked to the ``check`` level (threads: the
    file checks wait on the disk, or the network on NFS)."""
    if check not in (MARKER, FILES, CHECKSUMS):
        raise ValueError(f"check must be {MARKER}, {FILES} or {CHECKSUMS}, not {check!r}")
    store_attrs(path)
    groups = point_groups(path)
    if check == MARKER or len(groups) < 64:
        return {e.name: inspect_group(Path(e.path), check) for e in groups}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        return dict(zip((e.name for e in groups), pool.map(lambda e: inspect_group(Path(e.path), check), groups),
                        strict=True))


@dataclass(frozen=True)
class StoreScan:
    """One scan of a store's point groups (:func:`scan_store`): each group's :class:`PointState`, its attrs
    included, so that nothing is read twice (``sweep status``, ``plan``, ``submit`` and ``resume`` share it)."""

    groups: dict[str, PointState]

    def state(self, point_id: str) -> str:
        """complete / failed / corrupt / incomplete (also for a point without a group)."""
        group = self.groups.get(point_id)
        return INCOMPLETE if group is None else group.state

    def attrs(self, point_id: str) -> dict:
        group = self.groups.get(point_id)
        return (group.attrs or {}) if group is not None else {}

    def states(self) -> dict[str, str]:
        return {pid: group.state for pid, group in self.groups.items()}


def scan_store(path: str | os.PathLike, check: str = FILES) -> StoreScan:
    """Scan every point group of the store at ``path`` (empty when nothing is there yet; :class:`BadStore` for
    something else at that path, never mistaken for "no store")."""
    return StoreScan(scan_points(path, check) if store_exists(path) else {})


def point_states(path: str | os.PathLike, check: str = FILES) -> dict[str, str]:
    """``{point_id: "complete" | "failed" | "incomplete" | "corrupt"}`` for every point group in the store."""
    return {pid: s.state for pid, s in scan_points(path, check).items()}


def _clean_attrs(attrs: Mapping[str, Any]) -> dict:
    """Dataset attrs minus the point record's keys (the record wins; no premature ``status``)."""
    return {k: v for k, v in attrs.items() if k not in POINT_KEYS}


def _refuse_existing(store: Path, point_id: str) -> None:
    current = point_state(store, point_id, MARKER)  # a complete point is refused whatever its files
    if current is not None and current.state in (COMPLETE, CORRUPT):
        raise PointExists(f"point {point_id} is already {current.state} in {store}: not replaced"
                          + (f" ({current.reason})" if current.reason else ""))


def write_point(path: str | os.PathLike, point_id: str, dataset, record: PointRecord | Mapping[str, Any]) -> None:
    """Write one point: the dataset's arrays (if any), then ``record`` with its ``status`` as the marker.

    ``record`` is a :class:`PointRecord` (or a mapping of its keys; ``status`` is "complete" or "failed",
    ``error`` the error text or None). An earlier failed or incomplete group of the point is replaced once the
    new one is whole; a complete or corrupt one is never replaced (:class:`PointExists`). Raises if the dataset
    cannot be written; the point is then as it was (the caller may record it as failed).
    """
    import zarr

    record = record.to_attrs() if isinstance(record, PointRecord) else dict(record)
    if record.get("status") not in STATES:
        raise ValueError(f"record status must be one of {STATES}, got {record.get('status')!r}")
    record = strict(record)
    json.dumps(record, allow_nan=False)  # fail before touching the store if not JSON-serialisable
    store = Path(path)
    store_attrs(store)
    final = point_dir(store, point_id)
    _refuse_existing(store, point_id)
    with atomic.staged(final) as tmp:
        if dataset is not None:
            dataset = dataset.copy(deep=False)
            dataset.attrs = _clean_attrs(dataset.attrs)
            dataset.to_zarr(local_store(tmp), mode="w-", zarr_format=3, consolidated=False)
            group = zarr.open_group(local_store(tmp), mode="r+")
        else:
            group = zarr.open_group(local_store(tmp), mode="w-", zarr_format=3)
        mark_point(group, {**record, "manifest": manifest_of(tmp)})
        _refuse_existing(store, point_id)  # again, just before the rename
        atomic.publish(tmp, final, replace=True)


def remove_leftovers(path: str | os.PathLike, point_ids) -> list[Path]:
    """Remove what killed writers of these points left (their temporary groups), in one listing of
    ``points/``. Only the task that now runs the points calls it: it is their one writer."""
    return atomic.remove_temps_of(Path(path) / POINTS, set(point_ids))


def mark_point(group, record: Mapping[str, Any]) -> None:
    """The completion marker: one atomic rewrite of the group's attrs with the record and its status."""
    group.attrs.update(dict(record))


def move_corrupt_aside(path: str | os.PathLike, point_id: str) -> Path:
    """Move a corrupt point group to ``points/.corrupt/<id>`` (``<id>.2``, ... if taken); returns where.

    Refuses (:class:`PointExists`-free ValueError) a group that is not corrupt: nothing else is moved.
    """
    store = Path(path)
    current = point_state(store, point_id)
    if current is None or current.state != CORRUPT:
        raise ValueError(f"point {point_id} is {current.state if current else 'absent'}, not corrupt: not moved")
    aside = store / POINTS / CORRUPT_DIR
    aside.mkdir(exist_ok=True)
    target, n = aside / point_id, 1
    while os.path.lexists(target):
        n += 1
        target = aside / f"{point_id}.{n}"
    os.rename(point_dir(store, point_id), target)
    return target
