"""open_sweep: one lazy dataset along `point`, as the contract in docs/store-format.md says; consolidate."""

import json

import numpy as np
import pytest
import xarray as xr

import analysis.collect as collect
from analysis import open_sweep
from analysis.collect import consolidate
from analysis.errors import BadStore
from analysis.store import create_store, write_point

SWEEP = {"name": "t", "experiment": "fit-neuron", "spec": {}, "source": ""}
PROV = {"created": "2026-01-01T00:00:00+00:00", "toolkit_version": "0.1.0", "git_commit": "abc", "packages": {}}


def point_ds(names, fitted, n_spikes, method):
    return xr.Dataset(
        {
            "fitted": (("param",), np.asarray(fitted, np.float32), {"units": "mV"}),
            "loss": ((), np.float32(sum(fitted)), {"units": "mV"}),
            "spike_time": (("spike",), np.arange(n_spikes, dtype=np.int32)),
            "spike_trial_offsets": (("trial_edge",), np.asarray([0, n_spikes], np.int64)),
            "is_excitatory": (("neuron",), np.ones(2, bool)),
            "current": (("time",), np.linspace(0, 1, 3, dtype=np.float32), {"units": "nA"}),
        },
        coords={"param": list(names), "time": np.asarray([0.0, 0.5, 1.0])},
        attrs={"model": "gif", "method": method},
    )


def rec(pid, params, status="complete", error=None):
    return {"point_id": pid, "experiment": "fit-neuron", "params": params, "seed": params["seed"],
            "host": "h", "devices": ["cpu"], "started": "s" + pid, "ended": "e" + pid, "wall_seconds": 2.0,
            "peak_rss_bytes": 10, "status": status, "error": error}


@pytest.fixture()
def store(tmp_path):
    path = create_store(tmp_path / "s.zarr", SWEEP, PROV)
    write_point(path, "bb", point_ds(["a", "c"], [1.0, 3.0], 3, "adam"),
                rec("bb", {"method": "adam", "lr": 0.1, "seed": 1, "model": "gif"}))
    write_point(path, "aa", point_ds(["b", "a"], [2.0, 5.0], 5, "sgd"),
                rec("aa", {"method": "sgd", "lr": 0.1, "seed": 2, "model": "gif"}))
    write_point(path, "cc", None, rec("cc", {"method": "sgd", "lr": 0.2, "seed": 3, "model": "gif"}, "failed",
                                      "Traceback\nFloatingPointError: nan"))
    (path / "points" / "dd").mkdir()  # an incomplete point: never shown
    return path


def test_open_sweep_contract(store):
    ds = open_sweep(store)
    assert list(ds.point.values) == ["aa", "bb"]  # sorted by id; failed and incomplete left out
    assert ds["fitted"].dims == ("point", "param") and ds["loss"].dims == ("point",)
    assert ds["fitted"].chunks is not None  # lazy (dask)
    assert list(ds.param.values) == ["a", "b", "c"]  # outer join of labels
    fitted = ds["fitted"].values
    np.testing.assert_array_equal(fitted[0], [5.0, 2.0, np.nan])
    np.testing.assert_array_equal(fitted[1], [1.0, np.nan, 3.0])
    assert ds["fitted"].dtype == np.float32 and ds["fitted"].attrs == {"units": "mV"}
    np.testing.assert_array_equal(ds["spike_time"].values, [[0, 1, 2, 3, 4], [0, 1, 2, -1, -1]])  # padded with -1
    assert ds["spike_time"].dtype == np.int32
    np.testing.assert_array_equal(ds["spike_trial_offsets"].values, [[0, 5], [0, 3]])
    np.testing.assert_array_equal(ds["loss"].values, [7.0, 4.0])
    # swept parameters are coordinates; equal ones go to fixed_params
    assert list(ds["method"].values) == ["sgd", "adam"]
    assert list(ds["seed"].values) == [2, 1]
    assert "lr" not in ds.coords and ds.attrs["fixed_params"] == {"lr": 0.1, "model": "gif"}
    # per-point metadata
    assert list(ds["status"].values) == ["complete", "complete"] and list(ds["error"].values) == ["", ""]
    assert list(ds["started"].values) == ["saa", "sbb"] and list(ds["host"].values) == ["h", "h"]
    np.testing.assert_array_equal(ds["wall_seconds"].values, [2.0, 2.0])
    # store attrs and the dataset attrs that all points share
    assert ds.attrs["diffbrain_store_layout"] == 1 and ds.attrs["git_commit"] == "abc"
    assert ds.attrs["model"] == "gif" and "method" not in ds.attrs  # differing attrs are dropped


def test_open_sweep_matches_each_point_read_with_xarray(store):
    ds = open_sweep(store).compute()
    for pid in ["aa", "bb"]:
        own = xr.open_zarr(store, group=f"points/{pid}", consolidated=False).compute()
        row = ds.sel(point=pid)
        for name in ["fitted", "current"]:
            expected = own[name].reindex({d: row[d] for d in own[name].dims if d in own.coords})
            np.testing.assert_array_equal(row[name].values, expected.values)
        n = own.sizes["spike"]
        np.testing.assert_array_equal(row["spike_time"].values[:n], own["spike_time"].values)


def test_include_all_and_failed(store):
    ds = open_sweep(store, include="all")
    assert list(ds.point.values) == ["aa", "bb", "cc"]
    assert list(ds["status"].values) == ["complete", "complete", "failed"]
    assert ds["error"].values[2].endswith("nan")
    assert np.isnan(ds["fitted"].values[2]).all() and np.isnan(ds["loss"].values[2])
    assert (ds["spike_time"].values[2] == -1).all() and not ds["is_excitatory"].values[2].any()
    assert list(ds["lr"].values) == [0.1, 0.1, 0.2]  # lr varies once the failed point is in
    failed = open_sweep(store, include="failed")
    assert list(failed.point.values) == ["cc"]


def test_errors(tmp_path, store):
    with pytest.raises(BadStore, match="not a diffbrain result store"):
        open_sweep(tmp_path)
    empty = create_store(tmp_path / "e.zarr", SWEEP, PROV)
    with pytest.raises(BadStore, match="no complete points"):
        open_sweep(empty)
    with pytest.raises(BadStore, match="include"):
        open_sweep(store, include="some")


def test_consolidate_then_later_points_are_still_seen(store):
    before = open_sweep(store, include="all").compute()
    summary = consolidate(store)
    assert summary == {**summary, "points": 4, "complete": 2, "failed": 1, "incomplete": 1}
    index = json.loads((store / "index" / "zarr.json").read_text())["attributes"]["diffbrain_index"]
    assert sorted(index["points"]) == ["aa", "bb", "cc", "dd"]
    after = open_sweep(store, include="all").compute()
    xr.testing.assert_identical(before, after)
    # a retried point and a new one written after the collect are picked up (their zarr.json changed)
    write_point(store, "cc", point_ds(["a"], [9.0], 1, "sgd"),
                rec("cc", {"method": "sgd", "lr": 0.2, "seed": 3, "model": "gif"}))
    write_point(store, "ee", point_ds(["d"], [4.0], 2, "sgd"),
                rec("ee", {"method": "sgd", "lr": 0.2, "seed": 4, "model": "gif"}))
    ds = open_sweep(store).compute()
    assert list(ds.point.values) == ["aa", "bb", "cc", "ee"] and list(ds.param.values) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(ds["fitted"].sel(point="ee").values, [np.nan, np.nan, np.nan, 4.0])
    np.testing.assert_array_equal(ds["fitted"].sel(point="cc").values, [9.0, np.nan, np.nan, np.nan])


def test_many_points_in_several_chunks(tmp_path, monkeypatch):
    path = create_store(tmp_path / "s.zarr", SWEEP, PROV)
    for i in range(7):
        ds = xr.Dataset({"loss": ((), np.float32(i)), "curve": (("iteration",), np.arange(i + 1, dtype=np.float32))})
        write_point(path, f"p{i}", ds, rec(f"p{i}", {"seed": i, "lr": 0.1 * i, "method": "x", "model": "gif"}))
    monkeypatch.setattr(collect, "MAX_CHUNK_POINTS", 3)
    ds = open_sweep(path)
    assert ds["curve"].chunks[0] == (3, 3, 1)
    np.testing.assert_array_equal(ds["loss"].values, np.arange(7))
    curve = ds["curve"].values
    assert curve.shape == (7, 7) and curve[6, 6] == 6 and np.isnan(curve[0, 1:]).all()
    np.testing.assert_allclose(ds["lr"].values, 0.1 * np.arange(7))


def test_fast_chunk_reads_equal_zarr_reads(tmp_path):
    """Tiny one-chunk arrays are read straight from their chunk file; everything else through zarr."""
    path = create_store(tmp_path / "s.zarr", SWEEP, PROV)
    ds = xr.Dataset({
        "f32": (("a", "b"), np.arange(6, dtype=np.float32).reshape(2, 3)),
        "all_nan": (("a",), np.full(2, np.nan, np.float32)),  # equal to the fill value: no chunk file
        "zeros": (("a",), np.zeros(2, np.int64)),  # ditto
        "i32": (("c",), np.asarray([-5, 7, 2**30], np.int32)),
        "flags": (("c",), np.asarray([True, False, True])),
        "words": (("c",), np.asarray(["x", "yy", "zzz"])),
        "scalar": ((), np.float64(2.5)),
        "chunked": (("d",), np.arange(10, dtype=np.float32)),
    })
    ds["chunked"].encoding["chunks"] = (4,)  # several chunks: not the fast path
    write_point(path, "p", ds, rec("p", {"seed": 0}))
    cat = collect.catalog(path)
    schema = cat.schemas[cat.points["p"]["schema"]]
    assert schema["chunked"]["layout"] is None and schema["f32"]["layout"] == {"dtype": "float32", "zstd": True}
    import zarr

    for name, var in schema.items():
        expected = zarr.open_array(store=str(path / "points" / "p" / name), mode="r")[...]
        got = collect._read_raw(path, "p", name, var["layout"])
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
        assert np.asarray(got).dtype == np.asarray(expected).dtype or name == "words"
    opened = open_sweep(path).compute()
    own = xr.open_zarr(path, group="points/p", consolidated=False).compute()
    for name in ds.data_vars:
        np.testing.assert_array_equal(opened[name].values[0], own[name].values)
