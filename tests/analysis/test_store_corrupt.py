"""Corruption is named, never silent: every damaged point is reported with its id and the reason."""

import json

import numpy as np
import pytest
import xarray as xr

from analysis.collect import consolidate, open_sweep
from analysis.errors import BadStore, CorruptPoint, CorruptPointsWarning
from analysis.store import (
    CORRUPT,
    PointExists,
    create_store,
    is_store,
    move_corrupt_aside,
    point_states,
    scan_points,
    store_attrs,
    store_exists,
    write_point,
)

SWEEP = {"name": "t", "experiment": "cluster-check", "spec": {"name": "t"}, "source": "name = 't'"}


@pytest.fixture()
def store(tmp_path):
    path = create_store(tmp_path / "s.zarr", SWEEP, {"created": "now"})
    for i in range(4):
        ds = xr.Dataset({"value": ((), np.float32(i), {"units": "1"}),
                         "loss": (("iteration",), np.linspace(1, 0, 50).astype(np.float32) + i, {"units": "1"})})
        write_point(path, f"p{i}", ds, {"point_id": f"p{i}", "params": {"seed": i}, "seed": i,
                                        "status": "complete", "error": None})
    return path


def _truncate(path, keep=20):
    path.write_bytes(path.read_bytes()[:keep])


def _garbage(path, same_size):
    size = path.stat().st_size
    path.write_bytes(b"\x07" * (size if same_size else size + 9))


DAMAGE = {
    "point zarr.json truncated": (lambda p: _truncate(p / "zarr.json"), "zarr.json does not parse"),
    "point zarr.json missing": (lambda p: (p / "zarr.json").unlink(), "zarr.json is missing"),
    "array metadata truncated": (lambda p: _truncate(p / "value" / "zarr.json"), "value/zarr.json has 20 bytes"),
    "array missing": (lambda p: [f.unlink() for f in sorted((p / "loss").rglob("*"), reverse=True) if f.is_file()],
                      "loss/c/0 is missing"),
    "garbage chunk": (lambda p: _garbage(p / "loss" / "c" / "0", same_size=False), "loss/c/0 has"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_point_is_corrupt_everywhere_with_id_and_reason(store, case):
    damage, words = DAMAGE[case]
    damage(store / "points" / "p1")
    scanned = scan_points(store)
    assert {pid: s.state for pid, s in scanned.items()} == {"p0": "complete", "p1": CORRUPT, "p2": "complete",
                                                            "p3": "complete"}
    assert words in scanned["p1"].reason
    with pytest.warns(CorruptPointsWarning, match="p1"):
        ds = open_sweep(store)
    assert list(ds.point.values) == ["p0", "p2", "p3"] and words in ds.attrs["corrupt_points"]["p1"]
    assert float(ds["loss"].mean().compute()) == pytest.approx(float(np.mean([0, 2, 3]) + 0.5), rel=1e-5)
    summary = consolidate(store)
    assert summary["corrupt"] == 1 and words in summary["corrupt_points"]["p1"]
    with pytest.raises(PointExists, match="corrupt"):  # a rerun never replaces (or deletes) it
        write_point(store, "p1", None, {"status": "failed", "error": "x"})
    before = sorted(p.relative_to(store) for p in (store / "points" / "p1").rglob("*"))
    where = move_corrupt_aside(store, "p1")
    assert where == store / "points" / ".corrupt" / "p1"
    assert sorted(p.relative_to(store / "points" / ".corrupt") for p in where.rglob("*")) == \
        [p.relative_to("points") for p in before]
    assert point_states(store) == {"p0": "complete", "p2": "complete", "p3": "complete"}
    with pytest.raises(ValueError, match="not corrupt"):
        move_corrupt_aside(store, "p0")


def test_same_size_garbage_is_found_by_checksum_and_named_when_read(store):
    _garbage(store / "points" / "p2" / "loss" / "c" / "0", same_size=True)
    assert point_states(store)["p2"] == "complete"  # sizes match: the fast check cannot tell
    assert point_states(store, check="checksums")["p2"] == CORRUPT
    assert "checksum" in scan_points(store, check="checksums")["p2"].reason
    ds = open_sweep(store)
    with pytest.raises(CorruptPoint, match="point p2 is corrupt .*array 'loss'") as info:
        ds["loss"].mean().compute()
    assert info.value.point_id == "p2" and isinstance(info.value, BadStore)
    assert consolidate(store, verify=True)["corrupt_points"].keys() == {"p2"}


def test_points_written_before_manifests_are_checked_by_their_metadata(store):
    meta_path = store / "points" / "p3" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    del meta["attributes"]["manifest"]
    meta_path.write_text(json.dumps(meta))
    assert point_states(store)["p3"] == "complete"
    _garbage(store / "points" / "p3" / "loss" / "c" / "0", same_size=True)
    assert point_states(store)["p3"] == "complete" and point_states(store, check="checksums")["p3"] == CORRUPT
    _truncate(store / "points" / "p3" / "value" / "zarr.json")
    assert "value/zarr.json does not parse" in scan_points(store)["p3"].reason


def test_damaged_root_is_one_clear_error_never_an_empty_store(store, tmp_path):
    _truncate(store / "zarr.json", 60)
    with pytest.raises(BadStore, match="root metadata .* is damaged"):
        store_attrs(store)
    with pytest.raises(BadStore, match="damaged"):
        store_exists(store)
    with pytest.raises(BadStore, match="damaged"):
        open_sweep(store)
    assert not is_store(store)
    assert store_exists(tmp_path / "nothing-here.zarr") is False
    (tmp_path / "folder").mkdir()
    with pytest.raises(BadStore, match="not a diffbrain result store"):
        store_exists(tmp_path / "folder")


def test_stores_written_before_strict_json_still_collect(store):
    """Older toolkits wrote NaN into attributes: collect writes its index as strict JSON anyway."""
    meta_path = store / "points" / "p0" / "zarr.json"
    meta_path.write_text(meta_path.read_text().replace('"status"', '"wall_seconds": NaN, "status"', 1))
    assert consolidate(store)["complete"] == 4
    index = (store / "index" / "zarr.json").read_text()
    json.loads(index, parse_constant=lambda name: pytest.fail(f"the index holds {name}"))
    ds = open_sweep(store)
    assert np.isnan(ds["wall_seconds"].values[0])
