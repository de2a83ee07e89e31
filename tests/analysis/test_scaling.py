"""Scaling tables and memory growth against hand-computed values."""

import numpy as np
import pytest
import xarray as xr

from analysis.scaling import growth_exponent, growth_pair, has_scaling, memory_growth, scaling_table, table_keys

MB = 1e6


def scaling_sweep() -> xr.Dataset:
    """bptt: memory linear in T (two repeats of one configuration); diag: flat. n_rec 100 and 200."""
    rows = []  # method, n_rec, T, temp MB, seconds per step
    for n_rec in (100, 200):
        for t in (1000, 2000):
            rows.append(("bptt", n_rec, t, t / 1000 * n_rec / 100 * 10, 0.001 * t / 1000))
            rows.append(("diag", n_rec, t, n_rec / 100 * 2, 0.004 * n_rec / 100))
    rows.append(("bptt", 100, 1000, 14.0, 0.003))  # a repeat: the median of 10 and 14 MB is 12 MB
    method, n_rec, t, temp, sec = (list(c) for c in zip(*rows, strict=True))
    n = len(rows)
    return xr.Dataset(
        {
            "step_seconds_median": ("point", sec, {"units": "s"}),
            "compile_seconds": ("point", np.ones(n), {"units": "s"}),
            "temp_bytes": ("point", np.array(temp) * MB, {"units": "bytes"}),
            "argument_bytes": ("point", np.full(n, 1 * MB), {"units": "bytes"}),
            "output_bytes": ("point", np.zeros(n), {"units": "bytes"}),
            "peak_rss_bytes": ("point", np.full(n, 500 * MB), {"units": "bytes"}),
            "device_peak_bytes": ("point", np.full(n, np.nan), {"units": "bytes"}),
            "loss": ("point", np.full(n, 0.7)),
        },
        coords={"point": [f"p{i:02d}" for i in range(n)], "method": ("point", method), "n_rec": ("point", n_rec),
                "T": ("point", t), "seed": ("point", np.zeros(n, int)), "status": ("point", ["complete"] * n)},
        attrs={"fixed_params": {"conn_method": "dense", "batch_size": 4}},
    )


@pytest.mark.parametrize("chunked", [False, True])
def test_table_medians_per_configuration(chunked):
    ds = scaling_sweep().chunk({"point": 3}) if chunked else scaling_sweep()
    assert has_scaling(ds)
    assert table_keys(ds) == ["method", "conn_method", "n_rec", "T"]
    table = scaling_table(ds)
    assert dict(table.sizes) == {"method": 2, "conn_method": 1, "n_rec": 2, "T": 2}
    bptt = table.sel({"method": "bptt", "conn_method": "dense"})
    # temp + argument (1 MB) + output (0)
    np.testing.assert_allclose(bptt["step_bytes"].values / MB, [[13, 21], [21, 41]])
    np.testing.assert_allclose(bptt["step_seconds_median"].values, [[0.002, 0.002], [0.001, 0.002]])
    np.testing.assert_array_equal(bptt["n_points"].values, [[2, 1], [1, 1]])
    assert table["step_bytes"].attrs["units"] == "bytes"
    assert np.isnan(table["device_peak_bytes"].values).all()


def test_memory_growth_and_exponent():
    table = scaling_table(scaling_sweep())
    assert growth_pair(table) == (1000.0, 2000.0)
    growth = memory_growth(table).sel(conn_method="dense")
    np.testing.assert_allclose(growth.sel({"method": "bptt"}).values, [21 / 13 - 1, 41 / 21 - 1])
    np.testing.assert_allclose(growth.sel({"method": "diag"}).values, [0.0, 0.0])
    temp_growth = memory_growth(table, "temp_bytes").sel(conn_method="dense")
    np.testing.assert_allclose(temp_growth.sel({"method": "bptt"}).values, [20 / 12 - 1, 1.0])
    slope = growth_exponent(table["temp_bytes"]).sel(conn_method="dense")
    np.testing.assert_allclose(slope.sel({"method": "bptt", "n_rec": 200}).item(), 1.0)
    np.testing.assert_allclose(slope.sel({"method": "diag"}).values, [0.0, 0.0], atol=1e-12)


def test_growth_pair_without_1000_and_2000():
    table = xr.Dataset({"step_bytes": ("T", [1.0, 2.0, 4.0])}, coords={"T": [250, 500, 4000]})
    assert growth_pair(table) == (250.0, 500.0)
    table = table.assign_coords(T=[250, 600, 4000])
    assert growth_pair(table) == (600.0, 4000.0)
    assert growth_pair(table.isel(T=[0])) is None


def test_T_stored_as_n_steps_like_scaling_probe():
    """scaling-probe's T parameter is ``n_steps`` and it returns ``n_steps`` too: open_sweep then has the
    variable ``n_steps`` and the swept coordinate ``n_steps_param``."""
    ds = scaling_sweep()
    ds = ds.assign(n_steps=ds["T"].reset_coords(drop=True)).rename({"T": "n_steps_param"})
    ds = ds.assign_coords(batch_size=("point", [4] * (ds.sizes["point"] - 1) + [8]))
    assert table_keys(ds) == ["method", "conn_method", "n_rec", "T", "batch_size"]
    table = scaling_table(ds, keys=["method", "conn_method", "n_rec", "T"])
    np.testing.assert_allclose(memory_growth(table).sel({"method": "bptt", "conn_method": "dense"}).values,
                               [21 / 13 - 1, 41 / 21 - 1])
