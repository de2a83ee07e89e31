"""User paths are paths (never URLs), writes go through temporary siblings, one submitter holds a store's lock."""

import json
import os
import socket
import time

import numpy as np
import pytest
import xarray as xr

from analysis import atomic
from analysis.collect import consolidate, open_sweep
from analysis.errors import BadPath
from analysis.lock import STALE_AFTER_S, LockBusy, StoreLock, lock_path_for
from analysis.paths import check_writable, local_store, user_path
from analysis.report import build_report
from analysis.store import create_store, point_states, write_point

ODD = ["t#1", "t?x=1", "t;y", "t with spaces", "tëst-αβ", "t#1?a;b é"]
SWEEP = {"name": "t", "experiment": "cluster-check", "spec": {"name": "t"}, "source": "name = 't'"}


def _sibling(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "notes.txt").write_text("keep me")


def _dataset(value):
    return xr.Dataset({"value": ((), np.float32(value), {"units": "1"}),
                       "loss": (("iteration",), np.arange(3, dtype=np.float32) + value, {"units": "1"})})


def _record(pid, seed):
    return {"point_id": pid, "experiment": "cluster-check", "params": {"seed": seed}, "seed": seed,
            "status": "complete", "error": None, "wall_seconds": float("nan")}


@pytest.mark.parametrize("name", ODD)
def test_store_at_a_path_with_url_characters_leaves_the_sibling_folder_alone(tmp_path, name):
    """zarr reads a string as a URL and cuts it at '#', '?' or ';': the store must get a Path."""
    _sibling(tmp_path)
    store = create_store(tmp_path / name / "s.zarr", SWEEP, {"created": "now"})
    write_point(store, "a", _dataset(1.0), _record("a", 0))
    write_point(store, "b", _dataset(2.0), _record("b", 1))
    assert point_states(store) == {"a": "complete", "b": "complete"}
    consolidate(store)
    ds = open_sweep(store)
    assert sorted(ds["value"].values.tolist()) == [1.0, 2.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["t", name])
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["notes.txt"]
    assert (tmp_path / "t" / "notes.txt").read_text() == "keep me"
    meta = json.loads((store / "points" / "a" / "zarr.json").read_text())
    assert meta["attributes"]["wall_seconds"] is None  # strict JSON: null, never NaN


def test_report_out_with_url_characters(tmp_path):
    _sibling(tmp_path)
    store = create_store(tmp_path / "s.zarr", SWEEP, {"created": "now"})
    write_point(store, "a", _dataset(1.0), _record("a", 0))
    out = tmp_path / "rep #1?a;b é"
    report = build_report(store, out)
    assert (out / "summary.md").is_file() and report.out == out
    assert (tmp_path / "t" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep #1?a;b é", "s.zarr", "t"]
    with pytest.raises(BadPath, match="--out: /proc/report is on the proc virtual file system"):
        build_report(store, "/proc/report")


def test_local_store_roots_at_the_exact_path(tmp_path):
    _sibling(tmp_path)
    ds = _dataset(3.0)
    ds.to_zarr(local_store(tmp_path / "t#x"), mode="w-", consolidated=False)
    assert (tmp_path / "t#x" / "value" / "zarr.json").is_file()
    assert float(xr.open_zarr(local_store(tmp_path / "t#x"), consolidated=False)["value"]) == 3.0
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("path, words", [
    ("/proc/x.zarr", "proc virtual file system"),
    ("/sys/kernel/x", "sysfs virtual file system"),
    ("FILE/x.zarr", "which is a file, not a folder"),
    ("FILE", "exists and is not a folder"),
    ("a\x00b", "NUL byte"),
    ("", "empty path"),
])
def test_unusable_locations_are_refused_before_anything_is_written(tmp_path, path, words):
    (tmp_path / "FILE").write_text("x")
    path = str(tmp_path / path) if path.startswith("FILE") else path
    with pytest.raises(BadPath, match=words):
        check_writable(path, "store")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]


def test_user_path_refuses_non_paths():
    with pytest.raises(BadPath, match="expected a path"):
        user_path(3, "store")
    assert user_path("a#b", "store") == user_path(user_path("a#b", "x"), "y")


def test_temporary_siblings_are_the_only_things_removed(tmp_path):
    final = tmp_path / "out"
    tmp = atomic.temp_sibling(final, "writing")
    tmp.mkdir()
    (tmp / "f").write_text("new")
    final.mkdir()
    (final / "f").write_text("old")
    with pytest.raises(FileExistsError):
        atomic.publish(tmp, final)
    atomic.publish(tmp, final, replace=True)
    assert (final / "f").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(ValueError, match="refusing"):
        atomic.remove_temp(tmp_path / "out", final)
    with pytest.raises(ValueError, match="refusing"):
        atomic.remove_temp(tmp_path / ".out.writing-elsewhere", tmp_path / "other")
    dead = tmp_path / f".out.writing-{atomic._host()}-999999999-0123abcd"
    dead.mkdir()
    alive = tmp_path / ".out.writing-otherhost-1-0123abcd"
    alive.mkdir()
    assert atomic.remove_stale_temps(final) == [dead]  # a writer of another host may still be writing
    assert alive.exists() and not dead.exists()


def test_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    store = tmp_path / "s.zarr"
    assert lock_path_for(store) == tmp_path / "s.lock"
    with StoreLock(store, "diffbrain sweep submit s.toml"):
        owner = json.loads((tmp_path / "s.lock" / "owner.json").read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(LockBusy) as busy:
            StoreLock(store, "second").acquire()
        assert f"pid {os.getpid()}" in str(busy.value) and "diffbrain sweep submit s.toml" in str(busy.value)
        t0 = time.monotonic()
        with pytest.raises(LockBusy):
            StoreLock(store, "waits", wait_s=0.6, poll_s=0.1).acquire()
        assert time.monotonic() - t0 >= 0.6
    assert not (tmp_path / "s.lock").exists()


def test_stale_locks_are_broken_live_ones_on_other_hosts_are_not(tmp_path):
    store = tmp_path / "s.zarr"
    lock = tmp_path / "s.lock"
    lock.mkdir()
    (lock / "owner.json").write_text(json.dumps({"host": socket.gethostname(), "pid": 999999999}))
    with StoreLock(store) as taken:  # same host, a pid that is gone: stale
        assert taken.broke["pid"] == 999999999
    lock.mkdir()
    (lock / "owner.json").write_text(json.dumps({"host": "login2", "pid": 7, "since": "now"}))
    with pytest.raises(LockBusy, match="login2 pid 7"):
        StoreLock(store).acquire()
    old = time.time() - STALE_AFTER_S - 10  # no heartbeat for longer than STALE_AFTER_S: its host is gone
    os.utime(lock / "owner.json", (old, old))
    os.utime(lock, (old, old))
    with StoreLock(store) as taken:
        assert taken.broke["host"] == "login2"
    assert not lock.exists()
