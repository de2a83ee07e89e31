"""The result store: creation, one group per point, the completion marker, and a kill while writing."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from analysis import store
from analysis.collect import open_sweep
from analysis.errors import BadStore
from analysis.paths import local_store
from analysis.store import (
    LAYOUT_VERSION,
    PointExists,
    create_store,
    point_states,
    read_point_attrs,
    store_attrs,
    write_point,
)

SWEEP = {"name": "t", "experiment": "cluster-check", "spec": {"name": "t"}, "source": "name = 't'"}
PROV = {"created": "2026-01-01T00:00:00+00:00", "toolkit_version": "0.1.0", "git_commit": None, "packages": {"x": "1"}}


def record(status="complete", error=None, **extra):
    return {"point_id": "p", "experiment": "cluster-check", "params": {"seed": 0}, "seed": 0, "status": status,
            "error": error, **extra}


def small(value=1.0):
    return xr.Dataset({"value": ((), np.float32(value), {"units": "1"})}, attrs={"model": "m"})


def test_create_store_writes_layout_and_provenance(tmp_path):
    path = create_store(tmp_path / "s.zarr", SWEEP, PROV)
    attrs = store_attrs(path)
    assert attrs["diffbrain_store_layout"] == LAYOUT_VERSION
    assert attrs["sweep"] == SWEEP and attrs["packages"] == {"x": "1"} and attrs["git_commit"] is None
    assert (path / "points" / "zarr.json").exists()
    assert point_states(path) == {}
    assert not list(tmp_path.glob(".*creating*"))  # created under a temporary name, then renamed


def test_create_store_again_keeps_history_and_refuses_other_experiment(tmp_path):
    path = create_store(tmp_path / "s.zarr", SWEEP, PROV)
    changed = {**SWEEP, "source": "name = 't'  # edited"}
    create_store(path, changed, {**PROV, "created": "later"})
    attrs = store_attrs(path)
    assert attrs["sweep"] == changed and attrs["created"] == PROV["created"]
    assert attrs["sweep_history"] == [{"created": PROV["created"], "sweep": SWEEP}]
    with pytest.raises(BadStore, match="cluster-check"):
        create_store(path, {**SWEEP, "experiment": "fit-neuron"}, PROV)


def test_not_a_store_and_newer_layout_are_refused(tmp_path):
    with pytest.raises(BadStore, match="not a diffbrain result store"):
        store_attrs(tmp_path)
    path = create_store(tmp_path / "s.zarr", SWEEP, PROV)
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["diffbrain_store_layout"] = LAYOUT_VERSION + 1
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(BadStore, match="newer"):
        store_attrs(path)


def test_write_point_marks_complete_and_failed_and_replaces(tmp_path):
    path = create_store(tmp_path / "s.zarr", SWEEP, PROV)
    ds = small(2.5)
    ds.attrs["status"] = "complete"  # a dataset attr named like the marker must never act as one
    write_point(path, "a", ds, record(wall_seconds=1.5))
    write_point(path, "b", None, record("failed", "Traceback...\nRuntimeError: boom"))
    assert point_states(path) == {"a": "complete", "b": "failed"}
    attrs = read_point_attrs(path, "a")
    assert attrs["model"] == "m" and attrs["wall_seconds"] == 1.5
    assert float(xr.open_zarr(path, group="points/a", consolidated=False)["value"]) == 2.5
    assert read_point_attrs(path, "b")["error"].endswith("boom")
    write_point(path, "b", small(7.0), record())  # a retried point replaces its failed group
    assert point_states(path)["b"] == "complete"
    assert float(xr.open_zarr(path, group="points/b", consolidated=False)["value"]) == 7.0
    with pytest.raises(ValueError, match="status"):
        write_point(path, "c", small(), record("running"))


KILL_SCRIPT = """
import os, signal, sys
import dask.array as da, numpy as np, xarray as xr
import analysis.atomic as atomic
import analysis.store as store
path, where = sys.argv[1], sys.argv[2]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
data = np.arange(6, dtype=np.float32)
if where == "before-marker":
    store.mark_point = die
elif where == "at-rename":
    atomic.publish = die
else:  # "mid-arrays": a lazy variable kills the process when xarray computes it during the write
    data = da.from_delayed(__import__("dask").delayed(lambda: die() or np.zeros(6, np.float32))(), (6,), np.float32)
ds = xr.Dataset({"first": (("k",), np.ones(6, np.float32)), "value": (("k",), data)})
store.write_point(path, "killed", ds, {"status": "complete", "error": None, "params": {"seed": 0}, "seed": 0})
"""


def _kill_writer(path, where):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), str(path), where],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr


@pytest.mark.parametrize("where", ["mid-arrays", "before-marker", "at-rename"])
def test_writer_killed_while_rewriting_leaves_the_old_point_intact(tmp_path, where):
    """A point is written under a temporary name and renamed into place: a writer killed at any moment
    leaves the group that was there (here a failed one) as it was, and every other point untouched."""
    path = create_store(tmp_path / "s.zarr", SWEEP, PROV)
    write_point(path, "done", small(3.0), record())
    write_point(path, "killed", None, record("failed", "boom"))
    before = (path / "points" / "killed" / "zarr.json").read_bytes()
    _kill_writer(path, where)
    assert list((path / "points").glob(".killed.writing-*"))  # it had started writing, beside the point
    assert point_states(path) == {"done": "complete", "killed": "failed"}
    assert (path / "points" / "killed" / "zarr.json").read_bytes() == before
    for include in ("complete", "all"):
        ds = open_sweep(path, include=include)
        assert sorted(ds.point.values) == (["done"] if include == "complete" else ["done", "killed"])
    write_point(path, "killed", small(4.0), record())  # rerunning the point replaces the failed group
    assert point_states(path)["killed"] == "complete"
    leftovers = list((path / "points").glob(".killed.writing-*"))
    assert store.remove_leftovers(path, ["killed", "done"]) == leftovers  # the runner's clean-up of its points
    assert sorted(p.name for p in (path / "points").iterdir()) == ["done", "killed", "zarr.json"]
    assert float(xr.open_zarr(local_store(path / "points" / "killed"), consolidated=False)["value"]) == 4.0


def test_a_complete_point_is_never_replaced(tmp_path, monkeypatch):
    path = create_store(tmp_path / "s.zarr", SWEEP, PROV)
    write_point(path, "p", small(3.0), record())
    with pytest.raises(PointExists, match="already complete"):
        write_point(path, "p", small(9.0), record())
    # another writer completes the point while this one is writing: this one's rename is refused
    real_mark = store.mark_point
    raced = []

    def race(group, rec):
        real_mark(group, rec)
        if not raced:
            raced.append(True)
            write_point(path, "q", small(1.0), record())

    monkeypatch.setattr(store, "mark_point", race)
    with pytest.raises(PointExists):
        write_point(path, "q", small(2.0), record())
    assert float(xr.open_zarr(local_store(path / "points" / "q"), consolidated=False)["value"]) == 1.0
    assert float(xr.open_zarr(local_store(path / "points" / "p"), consolidated=False)["value"]) == 3.0
    assert not [p.name for p in (path / "points").iterdir() if p.name.startswith(".")]
